import { createReadStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { fstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createWriteStream } from 'node:fs';
import { PositionalFile } from './io/file.js';
import { allocIoBuffer } from './io/buffers.js';
import { VdiskError, fromSystemError } from './errors.js';
import type { DiskImage } from './formats/image.js';

export type ImportSource = { kind: 'file'; path: string } | { kind: 'fd'; fd: number; name?: string };

export interface ImportOptions {
  offset?: number;
  chunkSize?: number;
  onProgress?: (done: number, total: number) => void;
}

const ZEROS = Buffer.alloc(2 * 1024 * 1024);

function isZero(buf: Buffer): boolean {
  for (let at = 0; at < buf.length; at += ZEROS.length) {
    const part = buf.subarray(at, Math.min(buf.length, at + ZEROS.length));
    if (!part.equals(ZEROS.subarray(0, part.length))) return false;
  }
  return true;
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
    const chunkSize = options.chunkSize ?? 2 * 1024 * 1024;
    const buf = allocIoBuffer(chunkSize);
    let done = 0;
    let next: Promise<number> | null = null;
    const readChunk = (pos: number, into: Buffer) => input.readAt(into, pos);
    const spare = allocIoBuffer(chunkSize);
    let bufs = [buf, spare];
    // Chunks end on chunkSize boundaries of the virtual disk, so each lies inside one block.
    const chunkLen = (pos: number) => Math.min(length - pos, chunkSize - ((offset + pos) % chunkSize));
    if (length > 0) next = readChunk(0, bufs[0].subarray(0, chunkLen(0)));
    while (done < length) {
      const n = chunkLen(done);
      await next;
      const data = bufs[0].subarray(0, n);
      const after = done + n;
      next = after < length ? readChunk(after, bufs[1].subarray(0, chunkLen(after))) : null;
      const at = offset + done;
      const skip = isZero(data) && (await image.blockStatus(at, n)).every((e) => e.state !== 'data');
      if (!skip) await image.write(data, at);
      done = after;
      bufs = [bufs[1], bufs[0]];
      options.onProgress?.(done, length);
    }
    await image.flush();
    return length;
  } finally {
    await input.close();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

