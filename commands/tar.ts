import { isatty } from 'node:tty';
import { createWriteStream } from 'node:fs';
import { VdiskError } from '../src/errors.js';
import { tarTree } from '../src/ops/tar.js';
import { progressReporter } from './progress.js';
import { withVolume, type VolumeOptions } from './volume.js';

export interface TarCommandOptions extends VolumeOptions {
  progress?: boolean;
}

export async function runTar(image: string, path: string | undefined, opts: TarCommandOptions): Promise<number> {
  if (isatty(1)) throw new VdiskError('USAGE', 'refusing to write a tar stream to a terminal; redirect stdout');
  await withVolume(image, opts, async (fs) => {
    const progress = progressReporter(opts, 'tar');
    // Room for a few MiB of entries: with the default 16 KiB, a tree of small files waited for a write
    // every two files.
    const out = createWriteStream('', { fd: 1, autoClose: false, highWaterMark: 4 * 1024 * 1024 });
    try {
      await tarTree(fs, path ?? '/', out, {
        onWarning: (m) => process.stderr.write(`vdisk: warning: ${fs.name}: ${m}\n`),
        onProgress: progress ? (bytes) => progress.update(bytes, -1) : undefined,
      });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EPIPE') return;
      throw err;
    }
    progress?.finish();
  });
  return 0;
}
