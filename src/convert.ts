import { VdiskError } from './errors.js';
import type { DiskImage, ImageFormat } from './formats/image.js';
import { VhdxImage } from './formats/vhdx/vhdx-image.js';
import { resolveCreateOptions, writeNewVhdx, type VhdxCreateOptions } from './formats/vhdx/create.js';
import { roundUp } from './formats/vhdx/constants.js';
import { exportTo, refuseChainOutput } from './export.js';
import { ReplacingOutput, nodeKind, outputPlace } from './io/output.js';
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
 * output is as sparse as its format allows. A new image is written under a temporary name beside
 * OUTPUT and renamed over it when complete (an existing file there is locked meanwhile, and left as it
 * was if anything fails); raw output into a block device, character device or FIFO is written there in
 * place. An output that is the source or one of its parents is refused.
 */
export async function convertImage(source: DiskImage, output: string, options: ConvertOptions): Promise<void> {
  const cache = options.cache ?? 'writeback';
  const place = await outputPlace(output);
  await refuseChainOutput(source, place);
  // Every refusal comes before OUTPUT is touched.
  const vhdx = options.format === 'vhdx' ? vhdxOptionsFor(source, options.vhdx ?? {}) : null;
  if (!vhdx) {
    await exportTo(source, place, { onProgress: options.onProgress, sync: cache === 'writeback' });
    return;
  }
  if (place.kind !== 'file') {
    const what = place.kind === 'fd' ? 'a descriptor' : nodeKind(place.existing);
    throw new VdiskError('NOT_A_FILE', `${output}: is ${what}; convert -O vhdx writes a new image file (-O raw writes into devices)`);
  }
  const out = await ReplacingOutput.begin(place.path, place.existing);
  try {
    await writeNewVhdx(out.file, vhdx);
    out.file.cache = cache;
    const dest = await VhdxImage.fromFile(out.file);
    try {
      await fillVhdx(source, dest, options.onProgress);
    } finally {
      await dest.close();
    }
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
}

/** The new VHDX's creation options, checked: sectors inherited, size from the source. */
function vhdxOptionsFor(source: DiskImage, requested: Omit<VhdxCreateOptions, 'size'>): Required<VhdxCreateOptions> {
  const options = { ...inheritedSectors(source, requested), ...requested };
  // VHDX sizes are whole logical sectors; a raw source of another length is rounded up, as qemu-img does.
  const size = roundUp(source.virtualSize, options.logicalSectorSize ?? 512);
  if (size === 0) throw new VdiskError('USAGE', `${source.filename}: the disk is empty (0 bytes); vdisk makes no VHDX without a sector`);
  return resolveCreateOptions({ ...options, size });
}

async function fillVhdx(source: DiskImage, dest: DiskImage, onProgress: ConvertOptions['onProgress']): Promise<void> {
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
