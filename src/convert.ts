import { rm, stat } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { PositionalFile } from './io/file.js';
import { VdiskError } from './errors.js';
import type { DiskImage, ImageFormat } from './formats/image.js';
import { openImage } from './formats/open.js';
import { VhdxImage } from './formats/vhdx/vhdx-image.js';
import { createVhdx, resolveCreateOptions, type VhdxCreateOptions } from './formats/vhdx/create.js';
import { roundUp } from './formats/vhdx/constants.js';
import { exportImage } from './export.js';
import { copyInto } from './copy-into.js';

export interface ConvertOptions {
  format: ImageFormat;
  /** VHDX creation options; the size comes from the source. */
  vhdx?: Omit<VhdxCreateOptions, 'size'>;
  /**
   * 'writeback' (default) honours every flush the format asks for, so the image is consistent at every
   * step and durable when convert returns; 'unsafe' skips them all, as qemu-img convert does by default.
   * Measured on a 1 GiB fill, flushing once at the end was slower than flushing as the log asks: the
   * disk then writes while the copy goes on, instead of all at once after it.
   */
  cache?: 'writeback' | 'unsafe';
  onProgress?: (done: number, total: number) => void;
}

/**
 * Writes the source's virtual disk (read through any parents, with a pending log replayed in memory)
 * into a new image at `output`, as qemu-img convert does. Only what reads as non-zero is written, so the
 * output is as sparse as its format allows. On failure the half-written output is removed.
 */
export async function convertImage(source: DiskImage, output: string, options: ConvertOptions): Promise<void> {
  const cache = options.cache ?? 'writeback';
  await refuseSameFile(source.filename, output);
  const before = await refuseNonFile(output);
  // Every refusal comes before OUTPUT is touched: an existing file there is only replaced by a
  // convert that got as far as writing, and only such an output is removed when the copy fails.
  const vhdx = options.format === 'vhdx' ? vhdxOptionsFor(source, options.vhdx ?? {}) : null;
  try {
    if (vhdx) {
      await convertToVhdx(source, output, vhdx, cache, options.onProgress);
    } else {
      await exportImage(source, { kind: 'file', path: output }, { onProgress: options.onProgress });
      if (cache === 'writeback') await syncFile(output); // a raw file has no metadata to order: one flush
    }
  } catch (err) {
    // Removed only if this convert made or rewrote it: a file it could not even open stays as it was.
    const now = await stat(output).catch(() => null);
    const untouched = before && now && now.ino === before.ino && now.size === before.size && now.mtimeMs === before.mtimeMs;
    if (now && !untouched) await rm(output, { force: true }).catch(() => undefined);
    throw err;
  }
}

/** The new VHDX's creation options, checked: sectors inherited, size from the source. */
function vhdxOptionsFor(source: DiskImage, requested: Omit<VhdxCreateOptions, 'size'>): VhdxCreateOptions {
  const options = { ...inheritedSectors(source, requested), ...requested };
  // VHDX sizes are whole logical sectors; a raw source of another length is rounded up, as qemu-img does.
  const size = roundUp(source.virtualSize, options.logicalSectorSize ?? 512);
  if (size === 0) throw new VdiskError('USAGE', `${source.filename}: the disk is empty (0 bytes); vdisk makes no VHDX without a sector`);
  return resolveCreateOptions({ ...options, size });
}

async function convertToVhdx(
  source: DiskImage,
  output: string,
  options: VhdxCreateOptions,
  cache: 'writeback' | 'unsafe',
  onProgress: ConvertOptions['onProgress'],
): Promise<void> {
  await createVhdx(output, options);
  const dest = await openImage(output, { format: 'vhdx', mode: 'rw', cache });
  try {
    await copyInto(
      dest,
      {
        length: source.virtualSize,
        read: (buf, pos) => source.read(buf, pos),
        nextRun: (pos, max) => nextRun(source, pos, max),
      },
      {
        offset: 0,
        // Chunks within one block of the new image (blocks are at least 1 MiB).
        chunkSize: 4 * 1024 * 1024,
        skipZeros: async () => true, // a new image reads as zeros everywhere
        onProgress,
      },
    );
    await dest.flush();
  } finally {
    await dest.close();
  }
}

/**
 * A VHDX source's sector sizes carry over unless -o names them: a disk whose partition table counts
 * 4 KiB sectors would otherwise come out with 512-byte ones and its partitions in the wrong places.
 */
function inheritedSectors(source: DiskImage, vhdx: Omit<VhdxCreateOptions, 'size'>): Omit<VhdxCreateOptions, 'size'> {
  if (!(source instanceof VhdxImage)) return {};
  const out: Omit<VhdxCreateOptions, 'size'> = {};
  if (vhdx.logicalSectorSize === undefined) out.logicalSectorSize = source.logicalSectorSize;
  // A physical size goes with the logical one it was chosen for: with a new logical size, create's default.
  if (vhdx.physicalSectorSize === undefined && vhdx.logicalSectorSize === undefined) out.physicalSectorSize = source.layout.physicalSectorSize;
  return out;
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

async function syncFile(path: string): Promise<void> {
  const file = await PositionalFile.open(path, 'rw');
  try {
    await file.flush();
  } finally {
    await file.close();
  }
}

/**
 * Convert makes a new image file, and removes it again if the copy fails; a device or anything else
 * that is not a regular file must never be truncated or removed that way. Returns what is there now
 * (null: nothing), to tell after a failure whether this convert changed it.
 */
async function refuseNonFile(output: string): Promise<Stats | null> {
  const st = await stat(output).catch(() => null);
  if (st && !st.isFile()) {
    throw new VdiskError('NOT_A_FILE', `${output}: ${st.isDirectory() ? 'is a directory' : 'is not a regular file'}; convert writes a new image file`);
  }
  return st;
}

/** Refuses an output that is the source itself: creating it would destroy what is being read. */
export async function refuseSameFile(source: string, output: string): Promise<void> {
  const [a, b] = await Promise.all([stat(source).catch(() => null), stat(output).catch(() => null)]);
  if (a && b && a.dev === b.dev && a.ino === b.ino) {
    throw new VdiskError('USAGE', `${output}: OUTPUT is the image itself; refusing to overwrite it`);
  }
}
