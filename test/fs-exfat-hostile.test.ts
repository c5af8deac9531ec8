import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, sh, tempDir, sha256Buffer, vdisk } from './helpers/peers.js';
import { EXFAT_PEERS, fillExfat, findEntrySet, mkfsExfat, patternBytes, resealEntrySet } from './helpers/exfat.js';
import { FsGuard } from './helpers/fs-guard.js';

const MiB = 1024 * 1024;

/** Where the structures of the (undamaged) base volume lie, read from its bytes. */
interface ExfatMap {
  sector: number;
  cluster: number;
  fat: number;
  heap: number;
  root: number;
  subdir: number;
  bitmap: number;
  upcase: number;
  /** Clusters of the root directory and of the two fragmented files, whose FAT entries link them. */
  linked: number[];
}

function clusterAt(b: Buffer, m: { heap: number; cluster: number }, n: number): number {
  return m.heap + (n - 2) * m.cluster;
}

function mapExfat(b: Buffer): ExfatMap {
  const sector = 2 ** b[108];
  const cluster = sector * 2 ** b[109];
  const heap = b.readUInt32LE(88) * sector;
  const m = { sector, cluster, fat: b.readUInt32LE(80) * sector, heap, root: 0, subdir: 0, bitmap: 0, upcase: 0, linked: [] as number[] };
  m.root = clusterAt(b, m, b.readUInt32LE(96));
  for (let o = m.root; o < m.root + cluster; o += 32) {
    if (b[o] === 0x81) m.bitmap = clusterAt(b, m, b.readUInt32LE(o + 20));
    if (b[o] === 0x82) m.upcase = clusterAt(b, m, b.readUInt32LE(o + 20));
  }
  m.subdir = clusterAt(b, m, b.readUInt32LE(findEntrySet(b, 'many') + 32 + 20));
  for (const first of [b.readUInt32LE(96), ...['chain1', 'chain2'].map((n) => b.readUInt32LE(findEntrySet(b, n) + 32 + 20))]) {
    for (let c = first, n = 0; c >= 2 && c < 0xfffffff7 && n < 100; c = b.readUInt32LE(m.fat + c * 4), n++) m.linked.push(c);
  }
  return m;
}

/** The boot checksum (exFAT specification 3.4), written here independently of the reader, over sectors 0-10 into sector 11. */
function resealBoot(b: Buffer, sector: number, base = 0): void {
  let sum = 0;
  for (let i = 0; i < 11 * sector; i++) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = ((sum & 1 ? 0x80000000 : 0) + (sum >>> 1) + b[base + i]) >>> 0;
  }
  for (let o = 11 * sector; o < 12 * sector; o += 4) b.writeUInt32LE(sum, base + o);
}

/** Every entry set found in a directory cluster gets its checksum recomputed. */
function resealSets(b: Buffer, start: number, length: number): void {
  for (let o = start; o + 32 <= start + length; o += 32) {
    if (b[o] === 0x85 && o + (1 + b[o + 1]) * 32 <= start + length) resealEntrySet(b, o);
  }
}

interface Target {
  name: string;
  at: (m: ExfatMap) => number;
  size: (m: ExfatMap) => number;
  /** [offset, width] of the fields the reader decides on; mutations aim at them half of the time. */
  fields: [number, number][];
  reseal?: (b: Buffer, m: ExfatMap) => void;
  /** Fields computed from the map, and values to write there half of the time (cluster numbers in use). */
  mapFields?: (m: ExfatMap) => [number, number][];
  values?: (m: ExfatMap) => number[];
}

