import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync, truncateSync, copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256 } from './helpers/peers.js';
import { makeQemuVhdx, scatteredWrites } from './helpers/qemu.js';
import { addUnknownRequiredItem, mapVhdx, resealHeaders, resealRegionTables, type VhdxMap } from './helpers/mutate.js';

const MiB = 1024 * 1024;

/** A failure as the contract wants it: one line, `vdisk: ` first, exit 1, no stack trace. */
function assertCleanFailure(r: { code: number; stderr: string }, pattern: RegExp, what: string): void {
  assert.equal(r.code, 1, `${what}: exit code (stderr: ${r.stderr})`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `${what}: one line, got ${JSON.stringify(r.stderr)}`);
  assert.match(lines[0], /^vdisk: /, what);
  assert.doesNotMatch(r.stderr, /\n\s+at |internal error/, what);
  assert.match(lines[0], pattern, what);
}

type Damage = {
  name: string;
  pattern: RegExp;
  apply: (b: Buffer, m: VhdxMap) => Buffer;
  command?: 'info' | 'read';
  /** Without it a file with a wrong signature is probed as raw, which is right. */
  forceVhdx?: boolean;
};

const DAMAGES: Damage[] = [
  { name: 'wrong signature', pattern: /not a VHDX image/, forceVhdx: true, apply: (b) => (b.write('vhdyfile', 0, 'latin1'), b) },
  {
    name: 'both headers damaged',
    pattern: /no valid VHDX header .*checksum mismatch/,
    apply: (b, m) => (b.writeUInt32LE(0xdeadbeef, m.header[0] + 80), b.writeUInt32LE(0xdeadbeef, m.header[1] + 80), b),
  },
  {
    name: 'both region tables damaged',
    pattern: /no valid region table/,
    apply: (b, m) => (b[m.regionTable[0] + 100] ^= 1, b[m.regionTable[1] + 100] ^= 1, b),
  },
  {
    name: 'region entry count 2^32-1',
    pattern: /entry count 4294967295 exceeds 2047/,
    apply: (b, m) => (b.writeUInt32LE(0xffffffff, m.regionTable[0] + 8), b.writeUInt32LE(0xffffffff, m.regionTable[1] + 8), resealRegionTables(b), b),
  },
  {
    name: 'BAT region offset 2^63',
    pattern: /BAT region .*(past the end|not 1 MiB aligned)/,
    apply: (b, m) => {
      for (const rt of m.regionTable) {
        for (let i = 0; i < b.readUInt32LE(rt + 8); i++) {
          const o = rt + 16 + i * 32;
          if (b.readUInt32LE(o) === 0x2dc27766) b.writeBigUInt64LE(1n << 63n, o + 16);
        }
      }
      resealRegionTables(b);
      return b;
    },
  },
  {
    name: 'unknown required region',
    pattern: /unknown required region .*refusing/,
    apply: (b, m) => {
      for (const rt of m.regionTable) {
        const n = b.readUInt32LE(rt + 8);
        const o = rt + 16 + n * 32;
        b.fill(0x77, o, o + 16);
        b.writeBigUInt64LE(BigInt(16 * MiB), o + 16);
        b.writeUInt32LE(MiB, o + 24);
        b.writeUInt32LE(1, o + 28);
        b.writeUInt32LE(n + 1, rt + 8);
      }
      resealRegionTables(b);
      return b;
    },
  },
  {
    name: 'metadata entry count 65535',
    pattern: /metadata table .*entry count 65535 exceeds 2047/,
    apply: (b, m) => (b.writeUInt16LE(0xffff, m.metadata + 10), b),
  },
  {
    name: 'unknown required metadata item',
    pattern: /unknown required item .*refusing/,
    apply: addUnknownRequiredItem,
  },
  {
    name: 'metadata item offset outside the region',
    pattern: /lies outside the metadata region/,
    apply: (b, m) => (b.writeUInt32LE(0xfffffff0, m.metadata + 32 + 16), b),
  },
  {
    name: 'block size 3 MiB',
    pattern: /block size 3145728 is not a power of two/,
    apply: (b, m) => (b.writeUInt32LE(3 * MiB, itemData(b, m, 'caa16737')), b),
  },
  {
    name: 'virtual size 2^63',
    pattern: /virtual disk size .* over 64 TiB/,
    apply: (b, m) => (b.writeBigUInt64LE(1n << 63n, itemData(b, m, '2fa54224')), b),
  },
  {
    name: 'logical sector size 1000',
    pattern: /logical sector size 1000/,
    apply: (b, m) => (b.writeUInt32LE(1000, itemData(b, m, '8141bf1d')), b),
  },
  {
    name: 'virtual size needing a larger BAT than the region',
    pattern: /BAT region holds \d+ entries but the disk needs/,
    apply: (b, m) => (b.writeBigUInt64LE(BigInt(64) * 1024n ** 4n, itemData(b, m, '2fa54224')), b.writeUInt32LE(MiB, itemData(b, m, 'caa16737')), b),
  },
  {
    name: 'log length not a multiple of 1 MiB',
    pattern: /log length 12345 is not a multiple of 1 MiB/,
    apply: (b, m) => (b.writeUInt32LE(12345, m.header[0] + 68), b.writeUInt32LE(12345, m.header[1] + 68), resealHeaders(b), b),
  },
  {
    name: 'log past the end of the file',
    pattern: /log .* extends past the end of the file/,
    apply: (b, m) => (b.writeBigUInt64LE(BigInt(1024 * MiB), m.header[0] + 72), b.writeBigUInt64LE(BigInt(1024 * MiB), m.header[1] + 72), resealHeaders(b), b),
  },
  {
    name: 'BAT entry past the end of the file',
    pattern: /BAT entry 0 \(block 0\) points to bytes \d+\.\.\d+, past the end of the file/,
    command: 'read',
    apply: (b, m) => (b.writeBigUInt64LE((BigInt(4000) << 20n) | 6n, m.bat), b),
  },
  {
    name: 'BAT entry into the header section',
    pattern: /BAT entry 0 \(block 0\) points into the header section/,
    command: 'read',
    apply: (b, m) => (b.writeBigUInt64LE(6n, m.bat), b),
  },
  {
    name: 'BAT entry with invalid state 4',
    pattern: /BAT entry 1 has invalid state 4/,
    command: 'read',
    apply: (b, m) => (b.writeBigUInt64LE(4n, m.bat + 8), b),
  },
  { name: 'truncated inside the header section', pattern: /shorter than the 1 MiB VHDX header section/, apply: (b) => b.subarray(0, 300 * 1024) },
  { name: 'truncated inside the metadata', pattern: /extends past the end of the file/, apply: (b, m) => b.subarray(0, Math.min(m.metadata, m.bat) + 4096) },
  {
    name: 'truncated inside payload',
    pattern: /past the end of the file/,
    command: 'read',
    apply: (b) => b.subarray(0, b.length - 512 * 1024),
  },
];

