import type { FormatDetails } from '../driver.js';
import {
  AUTOCLEAR_DATA_FILE_RAW, COMPAT_LAZY_REFCOUNTS, COMPRESSION_ZSTD, INCOMPAT_CORRUPT, INCOMPAT_DIRTY,
} from './constants.js';
import { readSnapshots, snapshotInfo } from './snapshots.js';
import type { Qcow2Image } from './qcow2-image.js';

/** `info`'s qcow2 part, with qemu-img info's keys in qemu-img's order. */
export async function qcow2Details(image: Qcow2Image): Promise<FormatDetails> {
  const { header: h, ext, backingName } = image.layout;
  const data: Record<string, unknown> = { compat: h.version === 2 ? '0.10' : '1.1', 'compression-type': h.compressionType === COMPRESSION_ZSTD ? 'zstd' : 'zlib' };
  if (h.version === 3) data['lazy-refcounts'] = (h.compatible & COMPAT_LAZY_REFCOUNTS) !== 0;
  data['refcount-bits'] = 1 << h.refcountOrder;
  if (ext.dataFile) {
    data['data-file'] = ext.dataFile;
    data['data-file-raw'] = (h.autoclear & AUTOCLEAR_DATA_FILE_RAW) !== 0;
  }
  if (h.version === 3) {
    data.corrupt = (h.incompatible & INCOMPAT_CORRUPT) !== 0;
    data['extended-l2'] = image.layout.extended;
  }
  const out: FormatDetails = { 'cluster-size': image.clusterSize };
  if (h.nbSnapshots > 0) out.snapshots = (await readSnapshots(image.file, h.snapshotsOffset, h.nbSnapshots)).snapshots.map(snapshotInfo);
  if (backingName !== null) {
    out['backing-filename'] = backingName;
    out['full-backing-filename'] = image.backingPath as string;
    if (ext.backingFormat) out['backing-filename-format'] = ext.backingFormat;
  }
  out['dirty-flag'] = (h.incompatible & INCOMPAT_DIRTY) !== 0;
  out['format-specific'] = { type: 'qcow2', data };
  return out;
}
