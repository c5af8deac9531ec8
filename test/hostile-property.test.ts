import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk } from './helpers/peers.js';
import { makeQemuVhdx, scatteredWrites } from './helpers/qemu.js';
import { buildKillShim, qemuIoCutOff } from './helpers/crash.js';
import { mapVhdx, reseal, resealLog, type VhdxMap } from './helpers/mutate.js';
import { LOG_GUID, fillBat, hugeParentLocator, setLog, writeLogEntry, type Descriptor } from './helpers/hostile-vhdx.js';
import { sh } from './helpers/peers.js';
import { editArbitrary, lookEverywhere, typedOrFine, withTimeout } from './helpers/hostile-look.js';
import { openImage, describeImage, checkImage, mapImage, VdiskError } from '../src/index.js';

const MiB = 1024 * 1024;
const KiB = 1024;

interface Target {
  name: string;
  at: (m: VhdxMap) => number;
  size: number;
  /** [offset, width] of the fields parsers decide on; mutations aim at them half of the time. */
  fields: [number, number][];
  reseal?: (b: Buffer, m: VhdxMap) => void;
}

const HEADER_FIELDS: [number, number][] = [[0, 4], [8, 8], [48, 8], [64, 2], [66, 2], [68, 4], [72, 8]];
const REGION_FIELDS: [number, number][] = [[0, 4], [8, 4], ...[0, 1, 2].flatMap((i) => [[16 + 32 * i, 4], [32 + 32 * i, 8], [40 + 32 * i, 4], [44 + 32 * i, 4]] as [number, number][])];
const METADATA_FIELDS: [number, number][] = [[0, 8], [10, 2], ...[0, 1, 2, 3, 4, 5].flatMap((i) => [[32 + 32 * i, 4], [48 + 32 * i, 4], [52 + 32 * i, 4], [56 + 32 * i, 4]] as [number, number][])];
const ITEM_FIELDS: [number, number][] = [0, 4, 8, 16, 24, 32, 40, 48].map((o) => [o, 4] as [number, number]).concat([[8, 8], [0, 8]]);
const BAT_FIELDS: [number, number][] = Array.from({ length: 40 }, (_, i) => [i * 8, 8] as [number, number]);
const LOG_FIELDS: [number, number][] = [[0, 4], [8, 4], [12, 4], [16, 8], [24, 4], [32, 8], [48, 8], [56, 8], [64, 4], [72, 8], [80, 8], [88, 8], [96, 4], [104, 8], [112, 8], [4096, 4], [4100, 4], [8188, 4]];

const TARGETS: Target[] = [
  { name: 'header 1', at: (m) => m.header[0], size: 4 * KiB, fields: HEADER_FIELDS, reseal: (b, m) => reseal(b, m.header[0], 4 * KiB) },
  { name: 'header 2', at: (m) => m.header[1], size: 4 * KiB, fields: HEADER_FIELDS, reseal: (b, m) => reseal(b, m.header[1], 4 * KiB) },
  { name: 'region table 1', at: (m) => m.regionTable[0], size: 64 * KiB, fields: REGION_FIELDS, reseal: (b, m) => reseal(b, m.regionTable[0], 64 * KiB) },
  { name: 'region table 2', at: (m) => m.regionTable[1], size: 64 * KiB, fields: REGION_FIELDS, reseal: (b, m) => reseal(b, m.regionTable[1], 64 * KiB) },
  { name: 'metadata table', at: (m) => m.metadata, size: 64 * KiB, fields: METADATA_FIELDS },
  { name: 'metadata items', at: (m) => m.metadata + 64 * KiB, size: 4 * KiB, fields: ITEM_FIELDS },
  { name: 'BAT', at: (m) => m.bat, size: 4 * KiB, fields: BAT_FIELDS },
  { name: 'log', at: (m) => m.log, size: 64 * KiB, fields: LOG_FIELDS, reseal: (b, m) => resealLog(b, m) },
];

const U32 = [0, 1, 7, 0x1000, 0x100000, 0x7fffffff, 0x80000000, 0xffffffff];
const U64 = [0n, 1n, 6n, 1n << 20n, 1n << 40n, 1n << 53n, 1n << 63n, (1n << 64n) - 1n];

// Aims at a known field half of the time, anywhere in the structure otherwise.
const edit = editArbitrary(U32, U64);

