import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { qemuVmdk, varied } from './helpers/vmdk.js';
import { buildKillShim, vdiskCutOff } from './helpers/crash.js';
import fc from 'fast-check';
import { checkImage, VdiskError } from '../src/index.js';

/**
 * `check -r` on VMDK: images made by qemu-img, then damaged as a crash or a bad copy would leave them.
 * qemu-img keeps both copies of every grain table in step and puts nothing past the last grain, so a
 * certain repair gives back the very file qemu-img wrote; qemu-img check and compare judge the result.
 */

const MiB = 1024 * 1024;
const GRAIN = 65536;

/** A raw disk of `mib` MiB with data in each 32 MiB span (so each grain table has grains). */
function rawDisk(dir: string, mib: number): string {
  const raw = join(dir, 'model.raw');
  const b = Buffer.alloc(mib * MiB);
  for (let at = 0; at < b.length; at += 32 * MiB) varied(3 * GRAIN + 1000, at / MiB + 1).copy(b, at + 5 * GRAIN + 17);
  writeFileSync(raw, b);
  return raw;
}

function qemuClean(image: string): void {
  const r = spawnSync('qemu-img', ['check', '-f', 'vmdk', image], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /No errors were found/);
}

function qemuSame(image: string, raw: string): void {
  const r = spawnSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', image, raw], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
}

function check(image: string, repair?: string): { code: number; report: Record<string, any> } {
  const r = vdisk(['check', '--output', 'json', ...(repair ? ['-r', repair] : []), image]);
  assert.equal(r.stderr, '', r.stderr);
  return { code: r.code, report: JSON.parse(r.stdout) };
}

/** Sector of grain table `t` in the primary (gdOffset at 56) or redundant (rgdOffset at 48) directory. */
function tableAt(file: Buffer, t: number, redundant: boolean): number {
  const gd = Number(file.readBigUInt64LE(redundant ? 48 : 56));
  return file.readUInt32LE(gd * 512 + t * 4) * 512;
}

/** Grain table entries of table `t` that hold a grain. */
function usedEntries(file: Buffer, t: number): number[] {
  const at = tableAt(file, t, false);
  const out: number[] = [];
  for (let i = 0; i < 512; i++) if (file.readUInt32LE(at + i * 4) > 1) out.push(i);
  return out;
}

test('check -r leaks cuts off grains past the last one a table names (monolithicSparse and a twoGbMaxExtentSparse extent): the file qemu-img wrote comes back', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = rawDisk(dir, 40);
  const mono = join(dir, 'mono.vmdk');
  qemuVmdk(raw, mono, ['subformat=monolithicSparse']);
  const split = join(dir, 'split.vmdk');
  qemuVmdk(raw, split, ['subformat=twoGbMaxExtentSparse']);
  const extent = join(dir, 'split-s001.vmdk');
  for (const [image, damaged] of [[mono, mono], [split, extent]]) {
    const original = readFileSync(damaged);
    appendFileSync(damaged, varied(3 * GRAIN, 9));
    qemuClean(image); // qemu-img does not look for leaks in a VMDK
    const before = check(image);
    assert.equal(before.code, 3, JSON.stringify(before.report));
    assert.equal(before.report.leaks, 3);
    assert.equal(before.report.corruptions, 0);
    assert.equal(before.report.findings[0].repair, 'truncate');
    assert.ok(readFileSync(damaged).length > original.length, 'check without -r changes nothing');
    const fixed = check(image, 'leaks');
    assert.equal(fixed.code, 0, JSON.stringify(fixed.report));
    assert.equal(fixed.report['leaks-fixed'], 3);
    assert.equal(fixed.report.leaks, 0);
    assert.ok(readFileSync(damaged).equals(original), `${damaged}: back to what qemu-img wrote`);
    qemuClean(image);
    qemuSame(image, raw);
  }
});

