import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';
import { hold, holdVdisk, lockedByte, waitFor } from './helpers/locks.js';
import { spawnSync } from 'node:child_process';

const MiB = 1024 * 1024;
const SIZE = 8 * MiB;
const SECTOR = 512;
/** QEMU's lock bytes: 101 is held by whoever has the WRITE permission. */
const WRITE_PERM_BYTE = 101;

/** The disk as QEMU reads it, compared sector by sector with what we expect. */
function assertDisk(dir: string, image: string, model: Buffer, what: string): void {
  const raw = join(dir, `check-${Date.now()}.raw`);
  qemuConvertToRaw(image, raw);
  const got = readFileSync(raw);
  assert.equal(got.length, model.length, `${what}: size`);
  for (let s = 0; s < model.length / SECTOR; s++) {
    const a = got.subarray(s * SECTOR, (s + 1) * SECTOR);
    const b = model.subarray(s * SECTOR, (s + 1) * SECTOR);
    if (!a.equals(b)) assert.fail(`${what}: sector ${s} differs from the model`);
  }
  const check = spawnSync('qemu-img', ['check', '-f', 'vhdx', image], { encoding: 'utf8' });
  assert.equal(check.status, 0, `${what}: qemu-img check: ${check.stdout}${check.stderr}`);
}

/** Starts `vdisk write IMG --offset at` fed from a pipe, sends half its data, and waits until it holds the image. */
async function slowWriter(image: string, at: number, data: Buffer) {
  const w = holdVdisk(['write', '--offset', String(at), image]);
  w.send(data.subarray(0, data.length / 2));
  await waitFor('the writer to lock the image', () => lockedByte(image, WRITE_PERM_BYTE));
  return {
    done: async () => {
      w.send(data.subarray(data.length / 2));
      return w.finish();
    },
  };
}

