import { createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PositionalFile } from './io/file.js';
import { allocIoBuffer, isZero } from './io/buffers.js';
import { VdiskError, fromSystemError } from './errors.js';
import type { DiskImage } from './formats/image.js';

export type ImportSource = { kind: 'file'; path: string } | { kind: 'fd'; fd: number; name?: string };

export interface ImportOptions {
  offset?: number;
  chunkSize?: number;
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes a file's bytes into the image at `offset`. The input's size is known before the first byte
 * is written (a pipe is spooled to a temporary file first), so a write that would run past the disk
 * is refused with the image untouched. All-zero chunks over ranges that already read as zeros and
 * hold no data are skipped, so zeros do not allocate blocks.
 */
export async function importIntoImage(image: DiskImage, source: ImportSource, options: ImportOptions = {}): Promise<number> {
  const offset = options.offset ?? 0;
  let spoolDir: string | null = null;
  let input: PositionalFile;
  try {
    if (source.kind === 'file') {
      input = await PositionalFile.open(source.path, 'r');
    } else if (fstatSync(source.fd).isFile()) {
      input = await PositionalFile.open(`/proc/self/fd/${source.fd}`, 'r');
    } else {
      spoolDir = await mkdtemp(join(tmpdir(), 'vdisk-write-'));
      const spool = join(spoolDir, 'input');
      try {
        await pipeline(createReadStream('', { fd: source.fd, autoClose: false, highWaterMark: 1024 * 1024 }), createWriteStream(spool));
      } catch (err) {
        throw fromSystemError(err, source.name ?? 'stdin', 'reading');
      }
      input = await PositionalFile.open(spool, 'r');
    }
  } catch (err) {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
    throw err;
  }
  try {
    const length = input.size();
    if (!Number.isSafeInteger(offset) || offset < 0 || offset + length > image.virtualSize) {
      throw new VdiskError(
        'RANGE',
        `${image.filename}: writing ${length} bytes at offset ${offset} would run past the end of the virtual disk (${image.virtualSize} bytes); nothing was written`,
      );
    }
    const chunkSize = options.chunkSize ?? 4 * 1024 * 1024;
    // Chunks end on chunkSize boundaries of the virtual disk, so each lies inside one block (block
    // sizes are powers of two of at least 1 MiB). Reads run ahead and several writes are in flight:
    // done one after another, each step waited on the last and the disk sat idle.
    const chunkLen = (pos: number) => Math.min(length - pos, chunkSize - ((offset + pos) % chunkSize));
    const DEPTH = 3;
    const free = Array.from({ length: DEPTH * 2 }, () => allocIoBuffer(chunkSize));
    const reads: { pos: number; data: Buffer; ready: Promise<number> }[] = [];
    const writing = new Set<Promise<void>>();
    let readPos = 0;
    let done = 0;
    const refill = () => {
      while (reads.length < DEPTH && readPos < length && free.length > 0) {
        const n = chunkLen(readPos);
        const data = (free.pop() as Buffer).subarray(0, n);
        const ready = input.readAt(data, readPos);
        ready.catch(() => undefined);
        reads.push({ pos: readPos, data, ready });
        readPos += n;
      }
    };
    const recycle = (data: Buffer) => free.push(Buffer.from(data.buffer, data.byteOffset, chunkSize));
    refill();
    while (reads.length > 0) {
      const { pos, data, ready } = reads.shift() as (typeof reads)[number];
      await ready;
      const at = offset + pos;
      const skip = isZero(data) && (await image.blockStatus(at, data.length)).every((e) => e.state !== 'data');
      if (skip) {
        recycle(data);
      } else {
        const w: Promise<void> = image.write(data, at).finally(() => {
          writing.delete(w);
          recycle(data);
        });
        writing.add(w);
        if (writing.size >= DEPTH) await Promise.race(writing);
      }
      done += data.length;
      options.onProgress?.(done, length);
      refill();
      if (reads.length === 0 && readPos < length && writing.size > 0) {
        await Promise.race(writing);
        refill();
      }
    }
    await Promise.all(writing);
    await image.flush();
    return length;
  } finally {
    await input.close();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

