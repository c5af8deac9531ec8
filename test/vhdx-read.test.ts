import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { statSync, writeFileSync, readFileSync } from 'node:fs';
import { needPeers, tempDir, vdisk, sha256, sha256Buffer, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw, qemuInfo, scatteredWrites, vhdiInfo } from './helpers/qemu.js';
import { readAt } from './helpers/exfat.js';

const MiB = 1024 * 1024;

interface Shape {
  name: string;
  size: number;
  block: number;
  options: string[];
  writes: boolean;
}

const SHAPES: Shape[] = [
  { name: 'block-1M', size: 64 * MiB, block: MiB, options: ['block_size=1M'], writes: true },
  { name: 'block-8M-default', size: 100 * MiB, block: 8 * MiB, options: [], writes: true },
  { name: 'block-32M', size: 200 * MiB, block: 32 * MiB, options: ['block_size=32M'], writes: true },
  { name: 'block-256M', size: 600 * MiB, block: 256 * MiB, options: ['block_size=256M'], writes: true },
  { name: 'fixed', size: 48 * MiB, block: 8 * MiB, options: ['subformat=fixed'], writes: true },
  { name: 'zero-state-on', size: 40 * MiB, block: 8 * MiB, options: ['block_state_zero=on'], writes: true },
  { name: 'zero-state-off', size: 40 * MiB, block: 8 * MiB, options: ['block_state_zero=off'], writes: true },
  { name: 'log-8M', size: 40 * MiB, block: 8 * MiB, options: ['log_size=8M'], writes: true },
  { name: 'odd-size', size: 70 * MiB + 3 * 512, block: 8 * MiB, options: [], writes: true },
  { name: 'empty', size: 20 * MiB, block: 8 * MiB, options: [], writes: false },
];

describe('VHDX images written by QEMU read back as qemu-img reads them', () => {
  for (const s of SHAPES) {
    test(s.name, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
      const dir = tempDir(t);
      const img = makeQemuVhdx(dir, {
        name: s.name,
        size: String(s.size),
        options: s.options,
        io: s.writes ? scatteredWrites(s.size, s.block) : [],
      });
      if (s.name === 'zero-state-on') sh('qemu-io', ['-f', 'vhdx', '-c', 'write -z 0 64k', img]);
      const before = await sha256(img);
      const ref = join(dir, 'ref.raw');
      qemuConvertToRaw(img, ref);

      // Whole-disk export to a sparse file.
      const out = join(dir, 'out.raw');
      const r = vdisk(['read', img, out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(await sha256(out), await sha256(ref));
      assert.ok(statSync(out).blocks * 512 <= statSync(ref).blocks * 512 + MiB, 'output is at most as allocated as qemu-img’s');

      // Unaligned ranges, including across block boundaries and at the very end.
      const ranges: [number, number][] = [
        [12345, 100_000],
        [s.block - 777, 4096],
        [s.size - 1000, 1000],
        [s.size - 1, 1],
      ];
      for (const [offset, length] of ranges) {
        const rr = vdisk(['read', img, '-', '--offset', String(offset), '--length', String(length)]);
        assert.equal(rr.code, 0, rr.stderr);
        assert.equal(sha256Buffer(rr.stdoutBytes), sha256Buffer(readAt(ref, offset, length)), `range ${offset}+${length}`);
      }

      // info agrees with qemu-img and vhdiinfo.
      const ji = vdisk(['info', '--output', 'json', img]);
      assert.equal(ji.code, 0, ji.stderr);
      const ours = JSON.parse(ji.stdout);
      const theirs = qemuInfo(img);
      for (const k of ['virtual-size', 'cluster-size', 'format', 'dirty-flag', 'actual-size']) {
        assert.deepEqual(ours[k], theirs[k], k);
      }
      const vi = vhdiInfo(img);
      assert.match(vi['Media size'], new RegExp(`\\(${s.size} bytes\\)`));
      assert.equal(vi['Bytes per sector'], `${ours['format-specific'].data['logical-sector-size']} bytes`);
      assert.equal(vi['Disk type'].toLowerCase(), ours['format-specific'].data.subformat);
      assert.equal(vi['Identifier'], ours['format-specific'].data['data-write-guid']);
      assert.equal(ours['format-specific'].data['block-size'], s.block);

      assert.equal(await sha256(img), before, 'look-only commands leave the image unchanged');
    });
  }

  test('streams the whole disk to stdout in order', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const img = makeQemuVhdx(dir, { name: 'stream', size: '48M', options: ['block_size=1M'], io: scatteredWrites(48 * MiB, MiB) });
    const ref = join(dir, 'ref.raw');
    qemuConvertToRaw(img, ref);
    const r = vdisk(['read', img]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdoutBytes.length, 48 * MiB);
    assert.equal(sha256Buffer(r.stdoutBytes), await sha256(ref));
  });

  test('4096-byte logical sectors (metadata patched on a QEMU image) match qemu-img and vhdiinfo', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
    const dir = tempDir(t);
    const img = makeQemuVhdx(dir, { name: 'lss4k', size: '32M', options: ['block_size=1M'], io: scatteredWrites(32 * MiB, MiB) });
    // QEMU cannot open 4K-sector VHDX, so its export is taken before the patch: the bytes are the same.
    const ref = join(dir, 'ref.raw');
    qemuConvertToRaw(img, ref);
    patchLogicalSectorSize(img, 4096);
    const out = join(dir, 'out.raw');
    assert.equal(vdisk(['read', img, out]).code, 0);
    assert.equal(await sha256(out), await sha256(ref));
    const ours = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
    assert.equal(ours['format-specific'].data['logical-sector-size'], 4096);
    assert.equal(vhdiInfo(img)['Bytes per sector'], '4096 bytes');
  });
});

