import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { MiB } from './helpers/vhd.js';
import { resealAll, resealVhd } from './helpers/vhd-mutate.js';
import { VdiskError, checkImage, describeImage, mapImage, openImage } from '../src/index.js';

interface Target {
  name: string;
  at: (b: Buffer) => number;
  size: number;
  fields: [number, number][];
}

const FOOTER_FIELDS: [number, number][] = [[0, 8], [8, 4], [16, 8], [28, 4], [40, 8], [48, 8], [56, 2], [58, 1], [59, 1], [60, 4], [64, 4], [84, 1]];
const HEADER_FIELDS: [number, number][] = [[0, 8], [16, 8], [24, 4], [28, 4], [32, 4], [36, 4], [40, 8], [64, 8],
  ...[0, 1].flatMap((i) => [[576 + 24 * i, 4], [580 + 24 * i, 4], [584 + 24 * i, 4], [592 + 24 * i, 8]] as [number, number][])];
const BAT_FIELDS: [number, number][] = Array.from({ length: 8 }, (_, i) => [i * 4, 4] as [number, number]);

function batAt(b: Buffer): number {
  return Number(b.readBigUInt64BE(512 + 16));
}

const TARGETS: Target[] = [
  { name: 'footer copy', at: () => 0, size: 512, fields: FOOTER_FIELDS },
  { name: 'footer', at: (b) => b.length - 512, size: 512, fields: FOOTER_FIELDS },
  { name: 'dynamic header', at: () => 512, size: 1024, fields: HEADER_FIELDS },
  { name: 'BAT', at: batAt, size: 32, fields: BAT_FIELDS },
  { name: 'bitmap', at: (b) => b.readUInt32BE(batAt(b)) * 512, size: 512, fields: [[0, 4], [4, 4]] },
  { name: 'locator data', at: (b) => Number(b.readBigUInt64BE(512 + 592)), size: 64, fields: [[0, 4], [8, 8]] },
];

const VALUES = [0, 1, 0x200, 0x7fffffff, 0x80000000, 0xffffffff];
const edit = fc.record({
  onField: fc.boolean(),
  field: fc.nat(),
  pos: fc.nat(),
  value: fc.oneof(fc.constantFrom(...VALUES), fc.integer({ min: 0, max: 0xffffffff })),
});

function apply(buf: Buffer, start: number, off: number, width: number, v: number): void {
  const at = start + off;
  if (at < 0 || at + width > buf.length) return;
  if (width === 1) buf[at] = v & 0xff;
  else if (width === 2) buf.writeUInt16BE(v & 0xffff, at);
  else if (width === 4) buf.writeUInt32BE(v >>> 0, at);
  else buf.writeBigUInt64BE(BigInt(v) << BigInt(v & 31), at);
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  return Promise.race([p, new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`took over ${ms} ms`)), ms).unref())]);
}

async function exercise(file: string): Promise<void> {
  const img = await openImage(file);
  try {
    await describeImage(img);
    const buf = Buffer.alloc(Math.min(img.virtualSize, 4 * MiB));
    await img.read(buf, 0);
    if (img.virtualSize > 64 * 1024) await img.read(Buffer.alloc(64 * 1024), img.virtualSize - 64 * 1024);
    await mapImage(img, () => undefined);
  } finally {
    await img.close();
  }
}

test('mutated VHD footers, headers, BATs, bitmaps and locators: typed one-line errors, no hang, bounded memory', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const parent = join(dir, 'parent.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', parent, '8M']);
  writeFileSync(join(dir, 'in.bin'), randomBytes(100_000));
  assert.equal(vdisk(['write', parent, join(dir, 'in.bin'), '--offset', '1000']).code, 0);
  const child = join(dir, 'child.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', parent, child]).code, 0);
  assert.equal(vdisk(['write', child, join(dir, 'in.bin'), '--offset', String(3 * MiB + 777)]).code, 0);
  const clean = readFileSync(child);
  assert.equal((await checkImage(child)).corruptions, 0);
  const file = join(dir, 'mutant.vhd');
  const rssBefore = process.memoryUsage().rss;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: TARGETS.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), fc.boolean(), async (ti, edits, reseal) => {
      const buf = Buffer.from(clean);
      const target = TARGETS[ti];
      const start = target.at(clean);
      for (const e of edits) {
        if (e.onField) {
          const [off, width] = target.fields[e.field % target.fields.length];
          apply(buf, start, off, width, e.value);
        } else apply(buf, start, e.pos % target.size, 1, e.value);
      }
      if (reseal) resealAll(buf);
      writeFileSync(file, buf);
      for (const run of [() => exercise(file), async () => void (await checkImage(file)), async () => void (await checkImage(file, { format: 'vpc' }))]) {
        try {
          await withTimeout(run(), 10_000);
        } catch (err) {
          if (!(err instanceof VdiskError)) throw err;
          assert.ok(!err.message.includes('\n'), err.message);
        }
      }
    }),
    { numRuns: 150, seed: 1522 },
  );
  assert.ok(process.memoryUsage().rss - rssBefore < 200 * MiB, 'memory stayed bounded');
});

test('hostile VHDs through the CLI: one line, an exit code, no stack, no big allocation', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'd.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', img, '8M']);
  const clean = readFileSync(img);
  const cases: [string, (b: Buffer) => void][] = [
    // 2^32 BAT entries of a 2 TiB disk claimed by a 4 KiB file.
    ['huge BAT', (b) => { b.writeUInt32BE(0xffffffff, 512 + 28); b.writeBigUInt64BE(2n << 40n, 48); b.writeBigUInt64BE(2n << 40n, b.length - 512 + 48); }],
    ['block size 0', (b) => b.writeUInt32BE(0, 512 + 32)],
    ['BAT offset past the file', (b) => b.writeBigUInt64BE(1n << 50n, 512 + 16)],
    ['header offset past the file', (b) => { b.writeBigUInt64BE(1n << 40n, 16); b.writeBigUInt64BE(1n << 40n, b.length - 512 + 16); }],
    ['current size 2^63', (b) => { b.writeBigUInt64BE(1n << 63n, 48); b.writeBigUInt64BE(1n << 63n, b.length - 512 + 48); }],
    ['disk type 7', (b) => { b.writeUInt32BE(7, 60); b.writeUInt32BE(7, b.length - 512 + 60); }],
    ['differencing without a parent', (b) => { b.writeUInt32BE(4, 60); b.writeUInt32BE(4, b.length - 512 + 60); }],
  ];
  for (const [name, damage] of cases) {
    const b = Buffer.from(clean);
    damage(b);
    resealAll(b);
    resealVhd(b, 512, 1024, 36);
    const p = join(dir, 'h.vhd');
    writeFileSync(p, b);
    for (const args of [['info', p], ['read', p, '/dev/null'], ['map', p]]) {
      const r = vdisk(args);
      assert.notEqual(r.code, 0, `${name}: ${args[0]} exit ${r.code}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, `${name}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^\s+at |node:internal/m, `${name}: a stack`);
    }
    const c = vdisk(['check', p]);
    assert.ok(c.code === 1 || c.code === 2, `${name}: check exit ${c.code} ${c.stdout}${c.stderr}`);
  }
});
