import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { VDISK, needPeers, sh, sha256, tempDir, vdisk } from './helpers/peers.js';
import { buildKillShim } from './helpers/crash.js';
import { MiB } from './helpers/vhd.js';
import { firstDifferentSector, readWhole, vdiskWrite, vhdimountRead } from './helpers/vhdxlife.js';
import { qemuVhd } from './helpers/vhdlife.js';

const SIZE = 16 * MiB;

/**
 * Writes into the child: unaligned across blocks, a whole block, the last sector. The first ends on
 * a 4 KiB boundary: libvhdi (20210425) reads the sectors after a run whose last bitmap byte is only
 * partly set as zeros instead of from the parent (vdisk, by the specification, sets the bits of the
 * sectors written, most significant bit first).
 */
const WRITES: [number, Buffer][] = [[1_000_001, randomBytes(4_145_152 - 1_000_001)], [8 * MiB, randomBytes(2 * MiB)], [SIZE - 512, randomBytes(512)]];

function qemuRaw(dir: string, image: string, format = 'vpc'): Buffer {
  const out = join(dir, `q-${Math.random().toString(36).slice(2)}.raw`);
  sh('qemu-img', ['convert', '-f', format, '-O', 'raw', image, out]);
  return readFileSync(out);
}

/** A parent made by qemu-img (or by vdisk in `format`), a child on it made by vdisk, the writes in the child, and the model. */
function chain(dir: string, name: string, fill: number, format = 'vpc'): { base: string; child: string; baseModel: Buffer; model: Buffer } {
  const io = [`write -P 0x${fill.toString(16)} 0 5M`, `write -P 0x${(fill + 1).toString(16)} 10M 3M`];
  let base: string;
  if (format === 'vpc') base = qemuVhd(join(dir, `${name}.vhd`), String(SIZE), io);
  else {
    base = join(dir, `${name}.${format}`);
    sh('qemu-img', ['create', '-q', '-f', format, base, String(SIZE)]);
    sh('qemu-io', ['-f', format, ...io.flatMap((c) => ['-c', c]), base]);
  }
  const baseModel = qemuRaw(dir, base, format);
  const child = join(dir, `${name}-child.vhd`);
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', base, child]).code, 0);
  const model = Buffer.from(baseModel);
  for (const [at, b] of WRITES) {
    vdiskWrite(child, at, b);
    b.copy(model, at);
  }
  return { base, child, baseModel, model };
}

test('commit writes a differencing VHD into its qemu-made parent and empties it; vhdimount reads the chain, qemu-img the parent, as the model', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdimount')) return;
  const dir = tempDir(t);
  const c = chain(dir, 'a', 0x31);
  const baseHash = await sha256(c.base);
  assert.equal(firstDifferentSector(await vhdimountRead(c.child, dir), c.model), -1, 'the chain before, through libvhdi');
  assert.equal(await sha256(c.base), baseHash, 'writes into the child leave the parent untouched');
  const r = vdisk(['commit', c.child]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(firstDifferentSector(qemuRaw(dir, c.base), c.model), -1, 'the parent, read by qemu-img');
  assert.equal(firstDifferentSector(await vhdimountRead(c.child, dir), c.model), -1, 'the emptied chain, through libvhdi');
  assert.ok(statSync(c.child).size < 8192, `the emptied child is ${statSync(c.child).size} bytes`);
  assert.match(vdisk(['info', c.child]).stdout, /disk-type: differencing/);
  for (const img of [c.base, c.child]) assert.equal(vdisk(['check', img]).code, 0, img);
});

test('commit -d keeps the child; commit into a VHDX parent goes through its own writer (qemu-img check and compare)', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdimount')) return;
  const dir = tempDir(t);
  const c = chain(dir, 'k', 0x41);
  const size = statSync(c.child).size;
  assert.equal(vdisk(['commit', '-d', c.child]).code, 0);
  assert.equal(statSync(c.child).size, size);
  assert.equal(firstDifferentSector(qemuRaw(dir, c.base), c.model), -1);
  assert.equal(firstDifferentSector(await vhdimountRead(c.child, dir), c.model), -1);

  const x = chain(dir, 'x', 0x51, 'vhdx');
  assert.equal(vdisk(['commit', x.child]).code, 0);
  sh('qemu-img', ['check', '-f', 'vhdx', x.base]);
  const model = join(dir, 'x.raw');
  writeFileSync(model, x.model);
  const cmp = spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', x.base, model], { encoding: 'utf8' });
  assert.equal(cmp.status, 0, cmp.stdout + cmp.stderr);
  assert.equal(firstDifferentSector(await readWhole(x.child), x.model), -1);
});