test('check -r all rewrites a grain table that disagrees with its redundant copy from the copy that is valid', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = rawDisk(dir, 70);
  const image = join(dir, 'disk.vmdk');
  qemuVmdk(raw, image, ['subformat=monolithicSparse']);
  const original = readFileSync(image);
  const entries = usedEntries(original, 1);
  assert.ok(entries.length >= 3, 'table 1 names grains');

  // The redundant copy lost entries (as a crash between the two table writes leaves it): qemu-img reads only the primary.
  let b = Buffer.from(original);
  for (const i of entries) b.writeUInt32LE(0, tableAt(b, 1, true) + i * 4);
  writeFileSync(image, b);
  qemuClean(image);
  let r = check(image);
  assert.equal(r.code, 2);
  assert.equal(r.report.corruptions, 1);
  assert.equal(r.report.findings[0].structure, 'redundant grain table');
  assert.equal(r.report.findings[0].repair, 'rewrite-grain-table');
  r = check(image, 'leaks');
  assert.equal(r.code, 2, '-r leaks leaves corruptions alone');
  assert.ok(readFileSync(image).equals(b));
  r = check(image, 'all');
  assert.equal(r.code, 0, JSON.stringify(r.report));
  assert.equal(r.report['corruptions-fixed'], 1);
  assert.equal(r.report.findings[0].fixed, true);
  assert.ok(readFileSync(image).equals(original), 'the redundant table is the primary again');

  // The primary names grains past the end of the file and inside the metadata: qemu-img check sees it; the copy is good.
  b = Buffer.from(original);
  b.writeUInt32LE(999_999, tableAt(b, 2, false) + entries[0] * 4);
  b.writeUInt32LE(3, tableAt(b, 0, false) + 40 * 4);
  writeFileSync(image, b);
  assert.notEqual(spawnSync('qemu-img', ['check', '-f', 'vmdk', image]).status, 0, 'qemu-img check finds the bad primary');
  r = check(image);
  assert.equal(r.code, 2);
  assert.equal(r.report.corruptions, 2);
  assert.match(r.report.findings.map((f: { message: string }) => f.message).join('\n'), /the redundant copy of its table is valid/);
  r = check(image, 'all');
  assert.equal(r.code, 0, JSON.stringify(r.report));
  assert.equal(r.report['corruptions-fixed'], 2);
  assert.ok(readFileSync(image).equals(original));
  qemuClean(image);
  qemuSame(image, raw);

  // A directory entry lost, or naming the descriptor, or past the end: the other directory's table goes
  // back where this directory's layout puts it (the place qemu-img gave it), then the entry.
  const gdAt = Number(original.readBigUInt64LE(56)) * 512;
  const rgdAt = Number(original.readBigUInt64LE(48)) * 512;
  for (const [what, at, value, qemuSees] of [
    ['lost primary entry', gdAt + 4, 0, 'differs'],
    ['redundant entry naming the descriptor', rgdAt + 8, 1, 'same'],
    ['primary entry past the end', gdAt, 999_999, 'error'],
  ] as const) {
    b = Buffer.from(original);
    b.writeUInt32LE(value, at);
    writeFileSync(image, b);
    const seen = spawnSync('qemu-img', ['compare', '-f', 'vmdk', '-F', 'raw', image, raw], { encoding: 'utf8' });
    if (qemuSees === 'same') assert.equal(seen.status, 0, `${what}: qemu reads only the primary`);
    else assert.notEqual(seen.status, 0, `${what}: qemu-img compare sees the damage`);
    r = check(image);
    assert.equal(r.code, 2, what);
    const f = r.report.findings.find((x: { repair?: string }) => x.repair === 'rewrite-grain-directory');
    assert.ok(f, `${what}: ${JSON.stringify(r.report.findings)}`);
    assert.equal(f.offset, at, what);
    r = check(image, 'all');
    assert.equal(r.code, 0, `${what}: ${JSON.stringify(r.report)}`);
    assert.ok(r.report['corruptions-fixed'] >= 1);
    assert.ok(readFileSync(image).equals(original), `${what}: back to what qemu-img wrote`);
    qemuSame(image, raw);
  }

  // Neither copy valid: nothing is certain, nothing is written.
  b = Buffer.from(original);
  b.writeUInt32LE(999_999, tableAt(b, 1, false) + entries[0] * 4);
  b.writeUInt32LE(888_888, tableAt(b, 1, true) + entries[0] * 4);
  writeFileSync(image, b);
  r = check(image, 'all');
  assert.equal(r.code, 2);
  assert.equal(r.report['corruptions-fixed'], 0);
  assert.ok(readFileSync(image).equals(b), 'an uncertain repair is not made');
});

