import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync, rmSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { convertImage, openImage } from '../src/index.js';

const MiB = 1024 * 1024;

/** Each writable format with the options worth varying, as qemu-img names the format for -f. */
const TARGETS: { format: string; options: Record<string, string>[] }[] = [
  { format: 'vpc', options: [{}, { subformat: 'fixed', force_size: 'on' }, { block_size: '512K' }] },
  { format: 'qcow2', options: [{}, { compat: '0.10', cluster_size: '4K' }, { extended_l2: 'on', cluster_size: '32K' }] },
  { format: 'vmdk', options: [{}, { subformat: 'streamOptimized' }, { subformat: 'monolithicFlat' }] },
  { format: 'vdi', options: [{}, { static: 'on' }] },
];

const extent = (size: number) =>
  fc.record({
    offset: fc.oneof(fc.integer({ min: 0, max: size - 1 }), fc.integer({ min: 0, max: Math.floor((size - 1) / MiB) }).map((k) => k * MiB)),
    length: fc.oneof(fc.integer({ min: 1, max: 3 * MiB }), fc.integer({ min: 1, max: 2 }).map((k) => k * MiB)),
    fill: fc.integer({ min: 0, max: 255 }),
  });

/**
 * Random layouts through raw -> FORMAT -> VHDX -> raw, for every format vdisk writes: each step must
 * equal the model, judged by qemu-img compare (which reads FORMAT with its own driver), not by us.
 */
test('every writable format keeps every byte: raw -> format -> VHDX -> raw equals the model, as qemu-img reads it', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 2, max: 12 }).chain((mib) => {
        const size = mib * MiB; // whole MiB: every format keeps the size exactly (VHD with force_size)
        return fc.tuple(fc.constant(size), fc.array(extent(size), { maxLength: 5 }), fc.nat(), fc.nat());
      }),
      async ([size, extents, which, variant]) => {
        const n = run++;
        const target = TARGETS[which % TARGETS.length];
        const options = { ...target.options[variant % target.options.length] };
        if (target.format === 'vpc') options.force_size = 'on';
        const model = Buffer.alloc(size);
        for (const e of extents) {
          const len = Math.min(e.length, size - e.offset);
          const data = Buffer.alloc(len, e.fill);
          if (len >= 4) data.writeUInt32LE(e.offset, 0);
          data.copy(model, e.offset);
        }
        const raw = join(dir, `m${n}.raw`);
        writeFileSync(raw, model);
        const mid = join(dir, `m${n}.${target.format}`);
        const vhdx = join(dir, `m${n}.vhdx`);
        const back = join(dir, `r${n}.raw`);
        const steps: [string, string, string, Record<string, string>][] = [
          [raw, mid, target.format, options],
          [mid, vhdx, 'vhdx', {}],
          [vhdx, back, 'raw', {}],
        ];
        for (const [from, to, format, opts] of steps) {
          const src = await openImage(from);
          await convertImage(src, to, { format, options: opts, cache: 'unsafe' }).finally(() => src.close());
        }
        const what = `${target.format} ${JSON.stringify(options)}`;
        for (const [img, fmt] of [[mid, target.format], [vhdx, 'vhdx'], [back, 'raw']]) {
          assert.match(sh('qemu-img', ['compare', '-f', fmt, '-F', 'raw', img, raw]), /identical/, `${what}: ${fmt}`);
        }
        for (const f of [raw, mid, vhdx, back, join(dir, `m${n}-flat.vmdk`)]) rmSync(f, { force: true });
      },
    ),
    { numRuns: 16 },
  );
});
