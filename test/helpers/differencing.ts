import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { parseMetadataTable, serializeMetadataTable, serializeParentLocator } from '../../src/formats/vhdx/metadata.js';
import { ITEM_FILE_PARAMETERS, ITEM_PARENT_LOCATOR, PARENT_LOCATOR_VHDX } from '../../src/formats/vhdx/constants.js';

/** Turns an image we created (metadata region at 3 MiB) into a differencing one with a parent locator. */
export function makeDifferencing(src: string, dst: string, entries: Record<string, string>): void {
  const b = readFileSync(src);
  const meta = 3 * 1024 * 1024;
  const t = parseMetadataTable(b.subarray(meta, meta + 65536));
  assert.ok(t.ok);
  const fp = t.entries.find((e) => e.itemId === ITEM_FILE_PARAMETERS);
  assert.ok(fp);
  b.writeUInt32LE(b.readUInt32LE(meta + fp.offset + 4) | 2, meta + fp.offset + 4);
  const loc = serializeParentLocator({ locatorType: PARENT_LOCATOR_VHDX, entries });
  const at = 65536 + 4096;
  loc.copy(b, meta + at);
  serializeMetadataTable([...t.entries, { itemId: ITEM_PARENT_LOCATOR, offset: at, length: loc.length, isUser: false, isVirtualDisk: false, isRequired: true }]).copy(b, meta);
  writeFileSync(dst, b);
}
