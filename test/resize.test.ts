import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, truncateSync, writeFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { qemuInfo } from './helpers/qemu.js';
import { buildKillShim } from './helpers/crash.js';
import { firstDifferentSector, vhdxData, vhdxWith, vdiskWrite, readWhole, virtualSizeOf } from './helpers/vhdxlife.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

/** qemu-img check is clean, info shows `size`, and compare finds the image equal to the raw model. */
function agreesWithQemu(image: string, model: string, size: number): void {
  sh('qemu-img', ['check', '-f', 'vhdx', image]);
  assert.equal(qemuInfo(image)['virtual-size'], size);
  const r = spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', image, model], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
}

test('grow and shrink a dynamic VHDX: qemu-img checks, sizes and compares it against the model', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'a.vhdx');
  // 15.5 MiB: the last block is partial, and its tail past the old end must read as zeros after the grow.
  const size0 = 15 * MiB + 512 * 1024;
  const data = randomBytes(size0);
  vhdxWith(img, size0, data);
  const model = join(dir, 'model.raw');
  writeFileSync(model, data);

  assert.equal(vdisk(['resize', img, '+40M']).code, 0);
  truncateSync(model, size0 + 40 * MiB);
  agreesWithQemu(img, model, size0 + 40 * MiB);
  const extra = randomBytes(3 * MiB);
  vdiskWrite(img, 50 * MiB, extra);
  const m = readFileSync(model);
  extra.copy(m, 50 * MiB);
  writeFileSync(model, m);
  agreesWithQemu(img, model, size0 + 40 * MiB);

  const refused = vdisk(['resize', img, '20M']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^vdisk: .*--shrink.*\n$/);
  const inTheWay = vdisk(['resize', '--shrink', img, '-10M']);
  assert.equal(inTheWay.code, 1);
  assert.match(inTheWay.stderr, /^vdisk: .*data at byte 5\d+ lies past the new size .*\n$/);
  // Zeros over the data make the cut harmless.
  vdiskWrite(img, 50 * MiB, Buffer.alloc(3 * MiB));
  assert.equal(vdisk(['resize', '--shrink', img, '-40M']).code, 0);
  truncateSync(model, size0);
  const m2 = readFileSync(model);
  m2.fill(0, size0);
  agreesWithQemu(img, model, size0);
  assert.equal(firstDifferentSector(vdisk(['read', img]).stdoutBytes, data), -1);
  const check = vdisk(['check', img]);
  assert.ok(check.code === 0 || check.code === 3, check.stdout + check.stderr);
});

test('a grow past what the BAT region holds moves the BAT to the end of the file; blocks written past the old end are read back', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'b.vhdx');
  const data = randomBytes(6 * MiB);
  vhdxWith(img, 16 * MiB, data);
  // 1 MiB blocks: a 1 MiB BAT holds 131072 entries, 140 GiB needs 143395.
  const size = 140 * GiB;
  assert.equal(vdisk(['resize', img, '140G']).code, 0);
  sh('qemu-img', ['check', '-f', 'vhdx', img]);
  assert.equal(qemuInfo(img)['virtual-size'], size);
  const far = randomBytes(2 * MiB);
  vdiskWrite(img, 130 * GiB + 123 * 512, far);
  vdiskWrite(img, 8 * GiB - MiB, far); // across the first chunk boundary (4096 blocks of 1 MiB)
  sh('qemu-img', ['check', '-f', 'vhdx', img]);
  // qemu-img compare would read all 140 GiB (QEMU's VHDX driver reports no holes): QEMU reads the
  // written ranges, the old data and a range nothing wrote.
  // qemu-img dd counts its count from the start of the disk, skipped blocks included.
  const expect = (at: number, n: number, want: Buffer) => {
    const out = join(dir, `dd-${at}.raw`);
    sh('qemu-img', ['dd', '-f', 'vhdx', '-O', 'raw', `if=${img}`, `of=${out}`, 'bs=1M', `skip=${at / MiB}`, `count=${(at + n) / MiB}`]);
    assert.equal(firstDifferentSector(readFileSync(out), want), -1, `QEMU reads ${at}+${n} as written`);
  };
  expect(0, 8 * MiB, Buffer.concat([data, Buffer.alloc(2 * MiB)]));
  expect(8 * GiB - MiB, 2 * MiB, far);
  expect(130 * GiB, 3 * MiB, Buffer.concat([Buffer.alloc(123 * 512), far, Buffer.alloc(MiB - 123 * 512)]));
  expect(100 * GiB, MiB, Buffer.alloc(MiB));
  const check = vdisk(['check', img]);
  assert.equal(check.code, 0, check.stdout);
  assert.equal(vhdxData(img)['total-blocks'], 140 * 1024);
});

