import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { writeFileSync } from 'node:fs';
import { createVhdx, openImage } from '../src/index.js';

const MiB = 1024 * 1024;

/**
 * Batches of writes issued concurrently (disjoint within a batch, so the result is defined) into a
 * fresh image, against a Buffer model; then qemu-img must agree with the model and find no error.
 */
test('concurrent writes land as a sequential model says', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const SIZE = 12 * MiB;
  const write = fc.record({ offset: fc.integer({ min: 0, max: SIZE - 1 }), length: fc.integer({ min: 1, max: 3 * MiB }), fill: fc.integer({ min: 1, max: 255 }) });
  let run = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(fc.array(write, { minLength: 1, maxLength: 6 }), { minLength: 1, maxLength: 4 }), fc.constantFrom(MiB, 2 * MiB), async (batches, blockSize) => {
      const img = join(dir, `p${run++}.vhdx`);
      await createVhdx(img, { size: SIZE, blockSize });
      const model = Buffer.alloc(SIZE);
      const image = await openImage(img, { mode: 'rw' });
      try {
        for (const batch of batches) {
          // Keep the writes of one batch disjoint: concurrent overlapping writes have no defined order.
          const taken: [number, number][] = [];
          const jobs: Promise<void>[] = [];
          for (const w of batch) {
            const len = Math.min(w.length, SIZE - w.offset);
            if (taken.some(([a, b]) => w.offset < b && a < w.offset + len)) continue;
            taken.push([w.offset, w.offset + len]);
            const data = Buffer.alloc(len, w.fill);
            model.fill(w.fill, w.offset, w.offset + len);
            jobs.push(image.write(data, w.offset));
          }
          await Promise.all(jobs);
        }
        const back = Buffer.alloc(SIZE);
        await image.read(back, 0);
        assert.ok(back.equals(model), 'read-back before close equals the model');
      } finally {
        await image.close();
      }
      const raw = join(dir, 'model.raw');
      writeFileSync(raw, model);
      sh('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', img, raw]);
      sh('qemu-img', ['check', '-f', 'vhdx', img]);
    }),
    { numRuns: 40, seed: Number(process.env.FC_SEED ?? 7) },
  );
});
