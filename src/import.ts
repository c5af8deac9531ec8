import { createReadStream, createWriteStream, fstatSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { PositionalFile, type FileOrFd } from './io/file.js';
import { copyInto } from './copy-into.js';
import { VdiskError, fromSystemError } from './errors.js';
import type { DiskImage } from './formats/image.js';

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
