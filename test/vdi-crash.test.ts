import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { assertOldOrNew, buildKillShim, cutAtEveryWrite, vdiskCutOff } from './helpers/crash.js';
import { MiB, makeKnownRaw, makeQemuVdi } from './helpers/vdi.js';

test('a VDI write cut off at every one of its writes: the image opens, each sector old or new, qemu-img check clean', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const base = makeQemuVdi(dir, { name: 'base', size: '16M', io: ['write -P 0x31 2m 1m'] });
  const oldContent = vdisk(['read', base]).stdoutBytes;
  const input = join(dir, 'in.bin');
  const data = randomBytes(3 * MiB + 777);
  writeFileSync(input, data);
  const offset = 2_500_000; // partly over the allocated block, partly over new ones, unaligned
  const newContent = Buffer.from(oldContent);
  data.copy(newContent, offset);

  const cuts = cutAtEveryWrite(shim, dir, base, { input, offset, torn: false }, (img, n) => {
    sh('qemu-img', ['check', '-f', 'vdi', img]); // throws unless clean
    const theirs = join(dir, `theirs-${n}.raw`);
    sh('qemu-img', ['convert', '-f', 'vdi', '-O', 'raw', img, theirs]);
    assertOldOrNew(readFileSync(theirs), oldContent, newContent, `n=${n}, read by qemu-img`);
    const ours = vdisk(['read', img]);
    assert.equal(ours.code, 0, ours.stderr);
    assert.ok(ours.stdoutBytes.equals(readFileSync(theirs)), `n=${n}: vdisk and qemu-img read the same`);
    // The next session must not hand out a slot the cut-off one already wrote into.
    const again = vdisk(['write', img, input, '--offset', String(offset)]);
    assert.equal(again.code, 0, again.stderr);
    sh('qemu-img', ['check', '-f', 'vdi', img]);
    assert.ok(vdisk(['read', img]).stdoutBytes.equals(newContent), `n=${n}: a rewrite after the cut lands`);
  }, 100);
  // The copy the write finished on, uncut.
  assertOldOrNew(vdisk(['read', join(dir, `cut-${cuts}.vdi`)]).stdoutBytes, newContent, newContent, `n=${cuts} (complete)`);
  // Two data writes and the block map at least: writes that meet in time share one block-map write,
  // so the count of cut points varies between runs (3 to 8 seen).
  assert.ok(cuts >= 3, `the write was cut at ${cuts} points`);
});

test('convert -O vdi cut off at every write leaves no output; complete, it is what qemu-img reads', async (t) => {
  if (!needPeers(t, 'qemu-img', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const raw = makeKnownRaw(dir, 'known.raw', 16 * MiB);
  for (let n = 0; n < 60; n++) {
    const out = join(dir, `c-${n}.vdi`);
    if (!vdiskCutOff(shim, ['convert', '-O', 'vdi', raw, out], n, false)) {
      sh('qemu-img', ['check', '-f', 'vdi', out]);
      assert.match(sh('qemu-img', ['compare', '-f', 'raw', '-F', 'vdi', raw, out]), /identical/);
      return;
    }
    assert.throws(() => readFileSync(out), `n=${n}: a cut-off convert leaves nothing at OUTPUT`);
  }
  assert.fail('convert never completed');
});
