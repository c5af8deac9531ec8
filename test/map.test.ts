import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, statSync, openSync, ftruncateSync, closeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw, scatteredWrites } from './helpers/qemu.js';
import { createVhdx, mapImage, openImage, type MapExtent } from '../src/index.js';

const MiB = 1024 * 1024;

/** What the JSON carries of each extent: everything but the file name. */
type Extent = Omit<MapExtent, 'filename'>;

function ourMap(img: string, format?: string): Extent[] {
  const r = vdisk(['map', '--output', 'json', ...(format ? ['-f', format] : []), img]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Extent[];
}

/** The extents tile the disk in order, and no two neighbours could have been merged. */
function assertTiles(map: Extent[], size: number): void {
  let at = 0;
  for (const [i, e] of map.entries()) {
    assert.equal(e.start, at, `extent ${i} starts where the last ended`);
    assert.ok(e.length > 0);
    at += e.length;
    const prev = map[i - 1];
    if (prev) {
      const same = prev.depth === e.depth && prev.present === e.present && prev.zero === e.zero && prev.data === e.data;
      const contiguous = prev.offset === undefined ? e.offset === undefined : prev.offset + prev.length === e.offset;
      assert.ok(!(same && contiguous), `extents ${i - 1} and ${i} should have been merged`);
    }
  }
  assert.equal(at, size, 'the extents cover the whole disk');
}

test('map of QEMU-written VHDX images: every data extent is found at its offset in the file, zero extents read as zeros', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const size = 40 * MiB;
  for (const options of [['block_size=1M'], ['block_size=8M', 'block_state_zero=off'], ['subformat=fixed']]) {
    const img = makeQemuVhdx(dir, { name: options.join('-').replace(/\W/g, '_'), size: '40M', options, io: scatteredWrites(size, MiB) });
    const map = ourMap(img);
    assertTiles(map, size);
    const raw = join(dir, 'ref.raw');
    qemuConvertToRaw(img, raw); // QEMU's own reading of the disk
    const disk = readFileSync(raw);
    const file = readFileSync(img);
    let dataBytes = 0;
    for (const e of map) {
      assert.equal(e.depth, 0);
      const want = disk.subarray(e.start, e.start + e.length);
      if (e.data) {
        assert.ok(e.present && !e.zero && e.offset !== undefined, JSON.stringify(e));
        assert.ok(file.subarray(e.offset, e.offset + e.length).equals(want), `${options}: bytes at file offset ${e.offset} are the disk's at ${e.start}`);
        dataBytes += e.length;
      } else {
        assert.ok(e.zero && e.offset === undefined, JSON.stringify(e));
        assert.ok(want.every((b) => b === 0), `${options}: ${e.start}+${e.length} reads as zeros`);
      }
    }
    // Every byte qemu-io wrote lies in a data extent; a fixed image stores every block.
    if (options.includes('subformat=fixed')) assert.ok(map.every((e) => e.data || e.zero));
    else assert.ok(dataBytes < size, `${options}: unwritten blocks are not data`);
    if (options.includes('block_state_zero=off')) assert.ok(map.some((e) => !e.present), 'NOT_PRESENT blocks are not present');
  }
});

test('map of a raw image and its human form are what qemu-img map prints for a file without holes', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'full.raw');
  writeFileSync(raw, randomBytes(3 * MiB + 512));
  assert.deepEqual(ourMap(raw), JSON.parse(sh('qemu-img', ['map', '-f', 'raw', '--output', 'json', raw])));
  const human = vdisk(['map', raw]);
  assert.equal(human.code, 0);
  assert.equal(human.stdout, sh('qemu-img', ['map', '-f', 'raw', raw]));
});

test('map walks an empty 64 TiB image as one extent; a damaged BAT is a one-line error', async (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'big.vhdx');
  assert.equal(vdisk(['create', '-q', img, '64T']).code, 0);
  assert.deepEqual(ourMap(img), [{ start: 0, length: 64 * 1024 ** 4, depth: 0, present: false, zero: true, data: false }]);

  const small = join(dir, 'small.vhdx');
  const src = join(dir, 'src.raw');
  writeFileSync(src, randomBytes(4 * MiB));
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=1M', src, small]).code, 0);
  const before = await sha256(small);
  const map = ourMap(small);
  assert.equal(map.length, 1, 'blocks written in order are stored back to back: one extent');
  assert.equal(map[0].offset, statSync(small).size - 4 * MiB);
  assert.equal(await sha256(small), before, 'map only looks');
  const fd = openSync(small, 'r+');
  ftruncateSync(fd, statSync(small).size - MiB);
  closeSync(fd);
  const r = vdisk(['map', small]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*small\.vhdx: BAT entry 3 \(block 3\) points to bytes \d+\.\.\d+, past the end of the file/);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});

test('during a write session, map and blockStatus see blocks whose BAT entries are not committed yet', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 's.vhdx');
  await createVhdx(path, { size: 8 * MiB, blockSize: MiB });
  const img = await openImage(path, { mode: 'rw' });
  try {
    await img.write(Buffer.alloc(4096, 0x5a), 3 * MiB + 8192);
    const extents: MapExtent[] = [];
    await mapImage(img, (e) => void extents.push(e));
    const data = extents.filter((e) => e.data);
    assert.equal(data.length, 1);
    assert.equal(data[0].start, 3 * MiB);
    assert.equal(data[0].length, MiB);
    const file = readFileSync(path);
    const at = (data[0].offset as number) + 8192;
    assert.ok(file.subarray(at, at + 4096).every((b) => b === 0x5a), 'the written bytes are where map says');
    assert.deepEqual(await img.blockStatus(2 * MiB, 3 * MiB), [
      { offset: 2 * MiB, length: MiB, state: 'unallocated' },
      { offset: 3 * MiB, length: MiB, state: 'data' },
      { offset: 4 * MiB, length: MiB, state: 'unallocated' },
    ]);
  } finally {
    await img.close();
  }
});
