import { openImage } from '../src/formats/open.js';
import type { DiskImage } from '../src/formats/image.js';
import { VdiskError } from '../src/errors.js';
import { openFilesystem } from '../src/filesystems/open.js';
import type { Filesystem } from '../src/filesystems/filesystem.js';
import { formatOption } from './common.js';

export interface VolumeOptions {
  format?: string;
  partition?: string;
  quiet?: boolean;
  forceShare?: boolean;
}

export function partitionOption(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value) || Number(value) < 1 || !Number.isSafeInteger(Number(value))) {
    throw new VdiskError('USAGE', `-P: '${value}' is not a partition number (1, 2, ... as 'vdisk partitions' lists them)`);
  }
  return Number(value);
}

/**
 * Runs `body` with the file system the options name, open over the image; the volume's warnings go to
 * stderr first, and the image is closed however `body` ends.
 */
export async function withVolume<T>(path: string, opts: VolumeOptions, body: (fs: Filesystem, image: DiskImage) => Promise<T>): Promise<T> {
  const partition = partitionOption(opts.partition);
  const image = await openImage(path, { format: formatOption(opts.format), forceShare: opts.forceShare });
  try {
    const fs = await openFilesystem(image, { partition });
    // Readers find some problems only while reading (a checksum mismatch in an inode): those are shown after.
    let shown = 0;
    const show = () => {
      if (!opts.quiet) for (; shown < fs.warnings.length; shown++) process.stderr.write(`vdisk: warning: ${fs.name}: ${fs.warnings[shown]}\n`);
    };
    try {
      show();
      return await body(fs, image);
    } finally {
      show();
      await fs.close();
    }
  } finally {
    await image.close();
  }
}
