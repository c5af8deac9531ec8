import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { needPeers, tempDir, vdisk, sh, sha256 } from './helpers/peers.js';
import { assertOldOrNew, buildKillShim, cutAtEveryWrite, qemuIoCutOff } from './helpers/crash.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';

const MiB = 1024 * 1024;

for (const torn of [false, true]) {
  test(`our writer cut off at every one of its writes${torn ? ', torn mid-sector' : ''}, always recovers to old or new content`, async (t) => {
    if (!needPeers(t, 'qemu-img', 'cc')) return;
    const dir = tempDir(t);
    const shim = buildKillShim(dir);
    const base = join(dir, 'base.vhdx');
    assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', base, '16M']).code, 0);
    assert.equal(vdisk(['write', base, '--offset', String(2 * MiB)], { input: randomBytes(MiB) }).code, 0);
    const oldContent = vdisk(['read', base]).stdoutBytes;
    const input = join(dir, 'in.bin');
    const data = randomBytes(3 * MiB + 777);
    writeFileSync(input, data);
    const offset = 2_500_000; // partly over the allocated block, partly over new ones, unaligned
    const newContent = Buffer.from(oldContent);
    data.copy(newContent, offset);

    const cuts = cutAtEveryWrite(shim, dir, base, { input, offset, torn }, (img, n) => {
      const repaired = vdisk(['check', '-r', 'all', '--output', 'json', img]);
      assert.equal(repaired.code, 0, `n=${n}: check -r all left exit ${repaired.code}: ${repaired.stdout}${repaired.stderr}`);
      sh('qemu-img', ['check', '-f', 'vhdx', img]);
      const now = vdisk(['read', img]).stdoutBytes;
      assert.equal(now.length, oldContent.length);
      assertOldOrNew(now, oldContent, newContent, `n=${n}`);
    });
    assert.ok(cuts >= 8, `the write was cut at ${cuts} points`);
  });
}

test('vdisk check -r all replays logs QEMU left pending exactly as QEMU replays them', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  let dirty = 0;
  for (let n = 1; n <= 30; n++) {
    const img = makeQemuVhdx(dir, { name: `q-${n}`, size: '24M', options: ['block_size=1M'], io: ['write -P 0x33 0 1M'] });
    if (!qemuIoCutOff(shim, img, ['write -P 0x44 3M 64k', 'write -P 0x55 9M 4k'], n)) break;
    const isDirty = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout)['dirty-flag'] as boolean;
    const before = await sha256(img);
    const look = vdisk(['check', img]);
    assert.equal(await sha256(img), before, 'check without -r changes nothing');
    if (!isDirty) continue;
    dirty++;
    assert.equal(look.code, 2, 'a pending log is reported');
    assert.match(look.stdout, /pending log/);
    const ourRead = vdisk(['read', img]).stdoutBytes;
    const copy = join(dir, `copy-${n}.vhdx`);
    copyFileSync(img, copy);
    sh('qemu-img', ['check', '-r', 'all', '-f', 'vhdx', copy]);
    const theirs = join(dir, `theirs-${n}.raw`);
    qemuConvertToRaw(copy, theirs);
    const r = vdisk(['check', '-r', 'all', img]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    sh('qemu-img', ['check', '-f', 'vhdx', img]);
    const ours = join(dir, `ours-${n}.raw`);
    qemuConvertToRaw(img, ours);
    assert.equal(await sha256(ours), await sha256(theirs), `n=${n}: replay differs from QEMU's`);
    assert.ok(ourRead.equals(readFileSync(theirs)), `n=${n}: the read-only view before replay equals the replayed content`);
  }
  assert.ok(dirty >= 2, `QEMU left a pending log at ${dirty} cut points`);
});