const BOOT_FIELDS: [number, number][] = [[72, 8], [80, 4], [84, 4], [88, 4], [92, 4], [96, 4], [106, 2], [108, 1], [109, 1], [110, 1]];
/** Fields of the entries in a directory cluster: types, SecondaryCount, attributes, times, stream flags, NameLength, lengths, FirstCluster. */
const DIR_FIELDS: [number, number][] = Array.from({ length: 24 }, (_, i) => i * 32).flatMap((e) => [
  [e, 1], [e + 1, 1], [e + 4, 2], [e + 12, 4], [e + 21, 1], [e + 23, 1], [e + 3, 1], [e + 8, 8], [e + 20, 4], [e + 24, 8],
] as [number, number][]);
/** Entry types, SecondaryCounts and NameLengths that mean something, besides random bytes. */
const BYTES = [0x00, 0x01, 0x02, 0x05, 0x0f, 0x11, 0x12, 0x13, 0x20, 0x81, 0x82, 0x83, 0x85, 0xa0, 0xc0, 0xc1, 0xc2, 0xe0, 0xff];
const FAT_FIELDS: [number, number][] = Array.from({ length: 40 }, (_, i) => [i * 4, 4] as [number, number]);

const TARGETS: Target[] = [
  { name: 'boot sector', at: () => 0, size: (m) => m.sector, fields: BOOT_FIELDS, reseal: (b, m) => resealBoot(b, m.sector) },
  { name: 'backup boot region', at: (m) => 12 * m.sector, size: (m) => 12 * m.sector, fields: BOOT_FIELDS, reseal: (b, m) => resealBoot(b, m.sector, 12 * m.sector) },
  { name: 'FAT', at: (m) => m.fat, size: () => 4096, fields: FAT_FIELDS },
  {
    // Links rewired among the clusters of chains in use: loops, shared tails, chains cut short.
    name: 'FAT links',
    at: (m) => m.fat,
    size: () => 4096,
    fields: [],
    mapFields: (m) => m.linked.map((c) => [c * 4, 4] as [number, number]),
    values: (m) => [...m.linked, 0, 1, 0xfffffff7, 0xffffffff],
  },
  { name: 'root directory', at: (m) => m.root, size: (m) => m.cluster, fields: DIR_FIELDS, reseal: (b, m) => resealSets(b, m.root, m.cluster) },
  { name: 'subdirectory', at: (m) => m.subdir, size: (m) => m.cluster, fields: DIR_FIELDS, reseal: (b, m) => resealSets(b, m.subdir, m.cluster) },
  {
    name: 'end of a full subdirectory',
    at: (m) => m.subdir + m.cluster - 4 * 32,
    size: () => 4 * 32,
    fields: [0, 1, 2, 3].flatMap((i) => [[i * 32, 1], [i * 32 + 1, 1], [i * 32 + 32 + 3, 1]] as [number, number][]),
    reseal: (b, m) => resealSets(b, m.subdir, m.cluster),
  },
  { name: 'allocation bitmap', at: (m) => m.bitmap, size: () => 512, fields: [[0, 4], [4, 4]] },
  { name: 'up-case table', at: (m) => m.upcase, size: () => 2048, fields: [[0, 2], [2, 2], [200, 2]] },
];

const U32 = [0, 1, 2, 3, 5, 0x0f, 0xff, 0x1000, 0x7fffffff, 0xfffffff7, 0xfffffff8, 0xffffffff];
const U64 = [0n, 1n, 31n, 4096n, 1n << 28n, 1n << 40n, 1n << 53n, (1n << 64n) - 1n];

const edit = fc.record({
  onField: fc.boolean(),
  field: fc.nat(),
  pos: fc.nat(),
  kind: fc.constantFrom('byte', 'u32', 'u64'),
  byte: fc.oneof(fc.constantFrom(...BYTES), fc.integer({ min: 0, max: 255 })),
  // Small values are cluster numbers in use: they make chains that loop or cross.
  u32: fc.oneof(fc.constantFrom(...U32), fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 0xffffffff })),
  u64: fc.oneof(fc.constantFrom(...U64), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
});

