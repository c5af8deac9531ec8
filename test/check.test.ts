import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, openSync, readSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sha256, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';
import { addUnknownRequiredItem, mapVhdx, reseal, type VhdxMap } from './helpers/mutate.js';

const MiB = 1024 * 1024;

interface Damage {
  name: string;
  /** Image shape: default 16M, 1M blocks, blocks 0-3 written. */
  size?: string;
  fixed?: boolean;
  apply: (b: Buffer, m: VhdxMap) => Buffer;
  exit: number;
  finding: { structure: RegExp; message: RegExp };
  /** Blocks whose content the damage (or its repair) may change. */
  affected: number[];
  /** Not repairable: -r all leaves exit 2. */
  unfixable?: boolean;
  /** qemu-img cannot open the damaged file. */
  qemuRefuses?: boolean;
  repairWith?: 'leaks' | 'all';
}

const bat = (b: Buffer, m: VhdxMap, i: number) => b.readBigUInt64LE(m.bat + i * 8);
const setBat = (b: Buffer, m: VhdxMap, i: number, v: bigint) => b.writeBigUInt64LE(v, m.bat + i * 8);

const DAMAGES: Damage[] = [
  {
    name: 'damaged header 1',
    apply: (b, m) => (b[m.header[0] + 500] ^= 1, b),
    exit: 2,
    finding: { structure: /^header 1$/, message: /checksum mismatch/ },
    affected: [],
  },
  {
    name: 'damaged header 2',
    apply: (b, m) => (b.writeUInt32LE(0, m.header[1]), b),
    exit: 2,
    finding: { structure: /^header 2$/, message: /empty|signature/ },
    affected: [],
  },
  {
    name: 'damaged region table 1 (qemu-img cannot open it)',
    apply: (b, m) => (b[m.regionTable[0] + 1000] ^= 0x40, b),
    exit: 2,
    finding: { structure: /^region table 1$/, message: /checksum mismatch/ },
    affected: [],
    qemuRefuses: true,
  },
  {
    name: 'region table copies that disagree',
    apply: (b, m) => (b.writeUInt32LE(0x1234, m.regionTable[1] + 12), reseal(b, m.regionTable[1], 64 * 1024), b),
    exit: 2,
    finding: { structure: /^region table 2$/, message: /copies differ/ },
    affected: [],
  },
  {
    name: 'BAT entry with an invalid state',
    apply: (b, m) => (setBat(b, m, 1, (bat(b, m, 1) & ~7n) | 4n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 1 .*invalid state 4/ },
    affected: [1],
  },
  {
    name: 'BAT entry with reserved bits set',
    apply: (b, m) => (setBat(b, m, 2, bat(b, m, 2) | (1n << 10n)), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 2 has reserved bits set/ },
    affected: [],
  },
  {
    name: 'NOT_PRESENT entry carrying a file offset',
    apply: (b, m) => (setBat(b, m, 9, 40n << 20n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 9 is NOT_PRESENT but carries file offset/ },
    affected: [],
  },
  {
    name: 'payload block past the end of the file',
    apply: (b, m) => (setBat(b, m, 3, (5000n << 20n) | 6n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 3 points to .*past the end of the file/ },
    affected: [3],
    qemuRefuses: true,
  },
  {
    name: 'payload block overlapping the metadata region',
    apply: (b, m) => (setBat(b, m, 0, (BigInt(m.metadata / MiB) << 20n) | 6n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 0 points to .*overlapping the metadata region/ },
    affected: [0],
    qemuRefuses: true,
  },
  {
    name: 'two BAT entries sharing one block (qemu-img does not notice)',
    apply: (b, m) => (setBat(b, m, 3, bat(b, m, 1)), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entries 1 and 3 share file space/ },
    affected: [3],
  },
  {
    name: 'a PRESENT sector bitmap in an image without a parent',
    size: '8G',
    apply: (b, m) => (setBat(b, m, 4096, (40n << 20n) | 6n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /BAT entry 4096 is a PRESENT sector bitmap/ },
    affected: [],
  },
  {
    name: 'fixed image with an unmapped block',
    fixed: true,
    apply: (b, m) => (setBat(b, m, 1, 0n), b),
    exit: 2,
    finding: { structure: /^BAT$/, message: /fixed image, but block 1 is NOT_PRESENT/ },
    affected: [1],
  },
  {
    name: 'leaked data at the end of the file',
    apply: (b) => Buffer.concat([b, Buffer.alloc(MiB, 0xab)]),
    exit: 3,
    finding: { structure: /^file$/, message: /hold data that nothing references/ },
    affected: [],
    repairWith: 'leaks',
  },
  {
    name: 'unknown required metadata item (not repairable)',
    apply: addUnknownRequiredItem,
    exit: 2,
    finding: { structure: /^metadata$/, message: /unknown required item/ },
    affected: [],
    unfixable: true,
    qemuRefuses: true,
  },
];

describe('vdisk check finds each kind of damage and -r all repairs it', () => {
  for (const d of DAMAGES) {
    test(d.name, async (t) => {
      if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
      const dir = tempDir(t);
      const size = d.size ?? '16M';
      const img = makeQemuVhdx(dir, {
        name: 'img',
        size,
        options: d.fixed ? ['subformat=fixed', 'block_size=1M'] : ['block_size=1M'],
        io: ['write -P 0x11 0 1M', 'write -P 0x22 1M 1M', 'write -P 0x33 2M 1M', 'write -P 0x44 3M 512k'],
      });
      const pristine = join(dir, 'pristine.raw');
      qemuConvertToRaw(img, pristine);
      const buf = readFileSync(img);
      writeFileSync(img, d.apply(Buffer.from(buf), mapVhdx(buf)));
      const before = await sha256(img);

      const r = vdisk(['check', '--output', 'json', img]);
      assert.equal(r.code, d.exit, r.stdout + r.stderr);
      const rep = JSON.parse(r.stdout);
      const f = rep.findings.find((x: { structure: string; message: string }) => d.finding.structure.test(x.structure) && d.finding.message.test(x.message));
      assert.ok(f, `finding ${d.finding.message} in ${JSON.stringify(rep.findings, null, 1)}`);
      assert.equal(typeof f.offset, 'number');
      assert.ok(d.exit === 3 ? rep.leaks >= 1 : rep.corruptions >= 1);
      assert.equal(await sha256(img), before, 'check without -r changes nothing');
      const human = vdisk(['check', img]);
      assert.equal(human.code, d.exit);
      if (d.qemuRefuses) assert.throws(() => sh('qemu-img', ['check', '-f', 'vhdx', img]));

      const fixed = vdisk(['check', '-r', d.repairWith ?? 'all', '--output', 'json', img]);
      if (d.unfixable) {
        assert.equal(fixed.code, 2, 'not repairable: still corrupt');
        return;
      }
      assert.equal(fixed.code, 0, fixed.stdout + fixed.stderr);
      const after = JSON.parse(fixed.stdout);
      assert.equal(after.corruptions + after.leaks, 0);
      assert.ok(after['corruptions-fixed'] + after['leaks-fixed'] >= 1);
      assert.equal(vdisk(['check', img]).code, 0);
      sh('qemu-img', ['check', '-f', 'vhdx', img]);

      // Undamaged blocks read back as before.
      const now = vdisk(['read', img, '--length', String(4 * MiB)]).stdoutBytes;
      const was = Buffer.alloc(4 * MiB);
      const fd = openSync(pristine, 'r');
      readSync(fd, was, 0, was.length, 0);
      closeSync(fd);
      for (let block = 0; block < 4; block++) {
        if (d.affected.includes(block)) continue;
        assert.ok(now.subarray(block * MiB, (block + 1) * MiB).equals(was.subarray(block * MiB, (block + 1) * MiB)), `block ${block} changed`);
      }
    });
  }

  test('every image QEMU writes checks clean, and so do ours', (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
    const dir = tempDir(t);
    const shapes: [string, string[]][] = [
      ['64M', ['block_size=1M']],
      ['3G', []],
      ['40M', ['subformat=fixed']],
      ['40M', ['block_state_zero=off', 'log_size=4M']],
    ];
    shapes.forEach(([size, options], i) => {
      const q = makeQemuVhdx(dir, { name: `q${i}`, size, options, io: ['write -P 1 0 3M', `write -P 2 ${20 * MiB} 100k`] });
      const r = vdisk(['check', q]);
      assert.equal(r.code, 0, `${size} ${options}: ${r.stdout}`);
      const ours = join(dir, `o${i}.vhdx`);
      assert.equal(vdisk(['create', '-q', ...options.flatMap((o) => ['-o', o]), ours, size]).code, 0);
      assert.equal(vdisk(['write', ours, '--offset', '12345'], { input: Buffer.alloc(3 * MiB, 7) }).code, 0);
      assert.equal(vdisk(['check', ours]).code, 0);
      assert.doesNotMatch(vdisk(['check', ours]).stdout, /Warning/, 'our images set every flag right');
    });
  });

  test('raw images have no checks (exit 63, as qemu-img); a missing file cannot be checked (exit 1)', (t) => {
    const dir = tempDir(t);
    const raw = join(dir, 'r.img');
    writeFileSync(raw, Buffer.alloc(4096));
    const r = vdisk(['check', raw]);
    assert.equal(r.code, 63);
    assert.match(r.stderr, /r\.img: This image format does not support checks/);
    const missing = vdisk(['check', '--output', 'json', join(dir, 'nope.vhdx')]);
    assert.equal(missing.code, 1);
    assert.equal(JSON.parse(missing.stdout)['check-errors'], 1);
  });
});

describe('vdisk check and the log', () => {
  async function dirtyQemuImage(dir: string): Promise<string> {
    const { buildKillShim, qemuIoCutOff } = await import('./helpers/crash.js');
    const shim = buildKillShim(dir);
    for (let n = 1; n <= 20; n++) {
      const img = makeQemuVhdx(dir, { name: `dirty-${n}`, size: '16M', options: ['block_size=1M'], io: ['write -P 0x21 0 1M'] });
      qemuIoCutOff(shim, img, ['write -P 0x42 5M 8k'], n);
      if (JSON.parse(vdisk(['info', '--output', 'json', img]).stdout)['dirty-flag']) return img;
    }
    throw new Error('no cut point left a pending log');
  }

  test('a file shorter than the log says was flushed: found, not replayable, untouched', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
    const dir = tempDir(t);
    const img = await dirtyQemuImage(dir);
    const { truncateSync, statSync } = await import('node:fs');
    truncateSync(img, statSync(img).size - MiB);
    const before = await sha256(img);
    const r = vdisk(['check', '--output', 'json', img]);
    assert.equal(r.code, 2);
    const f = JSON.parse(r.stdout).findings.find((x: { structure: string }) => x.structure === 'log');
    assert.match(f.message, /the file was truncated; the log cannot be replayed/);
    assert.equal(await sha256(img), before, 'check without -r changes nothing');
    const info = vdisk(['info', img]);
    assert.equal(info.code, 1);
    assert.match(info.stderr, /^vdisk: .*truncated and the log cannot be replayed\n$/);
    assert.equal(vdisk(['check', '-r', 'all', img]).code, 2, 'not repairable');
  });

  test('a torn entry of the active log is a warning; the block it would have mapped is a leak', async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
    const dir = tempDir(t);
    const img = await dirtyQemuImage(dir);
    const b = readFileSync(img);
    const m = mapVhdx(b);
    b[m.log + 4096 + 100] ^= 0xff; // inside the first entry, past its header: the checksum fails
    writeFileSync(img, b);
    const r = vdisk(['check', '--output', 'json', img]);
    // Ignored, the entry maps nothing: the block QEMU wrote before its log entry is unreferenced.
    assert.equal(r.code, 3, r.stdout);
    const rep = JSON.parse(r.stdout);
    assert.ok(rep.findings.some((f: { severity: string; message: string }) => f.severity === 'warning' && /carries this log's GUID but is invalid \(checksum mismatch\)/.test(f.message)));
    assert.ok(rep.findings.some((f: { severity: string }) => f.severity === 'leak'));
    assert.equal(vdisk(['check', '-r', 'leaks', img]).code, 0);
    sh('qemu-img', ['check', '-f', 'vhdx', img]);
  });
});
