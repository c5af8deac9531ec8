import { allocIoBuffer, isZero, nonZeroRuns } from '../io/buffers.js';
import type { DiskImage } from './image.js';

/** Where a copy's bytes come from: `length` bytes, read by position. */
export interface CopySource {
  readonly length: number;
  read(buf: Buffer, position: number): Promise<void>;
  /**
   * The run starting at `position` (at most `max` bytes) that the source's map says reads as zeros
   * (`zero`), or that holds data. Without it every byte is read and looked at.
   */
  nextRun?(position: number, max: number): Promise<{ zero: boolean; length: number }>;
}

export interface CopyOptions {
  /** Virtual offset in the destination where the source's first byte goes. */
  offset: number;
  chunkSize?: number;
  /** Whether zeros at [at, at+length) may be left unwritten: the destination already reads as zeros there. */
  skipZeros(at: number, length: number): Promise<boolean>;
  onProgress?: (done: number, total: number) => void;
}

interface Slot {
  pos: number;
  len: number;
  /** null: the source's map says the range reads as zeros, and nothing was read. */
  data: Buffer | null;
  ready: Promise<void>;
}

const DEPTH = 3;

/**
 * Copies a source into a disk image with reads running ahead and several writes in flight: done one
 * after another, each step waited on the last and the disk sat idle. Chunks end on chunkSize
 * boundaries of the destination, so a chunk never straddles a block wider than the chunk. Zero runs
 * the source's map reports are passed over whole, without a read or a buffer, so an empty 64 TiB
 * source costs a walk of its map, not of its bytes. Memory: 2 x DEPTH chunk buffers, whatever the size.
 */
export async function copyInto(dest: DiskImage, source: CopySource, options: CopyOptions): Promise<void> {
  const { offset } = options;
  const { length } = source;
  const chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
  const free = Array.from({ length: DEPTH * 2 }, () => allocIoBuffer(chunkSize));
  const recycle = (data: Buffer) => free.push(Buffer.from(data.buffer, data.byteOffset, chunkSize));
  const reads: Slot[] = [];
  const writing = new Set<Promise<void>>();
  let readPos = 0;
  let runEnd = 0;
  let runZero = false;
  let done = 0;

  const refill = async () => {
    while (reads.length < DEPTH && readPos < length && free.length > 0) {
      if (readPos >= runEnd) {
        const run = source.nextRun ? await source.nextRun(readPos, length - readPos) : { zero: false, length: length - readPos };
        runZero = run.zero;
        runEnd = readPos + Math.max(1, Math.min(run.length, length - readPos));
      }
      if (runZero) {
        reads.push({ pos: readPos, len: runEnd - readPos, data: null, ready: Promise.resolve() });
        readPos = runEnd;
        continue;
      }
      const len = Math.min(runEnd - readPos, chunkSize - ((offset + readPos) % chunkSize));
      const data = (free.pop() as Buffer).subarray(0, len);
      const ready = source.read(data, readPos);
      ready.catch(() => undefined); // awaited in order below; no unhandled rejection meanwhile
      reads.push({ pos: readPos, len, data, ready });
      readPos += len;
    }
  };
  // A write that fails leaves the set before anyone may have awaited it: its error is kept here and
  // thrown by the next wait, instead of escaping as an unhandled rejection (a crash with a stack).
  let failure: { error: unknown } | null = null;
  const settle = async (wait: Promise<unknown>) => {
    await wait;
    if (failure) throw failure.error;
  };
  /**
   * Writes out of one buffer (the pieces of a chunk that hold data, or the whole chunk); a pooled buffer
   * goes back to the pool once every piece has settled, failed or not.
   */
  const startWrites = async (parts: [Buffer, number][], pooled: Buffer | null) => {
    const w: Promise<void> = Promise.allSettled(parts.map(([b, at]) => dest.write(b, at)))
      .then((results) => {
        const bad = results.find((r) => r.status === 'rejected');
        if (bad) throw (bad as PromiseRejectedResult).reason;
      })
      .catch((error: unknown) => {
        failure ??= { error };
      })
      .finally(() => {
        writing.delete(w);
        if (pooled) recycle(pooled);
      });
    writing.add(w);
    if (writing.size >= DEPTH) await settle(Promise.race(writing));
    else if (failure) throw failure.error;
  };

  await refill();
  while (reads.length > 0) {
    const { pos, len, data, ready } = reads.shift() as Slot;
    await ready;
    const at = offset + pos;
    if (data === null) {
      if (!(await options.skipZeros(at, len))) {
        // Rare (only a source with a map written over existing data): zeros written a chunk at a time.
        const zeros = Buffer.alloc(Math.min(len, chunkSize));
        for (let p = 0; p < len; ) {
          const n = Math.min(len - p, chunkSize - ((at + p) % chunkSize));
          await startWrites([[zeros.subarray(0, n), at + p]], null);
          p += n;
        }
      }
    } else if (isZero(data) && (await options.skipZeros(at, len))) {
      recycle(data);
    } else {
      const runs = nonZeroRuns(data);
      if (runs.length === 1 && runs[0][1] - runs[0][0] === len) await startWrites([[data, at]], data);
      else if (await options.skipZeros(at, len)) {
        // Where the destination reads as zeros already, only the non-zero 4 KiB pieces are written, so
        // the zeros between them stay holes in the output file, as qemu-img convert leaves them.
        await startWrites(runs.map(([s, e]) => [data.subarray(s, e), at + s]), data);
      } else await startWrites([[data, at]], data);
    }
    done += len;
    options.onProgress?.(done, length);
    await refill();
    if (reads.length === 0 && readPos < length && writing.size > 0) {
      await settle(Promise.race(writing));
      await refill();
    }
  }
  await settle(Promise.all(writing));
}

/**
 * Copies the whole of `source` into `dest`, a new image that reads as zeros everywhere (convert's
 * fill): only what reads as non-zero is written, so the output is as sparse as its format allows.
 */
export async function fillImage(source: DiskImage, dest: DiskImage, onProgress?: (done: number, total: number) => void): Promise<void> {
  await copyInto(
    dest,
    {
      length: Math.min(source.virtualSize, dest.virtualSize),
      read: (buf, pos) => source.read(buf, pos),
      nextRun: (pos, max) => nextRun(source, pos, max),
    },
    {
      offset: 0,
      // Chunks within one block of the new image (blocks are at least 1 MiB where formats have them).
      chunkSize: 4 * 1024 * 1024,
      skipZeros: async () => true, // a new image reads as zeros everywhere
      onProgress,
    },
  );
  await dest.flush();
}

/** The source's run of zeros or of data at `pos`, from its allocation map (looked at 1 GiB at a time). */
async function nextRun(source: DiskImage, pos: number, max: number): Promise<{ zero: boolean; length: number }> {
  const extents = await source.blockStatus(pos, Math.min(max, 1024 ** 3));
  const zero = extents[0].state !== 'data';
  let length = 0;
  for (const e of extents) {
    if ((e.state !== 'data') !== zero) break;
    length += e.length;
  }
  return { zero, length };
}

