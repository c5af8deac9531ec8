import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { buildKillShim, vdiskCutOff, assertOldOrNew } from './helpers/crash.js';
import { noise, qemuCheck, qemuQcow2, writeSourceRaw } from './helpers/qcow2.js';

const MiB = 1024 * 1024;

function ourCheck(image: string, repair?: string): { code: number; json: Record<string, number> } {
  const r = vdisk(['check', '--output', 'json', ...(repair ? ['-r', repair] : []), image]);
  return { code: r.code, json: JSON.parse(r.stdout) };
}

for (const torn of [false, true]) {
  test(`a qcow2 writer cut off at each of its writes${torn ? ' (torn)' : ''} leaves old or new sectors and at worst leaks, counted as qemu-img counts them`, (t) => {
    if (!needPeers(t, 'qemu-img', 'cc')) return;
    const dir = tempDir(t);
    const shim = buildKillShim(dir);
    const src = writeSourceRaw(dir);
    // A snapshot too, so that the write copies shared clusters and gives up references.
    const base = qemuQcow2(dir, src, 'base');
    sh('qemu-img', ['snapshot', '-c', 's1', base]);
    const oldContent = readFileSync(src);
    const input = join(dir, 'in.bin');
    const data = noise(3 * MiB + 777, 11);
    writeFileSync(input, data);
    const offset = 2_500_000;
    const newContent = Buffer.from(oldContent);
    data.copy(newContent, offset);

    let cuts = 0;
    let leaky = 0;
    for (let n = 0; n < 100; n++) {
      const img = join(dir, `cut-${n}.qcow2`);
      copyFileSync(base, img);
      if (!vdiskCutOff(shim, ['write', img, input, '--offset', String(offset)], n, torn)) break;
      cuts++;
      const theirs = qemuCheck(img);
      assert.ok(theirs.code === 0 || theirs.code === 3, `n=${n}: qemu-img check exit ${theirs.code}: ${JSON.stringify(theirs.json)}`);
      const ours = ourCheck(img);
      assert.equal(ours.code, theirs.code, `n=${n}: exit codes`);
      assert.equal(ours.json.leaks, theirs.json.leaks ?? 0, `n=${n}: leaks`);
      assert.equal(ours.json.corruptions, theirs.json.corruptions ?? 0, `n=${n}: corruptions`);
      assert.equal(ours.json['image-end-offset'], theirs.json['image-end-offset'], `n=${n}: image end`);
      assertOldOrNew(vdisk(['read', img]).stdoutBytes, oldContent, newContent, `n=${n}`);
      if (ours.json.leaks > 0) {
        leaky++;
        const fixed = ourCheck(img, 'leaks');
        assert.equal(fixed.code, 0);
        assert.equal(fixed.json['leaks-fixed'], theirs.json.leaks);
        const after = qemuCheck(img);
        assert.equal(after.code, 0, `n=${n}: after vdisk check -r leaks, qemu-img check says ${JSON.stringify(after.json)}`);
      }
    }
    assert.ok(cuts >= 6, `the write was cut at ${cuts} points`);
    assert.ok(leaky >= 1, 'some cut left leaked clusters');
  });
}

test('qcow2 check finds the corruptions qemu-img check finds: refcounts too low, tables off the end or unaligned', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const base = qemuQcow2(dir, writeSourceRaw(dir), 'base');
  const b = readFileSync(base);
  const l1 = Number(b.readBigUInt64BE(40));
  const refTable = Number(b.readBigUInt64BE(48));
  const block = Number(b.readBigUInt64BE(refTable));
  const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
  const damages: [string, (x: Buffer) => void][] = [
    ['a data cluster refcount 0', (x) => x.writeUInt16BE(0, block + 2 * Number((x.readBigUInt64BE(l2) & 0x00fffffffffffe00n) / 65536n))],
    ['an L2 entry past the end of the file', (x) => x.writeBigUInt64BE(0x8000000000000000n | BigInt(x.length + 65536 * 10), l2 + 8)],
    ['an L2 entry off a cluster boundary', (x) => x.writeBigUInt64BE(0x8000000000000000n | BigInt(65536 * 3 + 512), l2 + 16)],
  ];
  for (const [name, damage] of damages) {
    const img = join(dir, `${name.replace(/ /g, '-')}.qcow2`);
    const x = Buffer.from(b);
    damage(x);
    writeFileSync(img, x);
    const theirs = qemuCheck(img);
    const ours = ourCheck(img);
    assert.equal(ours.code, theirs.code, `${name}: exit codes ${JSON.stringify(ours.json)} vs ${JSON.stringify(theirs.json)}`);
    assert.ok(ours.code !== 0, `${name}: found`);
    if (name === 'a data cluster refcount 0') {
      // -r all raises the refcount back to its references, as qemu-img check -r all does.
      const fixed = ourCheck(img, 'all');
      assert.equal(fixed.json['corruptions-fixed'], theirs.json.corruptions);
      assert.equal(ours.json.corruptions, theirs.json.corruptions);
      assert.equal(qemuCheck(img).code, 0);
    }
  }
  // A cluster with a refcount that nothing references: a leak, which -r leaks gives back.
  const leaked = join(dir, 'leaked.qcow2');
  const x = Buffer.concat([b, Buffer.alloc(65536 - (b.length % 65536)), Buffer.alloc(65536, 1)]);
  x.writeUInt16BE(1, block + 2 * (x.length / 65536 - 1));
  writeFileSync(leaked, x);
  assert.equal(qemuCheck(leaked).json.leaks, 1);
  const ours = ourCheck(leaked);
  assert.equal(ours.code, 3);
  assert.equal(ours.json.leaks, 1);
  assert.equal(ourCheck(leaked, 'leaks').json['leaks-fixed'], 1);
  assert.equal(qemuCheck(leaked).code, 0);
});