test('rebase onto another parent keeps what the child reads (safe) or only repoints it (-u); libvhdi follows the new locators', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdimount')) return;
  const dir = tempDir(t);
  const c = chain(dir, 'r', 0x61);
  const other = qemuVhd(join(dir, 'other.vhd'), String(SIZE), ['write -P 0x7e 2M 10M']);
  const otherModel = qemuRaw(dir, other);
  const otherHash = await sha256(other);
  const r = vdisk(['rebase', '-b', other, c.child]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(await sha256(other), otherHash, 'the new parent is only read');
  // The old parent is gone: the chain must not need it.
  renameSync(c.base, `${c.base}.gone`);
  const info = vdisk(['info', c.child]).stdout;
  assert.match(info, /parent-name: other\.vhd/);
  assert.match(info, /W2ru: \.\\other\.vhd/);
  assert.equal(firstDifferentSector(await vhdimountRead(c.child, dir), c.model), -1, 'safe rebase: the chain reads as before');
  assert.equal(vdisk(['check', c.child]).code, 0);
  // A new write after the rebase lands past the new locator data.
  vdiskWrite(c.child, 3 * MiB, Buffer.alloc(MiB, 0x99));
  c.model.fill(0x99, 3 * MiB, 4 * MiB);
  assert.equal(firstDifferentSector(await vhdimountRead(c.child, dir), c.model), -1);

  const u = chain(dir, 'u', 0x21);
  assert.equal(vdisk(['rebase', '-u', '-b', other, u.child]).code, 0);
  // The child holds whole sectors: those the writes touched, completed with the old parent's bytes.
  const want = Buffer.from(otherModel);
  for (const [at, b] of WRITES) {
    const from = Math.floor(at / 512) * 512;
    u.model.copy(want, from, from, Math.ceil((at + b.length) / 512) * 512);
  }
  assert.equal(firstDifferentSector(await vhdimountRead(u.child, dir), want), -1, 'unsafe rebase: the child over the new parent');
});

test('commit and rebase refuse a VHD that is not differencing in one line', (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'd.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', img, '4M']).code, 0);
  const other = join(dir, 'o.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', other, '4M']).code, 0);
  for (const args of [['commit', img], ['rebase', '-b', other, img]]) {
    const r = vdisk(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, /^vdisk: .*not a differencing VHD.*\n$/);
  }
});

test('a commit cut off at every one of its writes leaves a chain that reads the same, and a parent each of whose sectors is old or new', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const c = chain(dir, 'p', 0x13);
  const base0 = `${c.base}.orig`;
  const child0 = `${c.child}.orig`;
  copyFileSync(c.base, base0);
  copyFileSync(c.child, child0);
  let cuts = 0;
  for (let n = 0; n < 100; n++) {
    copyFileSync(base0, c.base);
    copyFileSync(child0, c.child);
    const r = spawnSync(process.execPath, [VDISK, 'commit', c.child], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') break;
    cuts++;
    assert.equal(firstDifferentSector(await readWhole(c.child), c.model), -1, `n=${n}: the chain`);
    const parent = await readWhole(c.base);
    for (let s = 0; s < SIZE; s += 512) {
      const sector = parent.subarray(s, s + 512);
      assert.ok(sector.equals(c.baseModel.subarray(s, s + 512)) || sector.equals(c.model.subarray(s, s + 512)), `n=${n}: parent sector ${s / 512}`);
    }
    // The peers, at every third cut (each costs a process or two).
    if (n % 3 !== 0) continue;
    assert.equal(firstDifferentSector(qemuRaw(dir, c.base), parent), -1, `n=${n}: qemu-img reads the parent as vdisk does`);
    for (const img of [c.base, c.child]) {
      const look = vdisk(['check', img]);
      assert.ok(look.code === 0 || look.code === 3, `n=${n}: ${img}: ${look.stdout}`);
    }
  }
  assert.ok(cuts >= 8, `cut at ${cuts} points`);
});

test('a safe rebase cut off at every one of its writes leaves a child that reads the same, on the old parent or the new', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const c = chain(dir, 's', 0x15);
  const other = qemuVhd(join(dir, 'other.vhd'), String(SIZE), ['write -P 0x3c 3M 2M']);
  const child0 = `${c.child}.orig`;
  copyFileSync(c.child, child0);
  let cuts = 0;
  for (let n = 0; n < 100; n++) {
    copyFileSync(child0, c.child);
    const r = spawnSync(process.execPath, [VDISK, 'rebase', '-b', other, c.child], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') {
      assert.match(vdisk(['info', c.child]).stdout, /parent-name: other\.vhd/);
      break;
    }
    cuts++;
    assert.equal(firstDifferentSector(await readWhole(c.child), c.model), -1, `n=${n}`);
    if (n % 3 !== 0) continue;
    const look = vdisk(['check', c.child]);
    assert.ok(look.code === 0 || look.code === 3, `n=${n}: ${look.stdout}`);
  }
  assert.ok(cuts >= 8, `cut at ${cuts} points`);
  assert.equal(firstDifferentSector(await readWhole(c.child), c.model), -1, 'after the rebase');
});