function assertRefused(r: { code: number; stderr: string }, image: string, holder: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code (${r.stderr})`);
  assert.match(r.stderr, new RegExp(`^vdisk: ${image.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: in use by another process \\(pid \\d+, ${holder.source}\\)\\n$`), what);
}

test('two vdisk writers on one image: the second refuses, the first one\'s data reads back whole', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'two', size: '8M', options: ['block_size=1M'] });
  const a = randomBytes(3 * MiB);
  const b = randomBytes(3 * MiB);
  writeFileSync(join(dir, 'b.raw'), b);
  const first = await slowWriter(img, MiB, a);
  assertRefused(vdisk(['write', '--offset', String(2 * MiB), img, join(dir, 'b.raw')]), img, /vdisk/, 'second writer');
  assertRefused(vdisk(['write', img], { input: b }), img, /vdisk/, 'second writer from stdin');
  // Look-only commands refuse too, as qemu-img info does, unless -U.
  assertRefused(vdisk(['info', img]), img, /vdisk/, 'info');
  assertRefused(vdisk(['map', img]), img, /vdisk/, 'map');
  assert.equal(vdisk(['info', '-U', img]).code, 0, 'info -U looks anyway');
  const r = await first.done();
  assert.equal(r.code, 0, r.stderr);
  const model = Buffer.alloc(SIZE);
  a.copy(model, MiB);
  assertDisk(dir, img, model, 'after two writers');
  // Released with the writer's exit: the next one goes ahead.
  assert.equal(vdisk(['write', '--offset', String(2 * MiB), img, join(dir, 'b.raw')]).code, 0);
  b.copy(model, 2 * MiB);
  assertDisk(dir, img, model, 'after the next writer');
});

test('check -r all while a writer runs refuses, and the writer\'s blocks survive; convert into the image refuses', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'busy', size: '8M', options: ['block_size=1M'] });
  const a = randomBytes(5 * MiB);
  const src = join(dir, 'src.raw');
  writeFileSync(src, randomBytes(SIZE));
  const w = await slowWriter(img, 0, a);
  const check = vdisk(['check', '-r', 'all', img]);
  assert.equal(check.code, 1, check.stdout + check.stderr);
  assert.match(check.stderr, /in use by another process \(pid \d+, vdisk\)/);
  const checkJson = vdisk(['check', '-r', 'leaks', '--output', 'json', img]);
  assert.match(JSON.parse(checkJson.stdout).error, /in use by another process/);
  assert.match(vdisk(['check', '-U', '-r', 'all', img]).stderr, /-U cannot be used with -r/);
  for (const fmt of ['vhdx', 'raw']) {
    assertRefused(vdisk(['convert', '-O', fmt, src, img]), img, /vdisk/, `convert -O ${fmt} into the image`);
  }
  assert.deepEqual(readdirSync(dir).filter((n) => n.endsWith('.tmp')), [], 'no temporary file left');
  const r = await w.done();
  assert.equal(r.code, 0, r.stderr);
  const model = Buffer.alloc(SIZE);
  a.copy(model, 0);
  assertDisk(dir, img, model, 'after check and convert were refused');
});

test('vdisk against qemu-io holding the image read-write: every vdisk command that would write refuses, -U looks', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'q', size: '8M', options: ['block_size=1M'] });
  const src = join(dir, 'src.raw');
  writeFileSync(src, randomBytes(SIZE));
  const q = hold('qemu-io', ['-f', 'vhdx', img]);
  q.send('write -P 0x5a 1M 2M\nflush\n');
  await waitFor('qemu-io to lock the image', () => lockedByte(img, WRITE_PERM_BYTE));
  await waitFor('qemu-io to write', () => spawnSync('qemu-io', ['-U', '-r', '-f', 'vhdx', '-c', 'read -P 0x5a 1M 2M', img], { encoding: 'utf8' }).stdout.includes('read 2097152/2097152'));
  const b = randomBytes(MiB);
  assertRefused(vdisk(['write', img], { input: b }), img, /qemu-io/, 'write');
  assertRefused(vdisk(['check', '-r', 'all', img]), img, /qemu-io/, 'check -r all');
  assertRefused(vdisk(['convert', '-O', 'vhdx', src, img]), img, /qemu-io/, 'convert into it');
  assertRefused(vdisk(['create', img, '8M']), img, /qemu-io/, 'create over it');
  assertRefused(vdisk(['info', img]), img, /qemu-io/, 'info');
  assertRefused(vdisk(['read', img, join(dir, 'out.raw')]), img, /qemu-io/, 'read');
  const info = vdisk(['info', '--output', 'json', '-U', img]);
  assert.equal(info.code, 0, info.stderr);
  assert.equal(JSON.parse(info.stdout)['virtual-size'], SIZE);
  q.send('write -P 0xa5 6M 1M\nquit\n');
  const r = await q.finish();
  assert.equal(r.code, 0, r.stderr);
  const model = Buffer.alloc(SIZE);
  model.fill(0x5a, MiB, 3 * MiB);
  model.fill(0xa5, 6 * MiB, 7 * MiB);
  assertDisk(dir, img, model, 'after qemu-io');
});

test('qemu-img and qemu-io against vdisk holding the image: a writer keeps both out, a look keeps qemu-io\'s writes out', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'v', size: '8M', options: ['block_size=1M'] });
  const a = randomBytes(4 * MiB);
  const w = await slowWriter(img, 2 * MiB, a);
  const info = spawnSync('qemu-img', ['info', img], { encoding: 'utf8' });
  assert.notEqual(info.status, 0);
  assert.match(info.stderr, /Failed to get shared "write" lock/);
  const io = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xee 0 4M', img], { encoding: 'utf8' });
  assert.match(io.stderr + io.stdout, /Failed to get "write" lock/);
  assert.equal(spawnSync('qemu-img', ['info', '-U', img]).status, 0, 'qemu-img info -U still looks');
  const r = await w.done();
  assert.equal(r.code, 0, r.stderr);
  const model = Buffer.alloc(SIZE);
  a.copy(model, 2 * MiB);
  assertDisk(dir, img, model, 'after qemu was kept out');

  // A vdisk look (shared lock) lets qemu-img info in, and keeps qemu-io's writes out. mount-detect on
  // a disk without a file system reads little; a slow look is a read into a FIFO nobody drains yet.
  const fifo = join(dir, 'fifo');
  sh('mkfifo', [fifo]);
  const look = holdVdisk(['read', img, fifo]);
  await waitFor('the look to lock the image', () => lockedByte(img, 100));
  assert.equal(spawnSync('qemu-img', ['info', img]).status, 0, 'qemu-img info shares a look');
  const io2 = spawnSync('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0xee 0 4M', img], { encoding: 'utf8' });
  assert.match(io2.stderr + io2.stdout, /Failed to get "write" lock/);
  const drained = spawnSync('cat', [fifo], { maxBuffer: 64 * MiB });
  assert.equal((await look.finish()).code, 0);
  assert.ok(drained.stdout.equals(model), 'what the look read through the FIFO');
  assertDisk(dir, img, model, 'after qemu-io was kept out of a look');
});

test('a look through a read-only descriptor still sees a writer: on a block device, and on a file it cannot open for writing', async (t) => {
  if (!needPeers(t, 'qemu-io', 'losetup')) return;
  const dir = tempDir(t);
  const backing = join(dir, 'dev.raw');
  writeFileSync(backing, Buffer.alloc(SIZE));
  const dev = sh('losetup', ['-f', '--show', backing]).trim();
  t.after(() => void spawnSync('losetup', ['-d', dev]));
  const q = hold('qemu-io', ['-f', 'raw', dev]);
  await waitFor('qemu-io to lock the device', () => lockedByte(dev, WRITE_PERM_BYTE));
  assertRefused(vdisk(['info', dev]), dev, /qemu-io/, 'info on the device');
  assert.equal(vdisk(['info', '-U', dev]).code, 0);
  assert.equal((await q.finish()).code, 0);
  assert.equal(vdisk(['info', dev]).code, 0, 'free again once qemu-io quit');

  // An immutable file cannot be opened for writing even by root: the test goes through /proc/locks.
  const img = makeQemuVhdx(dir, { name: 'immutable', size: '8M' });
  const q2 = hold('qemu-io', ['-f', 'vhdx', img]);
  await waitFor('qemu-io to lock the image', () => lockedByte(img, WRITE_PERM_BYTE));
  if (spawnSync('chattr', ['+i', img]).status !== 0) {
    await q2.finish();
    t.skip('chattr +i is not supported here');
    return;
  }
  try {
    assertRefused(vdisk(['info', img]), img, /qemu-io/, 'info on an immutable file');
  } finally {
    spawnSync('chattr', ['-i', img]);
    await q2.finish();
  }
});