test('a fixed VHDX grows fixed', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'f.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'subformat=fixed,block_size=1M', img, '8M']).code, 0);
  const data = randomBytes(8 * MiB);
  vdiskWrite(img, 0, data);
  assert.equal(vdisk(['resize', img, '24M']).code, 0);
  const model = join(dir, 'model.raw');
  writeFileSync(model, data);
  truncateSync(model, 24 * MiB);
  agreesWithQemu(img, model, 24 * MiB);
  assert.deepEqual(vhdxData(img)['block-states'], { FULLY_PRESENT: 24 });
});

test('shrinking is refused over a partition or a file system, naming it; raw resizes by truncation', (t) => {
  if (!needPeers(t, 'qemu-img', 'sfdisk', 'mkfs.ext4')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'g.img');
  writeFileSync(raw, '');
  truncateSync(raw, 32 * MiB);
  sh('sfdisk', ['-q', raw], Buffer.from('label: gpt\nstart=2048, size=16384, type=linux\n'));
  const img = join(dir, 'g.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=1M', raw, img]).code, 0);
  const p = vdisk(['resize', '--shrink', img, '6M']);
  assert.equal(p.code, 1);
  assert.match(p.stderr, /^vdisk: .*partition 1 ends at byte 9437184, past the new size 6291456; shrink it first\n$/);
  // After a grow, partitions warns that the backup GPT is no longer at the end.
  assert.equal(vdisk(['resize', img, '64M']).code, 0);
  const parts = vdisk(['partitions', img]);
  assert.equal(parts.code, 0);
  assert.match(parts.stderr, /backup GPT .*not on the end of the device/);

  const fs = join(dir, 'fs.img');
  writeFileSync(fs, '');
  truncateSync(fs, 16 * MiB);
  sh('mkfs.ext4', ['-q', '-F', fs, '12M']);
  const fsv = join(dir, 'fs.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=1M', fs, fsv]).code, 0);
  const f = vdisk(['resize', '--shrink', fsv, '8M']);
  assert.equal(f.code, 1);
  assert.match(f.stderr, /^vdisk: .*ext4 file system on the disk ends at byte 12582912, past the new size 8388608; shrink it first\n$/);
  assert.equal(vdisk(['resize', '--shrink', fsv, '12M']).code, 0);
  sh('qemu-img', ['check', '-f', 'vhdx', fsv]);
  const back = join(dir, 'back.img');
  assert.equal(vdisk(['convert', '-O', 'raw', fsv, back]).code, 0);
  sh('e2fsck', ['-fn', back]);

  // raw: truncate, the shrink refused the same way over the file system
  assert.equal(vdisk(['resize', '-f', 'raw', fs, '+4M']).code, 0);
  assert.equal(statSync(fs).size, 20 * MiB);
  assert.equal(vdisk(['resize', '-f', 'raw', '--shrink', fs, '8M']).code, 1);
  assert.equal(vdisk(['resize', '-f', 'raw', fs, '12M']).code, 1);
  assert.equal(vdisk(['resize', '-f', 'raw', '--shrink', fs, '-8M']).code, 0);
  assert.equal(statSync(fs).size, 12 * MiB);
  sh('e2fsck', ['-fn', fs]);
});

test('a differencing image is refused in one line', (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.vhdx');
  vhdxWith(base, 4 * MiB, Buffer.alloc(0));
  const child = join(dir, 'child.vhdx');
  assert.equal(vdisk(['create', '-q', '-b', base, child]).code, 0);
  const r = vdisk(['resize', child, '8M']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*differencing.*\n$/);
});

for (const target of ['40M', '140G']) {
  test(`a grow to ${target} cut off at every one of its writes leaves an image that opens at the old or the new size with its data`, async (t) => {
    if (!needPeers(t, 'qemu-img', 'cc')) return;
    const dir = tempDir(t);
    const shim = buildKillShim(dir);
    const base = join(dir, 'base.vhdx');
    const data = randomBytes(7 * MiB + 512 * 1024);
    vhdxWith(base, 16 * MiB, data);
    const model = Buffer.concat([data, Buffer.alloc(16 * MiB - data.length)]);
    const newSize = target === '40M' ? 40 * MiB : 140 * GiB;
    let cuts = 0;
    for (let n = 0; n < 200; n++) {
      const img = join(dir, `cut-${n}.vhdx`);
      copyFileSync(base, img);
      const r = spawnSync(process.execPath, [VDISK, 'resize', img, target], {
        env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
        stdio: 'ignore',
      });
      if (r.signal !== 'SIGKILL') break;
      cuts++;
      const size = await virtualSizeOf(img);
      assert.ok(size === 16 * MiB || size === newSize, `n=${n}: size ${size}`);
      assert.equal(firstDifferentSector(await readWhole(img, 16 * MiB), model), -1, `n=${n}`);
      if (n % 4 === 0) {
        // Opened for writing, the log is replayed; QEMU then finds the image clean.
        vdiskWrite(img, 0, data.subarray(0, 512));
        sh('qemu-img', ['check', '-f', 'vhdx', img]);
      }
    }
    assert.ok(cuts >= 8, `cut at ${cuts} points`);
  });
}
