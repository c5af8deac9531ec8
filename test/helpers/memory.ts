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