test('mutated headers, region tables, metadata, BATs and logs never hang, throw untyped errors or balloon', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
  const dir = tempDir(t);
  const clean = makeQemuVhdx(dir, { name: 'clean', size: '16M', options: ['block_size=1M'], io: scatteredWrites(16 * MiB, MiB) });
  // A base with a pending log, so that log mutations reach the replay code.
  const shim = buildKillShim(dir);
  let dirty: string | null = null;
  for (let n = 1; n <= 20 && !dirty; n++) {
    const p = makeQemuVhdx(dir, { name: `dirty-${n}`, size: '16M', options: ['block_size=1M'] });
    qemuIoCutOff(shim, p, ['write -P 0x42 3M 8k'], n);
    if (JSON.parse(vdisk(['info', '--output', 'json', p]).stdout)['dirty-flag']) dirty = p;
  }
  assert.ok(dirty, 'a dirty base image was made');
  const bases = [readFileSync(clean), readFileSync(dirty)];
  // Unmutated, the clean base checks clean: check must not cry wolf.
  const baseReport = await checkImage(clean);
  assert.equal(baseReport.corruptions + baseReport.leaks, 0, JSON.stringify(baseReport.findings));
  const file = join(dir, 'mutant.vhdx');
  const rssBefore = process.memoryUsage().rss;

  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 0, max: 1 }),
      fc.integer({ min: 0, max: TARGETS.length - 1 }),
      fc.array(edit, { minLength: 1, maxLength: 6 }),
      fc.boolean(),
      async (baseIndex, targetIndex, edits, doReseal) => {
        const buf = Buffer.from(bases[baseIndex]);
        const m = mapVhdx(bases[baseIndex]);
        const target = TARGETS[targetIndex];
        const start = target.at(m);
        for (const e of edits) {
          if (e.onField) {
            const [off, width] = target.fields[e.field % target.fields.length];
            const at = start + off;
            if (width === 2) buf.writeUInt16LE(e.u32 & 0xffff, at);
            else if (width === 4) buf.writeUInt32LE(e.u32, at);
            else buf.writeBigUInt64LE(e.u64, at);
            continue;
          }
          const width = e.kind === 'byte' ? 1 : e.kind === 'u32' ? 4 : 8;
          const at = start + (e.pos % (target.size - width + 1));
          if (e.kind === 'byte') buf[at] = e.byte;
          else if (e.kind === 'u32') buf.writeUInt32LE(e.u32, at);
          else buf.writeBigUInt64LE(e.u64, at);
        }
        if (doReseal) target.reseal?.(buf, m);
        writeFileSync(file, buf);
        if (process.env.VDISK_TRACE) writeFileSync('/tmp/hang.vhdx', buf);
        if (process.env.VDISK_TRACE) writeFileSync('/tmp/last-case.json', JSON.stringify({ baseIndex, targetIndex, edits, doReseal }, (_, v) => (typeof v === 'bigint' ? v.toString() : v)));
        await typedOrFine(() => lookEverywhere(file, true), 3000, `${target.name} mutation`);
        // check reads everything leniently: it must end, and fail only with a typed error.
        try {
          await withTimeout(checkImage(file), 5000, `${target.name} check`);
        } catch (err) {
          assert.ok(err instanceof VdiskError, `${target.name}: check threw ${(err as Error)?.stack ?? String(err)}`);
        }
        assert.ok(process.memoryUsage().rss - rssBefore < 768 * MiB, 'memory stays bounded');
      },
    ),
    { numRuns: 300, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

const MiBs = (n: number) => n * MiB;
const u32Length = fc.oneof(
  fc.constantFrom(0, 4096, MiB, 2 ** 31, 2 ** 32 - 4096, 2 ** 32 - MiB),
  fc.integer({ min: 0, max: 2 ** 20 - 1 }).map((n) => n * 4096),
  fc.integer({ min: 0, max: 0xffffffff }),
);

test('hostile log lengths: logs up to 4 GiB, entries of any length, descriptors reaching anywhere', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const base = makeQemuVhdx(dir, { name: 'base', size: '16M', options: ['block_size=1M', 'log_size=1M'], io: ['write -P 0x11 0 64k'] });
  const file = join(dir, 'log.vhdx');
  const rssBefore = process.memoryUsage().rss;
  const descriptor: fc.Arbitrary<Descriptor> = fc.oneof(
    fc.record({
      kind: fc.constant('zero' as const),
      fileOffset: fc.oneof(fc.constantFrom(0, MiB, 8 * MiB), fc.integer({ min: 0, max: 2 ** 40 }).map((n) => n * 4096)),
      length: fc.oneof(fc.constantFrom(4096, MiB, 2 ** 40, 2 ** 52), fc.integer({ min: 0, max: 2 ** 30 }).map((n) => n * 4096)),
    }),
    fc.record({
      kind: fc.constant('data' as const),
      fileOffset: fc.oneof(fc.constantFrom(MiB, 2 * MiB, 3 * MiB), fc.integer({ min: 0, max: 2 ** 40 }).map((n) => n * 4096)),
      fill: fc.integer({ min: 0, max: 255 }),
    }),
  );
  await fc.assert(
    fc.asyncProperty(
      // Mostly logs of a few MiB; now and then 2 or 4 GiB (sparse).
      fc.oneof({ weight: 6, arbitrary: fc.constantFrom(1, 2, 8) }, { weight: 1, arbitrary: fc.constantFrom(2048, 4095) }),
      fc.oneof(fc.constant(-1), u32Length),
      fc.array(descriptor, { maxLength: 4 }),
      fc.oneof(fc.constant(-1), fc.constantFrom(0, 2 ** 40, 2 ** 60)),
      async (logMiB, entryLength, descriptors, last) => {
        copyFileSync(base, file);
        const logLength = MiBs(logMiB);
        const offset = 32 * MiB; // past everything QEMU placed, the file grows sparse to hold it
        truncateSync(file, offset + logLength);
        setLog(file, { offset, length: logLength, guid: LOG_GUID });
        // A correct checksum however long the entry claims to be, so that the length is what is tested.
        writeLogEntry(file, offset, {
          ...(entryLength >= 0 && entryLength <= logLength ? { entryLength } : {}),
          descriptors,
          ...(last >= 0 ? { last } : {}),
        });
        await typedOrFine(() => lookEverywhere(file), 10_000, `log of ${logMiB} MiB`);
        await typedOrFine(() => checkImage(file), 10_000, `check of a log of ${logMiB} MiB`);
        assert.ok(process.memoryUsage().rss - rssBefore < 512 * MiB, 'memory stays bounded');
      },
    ),
    { numRuns: 15, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

test('hostile parent locator items: any length, any key-value table', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const base = makeQemuVhdx(dir, { name: 'base', size: '16M', options: ['block_size=1M', 'log_size=1M'] });
  const file = join(dir, 'loc.vhdx');
  const entry = fc.record({ keyOff: u32Length, valOff: u32Length, keyLen: fc.integer({ min: 0, max: 0xffff }), valLen: fc.integer({ min: 0, max: 0xffff }) });
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(fc.constantFrom(20, 64, MiB, MiB + 1, 2 ** 31, 2 ** 32 - 2 * MiB), fc.integer({ min: 0, max: 2 * MiB })),
      fc.integer({ min: 0, max: 0xffff }),
      fc.array(entry, { maxLength: 3 }),
      async (length, count, entries) => {
        copyFileSync(base, file);
        const locator = Buffer.alloc(20 + 12 * entries.length + 64);
        Buffer.from('b7ef4ab09ed1814ab78925b8e9445913', 'hex').copy(locator, 0);
        locator.writeUInt16LE(count, 18);
        entries.forEach((e, i) => {
          locator.writeUInt32LE(e.keyOff % 2 ** 32, 20 + i * 12);
          locator.writeUInt32LE(e.valOff % 2 ** 32, 24 + i * 12);
          locator.writeUInt16LE(e.keyLen, 28 + i * 12);
          locator.writeUInt16LE(e.valLen, 30 + i * 12);
        });
        hugeParentLocator(file, length, locator);
        const started = Date.now();
        await typedOrFine(() => lookEverywhere(file), 10_000, `locator of ${length} bytes`);
        await typedOrFine(() => checkImage(file), 10_000, `check, locator of ${length} bytes`);
        assert.ok(Date.now() - started < 10_000);
      },
    ),
    { numRuns: 40, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

test('hostile BAT states: whatever the entries say, check -r all leaves an image that checks clean and maps whole', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const base = makeQemuVhdx(dir, { name: 'base', size: '16M', options: ['block_size=1M', 'log_size=1M'], io: scatteredWrites(16 * MiB, MiB) });
  const size = readFileSync(base).length;
  const file = join(dir, 'bat.vhdx');
  // Offsets an entry may carry: stored blocks (shared when two pick one), the header section, the
  // log, past the end, absurdly far.
  const offsets = fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 4, 8, Math.floor(size / MiB) - 1, Math.floor(size / MiB), 2 ** 20, 2 ** 40),
    fc.integer({ min: 0, max: Math.floor(size / MiB) + 4 }),
  );
  const batEntry = fc.record({ state: fc.integer({ min: 0, max: 7 }), mib: offsets, reserved: fc.oneof({ weight: 5, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 0x1ffff }) }) });
  await fc.assert(
    fc.asyncProperty(fc.array(batEntry, { minLength: 16, maxLength: 16 }), async (entries) => {
      copyFileSync(base, file);
      fillBat(file, entries.length, (i) => entries[i].mib * 2 ** 20 + entries[i].reserved * 8 + entries[i].state);
      await typedOrFine(() => lookEverywhere(file), 5000, 'look');
      const first = await withTimeout(checkImage(file), 5000, 'check');
      assert.ok(first.findings.filter((f) => f.severity === 'corruption').length <= first.corruptions, 'listed corruptions are counted');
      const repaired = await withTimeout(checkImage(file, { repair: 'all' }), 5000, 'check -r all');
      assert.equal(repaired.corruptions, 0, `repairs converge: ${JSON.stringify(repaired.findings.filter((f) => !f.fixed))}`);
      assert.equal(repaired['corruptions-fixed'], first.corruptions, 'every corruption counted as fixed');
      const again = await checkImage(file);
      assert.equal(again.corruptions + again.leaks, 0, JSON.stringify(again.findings));
      await lookEverywhere(file);
      // QEMU's own check finds nothing wrong with what the repair left.
      sh('qemu-img', ['check', '-f', 'vhdx', file]);
    }),
    { numRuns: 30, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});
