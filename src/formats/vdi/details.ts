import type { FormatDetails } from '../driver.js';
import type { VdiImage } from './vdi-image.js';

/**
 * `info`'s VDI part. qemu-img info shows only cluster-size for VDI; the format-specific part is
 * vdisk's: the header's type, identities and counts.
 */
export function vdiDetails(image: VdiImage): FormatDetails {
  const h = image.header;
  const g = image.geometry;
  return {
    'cluster-size': g.blockSize,
    'format-specific': {
      type: 'vdi',
      data: {
        type: g.isStatic ? 'static' : 'dynamic',
        version: `${h.version >>> 16}.${h.version & 0xffff}`,
        text: h.text.replace(/\n$/, ''),
        uuid: h.uuidImage,
        'last-snapshot-uuid': h.uuidLastSnap,
        'link-uuid': h.uuidLink,
        'parent-uuid': h.uuidParent,
        'block-size': g.blockSize,
        'total-blocks': g.blocks,
        'allocated-blocks': h.blocksAllocated,
        'block-map-offset': g.offsetBmap,
        'data-offset': g.offsetData,
        'header-size': h.headerSize,
        flags: h.imageFlags,
        ...(h.description ? { description: h.description } : {}),
      },
    },
  };
}
