import { createReadStream, fstatSync } from 'node:fs';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PositionalFile, type FileOrFd } from '../io/file.js';
import { copyInto } from '../formats/copy-into.js';
import { VdiskError, fromSystemError } from '../errors.js';
import type { DiskImage } from '../formats/image.js';

export type ImportSource = FileOrFd;

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
  let inputFromFd: PositionalFile | null = null;
  try {
    if (source.kind === 'file') {
      input = await PositionalFile.open(source.path, 'r');
    } else if (fstatSync(source.fd).isFile() && (inputFromFd = await openFdPath(source.fd))) {
      input = inputFromFd;
    } else {
      spoolDir = await mkdtemp(join(tmpdir(), 'vdisk-write-'));
      const spool = join(spoolDir, 'input');
      await spoolUpTo(source.fd, source.name ?? 'stdin', spool, room(image, offset), image, offset);
      input = await PositionalFile.open(spool, 'r');
    }
  } catch (err) {
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
    throw err;
  }
  try {
    const length = input.size();
    if (length > room(image, offset)) throw tooLong(image, offset, `${length} bytes`);
    await copyInto(
      image,
      { length, read: async (buf, pos) => void (await input.readAt(buf, pos)) },
      {
        offset,
        chunkSize: options.chunkSize,
        skipZeros: async (at, len) => (await image.blockStatus(at, len)).every((e) => e.state !== 'data'),
        onProgress: options.onProgress,
      },
    );
    await image.flush();
    return length;
  } finally {
    await input.close();
    if (spoolDir) await rm(spoolDir, { recursive: true, force: true });
  }
}

/** Bytes the disk holds from `offset` to its end; -1 for an offset outside it. */
function room(image: DiskImage, offset: number): number {
  return Number.isSafeInteger(offset) && offset >= 0 && offset <= image.virtualSize ? image.virtualSize - offset : -1;
}

function tooLong(image: DiskImage, offset: number, what: string): VdiskError {
  return new VdiskError(
    'RANGE',
    `${image.filename}: writing ${what} at offset ${offset} would run past the end of the virtual disk (${image.virtualSize} bytes); nothing was written`,
  );
}

/**
 * Copies a pipe into `spool`, refusing as soon as it has delivered more than `limit` bytes: input
 * longer than the disk is known to be too long at that point, however much more would come (an
 * endless `yes |` included), and the spool never grows past the disk's size.
 */
async function spoolUpTo(fd: number, name: string, spool: string, limit: number, image: DiskImage, offset: number): Promise<void> {
  const out = await open(spool, 'w');
  try {
    let total = 0;
    const stream = createReadStream('', { fd, autoClose: false, highWaterMark: 1024 * 1024 });
    try {
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        total += chunk.length;
        if (total > limit) throw tooLong(image, offset, `more than ${Math.max(0, limit)} bytes`);
        await out.write(chunk, 0, chunk.length);
      }
    } catch (err) {
      throw err instanceof VdiskError ? err : fromSystemError(err, name, 'reading');
    } finally {
      stream.destroy();
    }
  } finally {
    await out.close();
  }
}

/**
 * A regular file on a descriptor (stdin redirected from a file), opened again by its /dev/fd path so
 * that it is read by position without a copy. Where there is no such path (Windows) it is spooled
 * like a pipe.
 */
async function openFdPath(fd: number): Promise<PositionalFile | null> {
  try {
    return await PositionalFile.open(`/dev/fd/${fd}`, 'r');
  } catch {
    return null;
  }
}
