import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { vhdiInfo } from './helpers/qemu.js';
import { makeDifferencing } from './helpers/differencing.js';

test('a differencing image: info shows its type and parent locator as vhdiinfo does; a missing parent is a clean error', async (t) => {
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
  assert.match(r.stderr, /^vdisk: .*parent image \.\\base\.vhdx not found|^vdisk: .*has changed since this image was made/);
  assert.equal(await sha256(child), before);
});

test('reading through a parent: NOT_PRESENT from the parent, PARTIALLY_PRESENT per sector bitmap, ZERO as zeros', async (t) => {
  const dir = tempDir(t);
  const MiB = 1024 * 1024;
  const base = join(dir, 'base.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', base, '16M']).code, 0);
  const baseData = randomBytes(16 * MiB);
  assert.equal(vdisk(['write', base], { input: baseData }).code, 0);
  const baseGuid = JSON.parse(vdisk(['info', '--output', 'json', base]).stdout)['format-specific'].data['data-write-guid'];

  const childPlain = join(dir, 'child-plain.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', childPlain, '16M']).code, 0);
  const full = randomBytes(MiB);
  const partial = randomBytes(MiB);
  assert.equal(vdisk(['write', childPlain, '--offset', String(2 * MiB)], { input: full }).code, 0);
  assert.equal(vdisk(['write', childPlain, '--offset', String(5 * MiB)], { input: partial }).code, 0);
  const child = join(dir, 'child.vhdx');
  makeDifferencing(childPlain, child, {
    parent_linkage: `{${baseGuid}}`,
    relative_path: '.\\base.vhdx',
    absolute_win32_path: 'C:\\VMs\\base.vhdx', // libvhdi finds the parent by this one's file name
  });

  // BAT (at 2 MiB in our layout): block 5 partially present, block 7 ZERO, the chunk's bitmap present.
  const b = readFileSync(child);
  const bat = 2 * MiB;
  const e5 = b.readBigUInt64LE(bat + 5 * 8);
  b.writeBigUInt64LE((e5 & ~7n) | 7n, bat + 5 * 8);
  b.writeBigUInt64LE(2n, bat + 7 * 8);
  const bitmapAt = Math.ceil(b.length / MiB) * MiB;
  b.writeBigUInt64LE((BigInt(bitmapAt / MiB) << 20n) | 6n, bat + 4096 * 8); // chunk ratio 4096: entry 4096
  const bitmap = Buffer.alloc(MiB);
  const mineSectors = new Set<number>();
  for (let s = 0; s < 2048; s++) if (s < 100 || (s > 700 && s % 3 === 0) || s >= 2000) mineSectors.add(s);
  for (const s of mineSectors) {
    const j = 5 * 2048 + s;
    bitmap[j >> 3] |= 1 << (j & 7);
  }
  writeFileSync(child, Buffer.concat([b, Buffer.alloc(bitmapAt - b.length), bitmap]));

  const model = Buffer.from(baseData);
  full.copy(model, 2 * MiB);
  for (const s of mineSectors) partial.copy(model, 5 * MiB + s * 512, s * 512, s * 512 + 512);
  model.fill(0, 7 * MiB, 8 * MiB);

  // libvhdi's vhdimount (FUSE) reads the chain as well and must see the same bytes, but for block 7:
  // for a ZERO block it shows the parent's data, where the format (and vdisk) say zeros.
  if (existsSync('/dev/fuse') && needPeers(t, 'vhdimount')) {
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt);
    sh('vhdimount', [child, mnt]);
    try {
      // One file per image of the chain, parent first: the last is the child's view.
      const views = readdirSync(mnt).sort();
      const theirs = readFileSync(join(mnt, views[views.length - 1]));
      const expected = Buffer.from(model);
      baseData.copy(expected, 7 * MiB, 7 * MiB, 8 * MiB);
      assert.ok(theirs.equals(expected), 'vhdimount shows the model (block 7: the parent)');
    } finally {
      sh('umount', [mnt]);
    }
  }

  const r = vdisk(['read', child]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(model), 'whole disk equals the model');
  for (const [o, l] of [[5 * MiB + 51_000, 3000], [5 * MiB - 777, 2 * MiB], [4 * MiB + 123, 4 * MiB]]) {
    const part = vdisk(['read', child, '--offset', String(o), '--length', String(l)]);
    assert.ok(part.stdoutBytes.equals(model.subarray(o, o + l)), `range ${o}+${l}`);
  }
  const out = join(dir, 'out.raw');
  assert.equal(vdisk(['read', child, out]).code, 0);
  assert.ok(readFileSync(out).equals(model), 'sparse export too');
  const info = JSON.parse(vdisk(['info', '--output', 'json', child]).stdout);
  assert.equal(info['format-specific'].data.subformat, 'differencing');
  assert.equal(vdisk(['check', child]).code, 0);
  // info and check count the blocks the child holds the same way: block 2 (full) and block 5 (partial).
  const checked = JSON.parse(vdisk(['check', '--output', 'json', child]).stdout);
  assert.equal(info['format-specific'].data['allocated-blocks'], 2);
  assert.equal(checked['allocated-blocks'], info['format-specific'].data['allocated-blocks']);

  // map says which image of the chain holds each range, and where: the bytes there are the model's.
  const map = JSON.parse(vdisk(['map', '--output', 'json', child]).stdout) as { start: number; length: number; depth: number; data: boolean; zero: boolean; offset?: number }[];
  const files = [readFileSync(child), readFileSync(base)];
  let covered = 0;
  for (const e of map) {
    assert.equal(e.start, covered);
    covered += e.length;
    const want = model.subarray(e.start, e.start + e.length);
    if (e.data) assert.ok(files[e.depth].subarray(e.offset, (e.offset as number) + e.length).equals(want), `depth ${e.depth} at ${e.start}`);
    else assert.ok(e.zero && want.every((x) => x === 0));
  }
  assert.equal(covered, 16 * MiB);
  assert.ok(map.some((e) => e.depth === 0 && e.start >= 5 * MiB && e.start < 6 * MiB), 'sectors of the partial block held here');
  assert.ok(map.some((e) => e.depth === 1 && e.start > 5 * MiB && e.start < 6 * MiB), 'sectors of the partial block taken from the parent');

  // convert flattens the chain into one image that QEMU (which cannot open differencing VHDX) reads.
  const flat = join(dir, 'flat.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', child, flat]).code, 0);
  if (needPeers(t, 'qemu-img')) {
    const flatRaw = join(dir, 'flat.raw');
    sh('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', flat, flatRaw]);
    assert.ok(readFileSync(flatRaw).equals(model), 'the flattened image, read by QEMU, equals the model');
    assert.match(sh('qemu-img', ['check', '-f', 'vhdx', flat]), /No errors were found/);
  }

  // A parent that changed after the child was made is refused.
  assert.equal(vdisk(['write', base, '--offset', '0'], { input: Buffer.from('changed') }).code, 0);
  const stale = vdisk(['read', child, '--length', '512']);
  assert.equal(stale.code, 1);
  assert.match(stale.stderr, /^vdisk: .*has changed since this image was made/);
});
