import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { closeSync, existsSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, statfsSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { isoinfoListing, xorrisoLsdl } from './helpers/iso.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';

const GiB = 1024 ** 3;
/** libisofs cuts files into sections of 4 GiB - 2 KiB (the largest multiple of a block below 4 GiB). */
const SECTION = 4 * GiB - 2048;
const SIZE = 4 * GiB + 1024 * 1024;
const MARKS: [number, string][] = [[0, 'START'], [SECTION - 7, 'ACROSS-THE-SECTIONS'], [SIZE - 4, 'END!']];

test('a file over 4 GiB (xorriso -iso-level 3) is joined from its multi-extent records; bounded reads across the seam', async (t) => {
  if (!needPeers(t, 'xorriso', 'isoinfo')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(src);
  const big = join(src, 'huge.bin');
  const fd = openSync(big, 'w');
  ftruncateSync(fd, SIZE);
  for (const [at, s] of MARKS) writeSync(fd, Buffer.from(s), 0, s.length, at);
  closeSync(fd);
  writeFileSync(join(src, 'small.txt'), 'small\n');
  // xorriso writes every zero of the 4 GiB: into memory when there is room (3x faster than a disk), else beside the source.
  const shm = '/dev/shm';
  const room = existsSync(shm) ? statfsSync(shm).bavail * statfsSync(shm).bsize : 0;
  const where = room > SIZE * 2 ? mkdtempSync(join(shm, 'vdisk-iso-')) : mkdtempSync(join(tmpdir(), 'vdisk-iso-'));
  t.after(() => rmSync(where, { recursive: true, force: true }));
  const img = join(where, 'big.iso');
  sh('xorriso', ['-no_rc', '-report_about', 'FAILURE', '-outdev', `stdio:${img}`, '-md5', 'off', '-compliance', 'iso_9660_level=3', '-rockridge', 'on', '-map', src, '/', '-commit']);

  // isoinfo shows the two records of one name; xorriso the one file.
  const records = [...isoinfoListing(img).entries()].filter(([p]) => p === '/HUGE.BIN;1');
  assert.equal(records.length, 1, 'isoinfo keys by name: the last record wins');
  const listing = spawnSync('isoinfo', ['-l', '-i', img], { encoding: 'utf8' }).stdout;
  assert.equal(listing.match(/HUGE\.BIN;1/g)?.length, 2, listing);
  assert.equal(xorrisoLsdl(img).get('/huge.bin')?.size, SIZE);

  const image = await openImage(img);
  try {
    const fs = await openFilesystem(image);
    const st = await fs.stat('/huge.bin');
    assert.equal(st.size, SIZE);
    assert.ok(st.flags?.includes('multi-extent'));
    const f = await fs.open('/huge.bin');
    for (const [at, s] of MARKS) {
      const buf = Buffer.alloc(s.length + 8);
      const n = await f.read(buf, at - 4);
      assert.equal(n, Math.min(buf.length, SIZE - (at - 4)));
      assert.equal(buf.subarray(4, 4 + s.length).toString(), s, `bytes at ${at}`);
      assert.ok(buf.subarray(0, 4).equals(Buffer.alloc(4)));
    }
    assert.equal(await f.read(Buffer.alloc(10), SIZE), 0, 'nothing past the end');
  } finally {
    await image.close();
  }
});
