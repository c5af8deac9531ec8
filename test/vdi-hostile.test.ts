import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk } from './helpers/peers.js';
import { MiB, VDI, makeQemuVdi } from './helpers/vdi.js';
import { checkImage, openImage, VdiskError } from '../src/index.js';
import { lookEverywhere as look, withTimeout } from './helpers/hostile-look.js';

const HEADER_FIELDS: [number, number][] = [
  [VDI.signature, 4], [VDI.version, 4], [VDI.imageType, 4], [VDI.offsetBmap, 4], [VDI.offsetData, 4], [VDI.sectorSize, 4],
  [VDI.diskSize, 8], [VDI.blockSize, 4], [VDI.blockExtra, 4], [VDI.blocksInImage, 4], [VDI.blocksAllocated, 4],
  [VDI.uuidLink, 4], [VDI.uuidParent, 4], [0x48, 4], [0x50, 4],
];
const U32 = [0, 1, 2, 4, 7, 16, 512, 0x200, 0x400, 0x1000, 0x100000, 0x3fffffff, 0x40000000, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
const U64 = [0n, 1n, 511n, 513n, 1n << 20n, 16n << 20n, 1n << 40n, 1n << 50n, 1n << 53n, 1n << 63n, (1n << 64n) - 1n];

const edit = fc.record({
  onMap: fc.boolean(),
  field: fc.nat(),
  entry: fc.nat({ max: 63 }),
  u32: fc.oneof(fc.constantFrom(...U32), fc.integer({ min: 0, max: 0xffffffff })),
  u64: fc.oneof(fc.constantFrom(...U64), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  byte: fc.option(fc.record({ pos: fc.nat({ max: 511 }), value: fc.integer({ min: 0, max: 255 }) }), { nil: undefined }),
});

type Edit = { onMap: boolean; field: number; entry: number; u32: number; u64: bigint; byte?: { pos: number; value: number } };

function mutate(base: Buffer, edits: Edit[]): Buffer {
  const buf = Buffer.from(base);
  const bmap = base.readUInt32LE(VDI.offsetBmap);
  for (const e of edits) {
    if (e.onMap) buf.writeUInt32LE(e.u32, bmap + e.entry * 4);
    else {
      const [at, width] = HEADER_FIELDS[e.field % HEADER_FIELDS.length];
      if (width === 8) buf.writeBigUInt64LE(e.u64, at);
      else buf.writeUInt32LE(e.u32, at);
    }
    if (e.byte) buf[e.byte.pos] = e.byte.value;
  }
  return buf;
}

/** Every look the commands take, in process (the shared thorough look), then check: a failure must be a one-line VdiskError. */
async function lookEverywhere(file: string): Promise<void> {
  try {
    await withTimeout(look(file, true), 3000, 'look');
  } catch (err) {
    assert.ok(err instanceof VdiskError, `untyped error ${(err as Error)?.stack ?? String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'one-line message');
  }
  try {
    await withTimeout(checkImage(file), 5000, 'check');
  } catch (err) {
    assert.ok(err instanceof VdiskError, `check threw ${(err as Error)?.stack ?? String(err)}`);
  }
}

test('mutated VDI headers and block maps never hang, throw untyped errors or balloon', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const io = ['write -P 0x11 0 64k', 'write -P 0x22 3m 8k', 'write -P 0x33 15m 4k'];
  const bases = [
    readFileSync(makeQemuVdi(dir, { name: 'dyn', size: '16M', io })),
    readFileSync(makeQemuVdi(dir, { name: 'sta', size: '8M', static: true, io: io.slice(0, 2) })),
  ];
  const file = join(dir, 'mutant.vdi');
  const rssBefore = process.memoryUsage().rss;
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), async (which, edits) => {
      writeFileSync(file, mutate(bases[which], edits));
      await lookEverywhere(file);
      assert.ok(process.memoryUsage().rss - rssBefore < 512 * MiB, 'memory stays bounded');
    }),
    { numRuns: 400, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

test('the CLI answers mutated VDIs with one line and an exit code, never a stack trace', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const base = readFileSync(makeQemuVdi(dir, { name: 'dyn', size: '16M', io: ['write -P 0x11 0 64k', 'write -P 0x33 15m 4k'] }));
  const file = join(dir, 'mutant.vdi');
  let refused = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 4 }), fc.constantFrom('info', 'map', 'read', 'check'), async (edits, cmd) => {
      writeFileSync(file, mutate(base, edits));
      const started = Date.now();
      const r = vdisk(cmd === 'read' ? ['read', file, '/dev/null'] : [cmd, file]);
      assert.ok(Date.now() - started < 20_000, 'bounded time');
      assert.doesNotMatch(r.stderr, /^\s+at |internal error/m, r.stderr);
      if (r.code !== 0) {
        refused++;
        assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
        // A lost signature makes the file raw, which check answers with qemu-img's 63.
        assert.ok(cmd === 'check' ? [1, 2, 63].includes(r.code) : r.code === 1, `exit ${r.code}`);
      }
    }),
    { numRuns: 25, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
  assert.ok(refused > 0, 'some mutations are refused');
});

test('a block map claimed far larger than the file is refused before anything is allocated', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const base = readFileSync(makeQemuVdi(dir, { name: 'small', size: '4M' }));
  const cases: [number, bigint, RegExp][] = [
    [0x3fffffff, 0x3fffffffn << 20n, /file ends .* inside the VDI block map/],
    [0xffffffff, 1n << 40n, /too many blocks/],
    [0x10000000, 1n << 60n, /over the VDI maximum/],
  ];
  for (const [blocks, size, message] of cases) {
    const b = Buffer.from(base);
    b.writeUInt32LE(blocks, VDI.blocksInImage);
    b.writeBigUInt64LE(size, VDI.diskSize);
    const file = join(dir, 'claim.vdi');
    writeFileSync(file, b);
    const rss = process.memoryUsage().rss;
    for (const cmd of ['info', 'map', 'check']) {
      const r = vdisk([cmd, file]);
      assert.equal(r.code, 1, `${cmd}: ${r.stdout}${r.stderr}`);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split('\n').length, 1);
    }
    await assert.rejects(openImage(file), (e: unknown) => e instanceof VdiskError);
    assert.ok(process.memoryUsage().rss - rss < 64 * MiB);
  }
});
