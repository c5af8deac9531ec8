import type { FormatDetails } from '../driver.js';
import { ZERO_GUID } from './guid.js';
import type { VhdxImage } from './vhdx-image.js';

/** `info`'s VHDX part: headers, log state, block states, the parent locator. */
export async function vhdxDetails(image: VhdxImage): Promise<FormatDetails> {
  const L = image.layout;
  const h = L.header;
  const counts = await image.blockCounts();
  const pending = image.pendingLog;
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
      ...(pending ? { 'pending-entries': pending.entries.length, 'head-sequence': Number(pending.head.header.sequenceNumber) } : {}),
    },
    creator: L.creator,
    'current-header': L.current + 1,
    'header-sequence': Number(h.sequenceNumber),
    'total-blocks': L.geometry.dataBlocks,
    // Payload blocks stored in this file, as check counts them: a partially present block is one too.
    'allocated-blocks': (counts.FULLY_PRESENT ?? 0) + (counts.PARTIALLY_PRESENT ?? 0),
    'block-states': counts,
  };
  if (L.parentLocator) data['parent-locator'] = { type: L.parentLocator.locatorType, entries: L.parentLocator.entries };
  if (L.warnings.length) data.warnings = L.warnings;
  return {
    'cluster-size': L.params.blockSize,
    'dirty-flag': pending !== null,
    'format-specific': { type: 'vhdx', data },
  };
}
