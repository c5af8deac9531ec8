import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';
import { buildKillShim, makeDirtyQemuVhdx, qemuIoCutOff } from './helpers/crash.js';
import { VhdxImage } from '../src/formats/vhdx/vhdx-image.js';

/**
 * QEMU cut off at every write of a session that allocates blocks: wherever a pending log is left,
 * a read-only `vdisk read` must show exactly what QEMU's own replay produces, without touching the file.
 */
test('pending logs left by QEMU are replayed in memory exactly as QEMU replays them', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const session = ['write -P 0xa1 1M 64k', 'write -P 0xb2 20M 4k', 'write -P 0xc3 33550336 8k'];
  let dirty = 0;
  let cut = 0;
  for (let n = 1; n <= 40; n++) {
    const img = makeQemuVhdx(dir, { name: `cut-${n}`, size: '40M', options: ['block_size=1M'], io: ['write -P 0x5a 0 1M'] });
    const wasCut = qemuIoCutOff(shim, img, session, n);
    if (!wasCut) break; // the whole session fit in n writes: every cut point has been tried
    cut++;
    const before = await sha256(img);
    const info = vdisk(['info', '--output', 'json', img]);
    assert.equal(info.code, 0, `n=${n}: ${info.stderr}`);
    const isDirty = JSON.parse(info.stdout)['dirty-flag'] as boolean;
    if (isDirty) dirty++;

    const ours = join(dir, `ours-${n}.raw`);
    const r = vdisk(['read', img, ours]);
    assert.equal(r.code, 0, `n=${n}: ${r.stderr}`);
    assert.equal(await sha256(img), before, `n=${n}: read-only commands must not replay on disk`);

    // QEMU's own replay, on a copy.
    const copy = join(dir, `copy-${n}.vhdx`);
    copyFileSync(img, copy);
    sh('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', copy]);
    const theirs = join(dir, `theirs-${n}.raw`);
    qemuConvertToRaw(copy, theirs);
    assert.equal(await sha256(ours), await sha256(theirs), `n=${n} (dirty=${isDirty}): content differs from QEMU's replay`);
  }
  assert.ok(cut >= 10, `the session was cut at ${cut} points`);
  assert.ok(dirty >= 2, `at least two cut points leave a pending log (saw ${dirty})`);
});

test('qemu-img refuses a dirty image read-only; vdisk reports it dirty and reads it', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const img = makeDirtyQemuVhdx(dir, shim, ['write -P 0xee 2M 4k']);
  assert.ok(img, 'a cut point leaving a pending log exists');
  assert.throws(() => sh('qemu-img', ['info', '-f', 'vhdx', img]), /replay|read-only|Permission/i);
  const human = vdisk(['info', img]);
  assert.match(human.stdout, /state: pending/);
  const bytes = vdisk(['read', img, '-', '--offset', String(2 * 1024 * 1024), '--length', '4096']);
  assert.equal(bytes.code, 0);
  assert.ok(bytes.stdoutBytes.every((b) => b === 0xee), 'the logged allocation is visible');
});

test('a VHDX read through a pending log never says its bytes lie in the file; a clean one does, and they do', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const MiB = 1024 * 1024;
  const dir = tempDir(t);
  const img = makeDirtyQemuVhdx(dir, buildKillShim(dir), ['write -P 0xee 2M 4k']);
  assert.ok(img, 'a cut point leaving a pending log exists');
  const dirty = await VhdxImage.open(img);
  try {
    await dirty.read(Buffer.alloc(4096), 2 * MiB); // its block table is read
    assert.equal(dirty.hostRange(2 * MiB, 4096), null, 'the log replayed in memory may rewrite what the file holds');
  } finally {
    await dirty.close();
  }
  const clean = makeQemuVhdx(dir, { name: 'clean', size: '40M', options: ['block_size=1M'], io: ['write -P 0x5a 0 1M', 'write -P 0x77 3M 64k'] });
  const image = await VhdxImage.open(clean);
  try {
    const want = Buffer.alloc(64 * 1024);
    await image.read(want, 3 * MiB);
    assert.ok(want.every((b) => b === 0x77));
    const where = image.hostRange(3 * MiB, want.length);
    assert.ok(where, 'a stored block says where it lies');
    const got = Buffer.alloc(want.length);
    assert.equal(readSync(where.fd, got, 0, got.length, where.position), got.length);
    assert.ok(got.equals(want), 'the file holds those bytes there');
    assert.equal(image.hostRange(MiB - 10, 20), null, 'a range across two blocks');
    assert.equal(image.hostRange(10 * MiB, 10), null, 'a block not stored');
  } finally {
    await image.close();
  }
});
