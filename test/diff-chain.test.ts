import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { needPeers, sh, sha256, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { buildKillShim } from './helpers/crash.js';
import { firstDifferentSector, vhdimountRead, vhdxData, vhdxWith, vdiskWrite, readWhole } from './helpers/vhdxlife.js';
import { openImage } from '../src/formats/open.js';

const MiB = 1024 * 1024;

/** A parent of `size` random bytes and a child with scattered writes; the model is what the chain reads. */
function chain(dir: string, size = 8 * MiB): { base: string; child: string; parent: Buffer; model: Buffer } {
  const base = join(dir, 'base.vhdx');
  const parent = randomBytes(size);
  vhdxWith(base, size, parent);
  const child = join(dir, 'child.vhdx');
  assert.equal(vdisk(['create', '-q', '-b', base, child]).code, 0);
  const model = Buffer.from(parent);
  for (const [at, n] of [[1000, 5000], [(size / 8) * 3, size / 4], [(size / 4) * 3 + 4096, 700], [size - 512, 512]]) {
    const data = randomBytes(n);
    vdiskWrite(child, at, data);
    data.copy(model, at);
  }
  return { base, child, parent, model };
}

function qemuEquals(dir: string, image: string, want: Buffer): void {
  const raw = join(dir, `want-${Math.random().toString(36).slice(2)}.raw`);
  writeFileSync(raw, want);
  sh('qemu-img', ['check', '-f', 'vhdx', image]);
  const r = spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', image, raw], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

test('commit merges the child into its parent; the emptied child still reads the same through it (vhdimount, qemu-img)', async (t) => {
  if (!needPeers(t, 'vhdimount', 'qemu-img')) return;
  const dir = tempDir(t);
  const { base, child, model } = chain(dir);
  const r = vdisk(['commit', child]);
  assert.equal(r.code, 0, r.stderr);
  qemuEquals(dir, base, model);
  assert.equal(firstDifferentSector(await vhdimountRead(child, dir), model), -1);
  assert.deepEqual(vhdxData(child)['block-states'], { NOT_PRESENT: 8 });
  assert.ok(statSync(child).size <= 5 * MiB, `the emptied child is ${statSync(child).size} bytes`);
  assert.equal(vhdxData(child)['parent-locator'].entries.parent_linkage, `{${vhdxData(base)['data-write-guid']}}`);
  assert.equal(vdisk(['check', child]).code, 0);
  // Writing into the emptied child works as into a new one.
  const more = randomBytes(3000);
  vdiskWrite(child, 5 * MiB + 100, more);
  more.copy(model, 5 * MiB + 100);
  assert.equal(firstDifferentSector(await vhdimountRead(child, dir), model), -1);
});

test('commit -d leaves the child\'s blocks in place, still a valid child of the changed parent', async (t) => {
  if (!needPeers(t, 'vhdimount', 'qemu-img')) return;
  const dir = tempDir(t);
  const { base, child, model } = chain(dir);
  const before = vhdxData(child)['block-states'];
  assert.equal(vdisk(['commit', '-d', child]).code, 0);
  qemuEquals(dir, base, model);
  assert.deepEqual(vhdxData(child)['block-states'], before);
  assert.equal(firstDifferentSector(await vhdimountRead(child, dir), model), -1);
  assert.equal(firstDifferentSector(vdisk(['read', child]).stdoutBytes, model), -1);
});

test('rebase keeps what the child reads (safe mode) or only repoints it (-u), against the per-sector model and vhdimount', async (t) => {
  if (!needPeers(t, 'vhdimount')) return;
  const dir = tempDir(t);
  const { base, child, parent, model } = chain(dir);
  const baseHash = await sha256(base);
  // The new parent: the old one with some sectors changed, some blocks empty.
  const other = join(dir, 'other.vhdx');
  const otherData = Buffer.from(parent);
  otherData.fill(0, 0, 2 * MiB);
  randomBytes(4096).copy(otherData, 5 * MiB + 8192);
  randomBytes(512).copy(otherData, 3 * MiB + 512); // under the child's own data: not copied
  vhdxWith(other, 8 * MiB, otherData);
  const r = vdisk(['rebase', '-b', other, child]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(firstDifferentSector(await vhdimountRead(child, dir), model), -1, 'the child reads as before');
  assert.equal(vhdxData(child)['parent-locator'].entries.parent_linkage, `{${vhdxData(other)['data-write-guid']}}`);
  assert.equal(vhdxData(child)['parent-locator'].entries.relative_path, '.\\other.vhdx');
  assert.equal(await sha256(base), baseHash);
  const stored = vhdxData(child)['block-states'];
  assert.equal(stored.NOT_PRESENT, 1, JSON.stringify(stored)); // block 2, where both parents agree, stays empty

  // -u: repoint only; the child now shows the new parent where it holds nothing.
  const third = join(dir, 'third.vhdx');
  const thirdData = randomBytes(8 * MiB);
  vhdxWith(third, 8 * MiB, thirdData);
  assert.equal(vdisk(['rebase', '-u', '-b', third, child]).code, 0);
  const now = Buffer.from(thirdData);
  const mine = await openImage(child);
  try {
    for (const m of await mine.mapping!(0, 8 * MiB)) if (m.kind !== 'backing') model.copy(now, m.offset, m.offset, m.offset + m.length);
  } finally {
    await mine.close();
  }
  assert.equal(firstDifferentSector(await vhdimountRead(child, dir), now), -1);
  const bad = vdisk(['rebase', '-b', join(dir, 'nope.vhdx'), child]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /^vdisk: [^\n]*\n$/);
});

test('a commit cut off at every one of its writes leaves a chain that reads the same, and a commit run again finishes it', async (t) => {
  if (!needPeers(t, 'cc', 'qemu-img')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const { base, child, model } = chain(dir, 2 * MiB);
  let cuts = 0;
  for (let n = 0; n < 400; n++) {
    const d = join(dir, `cut-${n}`);
    mkdirSync(d);
    copyFileSync(base, join(d, 'base.vhdx'));
    copyFileSync(child, join(d, 'child.vhdx'));
    const r = spawnSync(process.execPath, [VDISK, 'commit', join(d, 'child.vhdx')], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') break;
    cuts++;
    assert.equal(firstDifferentSector(await readWhole(join(d, 'child.vhdx')), model), -1, `n=${n}: the chain reads as before`);
    if (n % 10 === 0) {
      assert.equal(vdisk(['commit', join(d, 'child.vhdx')]).code, 0, `n=${n}: commit again`);
      assert.equal(firstDifferentSector(await readWhole(join(d, 'base.vhdx')), model), -1, `n=${n}: the parent holds the merge`);
      assert.equal(firstDifferentSector(await readWhole(join(d, 'child.vhdx')), model), -1);
    }
  }
  t.diagnostic(`cut at ${cuts} points`);
  assert.ok(cuts >= 10, `cut at ${cuts} points`);
});
