import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, openSync, readFileSync, writeSync, writeFileSync, closeSync, ftruncateSync, statSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { VDISK, needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw, qemuInfo, scatteredWrites, vhdiInfo } from './helpers/qemu.js';
import { buildKillShim, makeDirtyQemuVhdx } from './helpers/crash.js';

const MiB = 1024 * 1024;

/** A sparse raw disk with random data at a few places (one crossing a 1 MiB boundary, one at the very end). */
function makeRaw(path: string, size: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [at, len] of [[0, 64 * 1024], [MiB - 4096, 12 * 1024], [5 * MiB + 512, 3 * MiB], [size - 1000, 1000]]) {
    writeSync(fd, randomBytes(len), 0, len, at);
  }
  closeSync(fd);
}

function qemuCompare(a: string, fa: string, b: string, fb: string): void {
  assert.match(sh('qemu-img', ['compare', '-f', fa, '-F', fb, a, b]), /Images are identical/);
}

function qemuCheckClean(img: string): void {
  assert.match(sh('qemu-img', ['check', '-f', 'vhdx', img]), /No errors were found/);
}

/** Bytes the file really holds on disk: a sparse output holds much less than its length. */
const allocated = (p: string) => statSync(p).blocks * 512;

test('convert raw to VHDX with every creation option: qemu-img compare finds the same disk, qemu-img check a clean image', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'src.raw');
  const size = 24 * MiB;
  makeRaw(raw, size);
  const variants: [string, string[]][] = [
    ['default', []],
    ['1M blocks', ['block_size=1M']],
    ['fixed', ['subformat=fixed']],
    ['block_state_zero', ['block_state_zero=on', 'block_size=2M', 'log_size=2M']],
  ];
  for (const [name, opts] of variants) {
    const out = join(dir, `${name.replace(/\W/g, '_')}.vhdx`);
    const r = vdisk(['convert', '-q', '-O', 'vhdx', ...opts.flatMap((o) => ['-o', o]), raw, out]);
    assert.equal(r.code, 0, `${name}: ${r.stderr}`);
    assert.equal(r.stdout, '', `${name}: -q prints nothing`);
    qemuCompare(raw, 'raw', out, 'vhdx');
    qemuCheckClean(out);
    assert.equal(vdisk(['check', out]).code, 0, name);
    const info = qemuInfo(out) as { 'virtual-size': number; 'cluster-size': number };
    assert.equal(info['virtual-size'], size, name);
    if (opts.includes('block_size=1M')) assert.equal(info['cluster-size'], MiB);
    if (name !== 'fixed') {
      // Only blocks holding data were allocated: 4 MiB of data over at most 6 blocks of the largest size.
      assert.ok(allocated(out) < 20 * MiB, `${name}: ${allocated(out)} bytes allocated for 4 MiB of data`);
    }
  }
});

test('convert raw to a 4K-sector VHDX, and that to VHDX again: vhdiinfo reads the geometry, the sector sizes carry over unless -o changes them', async (t) => {
  if (!needPeers(t, 'vhdiinfo')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'src.raw');
  makeRaw(raw, 16 * MiB);
  const out = join(dir, '4k.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'logical_sector_size=4096', raw, out]).code, 0);
  assert.match(vhdiInfo(out)['Bytes per sector'], /^4096/);
  const back = join(dir, 'back.raw');
  assert.equal(vdisk(['read', out, back]).code, 0);
  assert.equal(await sha256(back), await sha256(raw));

  // VHDX to VHDX keeps the source's sector sizes (a partition table counting 4 KiB sectors stays
  // right), unless -o names others.
  const sectors = (img: string) => {
    const d = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout)['format-specific'].data;
    return [d['logical-sector-size'], d['physical-sector-size']];
  };
  const kept = join(dir, 'kept.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=1M', out, kept]).code, 0);
  assert.match(vhdiInfo(kept)['Bytes per sector'], /^4096/);
  assert.deepEqual(sectors(kept), [4096, 4096]);
  const changed = join(dir, 'changed.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'logical_sector_size=512', out, changed]).code, 0);
  assert.deepEqual(sectors(changed), [512, 512]);
  assert.equal(vdisk(['read', changed, back]).code, 0);
  assert.equal(await sha256(back), await sha256(raw));
});

