import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, scatteredWrites } from './helpers/qemu.js';
import { buildKillShim, makeDirtyQemuVhdx } from './helpers/crash.js';

const MiB = 1024 * 1024;

function qemuCompare(args: string[]): { code: number; stdout: string } {
  const r = spawnSync('qemu-img', ['compare', ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout };
}

/**
 * Random pairs of disks (one a copy of the other with a few bytes changed, its size changed, or its
 * tail made non-zero), as raw files and as VHDX written by qemu-img: vdisk compare prints what qemu-img
 * compare prints and exits as it does, with and without -s.
 */
test('compare says what qemu-img compare says, for raw and VHDX pairs of any sizes', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 12 }).map((n) => n * 256 * 1024),
      fc.array(fc.record({ at: fc.double({ min: 0, max: 0.999, noNaN: true }), value: fc.integer({ min: 0, max: 255 }) }), { maxLength: 3 }),
      fc.constantFrom(0, 0, 512 * 1024, -256 * 1024),
      fc.boolean(),
      fc.constantFrom('raw', 'vhdx'),
      fc.boolean(),
      async (size, flips, grow, dirtyTail, secondFormat, strict) => {
        const n = run++;
        const a = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4096) a.writeUInt32LE((i * 2654435761) >>> 0, i); // sparse-ish data
        const b = Buffer.alloc(Math.max(512, size + grow));
        a.copy(b, 0, 0, Math.min(size, b.length));
        for (const f of flips) b[Math.floor(f.at * Math.min(size, b.length))] = f.value;
        if (dirtyTail && b.length > size) b[b.length - 700] = 1;
        const pa = join(dir, `a${n}.raw`);
        const pbRaw = join(dir, `b${n}.raw`);
        writeFileSync(pa, a);
        writeFileSync(pbRaw, b);
        let pb = pbRaw;
        if (secondFormat === 'vhdx') {
          pb = join(dir, `b${n}.vhdx`);
          sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'block_size=1M', pbRaw, pb]);
        }
        // qemu-img's -s also compares allocation, which its VHDX driver cannot report: only the size
        // part of strict mode is compared, on pairs of different sizes.
        const args = [...(strict && grow !== 0 ? ['-s'] : []), '-f', 'raw', '-F', secondFormat, pa, pb];
        const theirs = qemuCompare(args);
        const ours = vdisk(['compare', ...args]);
        assert.equal(ours.code, theirs.code, `${args.join(' ')}: ${ours.stdout} vs ${theirs.stdout}`);
        assert.equal(ours.stdout, theirs.stdout, args.join(' '));
      },
    ),
    { numRuns: 30, seed: Number(process.env.FC_SEED ?? 5) },
  );
});

test('compare reads what qemu-img cannot open: a pending log (replayed in memory), 4K sectors; and errors exit 2', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const dirty = makeDirtyQemuVhdx(dir, buildKillShim(dir), ['write -P 0xee 2M 4k']);
  assert.ok(dirty, 'a cut point leaving a pending log exists');
  const before = await sha256(dirty);
  const replayed = join(dir, 'replayed.vhdx');
  copyFileSync(dirty, replayed);
  sh('qemu-img', ['check', '-q', '-r', 'all', '-f', 'vhdx', replayed]);
  assert.notEqual(qemuCompare([dirty, replayed]).code, 0, 'qemu-img cannot open the dirty image read-only');
  const same = vdisk(['compare', dirty, replayed]);
  assert.equal(same.code, 0, same.stderr);
  assert.equal(same.stdout, 'Images are identical.\n');
  assert.equal(await sha256(dirty), before, 'compare only looks');

  const raw = join(dir, 'four.raw');
  const data = Buffer.alloc(8 * MiB);
  for (let i = 0; i < data.length; i += 8192) data[i] = 1 + (i % 251);
  writeFileSync(raw, data);
  const fourK = join(dir, 'four.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'logical_sector_size=4096', raw, fourK]).code, 0);
  assert.equal(vdisk(['compare', raw, fourK]).code, 0);
  data[5 * MiB + 1234] ^= 0xff;
  writeFileSync(raw, data);
  const diff = vdisk(['compare', fourK, raw]);
  assert.equal(diff.code, 1);
  assert.equal(diff.stdout, `Content mismatch at offset ${5 * MiB + 1024}!\n`);

  const missing = vdisk(['compare', raw, join(dir, 'nope.vhdx')]);
  assert.equal(missing.code, 2);
  assert.match(missing.stderr, /^vdisk: .*nope\.vhdx: no such file\n$/);
  assert.equal(vdisk(['compare', '-F', 'nosuch', raw, raw]).code, 1, 'a usage error is 1, as everywhere');
});

test('two empty 64 TiB images compare by their block tables; QEMU-written ones equal ours', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const big1 = join(dir, 'b1.vhdx');
  const big2 = join(dir, 'b2.vhdx');
  assert.equal(vdisk(['create', '-q', big1, '64T']).code, 0);
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=8M', big2, '64T']).code, 0);
  assert.equal(vdisk(['compare', big1, big2]).stdout, 'Images are identical.\n');
  const q = makeQemuVhdx(dir, { name: 'q', size: '40M', options: ['block_size=1M'], io: scatteredWrites(40 * MiB, MiB) });
  const ours = join(dir, 'ours.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', q, ours]).code, 0);
  assert.equal(vdisk(['compare', q, ours]).code, 0);
  assert.equal(qemuCompare([q, ours]).code, 0);
  const changed = join(dir, 'changed.vhdx');
  copyFileSync(ours, changed);
  sh('qemu-io', ['-f', 'vhdx', '-c', 'write -P 0x99 30M 512', changed]);
  assert.deepEqual(
    (({ code, stdout }) => ({ code, stdout }))(vdisk(['compare', q, changed])),
    qemuCompare([q, changed]),
  );
});
