import { createWriteStream } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { VdiskError } from '../src/errors.js';
import { fileStream, type Filesystem, type FsFile } from '../src/filesystems/filesystem.js';
import { withVolume, type VolumeOptions } from './volume.js';

/**
 * Opens PATH, or, where no such file exists and its last name has a colon, the named stream of the
 * file before the colon (`file:stream`, as Windows names NTFS alternate data streams).
 */
export async function openFileOrStream(fs: Filesystem, path: string): Promise<FsFile> {
  try {
    return await fs.open(path);
  } catch (err) {
    const cut = path.lastIndexOf(':');
    if (!(err instanceof VdiskError) || err.code !== 'NOT_FOUND' || cut <= path.lastIndexOf('/') + 1) throw err;
    const st = await fs.stat(path.slice(0, cut)).catch(() => null);
    const stream = path.slice(cut + 1);
    if (!st?.streams?.some((s) => s.name === stream)) throw err;
    return fs.open(path.slice(0, cut), stream);
  }
}

export async function runCat(image: string, path: string, opts: VolumeOptions): Promise<number> {
  await withVolume(image, opts, async (fs) => {
    const file = await openFileOrStream(fs, path);
    const out = createWriteStream('', { fd: 1, autoClose: false });
    try {
      await pipeline(fileStream(file), out);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
      throw err;
    }
  });
  return 0;
}
