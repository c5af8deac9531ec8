import type { PositionalFile } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import { ITEM_PARENT_LOCATOR, METADATA_TABLE_SIZE } from './constants.js';
import { serializeMetadataTable, serializeParentLocator, type ParentLocator } from './metadata.js';
import type { HeaderPair } from './header-pair.js';
import type { VhdxLayout } from './layout.js';
import { logTransaction } from './log-writer.js';
import { newGuid } from './guid.js';
import { patchSectors } from './resize.js';
import type { LogOperation } from './log.js';

/**
 * Rewrites a child's parent locator in one log entry: the new locator where the old one was when it
 * fits before the next item, else after the last item, and the metadata table entry pointing at it.
 * A crash leaves the old locator or the new one.
 */
export async function rewriteParentLocator(file: PositionalFile, pair: HeaderPair, layout: VhdxLayout, locator: ParentLocator): Promise<void> {
  const entries = layout.metadataEntries;
  const i = entries.findIndex((e) => e.itemId === ITEM_PARENT_LOCATOR);
  if (i < 0) throw new VdiskError('CORRUPT', `${file.path}: metadata has no parent locator item`);
  const bytes = serializeParentLocator(locator);
  const old = entries[i];
  const others = entries.filter((_, k) => k !== i && entries[k].length > 0);
  const nextStart = Math.min(layout.metadata.length, ...others.map((e) => e.offset).filter((o) => o >= old.offset + old.length));
  const lastEnd = Math.max(METADATA_TABLE_SIZE, ...others.map((e) => e.offset + e.length));
  const offset = old.offset >= METADATA_TABLE_SIZE && old.offset + bytes.length <= nextStart && !overlaps(others, old.offset, bytes.length)
    ? old.offset
    : Math.ceil(lastEnd / 8) * 8;
  if (offset + bytes.length > layout.metadata.length) {
    throw new VdiskError('UNSUPPORTED', `${file.path}: the new parent locator (${bytes.length} bytes) does not fit in the metadata region`);
  }
  const table = serializeMetadataTable(entries.map((e, k) => (k === i ? { ...e, offset, length: bytes.length } : e)));
  const ops: LogOperation[] = [
    ...(await patchSectors(file, layout.metadata.fileOffset + offset, bytes)),
    ...(await patchSectors(file, layout.metadata.fileOffset, table)),
  ];
  await pair.update({ fileWriteGuid: newGuid() });
  await logTransaction(file, pair, ops);
}

function overlaps(items: { offset: number; length: number }[], at: number, n: number): boolean {
  return items.some((e) => e.offset < at + n && at < e.offset + e.length);
}
