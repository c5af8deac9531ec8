import type { FormatDetails } from '../driver.js';
import { SparseExtent } from './sparse-extent.js';
import type { VmdkImage } from './vmdk-image.js';

/** `info`'s VMDK part, with qemu-img info's keys. */
export async function vmdkDetails(image: VmdkImage): Promise<FormatDetails> {
  const d = image.descriptor;
  const extents = image.extents.map((p) => {
    const e = p.extent;
    const out: Record<string, unknown> = { filename: e.filename ?? '', format: p.type, 'virtual-size': p.length };
    if (e instanceof SparseExtent) {
      out['cluster-size'] = e.grainBytes;
      if (e.compressed) out.compressed = true;
    }
    return out;
  });
  const first = image.extents.find((p) => p.extent instanceof SparseExtent)?.extent as SparseExtent | undefined;
  const details: FormatDetails = {
    'format-specific': {
      type: 'vmdk',
      data: {
        cid: d.cid,
        'parent-cid': d.parentCid,
        'create-type': d.createType,
        extents,
        ...(d.ddb['adapterType'] ? { 'adapter-type': d.ddb['adapterType'] } : {}),
        ...(d.ddb['geometry.cylinders'] ? {
          geometry: { cylinders: Number(d.ddb['geometry.cylinders']), heads: Number(d.ddb['geometry.heads']), sectors: Number(d.ddb['geometry.sectors']) },
        } : {}),
      },
    },
  };
  if (first) details['cluster-size'] = first.grainBytes;
  if (d.parentFileNameHint !== null) {
    details['backing-filename'] = d.parentFileNameHint;
    details['full-backing-filename'] = image.parentPath!;
    details['backing-filename-format'] = 'vmdk';
  }
  return details;
}
