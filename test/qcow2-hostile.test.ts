import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { openImage, checkImage } from '../src/index.js';
import { editArbitrary, lookEverywhere, typedOrFine } from './helpers/hostile-look.js';

const MiB = 1024 * 1024;

/** Where a qcow2 file keeps each structure, read from its header (the image is sound). */
interface Layout {
  l1: number;
  l2: number;
  refTable: number;
  refBlock: number;
  snapshots: number;
  cluster: number;
}

function layoutOf(b: Buffer): Layout {
  const cluster = 2 ** b.readUInt32BE(20);
  const l1 = Number(b.readBigUInt64BE(40));
  const refTable = Number(b.readBigUInt64BE(48));
  return {
    l1,
    l2: Number(b.readBigUInt64BE(l1) & 0x00fffffffffffe00n),
    refTable,
    refBlock: Number(b.readBigUInt64BE(refTable)),
    snapshots: Number(b.readBigUInt64BE(64)),
    cluster,
  };
}

interface Target {
  name: string;
  at: (m: Layout) => number;
  size: number;
  fields: [number, number][];
}

const TARGETS: Target[] = [
  { name: 'header', at: () => 0, size: 112, fields: [[4, 4], [8, 8], [16, 4], [20, 4], [24, 8], [32, 4], [36, 4], [40, 8], [48, 8], [56, 4], [60, 4], [64, 8], [72, 8], [80, 8], [88, 8], [96, 4], [100, 4], [104, 1]] },
  { name: 'header extensions', at: () => 112, size: 400, fields: [[0, 4], [4, 4], [8, 4], [12, 4], [16, 4], [20, 4], [24, 8]] },
  { name: 'L1 table', at: (m) => m.l1, size: 64, fields: [[0, 8], [8, 8]] },
  { name: 'L2 table', at: (m) => m.l2, size: 1024, fields: Array.from({ length: 64 }, (_, i) => [i * 8, 8] as [number, number]) },
  { name: 'refcount table', at: (m) => m.refTable, size: 64, fields: [[0, 8], [8, 8]] },
  { name: 'refcount block', at: (m) => m.refBlock, size: 256, fields: Array.from({ length: 32 }, (_, i) => [i * 2, 2] as [number, number]) },
  { name: 'snapshot table', at: (m) => m.snapshots || m.refTable, size: 128, fields: [[0, 8], [8, 4], [12, 2], [14, 2], [32, 4], [36, 4], [40, 8]] },
];

const edit = editArbitrary([0, 1, 0xffffffff, 0x80000000, 512, 65536, 0x40000000], [0n, 1n, 0xffffffffffffffffn, 0x8000000000000000n, 0x4000000000000000n, 1n << 46n, 65536n * 3n]);

test('mutated qcow2 headers, extensions, L1/L2 entries, compressed descriptors, refcounts and snapshots: typed one-line errors, bounded time and memory', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const bases: Buffer[] = [];
  for (const [name, opts] of [['plain', ['-o', 'cluster_size=4k']], ['compressed', ['-c', '-o', 'cluster_size=4k']], ['extl2', ['-o', 'extended_l2=on,cluster_size=16k']]] as const) {
    const raw = join(dir, `${name}.raw`);
    sh('qemu-img', ['create', '-q', '-f', 'raw', raw, '4M']);
    sh('qemu-io', ['-f', 'raw', '-c', 'write -P 0x11 0 64k', '-c', 'write -P 0x22 1M 100k', '-c', 'write -P 0x33 4000k 96k', raw]);
    const image = join(dir, `${name}.qcow2`);
    sh('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', ...opts, raw, image]);
    if (name === 'plain') sh('qemu-img', ['snapshot', '-c', 'snap', image]);
    bases.push(readFileSync(image));
  }
  const file = join(dir, 'mutant.qcow2');
  const rssBefore = process.memoryUsage().rss;
  await fc.assert(
    fc.asyncProperty(fc.nat({ max: bases.length - 1 }), fc.nat({ max: TARGETS.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 5 }), fc.boolean(), async (bi, ti, edits, writeToo) => {
      const buf = Buffer.from(bases[bi]);
      const target = TARGETS[ti];
      const start = target.at(layoutOf(bases[bi]));
      for (const e of edits) {
        let at: number;
        let width: number;
        if (e.onField) [at, width] = target.fields[e.field % target.fields.length];
        else {
          width = e.kind === 'byte' ? 1 : e.kind === 'u32' ? 4 : 8;
          at = e.pos % (target.size - width + 1);
        }
        at += start;
        if (at + width > buf.length) continue;
        if (width === 1) buf[at] = e.byte;
        else if (width === 2) buf.writeUInt16BE(e.u32 & 0xffff, at);
        else if (width === 4) buf.writeUInt32BE(e.u32, at);
        else buf.writeBigUInt64BE(e.u64, at);
      }
      writeFileSync(file, buf);
      await typedOrFine(() => lookEverywhere(file, true), 3000, `${target.name} mutation`);
      if (writeToo) {
        await typedOrFine(async () => {
          const img = await openImage(file, { mode: 'rw' });
          try {
            const size = img.virtualSize;
            if (size > 0) await img.write(Buffer.alloc(Math.min(size, 70_000), 0x5c), Math.floor(size / 5));
          } finally {
            await img.close();
          }
        }, 3000, `${target.name} mutation, written`);
      }
      await typedOrFine(() => checkImage(file), 5000, `${target.name} check`);
      assert.ok(process.memoryUsage().rss - rssBefore < 768 * MiB, 'memory stays bounded');
    }),
    { numRuns: 300, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

test('a 4 KiB qcow2 file claiming a 64 TiB disk (a 1 MiB L1 table) or a 2^62-byte disk: one line, nothing large allocated', (t) => {
  const dir = tempDir(t);
  const h = Buffer.alloc(4096);
  h.write('QFI\xfb', 0, 'latin1');
  h.writeUInt32BE(3, 4);
  h.writeUInt32BE(16, 20);
  h.writeBigUInt64BE(64n << 40n, 24);
  h.writeUInt32BE(131072, 36);
  h.writeBigUInt64BE(65536n, 40);
  h.writeBigUInt64BE(65536n * 2n, 48);
  h.writeUInt32BE(1, 56);
  h.writeUInt32BE(4, 96);
  h.writeUInt32BE(112, 100);
  const big = join(dir, 'big.qcow2');
  writeFileSync(big, h);
  for (const cmd of [['info'], ['read'], ['map'], ['check']]) {
    const r = vdisk([...cmd, big]);
    assert.notEqual(r.code, 0, `${cmd}: refused`);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /runs past the end of the file/);
  }
  h.writeBigUInt64BE(1n << 62n, 24);
  writeFileSync(big, h);
  const r = vdisk(['info', big]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr.trim(), /^vdisk: .*size is beyond 2\^53$/);
});