test('a raw source whose size is not whole sectors becomes a VHDX rounded up to the sector, as qemu-img does', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'odd.raw');
  makeRaw(raw, 3 * MiB + 1000);
  const ours = join(dir, 'ours.vhdx');
  const theirs = join(dir, 'theirs.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', raw, ours]).code, 0);
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, theirs]);
  assert.equal((qemuInfo(ours) as { 'virtual-size': number })['virtual-size'], (qemuInfo(theirs) as { 'virtual-size': number })['virtual-size']);
  qemuCompare(ours, 'vhdx', theirs, 'vhdx');
});

test('convert a QEMU VHDX to raw (the default output format): the same bytes as qemu-img convert, and sparse', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const size = 40 * MiB;
  const src = makeQemuVhdx(dir, { name: 'q', size: '40M', options: ['block_size=1M'], io: scatteredWrites(size, MiB) });
  const before = await sha256(src);
  const ours = join(dir, 'ours.raw');
  const theirs = join(dir, 'theirs.raw');
  assert.equal(vdisk(['convert', src, ours]).code, 0);
  qemuConvertToRaw(src, theirs);
  assert.equal(await sha256(ours), await sha256(theirs));
  assert.equal(statSync(ours).size, size);
  assert.ok(allocated(ours) < 4 * MiB, `raw output is sparse (${allocated(ours)} bytes allocated)`);
  assert.equal(await sha256(src), before, 'the source is unchanged');
});

test('convert VHDX to VHDX with another block size and to fixed: qemu-img compare equals the source', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const size = 80 * MiB; // blocks 4, 6, 7 and 8 stay unallocated between the written ones
  const src = makeQemuVhdx(dir, { name: 'q', size: '80M', options: ['block_size=8M'], io: scatteredWrites(size, 8 * MiB) });
  for (const opts of [['block_size=1M'], ['subformat=fixed', 'block_size=32M']]) {
    const out = join(dir, `${opts.join('-').replace(/\W/g, '_')}.vhdx`);
    const r = vdisk(['convert', '-f', 'vhdx', '-O', 'vhdx', ...opts.flatMap((o) => ['-o', o]), src, out]);
    assert.equal(r.code, 0, r.stderr);
    qemuCompare(src, 'vhdx', out, 'vhdx');
    qemuCheckClean(out);
  }
});

test('convert replays a pending log in memory: the output equals QEMU’s own replay, the source is untouched', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const dirty = makeDirtyQemuVhdx(dir, shim, ['write -P 0xee 2M 4k', 'write -P 0x77 9M 64k']);
  assert.ok(dirty, 'a cut point leaving a pending log exists');
  const before = await sha256(dirty);
  const out = join(dir, 'out.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', dirty, out]).code, 0);
  assert.equal(await sha256(dirty), before, 'the dirty source was not replayed on disk');
  const replayed = join(dir, 'replayed.vhdx');
  copyFileSync(dirty, replayed);
  sh('qemu-img', ['check', '-q', '-r', 'all', '-f', 'vhdx', replayed]);
  qemuCompare(replayed, 'vhdx', out, 'vhdx');
  qemuCheckClean(out);
});

test('an empty 4 TiB VHDX converts by walking its map, not its bytes', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = join(dir, 'big.vhdx');
  assert.equal(vdisk(['create', '-q', src, '4T']).code, 0);
  const out = join(dir, 'copy.vhdx');
  const r = vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=256M', src, out]);
  assert.equal(r.code, 0, r.stderr);
  const info = qemuInfo(out) as { 'virtual-size': number; 'cluster-size': number };
  assert.equal(info['virtual-size'], 4 * 1024 ** 4);
  assert.equal(info['cluster-size'], 256 * MiB);
  qemuCheckClean(out);
  assert.ok(statSync(out).size < 64 * MiB, 'no payload block was allocated');
});