test('mutated boot sectors, FATs, directory entries, bitmaps and up-case tables: typed one-line errors, no hang, bounded memory, image untouched', async (t) => {
  if (!needPeers(t, ...EXFAT_PEERS)) return;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'many'), { recursive: true });
  mkdirSync(join(src, 'd1', 'd2'), { recursive: true });
  // 42 files of three entries each: the directory's one cluster ends two entries later, where sets that
  // run past the end are aimed.
  for (let i = 0; i < 42; i++) writeFileSync(join(src, 'many', `entry ${i} Ω.txt`), patternBytes(i * 50, i + 1));
  writeFileSync(join(src, 'd1', 'd2', 'deep.bin'), patternBytes(20_000, 5));
  writeFileSync(join(src, 'README'), 'hostile base\n');
  const base = join(dir, 'base.img');
  mkfsExfat(base, 8 * MiB, { label: 'HOSTILE' });
  fillExfat(base, src, join(dir, 'mnt'), (m) => {
    // Two files written a piece at a time: FAT chains for the mutations to break.
    for (let i = 0; i < 6; i++) {
      sh('sh', ['-c', `head -c 5000 /dev/urandom >> '${m}/chain1'; head -c 5000 /dev/urandom >> '${m}/chain2'`]);
    }
  });
  const clean = readFileSync(base);
  const map = mapExfat(clean);
  const exerciser = new FsGuard();
  t.after(() => exerciser.close());
  const cleanRun = await exerciser.run(base, 10_000);
  assert.deepEqual(cleanRun, { ok: true, entries: 49 }, 'the unmutated base reads without errors');

  const file = join(dir, 'mutant.img');
  const budgetEnd = Date.now() + 30_000;
  let runs = 0;
  const outcomes = new Map<string, number>();
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: TARGETS.length - 1 }),
      fc.array(edit, { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      async (targetIndex, edits, doReseal) => {
        if (Date.now() > budgetEnd) return; // the time budget is spent: remaining cases pass untried
        runs++;
        const buf = Buffer.from(clean);
        const target = TARGETS[targetIndex];
        const start = target.at(map);
        const size = target.size(map);
        for (const e of edits) {
          let at: number;
          let width: number;
          const fields = target.mapFields?.(map) ?? target.fields;
          let value: number | undefined;
          if (e.onField || !size) {
            [at, width] = fields[e.field % fields.length];
            at += start;
            if (target.values && e.pos % 2 === 0) value = target.values(map)[e.u32 % target.values(map).length];
          } else {
            width = e.kind === 'byte' ? 1 : e.kind === 'u32' ? 4 : 8;
            at = start + (e.pos % (size - width + 1));
          }
          if (value !== undefined) buf.writeUInt32LE(value, at);
          else if (width === 1) buf[at] = e.byte;
          else if (width === 2) buf.writeUInt16LE(e.u32 & 0xffff, at);
          else if (width === 4) buf.writeUInt32LE(e.u32, at);
          else buf.writeBigUInt64LE(e.u64, at);
        }
        if (doReseal) target.reseal?.(buf, map);
        writeFileSync(file, buf);
        const before = sha256Buffer(buf);
        const r = await exerciser.run(file, 5000);
        assert.notEqual(r, 'timeout', `${target.name}: hung (over 5 s)`);
        assert.notEqual(r, 'died', `${target.name}: the worker died (heap past 256 MiB?)`);
        if (typeof r === 'string') return;
        if (!r.ok) {
          assert.ok(r.typed, `${target.name}: untyped error ${r.message}`);
          assert.doesNotMatch(r.message ?? '', /\n/, 'one-line message');
          assert.match(r.message ?? '', /mutant\.img/, 'the message names the image');
        }
        const key = `${target.name}: ${r.ok ? 'ok' : r.code}`;
        outcomes.set(key, (outcomes.get(key) ?? 0) + 1);
        assert.equal(sha256Buffer(readFileSync(file)), before, 'the image is never written');
      },
    ),
    { numRuns: 250, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
  t.diagnostic(`${runs} cases: ${[...outcomes].map(([k, v]) => `${k} ${v}`).join(', ')}`);
  assert.ok(runs >= 30, `at least 30 cases ran in the time budget (${runs})`);
  // Through the command line too: one line on stderr and exit 1, for a FAT chain pointing at itself.
  const buf = Buffer.from(clean);
  const chain = buf.readUInt32LE(findEntrySet(buf, 'chain1') + 32 + 20);
  buf.writeUInt32LE(chain, map.fat + chain * 4);
  writeFileSync(file, buf);
  const r = vdisk(['cat', file, '/chain1']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: [^\n]*mutant\.img: exfat \/chain1: cluster chain loops[^\n]*\n$/);
});
