import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, sha256, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { vhdiInfo } from './helpers/qemu.js';
import { buildKillShim } from './helpers/crash.js';
import { firstDifferentSector, vhdimountRead, vhdxData, vhdxWith, vdiskWrite, readWhole } from './helpers/vhdxlife.js';

const MiB = 1024 * 1024;

test('create -b makes a child libvhdi reads through its parent; writes land per sector in the child, the parent unchanged', async (t) => {
  if (!needPeers(t, 'vhdimount', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const base = join(dir, 'base.vhdx');
  const parentData = randomBytes(12 * MiB);
  vhdxWith(base, 12 * MiB, parentData);
  const parentHash = await sha256(base);
  const child = join(dir, 'child.vhdx');
  const made = vdisk(['create', '-b', base, '-F', 'vhdx', child]);
  assert.equal(made.code, 0, made.stderr);

  const vi = vhdiInfo(child);
  const d = vhdxData(child);
  assert.equal(vi['Disk type'], 'Differential');
  assert.equal(vi['Parent identifier'], vhdxData(base)['data-write-guid']);
  assert.equal(d['parent-locator'].entries.relative_path, '.\\base.vhdx');
  assert.equal(d['parent-locator'].type, 'b04aefb7-d19e-4a81-b789-25b8e9445913');
  assert.deepEqual((await vhdimountRead(child, dir)).equals(parentData), true, 'an empty child reads as its parent');

  // Writes: unaligned and small, across a block boundary, a whole block, one into a block written before.
  const model = Buffer.from(parentData);
  const writes: [number, Buffer][] = [
    [1000, randomBytes(5000)],
    [2 * MiB - 300, randomBytes(900)],
    [5 * MiB, randomBytes(MiB)],
    [7 * MiB + 4096, randomBytes(65536)],
    [7 * MiB + 8192, randomBytes(513)],
    [12 * MiB - 512, randomBytes(512)],
  ];
  for (const [at, data] of writes) {
    vdiskWrite(child, at, data);
    data.copy(model, at);
  }
  assert.equal(await sha256(base), parentHash, 'the parent is never written');
  const theirs = await vhdimountRead(child, dir);
  assert.equal(firstDifferentSector(theirs, model), -1, 'vhdimount reads the model');
  assert.equal(firstDifferentSector(vdisk(['read', child]).stdoutBytes, model), -1, 'vdisk reads the model');
  const states = vhdxData(child)['block-states'];
  assert.equal(states.FULLY_PRESENT, 1, JSON.stringify(states));
  assert.ok(states.PARTIALLY_PRESENT >= 3, JSON.stringify(states));
  const check = vdisk(['check', child]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
});

test('random writes into a child agree with a per-sector model, read by vhdimount', async (t) => {
  if (!needPeers(t, 'vhdimount')) return;
  const dir = tempDir(t);
  const size = 6 * MiB;
  const base = join(dir, 'base.vhdx');
  const parentData = randomBytes(size);
  vhdxWith(base, size, parentData);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ at: fc.integer({ min: 0, max: size - 1 }), len: fc.integer({ min: 1, max: 3 * MiB }) }), { minLength: 1, maxLength: 4 }),
      async (ws) => {
        const child = join(dir, `c${run++}.vhdx`);
        assert.equal(vdisk(['create', '-q', '-b', base, child]).code, 0);
        const model = Buffer.from(parentData);
        for (const w of ws) {
          const data = randomBytes(Math.min(w.len, size - w.at));
          vdiskWrite(child, w.at, data);
          data.copy(model, w.at);
        }
        assert.equal(firstDifferentSector(await vhdimountRead(child, dir), model), -1);
      },
    ),
    { numRuns: 4 },
  );
});

test('the locator holds the path relative to the child, and the chain still opens when moved as a whole', async (t) => {
  if (!needPeers(t, 'vhdimount')) return;
  const dir = tempDir(t);
  mkdirSync(join(dir, 'a', 'kids'), { recursive: true });
  const base = join(dir, 'a', 'base.vhdx');
  const parentData = randomBytes(3 * MiB);
  vhdxWith(base, 3 * MiB, parentData);
  const child = join(dir, 'a', 'kids', 'child.vhdx');
  assert.equal(vdisk(['create', '-q', '-b', base, child]).code, 0);
  assert.equal(vhdxData(child)['parent-locator'].entries.relative_path, '..\\base.vhdx');
  assert.match(vhdxData(child)['parent-locator'].entries.absolute_win32_path, /\\a\\base\.vhdx$/);
  vdiskWrite(child, 100 * 512, Buffer.alloc(512, 7));
  const model = Buffer.from(parentData);
  model.fill(7, 100 * 512, 101 * 512);
  renameSync(join(dir, 'a'), join(dir, 'b'));
  assert.equal(firstDifferentSector(vdisk(['read', join(dir, 'b', 'kids', 'child.vhdx')]).stdoutBytes, model), -1);
});

test('create -b refuses a parent that is not VHDX, and a size other than the parent\'s, in one line', (t) => {
  const dir = tempDir(t);
  const raw = join(dir, 'p.img');
  writeFileSync(raw, Buffer.alloc(MiB));
  const r = vdisk(['create', '-b', raw, '-F', 'raw', join(dir, 'c.vhdx')]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*needs a VHDX parent, not raw\n$/);
  const base = join(dir, 'base.vhdx');
  vhdxWith(base, 2 * MiB, Buffer.alloc(0));
  const s = vdisk(['create', '-b', base, join(dir, 'c2.vhdx'), '4M']);
  assert.equal(s.code, 1);
  assert.match(s.stderr, /^vdisk: .*parent's size .*\n$/);
});

test('a write into a child cut off at every one of its writes leaves old or new content per sector, the parent untouched', async (t) => {
  if (!needPeers(t, 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const base = join(dir, 'base.vhdx');
  const parentData = randomBytes(4 * MiB);
  vhdxWith(base, 4 * MiB, parentData);
  const parentHash = await sha256(base);
  const child0 = join(dir, 'child0.vhdx');
  assert.equal(vdisk(['create', '-q', '-b', base, child0]).code, 0);
  vdiskWrite(child0, 3 * MiB + 512, randomBytes(1024));
  const oldContent = vdisk(['read', child0]).stdoutBytes;
  const data = randomBytes(MiB + 3000);
  const input = join(dir, 'in.bin');
  writeFileSync(input, data);
  const offset = 2 * MiB + 700;
  const newContent = Buffer.from(oldContent);
  data.copy(newContent, offset);
  let cuts = 0;
  for (let n = 0; n < 200; n++) {
    const img = join(dir, 'child.vhdx'); // the locator's name: the copy must sit where the child was made
    copyFileSync(child0, img);
    const r = spawnSync(process.execPath, [VDISK, 'write', img, input, '--offset', String(offset)], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') break;
    cuts++;
    const now = await readWhole(img);
    for (let s = 0; s < oldContent.length; s += 512) {
      const sector = now.subarray(s, s + 512);
      if (!sector.equals(oldContent.subarray(s, s + 512)) && !sector.equals(newContent.subarray(s, s + 512))) {
        assert.fail(`n=${n}: sector ${s / 512} holds neither its old nor its new content`);
      }
    }
  }
  assert.ok(cuts >= 6, `cut at ${cuts} points`);
  assert.equal(await sha256(base), parentHash);
});
