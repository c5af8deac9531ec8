import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync, openSync, writeSync, closeSync, ftruncateSync, rmSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { convertImage, createVhdx, openImage } from '../src/index.js';

const MiB = 1024 * 1024;

// Offsets and lengths are often whole MiB, so that data starts and ends exactly on block and chunk edges.
const extent = (size: number) =>
  fc.record({
    offset: fc.oneof(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: Math.floor((size - 1) / MiB) }).map((k) => k * MiB)),
    length: fc.oneof(fc.integer({ min: 1, max: 5 * MiB }), fc.integer({ min: 1, max: 4 }).map((k) => k * MiB)),
    fill: fc.integer({ min: 0, max: 255 }),
  });

/**
 * Random disks (data, zero-filled data and holes landing on and across block and chunk edges, sizes
 * that are not whole blocks) converted raw -> VHDX -> VHDX -> raw with random block sizes on each side:
 * qemu-img compare must find every step equal to the model, and qemu-img check each VHDX clean.
 */
test('convert keeps every byte through raw -> VHDX -> VHDX -> raw, whatever the layout', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const blockSize = fc.constantFrom(MiB, 2 * MiB, 8 * MiB);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 40 }).chain((sectors) => {
        const size = sectors * 512 * 1024 + (sectors % 3) * 512; // often not a whole block
        return fc.tuple(fc.constant(size), fc.array(extent(size), { maxLength: 6 }), blockSize, blockSize, fc.boolean());
      }),
      async ([size, extents, blockA, blockB, fromVhdxSource]) => {
        const n = run++;
        const model = Buffer.alloc(size);
        const raw = join(dir, `m${n}.raw`);
        const fd = openSync(raw, 'w');
        ftruncateSync(fd, size);
        for (const e of extents) {
          const len = Math.min(e.length, size - e.offset);
          const data = Buffer.alloc(len, e.fill);
          if (len >= 4) data.writeUInt32LE(e.offset, 0); // not all one byte: a misplaced chunk shows
          data.copy(model, e.offset);
          writeSync(fd, data, 0, len, e.offset);
        }
        closeSync(fd);

        let source = raw;
        if (fromVhdxSource) {
          // Also a source with holes inside its map: written block by block by our writer.
          source = join(dir, `s${n}.vhdx`);
          await createVhdx(source, { size, blockSize: blockB });
          const img = await openImage(source, { mode: 'rw' });
          try {
            for (const e of extents) {
              const len = Math.min(e.length, size - e.offset);
              await img.write(model.subarray(e.offset, e.offset + len), e.offset);
            }
          } finally {
            await img.close();
          }
        }
        const a = join(dir, `a${n}.vhdx`);
        const b = join(dir, `b${n}.vhdx`);
        const back = join(dir, `r${n}.raw`);
        const src = await openImage(source);
        await convertImage(src, a, { format: 'vhdx', options: { block_size: String(blockA) }, cache: 'unsafe' }).finally(() => src.close());
        const ia = await openImage(a);
        await convertImage(ia, b, { format: 'vhdx', options: { block_size: String(blockB), block_state_zero: 'on' }, cache: 'unsafe' }).finally(() => ia.close());
        const ib = await openImage(b);
        await convertImage(ib, back, { format: 'raw', cache: 'unsafe' }).finally(() => ib.close());

        const modelPath = join(dir, 'model.raw');
        writeFileSync(modelPath, model);
        for (const [img, fmt] of [[a, 'vhdx'], [b, 'vhdx'], [back, 'raw']]) {
          assert.match(sh('qemu-img', ['compare', '-f', fmt, '-F', 'raw', img, modelPath]), /identical/);
        }
        sh('qemu-img', ['check', '-f', 'vhdx', a]);
        sh('qemu-img', ['check', '-f', 'vhdx', b]);
        for (const p of [raw, source, a, b, back]) rmSync(p, { force: true });
      },
    ),
    { numRuns: 25, seed: Number(process.env.FC_SEED ?? 11) },
  );
});