/**
 * Rewrites the logical sector size item in place. With few blocks the BAT layout does not depend on
 * the chunk ratio, so the result is a valid 4K-sector image with the same content.
 */
export function patchLogicalSectorSize(img: string, size: number): void {
  const buf = readFileSync(img);
  const regions = 192 * 1024;
  const count = buf.readUInt32LE(regions + 8);
  let meta = -1;
  for (let i = 0; i < count; i++) {
    const o = regions + 16 + i * 32;
    if (buf.subarray(o, o + 16).toString('hex') === '06a27c8b90479a4bb8fe575f050f886e') meta = Number(buf.readBigUInt64LE(o + 16));
  }
  assert.ok(meta > 0, 'metadata region found');
  const n = buf.readUInt16LE(meta + 10);
  for (let i = 0; i < n; i++) {
    const o = meta + 32 + i * 32;
    if (buf.subarray(o, o + 16).toString('hex') === '1dbf41816fa90947ba47f233a8faab5f') {
      buf.writeUInt32LE(size, meta + buf.readUInt32LE(o + 16));
    }
  }
  writeFileSync(img, buf);
}

test('blocks past the first chunk, behind the interleaved sector-bitmap entry, read back as QEMU wrote them', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  // 1 MiB blocks and 512-byte sectors: a chunk is 4096 blocks (4 GiB), so BAT entry 4096 is a bitmap.
  const G = 1024 * MiB;
  const img = makeQemuVhdx(dir, {
    name: 'chunks',
    size: '9G',
    options: ['block_size=1M'],
    io: [`write -P 0x61 ${4 * G - 4096} 8192`, `write -P 0x62 ${5 * G + 12345 - 345} 70000`, `write -P 0x63 ${8 * G + 7 * MiB} 1M`],
  });
  const checks: [number, number, number][] = [
    [4 * G - 4096, 8192, 0x61],
    [5 * G + 12000, 70000, 0x62],
    [8 * G + 7 * MiB, MiB, 0x63],
  ];
  for (const [offset, length, byte] of checks) {
    const r = vdisk(['read', img, '-', '--offset', String(offset - 512), '--length', String(length + 1024)]);
    assert.equal(r.code, 0, r.stderr);
    const got = r.stdoutBytes;
    assert.ok(got.subarray(0, 512).every((b) => b === 0), 'zeros before');
    assert.ok(got.subarray(512, 512 + length).every((b) => b === byte), `pattern 0x${byte.toString(16)} at ${offset}`);
    assert.ok(got.subarray(512 + length).every((b) => b === 0), 'zeros after');
  }
  const info = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
  assert.equal(info['format-specific'].data['block-states'].FULLY_PRESENT, 4);
  assert.equal(vdisk(['check', img]).code, 0);
});
