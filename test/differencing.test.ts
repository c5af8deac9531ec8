import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256 } from './helpers/peers.js';
import { vhdiInfo } from './helpers/qemu.js';
import { parseMetadataTable, serializeMetadataTable, serializeParentLocator } from '../src/formats/vhdx/metadata.js';
import { ITEM_FILE_PARAMETERS, ITEM_PARENT_LOCATOR, PARENT_LOCATOR_VHDX } from '../src/formats/vhdx/constants.js';

/** Turns an image we created (metadata region at 3 MiB) into a differencing one with a parent locator. */
function makeDifferencing(src: string, dst: string, entries: Record<string, string>): void {
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

test('a differencing image: info shows its type and parent locator as vhdiinfo does; read refuses cleanly', async (t) => {
  if (!needPeers(t, 'vhdiinfo')) return;
  const dir = tempDir(t);
  const base = join(dir, 'base.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', base, '16M']).code, 0);
  const child = join(dir, 'child.vhdx');
  makeDifferencing(base, child, {
    parent_linkage: '{83ee6b66-3a7d-4b87-9f5b-4ac01c2b3bce}',
    relative_path: '.\\base.vhdx',
    absolute_win32_path: 'C:\\VMs\\base.vhdx',
  });
  const info = JSON.parse(vdisk(['info', '--output', 'json', child]).stdout);
  const d = info['format-specific'].data;
  const vi = vhdiInfo(child);
  assert.equal(d.subformat, 'differencing');
  assert.equal(vi['Disk type'], 'Differential');
  assert.equal(`{${vi['Parent identifier']}}`, d['parent-locator'].entries.parent_linkage);
  assert.equal(vi['Parent filename'], d['parent-locator'].entries.absolute_win32_path);
  assert.equal(d['parent-locator'].type, 'b04aefb7-d19e-4a81-b789-25b8e9445913');
  assert.deepEqual(d['block-states'], { NOT_PRESENT: 16 });
  const before = await sha256(child);
  const r = vdisk(['read', child, join(dir, 'out.raw')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*differencing image needs its parent/);
  assert.equal(await sha256(child), before);
});
