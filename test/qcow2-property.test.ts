import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSync, writeSync, closeSync, ftruncateSync, readFileSync, rmSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { noise } from './helpers/qcow2.js';
import { convertImage } from '../src/index.js';

const KiB = 1024;
const MiB = 1024 * KiB;

const write = (size: number) =>
  fc.record({
    offset: fc.oneof(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: Math.floor((size - 1) / (64 * KiB)) }).map((k) => k * 64 * KiB)),
    length: fc.oneof(fc.integer({ min: 1, max: 2 * MiB }), fc.integer({ min: 1, max: 8 }).map((k) => k * 64 * KiB)),
    seed: fc.integer({ min: 1, max: 1 << 30 }),
    zeros: fc.boolean(),
  });

/**
 * Random disks (random data and written zeros at random offsets, over and across cluster edges,
 * sizes not a whole number of clusters) go raw -> qcow2 (vdisk convert, random cluster size,
 * compressed or not, v2 or v3) -> VHDX -> raw: every step equals the model, qemu-img check finds
 * the qcow2 sound and qemu-img compare the same disk.
 */
test('raw -> qcow2 -> VHDX -> raw keeps every byte, whatever the layout and qcow2 options', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 24 }).chain((halfMiBs) => {
        const size = halfMiBs * 512 * KiB + (halfMiBs % 3) * 512;
        return fc.tuple(fc.constant(size), fc.array(write(size), { maxLength: 6 }),
          fc.constantFrom('4k', '64k', '512k', '2M'), fc.boolean(), fc.constantFrom('0.10', '1.1'), fc.boolean());
      }),
      async ([size, writes, cluster, compress, compat, extendedL2]) => {
        const n = run++;
        const model = Buffer.alloc(size);
        const raw = join(dir, `m${n}.raw`);
        const fd = openSync(raw, 'w');
        ftruncateSync(fd, size);
        for (const w of writes) {
          const len = Math.min(w.length, size - w.offset);
          const data = w.zeros ? Buffer.alloc(len) : noise(len, w.seed);
          data.copy(model, w.offset);
          writeSync(fd, data, 0, len, w.offset);
        }
        closeSync(fd);
        const q = join(dir, `m${n}.qcow2`);
        const options: Record<string, string> = { cluster_size: cluster, compat };
        if (compress) options.compress = 'on';
        if (extendedL2 && compat === '1.1' && cluster !== '4k') options.extended_l2 = 'on';
        const ri = await openRaw(raw);
        try {
          await convertImage(ri, q, { format: 'qcow2', options });
        } finally {
          await ri.close();
        }
        const check = sh('qemu-img', ['check', '--output', 'json', q]);
        assert.equal(JSON.parse(check).leaks ?? 0, 0);
        sh('qemu-img', ['compare', '-q', '-f', 'raw', '-F', 'qcow2', raw, q]);
        const v = join(dir, `m${n}.vhdx`);
        const { openImage } = await import('../src/index.js');
        const qi = await openImage(q);
        try {
          await convertImage(qi, v, { format: 'vhdx' });
        } finally {
          await qi.close();
        }
        const back = join(dir, `m${n}.back.raw`);
        const vi = await openImage(v);
        try {
          await convertImage(vi, back, { format: 'raw' });
        } finally {
          await vi.close();
        }
        assert.ok(readFileSync(back).subarray(0, size).equals(model), `run ${n}: the disk came back different`);
        for (const f of [raw, q, v, back]) rmSync(f, { force: true });
      },
    ),
    { numRuns: 25, seed: Number(process.env.FC_SEED ?? 20261122) },
  );
});

async function openRaw(path: string) {
  const { openImage } = await import('../src/index.js');
  return openImage(path, { format: 'raw' });
}
