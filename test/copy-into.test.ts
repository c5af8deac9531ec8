import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyInto } from '../src/formats/copy-into.js';
import type { DiskImage } from '../src/formats/image.js';
import { VdiskError } from '../src/errors.js';

const MiB = 1024 * 1024;

/**
 * A write that fails while the copy waits for its next read: the failure must come back from copyInto
 * as its error, never escape as an unhandled rejection (which the CLI showed as a stack trace when the
 * file-size limit refused a VHDX write, EFBIG). Chunks holding data with zeros between take the path
 * that writes a chunk in several pieces.
 */
test('a write failing while the next read is awaited is copyInto\'s error, not an unhandled rejection', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    for (const pieces of [1, 3]) {
      let writes = 0;
      const dest = {
        async write(_b: Uint8Array, _at: number): Promise<void> {
          writes++;
          await new Promise((r) => setTimeout(r, 2));
          throw new VdiskError('IO', 'out.vhdx: writing failed: EFBIG: file too large');
        },
      } as unknown as DiskImage;
      const source = {
        length: 8 * 4 * MiB,
        async read(buf: Buffer, position: number): Promise<void> {
          // Every read after the first is slow: the failed write settles while the copy waits here.
          if (position > 0) await new Promise((r) => setTimeout(r, 30));
          buf.fill(0);
          // Data at the start and, for several pieces, at the middle and the end with zeros between.
          buf.fill(7, 0, 4096);
          if (pieces > 1) {
            buf.fill(7, buf.length / 2, buf.length / 2 + 4096);
            buf.fill(7, buf.length - 4096);
          }
        },
      };
      await assert.rejects(copyInto(dest, source, { offset: 0, skipZeros: async () => true }), /EFBIG/);
      assert.ok(writes > 0);
      // Anything left unhandled is reported after the microtasks of the failure: give it a turn.
      await new Promise((r) => setTimeout(r, 100));
    }
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
  assert.deepEqual(unhandled, []);
});
