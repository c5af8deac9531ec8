import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk } from './helpers/peers.js';
import { MiB } from './helpers/vhd.js';
import { resealAll } from './helpers/vhd-mutate.js';
import { typedOrFine } from './helpers/hostile-look.js';
import { qemuVhd } from './helpers/vhdlife.js';
import { commitImage, compactImage, rebaseImage, resizeImage } from '../src/index.js';

/** Where a mutation lands: offset in the file and the fields worth hitting (offset, width). */
const SPOTS: { name: string; at: (b: Buffer) => number; fields: [number, number][] }[] = [
  { name: 'footer', at: (b) => b.length - 512, fields: [[16, 8], [48, 8], [56, 4], [60, 4]] },
  { name: 'footer copy', at: () => 0, fields: [[16, 8], [48, 8], [60, 4]] },
  { name: 'dynamic header', at: () => 512, fields: [[16, 8], [28, 4], [32, 4], [40, 16], [576, 4], [584, 4], [592, 8], [600, 4], [608, 4], [616, 8]] },
  { name: 'BAT', at: (b) => Number(b.readBigUInt64BE(512 + 16)), fields: Array.from({ length: 8 }, (_, i) => [i * 4, 4] as [number, number]) },
];

const VALUES = [0, 1, 3, 4, 0x10, 0x1000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const edit = fc.record({ field: fc.nat(), value: fc.oneof(fc.constantFrom(...VALUES), fc.integer({ min: 0, max: 0xffffffff })) });

function poke(buf: Buffer, at: number, width: number, v: number): void {
  if (at < 0 || at + width > buf.length) return;
  if (width === 4) buf.writeUInt32BE(v >>> 0, at);
  else if (width === 8) buf.writeBigUInt64BE(BigInt(v) << BigInt(v & 15), at);
  else buf.fill(v & 0xff, at, at + width);
}

test('resize, compact, commit and rebase of mutated VHDs (checksums resealed): one-line typed errors or success, bounded time and file growth', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const parent = qemuVhd(join(dir, 'parent.vhd'), '8M', ['write -P 0x11 0 3M', 'write -P 0 4M 2M', 'write -P 0x22 7M 1M']);
  const child = join(dir, 'child.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', parent, child]).code, 0);
  assert.equal(vdisk(['write', child, '--offset', String(2 * MiB + 777)], { input: Buffer.alloc(100_000, 0x33) }).code, 0);
  const other = qemuVhd(join(dir, 'other.vhd'), '8M', ['write -P 0x44 1M 1M']);
  const cleanParent = readFileSync(parent);
  const cleanChild = readFileSync(child);
  const mutant = join(dir, 'mutant.vhd');
  const rss = process.memoryUsage().rss;
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.nat(SPOTS.length - 1), fc.array(edit, { minLength: 1, maxLength: 4 }), fc.nat(3), async (ofChild, spot, edits, op) => {
      const buf = Buffer.from(ofChild ? cleanChild : cleanParent);
      const s = SPOTS[spot];
      for (const e of edits) {
        const [off, width] = s.fields[e.field % s.fields.length];
        poke(buf, s.at(buf) + off, width, e.value);
      }
      resealAll(buf);
      writeFileSync(mutant, buf);
      writeFileSync(parent, cleanParent);
      const runs = ofChild
        ? [() => commitImage(mutant, { keepChild: op % 2 === 0 }), () => rebaseImage(mutant, other, { unsafe: op % 2 === 1 })]
        : [() => resizeImage(mutant, op === 0 ? { sign: '-', bytes: MiB } : { sign: '+', bytes: op * 700 * MiB }, { shrink: true }), () => compactImage(mutant, { zerosOnly: op % 2 === 0 })];
      const run = runs[op % runs.length];
      await typedOrFine(run, 20_000, `${s.name} ${JSON.stringify(edits)} op ${op}`);
      // Nothing grows without bound: at most the moved blocks and a larger BAT.
      assert.ok(statSync(mutant).size < buf.length + 16 * MiB, `the file grew to ${statSync(mutant).size}`);
    }),
    { numRuns: 80, seed: 17 },
  );
  assert.ok(process.memoryUsage().rss - rss < 300 * MiB, 'memory stayed bounded');
});

test('resize and compact of hostile VHDs through the CLI: one line on stderr, an exit code, no stack', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = qemuVhd(join(dir, 'd.vhd'), '8M', ['write -P 0x11 0 3M']);
  const clean = readFileSync(img);
  const cases: [string, (b: Buffer) => void][] = [
    ['a BAT entry inside the header', (b) => b.writeUInt32BE(1, 1536)],
    ['a BAT entry past the file', (b) => b.writeUInt32BE(0x7fffffff, 1536)],
    ['max table entries 2^32-1', (b) => b.writeUInt32BE(0xffffffff, 512 + 28)],
    ['a locator where the BAT must grow', (b) => { b.write('W2ku', 512 + 576, 'latin1'); b.writeUInt32BE(512, 512 + 584); b.writeBigUInt64BE(2048n, 512 + 592); }],
  ];
  for (const [name, damage] of cases) {
    const b = Buffer.from(clean);
    damage(b);
    resealAll(b);
    const p = join(dir, 'h.vhd');
    for (const args of [['resize', p, '3G'], ['compact', p], ['resize', '--shrink', p, '6M']]) {
      writeFileSync(p, b);
      const r = vdisk(args);
      assert.ok(r.code === 0 || r.stderr.trim().split('\n').length === 1, `${name}: ${args[0]}: ${r.stderr}`);
      assert.doesNotMatch(r.stderr, /^\s+at |node:internal/m, `${name}: a stack`);
      if (r.code !== 0) assert.match(r.stderr, /^vdisk: /, name);
    }
  }
});