test('convert refuses bad requests with one line, and leaves no output behind', async (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'src.raw');
  makeRaw(raw, 4 * MiB);
  const before = await sha256(raw);
  const out = join(dir, 'out.vhdx');
  const empty = join(dir, 'empty.raw');
  writeFileSync(empty, '');
  const cases: [string[], RegExp][] = [
    [['convert', '-O', 'vhdx', raw, raw], /OUTPUT is the image itself/],
    [['convert', '-O', 'nosuch', raw, out], /-O: unknown image format 'nosuch'/],
    [['convert', '-O', 'vhdx', '-o', 'block_size=3M', raw, out], /block_size/],
    [['convert', '-O', 'vhdx', '-o', 'colour=blue', raw, out], /-o colour: unknown option/],
    [['convert', '-o', 'block_size=1M', raw, out], /raw images take no options/],
    [['convert', '-t', 'none', raw, out], /-t must be writeback or unsafe/],
    [['convert', join(dir, 'missing.raw'), out], /missing\.raw: no such file/],
    [['convert', raw], /missing required argument OUTPUT/],
    [['convert', '-O', 'vhdx', raw, dir], /is a directory/],
    [['convert', '-O', 'vhdx', empty, out], /empty\.raw: the disk is empty/],
    [['convert', '-O', 'vhdx', raw, '/dev/null'], /\/dev\/null: is a character device; convert -O vhdx writes a new image file/],
  ];
  for (const [args, message] of cases) {
    const r = vdisk(args);
    assert.equal(r.code, 1, `${args.join(' ')}: exit code`);
    assert.match(r.stderr, /^vdisk: /);
    assert.match(r.stderr, message, args.join(' '));
    assert.equal(r.stderr.trim().split('\n').length, 1, `${args.join(' ')}: one line`);
    assert.ok(!existsSync(out), `${args.join(' ')}: no output left behind`);
    assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], `${args.join(' ')}: no temporary file left behind`);
  }
  assert.equal(await sha256(raw), before, 'the source is unchanged');

  // Refused before anything is written, an existing OUTPUT stays as it was.
  const existing = join(dir, 'existing.vhdx');
  writeFileSync(existing, 'precious');
  for (const args of [['-O', 'vhdx', '-o', 'block_size=3M', raw], ['-O', 'vhdx', empty]]) {
    assert.equal(vdisk(['convert', ...args, existing]).code, 1, args.join(' '));
    assert.equal(readFileSync(existing, 'utf8'), 'precious', `${args.join(' ')}: the existing output is untouched`);
  }

  // A damaged source fails at its first payload read, after the output was made: the output is removed.
  const bad = join(dir, 'bad.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', raw, bad]).code, 0);
  const trimmed = join(dir, 'trimmed.vhdx');
  copyFileSync(bad, trimmed);
  const fd = openSync(trimmed, 'r+');
  ftruncateSync(fd, statSync(bad).size - MiB); // the last payload block is cut off
  closeSync(fd);
  const r = vdisk(['convert', trimmed, join(dir, 'half.raw')]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /^vdisk: .*trimmed\.vhdx/);
  assert.ok(!existsSync(join(dir, 'half.raw')));

  // A write refused part-way through the copy (the file-size limit, with SIGXFSZ ignored so that the
  // write fails with EFBIG instead of killing the process): the half-written image is removed.
  const big = join(dir, 'big.raw');
  makeRaw(big, 24 * MiB);
  const limited = join(dir, 'limited.vhdx');
  const cut = spawnSync('sh', ['-c', `trap '' XFSZ; ulimit -f 16384; exec node "$0" convert -O vhdx -o block_size=1M "$1" "$2"`, VDISK, big, limited], { encoding: 'utf8' });
  assert.equal(cut.status, 1, cut.stderr);
  assert.match(cut.stderr, /^vdisk: .*limited\.vhdx: (writing|resizing).*EFBIG/);
  assert.equal(cut.stderr.trim().split('\n').length, 1);
  assert.ok(!existsSync(limited), 'the half-written image was removed');
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'and its temporary file');

  const help = vdisk(['convert', '-O', 'vhdx', '-o', 'help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /block_size/);
});