test('qcow2 check -r all sets and clears COPIED flags as the refcounts say, as qemu-img check -r all does', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = writeSourceRaw(dir);
  const base = qemuQcow2(dir, src, 'base');
  const b = readFileSync(base);
  const l1 = Number(b.readBigUInt64BE(40));
  const l2 = Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n);
  const dataEntries: number[] = [];
  for (let j = 0; j < 8192 && dataEntries.length < 3; j++) if (b.readBigUInt64BE(l2 + j * 8) & 0x00fffffffffffe00n) dataEntries.push(l2 + j * 8);
  assert.equal(dataEntries.length, 3, 'the fixture has data clusters');

  // Refcount 1, flag clear: on two data entries and on the L1 entry of the L2 table.
  const cleared = join(dir, 'cleared.qcow2');
  const x = Buffer.from(b);
  x[dataEntries[0]] &= 0x7f;
  x[dataEntries[2]] &= 0x7f;
  x[l1] &= 0x7f;
  writeFileSync(cleared, x);
  // Refcount 2 (a snapshot shares every cluster), flag set: writes would change a shared cluster in place.
  const shared = join(dir, 'shared.qcow2');
  copyFileSync(base, shared);
  sh('qemu-img', ['snapshot', '-c', 's1', shared]);
  const y = readFileSync(shared);
  const l1s = Number(y.readBigUInt64BE(40));
  const l2s = Number(y.readBigUInt64BE(l1s) & 0x00fffffffffffe00n);
  let flipped = 0;
  for (let j = 0; j < 8192 && flipped < 2; j++) {
    if (y.readBigUInt64BE(l2s + j * 8) & 0x00fffffffffffe00n) {
      y[l2s + j * 8] |= 0x80;
      flipped++;
    }
  }
  writeFileSync(shared, y);

  for (const img of [cleared, shared]) {
    const theirs = qemuCheck(img);
    assert.equal(theirs.code, 2, `${img}: qemu-img finds corruptions: ${JSON.stringify(theirs.json)}`);
    const ours = ourCheck(img);
    assert.equal(ours.code, theirs.code);
    assert.equal(ours.json.corruptions, theirs.json.corruptions, `${img}: corruptions`);
    // -r leaks leaves flags alone, as qemu-img does.
    assert.equal(ourCheck(img, 'leaks').json.corruptions, theirs.json.corruptions);
    const fixed = ourCheck(img, 'all');
    assert.equal(fixed.code, 0, JSON.stringify(fixed.json));
    assert.equal(fixed.json['corruptions-fixed'], theirs.json.corruptions);
    assert.equal(qemuCheck(img).code, 0, `${img}: qemu-img check after vdisk check -r all`);
    sh('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', img, src]);
  }
  // The shared image still reads its snapshot as it was: the flags now keep writes off shared clusters.
  const input = join(dir, 'in.bin');
  writeFileSync(input, noise(MiB, 5));
  const w = vdisk(['write', shared, input, '--offset', '0']);
  assert.equal(w.code, 0, w.stderr);
  assert.equal(qemuCheck(shared).code, 0);
  sh('qemu-img', ['snapshot', '-a', 's1', shared]);
  sh('qemu-img', ['compare', '-f', 'qcow2', '-F', 'raw', shared, src]);
});
