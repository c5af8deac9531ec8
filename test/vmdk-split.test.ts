import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, mkdirSync, openSync, readFileSync, readdirSync, statSync, writeFileSync, writeSync, ftruncateSync } from 'node:fs';
import { spawn, spawnSync } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { varied } from './helpers/vmdk.js';
import { buildKillShim, vdiskCutOff } from './helpers/crash.js';

/**
 * Split VMDKs (twoGbMaxExtentSparse, twoGbMaxExtentFlat) written by vdisk, judged against what
 * qemu-img makes for the same size: the same extent files (names and sizes; empty sparse pieces byte
 * for byte), read back by qemu-img as the source, and never a piece under its final name before the
 * whole disk is complete.
 */

const MiB = 1024 * 1024;
const SPLITS = ['twoGbMaxExtentSparse', 'twoGbMaxExtentFlat'] as const;

/** Files of a directory with their sizes, the descriptor's CID line aside. */
function listing(dir: string): [string, number][] {
  return readdirSync(dir).sort().map((f) => [f, statSync(join(dir, f)).size]);
}

function infoOf(image: string): Record<string, any> {
  return JSON.parse(sh('qemu-img', ['info', '--output', 'json', image]));
}

function qemuClean(image: string): void {
  const r = spawnSync('qemu-img', ['check', '-f', 'vmdk', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

function extentLines(descriptor: string): string[] {
  return descriptor.split('\n').filter((l) => /^RW /.test(l));
}

/** The extents as qemu-img info lists them, without the directory. */
function extentsOf(info: Record<string, any>): { filename: string; size: number }[] {
  return info['format-specific'].data.extents.map((e: any) => ({ filename: e.filename.replace(/^.*\//, ''), size: e['virtual-size'] }));
}

test('create -o subformat=twoGbMaxExtentSparse|twoGbMaxExtentFlat makes the files qemu-img makes for the same size', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const root = tempDir(t);
  for (const sub of SPLITS) {
    for (const size of ['5M', '4500M', String(4 * 1024 * MiB + 512)]) {
      const ours = join(root, `ours-${sub}-${size}`);
      const theirs = join(root, `theirs-${sub}-${size}`);
      mkdirSync(ours);
      mkdirSync(theirs);
      const r = vdisk(['create', '-q', '-f', 'vmdk', '-o', `subformat=${sub}`, join(ours, 'disk.vmdk'), size]);
      assert.equal(r.code, 0, r.stderr);
      sh('qemu-img', ['create', '-q', '-f', 'vmdk', '-o', `subformat=${sub}`, join(theirs, 'disk.vmdk'), size]);
      const what = `${sub} ${size}`;
      const mine = listing(ours);
      assert.deepEqual(mine.filter(([f]) => f !== 'disk.vmdk'), listing(theirs).filter(([f]) => f !== 'disk.vmdk'), `${what}: extent files`);
      for (const [f] of mine) {
        if (f === 'disk.vmdk') continue;
        if (sub === 'twoGbMaxExtentSparse') assert.ok(readFileSync(join(ours, f)).equals(readFileSync(join(theirs, f))), `${what}: ${f} as qemu-img writes it`);
        else assert.equal(statSync(join(ours, f)).blocks, 0, `${what}: ${f} is all hole`);
      }
      const [a, b] = [ours, theirs].map((d) => readFileSync(join(d, 'disk.vmdk'), 'latin1'));
      assert.deepEqual(extentLines(a), extentLines(b), what);
      assert.match(a, new RegExp(`createType="${sub}"`));
      const [ia, ib] = [ours, theirs].map((d) => infoOf(join(d, 'disk.vmdk')));
      assert.equal(ia['virtual-size'], ib['virtual-size'], what);
      assert.equal(ia['format-specific'].data['create-type'], sub);
      assert.deepEqual(extentsOf(ia), extentsOf(ib), what);
      qemuClean(join(ours, 'disk.vmdk'));
    }
  }
  // Names as QEMU gives them: the suffix goes before the file's ending, whatever it is.
  const odd = join(root, 'odd');
  mkdirSync(odd);
  assert.equal(vdisk(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentFlat', join(odd, 'x.img'), '1M']).code, 0);
  assert.equal(vdisk(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', join(odd, 'noext'), '1M']).code, 0);
  assert.deepEqual(readdirSync(odd).sort(), ['noext', 'noext-s001', 'x-f001.img', 'x.img']);
  // More pieces than any reader opens (vdisk's limit of 8192 extents): refused, nothing made.
  const huge = join(root, 'huge');
  mkdirSync(huge);
  const r = vdisk(['create', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentFlat', join(huge, 'h.vmdk'), '20T']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /10240 pieces/);
  assert.deepEqual(readdirSync(huge), []);
});

test('a split sparse child of a VMDK reads through its parent, as qemu-img sees it', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'base.raw');
  writeFileSync(raw, Buffer.concat([varied(3 * MiB, 4), Buffer.alloc(MiB)]));
  const base = join(dir, 'base.vmdk');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', raw, base]);
  const child = join(dir, 'child.vmdk');
  assert.equal(vdisk(['create', '-q', '-f', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', '-b', base, child]).code, 0);
  assert.equal(infoOf(child)['backing-filename'], base);
  sh('qemu-io', ['-c', 'write -P 0x33 1M 64k', child]);
  const expected = readFileSync(raw);
  expected.fill(0x33, MiB, MiB + 65536);
  const back = join(dir, 'back.raw');
  sh('qemu-img', ['convert', '-O', 'raw', child, back]);
  assert.ok(readFileSync(back).equals(expected));
  assert.ok(vdisk(['read', child]).stdoutBytes.equals(expected));
  qemuClean(child);
});

/**
 * A 4200 MiB disk with data at its start, across the 2 GiB and 4 GiB piece boundaries, and at its end,
 * as a qcow2 (qemu-img makes it from a sparse raw file): its map lets a convert read only the data.
 */
function bigSource(dir: string): string {
  const raw = join(dir, 'src.raw');
  const fd = openSync(raw, 'w');
  const size = 4200 * MiB;
  ftruncateSync(fd, size);
  for (const [at, n, seed] of [[0, 300_000, 1], [2048 * MiB - 100_000, 250_000, 2], [4096 * MiB - 4096, 8192, 3], [size - 70_000, 70_000, 4]]) {
    writeSync(fd, varied(n, seed), 0, n, at);
  }
  closeSync(fd);
  const qcow2 = join(dir, 'src.qcow2');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
  sh('rm', [raw]);
  return qcow2;
}

test('convert -O vmdk -o subformat=twoGb... of a disk with data across the pieces: qemu-img compare finds the source, check a clean image, pieces as qemu-img names and sizes them', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = bigSource(dir);
  for (const sub of SPLITS) {
    const out = join(dir, `${sub}.vmdk`);
    const r = vdisk(['convert', '-O', 'vmdk', '-o', `subformat=${sub}`, '-o', 'adapter_type=lsilogic', src, out]);
    assert.equal(r.code, 0, r.stderr);
    const c = spawnSync('qemu-img', ['compare', '-f', 'qcow2', '-F', 'vmdk', src, out], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stdout + c.stderr);
    qemuClean(out);
    const theirs = join(dir, `q-${sub}.vmdk`);
    sh('qemu-img', ['convert', '-f', 'qcow2', '-O', 'vmdk', '-o', `subformat=${sub},adapter_type=lsilogic`, src, theirs]);
    const [ia, ib] = [infoOf(out), infoOf(theirs)];
    assert.deepEqual(extentsOf(ia).map((e) => ({ ...e, filename: e.filename.replace(/^q-/, '') })), extentsOf(ib).map((e) => ({ ...e, filename: e.filename.replace(/^q-/, '') })), sub);
    assert.equal(ia['format-specific'].data['create-type'], sub);
    assert.match(readFileSync(out, 'latin1'), /ddb.adapterType = "lsilogic"/);
    const pieces = readdirSync(dir).filter((f) => f.startsWith(`${sub}-`)).sort();
    assert.equal(pieces.length, 3, pieces.join());
    const stored = pieces.reduce((n, f) => n + statSync(join(dir, f)).blocks * 512, 0);
    assert.ok(stored < 8 * MiB, `${sub}: only the data is stored (${stored} bytes)`);
    // vdisk reads its own sparse pieces as qemu-img does (a flat one has no map: read whole, it would be slow).
    if (sub === 'twoGbMaxExtentSparse') {
      const m = vdisk(['compare', src, out]);
      assert.equal(m.code, 0, m.stdout + m.stderr);
    }
  }
  assert.deepEqual(readdirSync(dir).filter((f) => f.startsWith('.')), [], 'no temporary file is left');
});

test('split and flat VMDK output: an existing extent file is refused and left alone, a failed or killed convert leaves no piece under its name', (t) => {
  if (!needPeers(t, 'qemu-img', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const raw = join(dir, 'src.raw');
  writeFileSync(raw, Buffer.concat([varied(2 * MiB, 1), Buffer.alloc(MiB), varied(3 * MiB, 2)]));
  const work = join(dir, 'out');
  mkdirSync(work);
  const out = join(work, 'disk.vmdk');

  // An extent name already taken: refused before anything is made, the file untouched.
  for (const [sub, piece] of [['twoGbMaxExtentSparse', 'disk-s001.vmdk'], ['twoGbMaxExtentFlat', 'disk-f001.vmdk'], ['monolithicFlat', 'disk-flat.vmdk']]) {
    writeFileSync(join(work, piece), 'not mine');
    for (const args of [['create', '-f', 'vmdk', '-o', `subformat=${sub}`, out, '6M'], ['convert', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, out]]) {
      const r = vdisk(args);
      assert.notEqual(r.code, 0, `${sub} ${args[0]}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      assert.match(r.stderr, new RegExp(`${piece.replace('.', '\\.')}: already exists`));
      assert.equal(readFileSync(join(work, piece), 'utf8'), 'not mine');
      assert.deepEqual(readdirSync(work), [piece], `${sub} ${args[0]}: nothing else made`);
    }
    sh('rm', [join(work, piece)]);
  }

  // A source that fails to read half-way (a grain table entry past its end): nothing left behind.
  const bad = join(dir, 'bad.vmdk');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', raw, bad]);
  const b = readFileSync(bad);
  const gt = b.readUInt32LE(Number(b.readBigUInt64LE(56)) * 512) * 512;
  b.writeUInt32LE(999_999, gt + 4 * 60); // grain 60: at 3.75 MiB, after the first data is copied
  writeFileSync(bad, b);
  for (const sub of [...SPLITS, 'monolithicFlat']) {
    const r = vdisk(['convert', '-O', 'vmdk', '-o', `subformat=${sub}`, bad, out]);
    assert.notEqual(r.code, 0, sub);
    assert.match(r.stderr, /past the end of the file/);
    assert.deepEqual(readdirSync(work), [], `${sub}: a failed convert leaves nothing`);
  }

  // Killed at its writes: never a piece or a descriptor under its final name before all are complete.
  for (const sub of SPLITS) {
    let cuts = 0;
    for (let n = 0; n < 60; n++) {
      sh('rm', ['-rf', work]);
      mkdirSync(work);
      if (!vdiskCutOff(shim, ['convert', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, out], n, false)) break;
      cuts++;
      const named = readdirSync(work).filter((f) => !f.startsWith('.'));
      assert.deepEqual(named, [], `${sub} n=${n}: only temporary names`);
    }
    assert.ok(cuts >= 2, `${sub}: cut at ${cuts} points`);
    const done = readdirSync(work).sort();
    assert.deepEqual(done.filter((f) => !f.startsWith('.')), sub === 'twoGbMaxExtentSparse' ? ['disk-s001.vmdk', 'disk.vmdk'] : ['disk-f001.vmdk', 'disk.vmdk']);
    const c = spawnSync('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, out], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stdout + c.stderr);
  }
});

test('a split VMDK convert stopped by SIGTERM removes every temporary piece it made', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'src.raw');
  writeFileSync(raw, varied(96 * MiB, 5));
  const work = join(dir, 'out');
  mkdirSync(work);
  const child = spawn(process.execPath, [VDISK, 'convert', '-O', 'vmdk', '-o', 'subformat=twoGbMaxExtentSparse', raw, join(work, 'disk.vmdk')], { stdio: 'ignore' });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let seen = false;
  for (let i = 0; i < 2000 && child.exitCode === null; i++) {
    if (readdirSync(work).some((f) => f.startsWith('.disk-s001.vmdk.'))) {
      seen = true;
      child.kill('SIGTERM');
      break;
    }
    await sleep(2);
  }
  const code = await exited;
  assert.ok(seen, 'the piece was being written under a temporary name');
  assert.equal(code, 143);
  assert.deepEqual(readdirSync(work), [], 'nothing is left');
});
