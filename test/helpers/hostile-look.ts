import assert from 'node:assert/strict';
import fc from 'fast-check';
import { openImage, describeImage, mapImage, VdiskError } from '../../src/index.js';

const MiB = 1024 * 1024;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref()),
  ]);
}

/** Runs `fn`; a failure must be a one-line VdiskError, and nothing may take over `ms`. */
export async function typedOrFine(fn: () => Promise<unknown>, ms: number, what: string): Promise<void> {
  try {
    await withTimeout(fn(), ms, what);
  } catch (err) {
    assert.ok(err instanceof VdiskError, `${what}: untyped error ${(err as Error)?.stack ?? String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'one-line message');
  }
}

/**
 * Every look the commands take at an image, in process: open, describe, map, reads of the first and
 * last MiB; `thorough` adds block status over the first 64 MiB (extents must tile it) and a read in
 * the middle.
 */
export async function lookEverywhere(file: string, thorough = false): Promise<void> {
  const img = await openImage(file);
  try {
    await describeImage(img);
    let mapped = 0;
    await mapImage(img, (e) => void (mapped += e.length));
    assert.equal(mapped, img.virtualSize, 'the map tiles the disk');
    const size = img.virtualSize;
    const reads = [[0, MiB], [Math.max(0, size - MiB), MiB]];
    if (thorough) {
      const span = Math.min(size, 64 * MiB);
      for (const from of span > 0 ? [0, size - span] : []) {
        let at = from;
        for (const e of await img.blockStatus(from, span)) {
          assert.equal(e.offset, at, 'block status extents follow each other');
          at += e.length;
        }
        assert.equal(at, from + span, 'block status covers the range asked for');
      }
      reads.push([Math.floor(size / 3), 70_000]);
    }
    for (const [o, l] of reads) {
      const len = Math.min(l, size - o);
      if (len > 0) await img.read(Buffer.alloc(len), o);
    }
  } finally {
    await img.close();
  }
}

/** One edit of a mutated structure: a field (by index) or any position, as a byte, u32 or u64. */
export function editArbitrary(u32s: number[], u64s: bigint[]) {
  return fc.record({
    onField: fc.boolean(),
    field: fc.nat(),
    pos: fc.nat(),
    kind: fc.constantFrom('byte', 'u32', 'u64'),
    byte: fc.integer({ min: 0, max: 255 }),
    u32: fc.oneof(fc.constantFrom(...u32s), fc.integer({ min: 0, max: 0xffffffff })),
    u64: fc.oneof(fc.constantFrom(...u64s), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  });
}
