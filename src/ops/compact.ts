import { VdiskError } from '../errors.js';
import { openImage } from '../formats/open.js';
import type { CompactResult, DiskImage } from '../formats/image.js';
import { detectVolumes } from '../filesystems/detect.js';
import { openFilesystem } from '../filesystems/open.js';
import { driverFor } from '../filesystems/readers.js';

export interface CompactImageOptions {
  format?: string;
  /** Only blocks that read as zeros go; the file systems' free space is not looked at. */
  zerosOnly?: boolean;
  /** Report what would be given back, changing nothing. */
  dryRun?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface CompactReport extends CompactResult {
  /** The volumes whose free space was used, and those that could not be read ("partition 2: ntfs: ..."). */
  volumesUsed: string[];
  volumesSkipped: string[];
}

/**
 * `compact` (Optimize-VHD): through the format's optional `compact` hook, with the free space of
 * every file system the readers can open as the ranges whose content does not matter. Opened
 * read-write (the exclusive lock) unless it is a dry run.
 */
export async function compactImage(path: string, o: CompactImageOptions = {}): Promise<CompactReport> {
  const image = await openImage(path, { format: o.format, mode: o.dryRun ? 'r' : 'rw' });
  try {
    if (!image.compact) throw new VdiskError('UNSUPPORTED', `${path}: vdisk cannot compact ${image.format} images`);
    const free = o.zerosOnly ? { ranges: [], used: [], skipped: [] } : await fileSystemFreeSpace(image);
    const r = await image.compact({ discardable: free.ranges, dryRun: o.dryRun, onProgress: o.onProgress });
    return { ...r, volumesUsed: free.used, volumesSkipped: free.skipped };
  } finally {
    await image.close();
  }
}

/** The free space of every file system on the disk or its partitions, as ranges of the disk. */
export async function fileSystemFreeSpace(image: DiskImage): Promise<{ ranges: { offset: number; length: number }[]; used: string[]; skipped: string[] }> {
  const ranges: { offset: number; length: number }[] = [];
  const used: string[] = [];
  const skipped: string[] = [];
  const { volumes } = await detectVolumes(image);
  for (const v of volumes) {
    if (!v.filesystem) continue;
    const where = `${v.partition === null ? 'the disk' : `partition ${v.partition}`} (${v.filesystem})`;
    if (!driverFor(v.filesystem)) {
      skipped.push(`${where}: cannot be read`);
      continue;
    }
    try {
      const fs = await openFilesystem(image, v.partition === null ? {} : { partition: v.partition });
      try {
        for await (const r of fs.freeExtents()) {
          // Bounded by the volume: a free map claiming more than it holds frees nothing outside.
          const start = Math.max(0, r.offset);
          const end = Math.min(v.size, r.offset + r.length);
          if (end > start) ranges.push({ offset: v.offset + start, length: end - start });
        }
      } finally {
        await fs.close();
      }
      used.push(where);
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      skipped.push(`${where}: ${err.message}`);
    }
  }
  return { ranges, used, skipped };
}