/** File offset of the data of the metadata item whose GUID starts with `prefix` (Data1, as text). */
function itemData(b: Buffer, m: VhdxMap, prefix: string): number {
  const n = b.readUInt16LE(m.metadata + 10);
  for (let i = 0; i < n; i++) {
    const o = m.metadata + 32 + i * 32;
    if (b.readUInt32LE(o).toString(16).padStart(8, '0') === prefix) return m.metadata + b.readUInt32LE(o + 16);
  }
  throw new Error(`item ${prefix} not found`);
}

describe('damaged and hostile files end in a one-line error, exit 1, file unchanged', () => {
  test('a file that does not exist, a directory, a zero-length file read as VHDX', async (t) => {
    const dir = tempDir(t);
    assertCleanFailure(vdisk(['info', join(dir, 'nope.vhdx')]), /no such file/, 'missing');
    mkdirSync(join(dir, 'd.vhdx'));
    assertCleanFailure(vdisk(['info', join(dir, 'd.vhdx')]), /is a directory/, 'directory');
    assertCleanFailure(vdisk(['read', join(dir, 'd.vhdx'), join(dir, 'o')]), /is a directory/, 'directory read');
    writeFileSync(join(dir, 'zero.vhdx'), '');
    assertCleanFailure(vdisk(['info', '-f', 'vhdx', join(dir, 'zero.vhdx')]), /not a VHDX image|shorter/, 'zero-length');
    // Probed, an empty file is an empty raw disk, as qemu-img sees it.
    const raw = vdisk(['info', '--output', 'json', join(dir, 'zero.vhdx')]);
    assert.equal(raw.code, 0);
    assert.equal(JSON.parse(raw.stdout)['virtual-size'], 0);
  });

  for (const d of DAMAGES) {
    test(d.name, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
      const dir = tempDir(t);
      const good = makeQemuVhdx(dir, { name: 'base', size: '16M', options: ['block_size=1M'], io: scatteredWrites(16 * MiB, MiB) });
      const buf = readFileSync(good);
      const bad = join(dir, 'bad.vhdx');
      writeFileSync(bad, d.apply(Buffer.from(buf), mapVhdx(buf)));
      const before = await sha256(bad);
      const started = Date.now();
      const r = d.command === 'read' ? vdisk(['read', bad, join(dir, 'out.raw')]) : vdisk(['info', ...(d.forceVhdx ? ['-f', 'vhdx'] : []), bad]);
      assert.ok(Date.now() - started < 5000, 'ends promptly');
      assertCleanFailure(r, d.pattern, d.name);
      assert.equal(await sha256(bad), before, 'file unchanged');
    });
  }

  test('a damaged first region table falls back to the second (qemu-img cannot open it)', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const good = makeQemuVhdx(dir, { name: 'base', size: '16M', options: ['block_size=1M'], io: scatteredWrites(16 * MiB, MiB) });
    const bad = join(dir, 'rt1.vhdx');
    copyFileSync(good, bad);
    const b = readFileSync(bad);
    b[192 * 1024 + 200] ^= 0xff;
    writeFileSync(bad, b);
    const a = vdisk(['read', good, '-']);
    const r = vdisk(['read', bad, '-']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(a.stdoutBytes));
    const info = JSON.parse(vdisk(['info', '--output', 'json', bad]).stdout);
    assert.match(info['format-specific'].data.warnings.join(' '), /region table 1 is damaged/);
  });

  test('one damaged header is enough to open', async (t) => {
    if (!needPeers(t, 'qemu-img')) return;
    const dir = tempDir(t);
    const img = makeQemuVhdx(dir, { name: 'h', size: '8M' });
    for (const slot of [64, 128]) {
      const b = readFileSync(img);
      b[slot * 1024 + 300] ^= 1;
      const p = join(dir, `h${slot}.vhdx`);
      writeFileSync(p, b);
      const r = vdisk(['info', '--output', 'json', p]);
      assert.equal(r.code, 0, r.stderr);
      assert.match(JSON.parse(r.stdout)['format-specific'].data.warnings.join(' '), /header \d is damaged \(checksum mismatch\)/);
    }
  });

  test('a truncated file whose last block is cut reports it on read, not on info', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const img = makeQemuVhdx(dir, { name: 't', size: '16M', options: ['block_size=1M'], io: ['write -P 1 15M 1M'] });
    truncateSync(img, (await import('node:fs')).statSync(img).size - 4096);
    assert.equal(vdisk(['info', img]).code, 0);
    assertCleanFailure(vdisk(['read', img, join(dir, 'o.raw')]), /past the end of the file/, 'read');
  });
});
