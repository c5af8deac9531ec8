import type { VolumeReader } from '../../src/filesystems/types.js';

/**
 * A volume held in memory, for hostile tests that mutate bytes thousands of times. With `maxRead`, a
 * read before the volume's start, at a non-integer offset, or longer than `maxRead` fails the test:
 * a reader must never ask for bytes a field nobody checked sized.
 */
export function memoryVolume(buf: Buffer, maxRead?: number): VolumeReader {
  return {
    size: buf.length,
    async read(offset: number, length: number) {
      if (maxRead !== undefined && (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0 || length > maxRead)) {
        throw new Error(`read(${offset}, ${length})`);
      }
      const out = Buffer.alloc(length);
      if (offset < buf.length) buf.copy(out, 0, offset, Math.min(buf.length, offset + length));
      return out;
    },
  };
}

/**
 * A disk image read as one volume, counting the reads a reader asks for and their bytes: the tests
 * that a lookup on a huge volume reads only the blocks on its way.
 */
export function countingVolume(image: { virtualSize: number; read(b: Buffer, offset: number): Promise<void> }): { volume: VolumeReader; count: { reads: number; bytes: number } } {
  const count = { reads: 0, bytes: 0 };
  const volume: VolumeReader = {
    size: image.virtualSize,
    async read(offset: number, length: number) {
      count.reads++;
      count.bytes += length;
      const b = Buffer.alloc(length);
      await image.read(b, offset);
      return b;
    },
  };
  return { volume, count };
}