test('check -r all cut off at every write (plain and torn) leaves an image that a later check -r all brings back to what qemu-img wrote', (t) => {
  if (!needPeers(t, 'qemu-img', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const raw = rawDisk(dir, 100);
  const image = join(dir, 'disk.vmdk');
  qemuVmdk(raw, image, ['subformat=monolithicSparse']);
  const original = readFileSync(image);
  const damaged = Buffer.from(original);
  for (const tb of [0, 1, 3]) damaged.writeUInt32LE(999_999 + tb, tableAt(damaged, tb, false) + usedEntries(original, tb)[1] * 4);
  // And a lost directory entry: its table comes back from the copy, then the entry.
  damaged.writeUInt32LE(0, Number(damaged.readBigUInt64LE(56)) * 512 + 2 * 4);
  const base = join(dir, 'base.vmdk');
  const baseBytes = Buffer.concat([damaged, varied(2 * GRAIN, 5)]);
  writeFileSync(base, baseBytes);
  let cuts = 0;
  for (const torn of [false, true]) {
    for (let n = 0; n < 20; n++) {
      copyFileSync(base, image);
      if (!vdiskCutOff(shim, ['check', '-r', 'all', image], n, torn)) break;
      cuts++;
      // Each table holds its old (bad) or its good entries; nothing but the repair's own targets changed.
      const now = readFileSync(image);
      for (let at = 0; at < original.length; at += 512) {
        const s = now.subarray(at, at + 512);
        if (!s.equals(baseBytes.subarray(at, at + 512)) && !s.equals(original.subarray(at, at + 512))) {
          assert.fail(`n=${n} torn=${torn}: sector ${at / 512} is neither damaged nor repaired`);
        }
      }
      const r = check(image, 'all');
      assert.equal(r.code, 0, `n=${n} torn=${torn}: ${JSON.stringify(r.report)}`);
      assert.ok(readFileSync(image).equals(original), `n=${n} torn=${torn}: repaired to what qemu-img wrote`);
    }
  }
  assert.ok(cuts >= 6, `cut at ${cuts} points`);
  qemuClean(image);
  qemuSame(image, raw);
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('.tmp')), []);
});

test('check -r all on grain directories and tables mutated at random: only typed errors, bounded time, grains never touched, and a second repair finds nothing more to do', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = rawDisk(dir, 70);
  const image = join(dir, 'disk.vmdk');
  qemuVmdk(raw, image, ['subformat=monolithicSparse']);
  const original = readFileSync(image);
  const overhead = Number(original.readBigUInt64LE(64)) * 512;
  const gd = Number(original.readBigUInt64LE(56)) * 512;
  const rgd = Number(original.readBigUInt64LE(48)) * 512;
  // Directories and tables: the primary, then the redundant copy, of the three tables.
  const regions: [number, number][] = [[gd, 12], [rgd, 12]];
  for (let tb = 0; tb < 3; tb++) regions.push([tableAt(original, tb, false), 2048], [tableAt(original, tb, true), 2048]);
  const target = join(dir, 'hostile.vmdk');
  const values = fc.oneof(fc.constantFrom(0, 1, 2, 3, 999_999, 0xffffffff), fc.integer({ min: 0, max: Math.ceil(original.length / 512) + 300 }));
  await fc.assert(
    fc.asyncProperty(fc.array(fc.tuple(fc.nat(), fc.nat(), values), { minLength: 1, maxLength: 6 }), fc.nat({ max: 4 }), async (edits, junkGrains) => {
      const b = Buffer.from(original);
      for (const [r, pos, v] of edits) {
        const [start, length] = regions[r % regions.length];
        b.writeUInt32LE(v, start + (pos % (length / 4)) * 4);
      }
      const damaged = Buffer.concat([b, varied(junkGrains * GRAIN, 3)]);
      writeFileSync(target, damaged);
      let first;
      try {
        first = await withTimeout(checkImage(target, { repair: 'all' }), 20_000);
      } catch (err) {
        if (err instanceof VdiskError) return;
        throw err;
      }
      const now = readFileSync(target);
      assert.ok(now.length <= damaged.length);
      // The grains are never written: only tables change, and the file may only lose its tail.
      assert.ok(now.subarray(overhead).equals(damaged.subarray(overhead, now.length)), 'grain bytes unchanged');
      // One edit to a redundant structure or a primary directory entry, all repaired: what qemu-img wrote.
      if (edits.length === 1 && [0, 1, 3, 5, 7].includes(edits[0][0] % regions.length) && first.corruptions === 0) {
        assert.ok(now.equals(original), `one edit ${JSON.stringify(edits[0])}: repaired to what qemu-img wrote`);
      }
      const second = await checkImage(target, { repair: 'all' });
      assert.equal(second['corruptions-fixed'], 0, JSON.stringify(second.findings));
      assert.equal(second['leaks-fixed'], 0, JSON.stringify(second.findings));
      if (first.corruptions === 0) {
        const q = spawnSync('qemu-img', ['check', '-f', 'vmdk', target], { encoding: 'utf8' });
        assert.equal(q.status, 0, `vdisk finds no corruption left, qemu-img does: ${q.stdout}`);
      }
    }),
    { numRuns: 60 },
  );
});

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`took over ${ms} ms`)), ms).unref())]);
}
