import { extractTree } from '../src/ops/extract.js';
import { prestartHostWriter } from '../src/ops/host-writer.js';
import { formatSize } from '../src/util/size.js';
import { progressReporter } from './progress.js';
import { withVolume, type VolumeOptions } from './volume.js';

export interface GetOptions extends VolumeOptions {
  progress?: boolean;
}

export async function runGet(image: string, path: string, dest: string | undefined, opts: GetOptions): Promise<number> {
  // The writer's thread starts on the idle core while the image and the volume are opened.
  prestartHostWriter();
  await withVolume(image, opts, async (fs) => {
    const progress = progressReporter(opts, 'get');
    const r = await extractTree(fs, path, dest ?? '.', {
      onWarning: (m) => process.stderr.write(`vdisk: warning: ${fs.name}: ${m}\n`),
      onProgress: progress ? (bytes) => progress.update(bytes, -1) : undefined,
    });
    progress?.finish();
    if (!opts.quiet && process.stderr.isTTY) {
      process.stderr.write(`${r.files} files, ${r.directories} directories, ${r.symlinks} symlinks, ${r.hardlinks} hard links, ${formatSize(r.bytes)}\n`);
    }
  });
  return 0;
}
