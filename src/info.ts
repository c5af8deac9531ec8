import { stat } from 'node:fs/promises';
import type { DiskImage } from './formats/image.js';
import { VhdxImage } from './formats/vhdx/vhdx-image.js';
import { ZERO_GUID } from './formats/vhdx/guid.js';

/** `info` as data; the keys follow `qemu-img info --output json` where qemu-img has them. */
export interface ImageInfo {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size': number;
  'cluster-size'?: number;
  'dirty-flag': boolean;
  'format-specific'?: { type: string; data: Record<string, unknown> };
}

export async function describeImage(image: DiskImage): Promise<ImageInfo> {
  const st = await stat(image.filename);
  const info: ImageInfo = {
    filename: image.filename,
    format: image.format,
    'virtual-size': image.virtualSize,
    'actual-size': st.blocks * 512,
    'dirty-flag': false,
  };
  if (image instanceof VhdxImage) {
    const L = image.layout;
    const h = L.header;
    const counts = await image.blockCounts();
    const pending = image.pendingLog;
    info['cluster-size'] = L.params.blockSize;
    info['dirty-flag'] = pending !== null;
    const data: Record<string, unknown> = {
      subformat: image.subformat,
      'block-size': L.params.blockSize,
      'logical-sector-size': L.logicalSectorSize,
      'physical-sector-size': L.physicalSectorSize,
      'virtual-disk-id': L.virtualDiskId,
      'data-write-guid': h.dataWriteGuid,
      'file-write-guid': h.fileWriteGuid,
      'log-guid': h.logGuid,
      log: {
        offset: h.logOffset,
        length: h.logLength,
        state: pending ? 'pending' : h.logGuid === ZERO_GUID ? 'empty' : 'no valid entries',
        ...(pending
          ? {
              'pending-entries': pending.entries.length,
              'head-sequence': Number(pending.head.header.sequenceNumber),
            }
          : {}),
      },
      creator: L.creator,
      'current-header': L.current + 1,
      'header-sequence': Number(h.sequenceNumber),
      'total-blocks': L.geometry.dataBlocks,
      // Payload blocks stored in this file, as check counts them: a partially present block is one too.
      'allocated-blocks': (counts.FULLY_PRESENT ?? 0) + (counts.PARTIALLY_PRESENT ?? 0),
      'block-states': counts,
    };
    if (L.parentLocator) {
      data['parent-locator'] = { type: L.parentLocator.locatorType, entries: L.parentLocator.entries };
    }
    if (L.warnings.length) data.warnings = L.warnings;
    info['format-specific'] = { type: 'vhdx', data };
  }
  return info;
}
