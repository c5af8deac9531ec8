import { VdiskError } from '../errors.js';
import { openImage } from '../formats/open.js';
import type { DiskImage } from '../formats/image.js';
import { readPartitionTable } from '../partitions/detect.js';
import { detectVolumes } from '../filesystems/detect.js';

export interface ResizeOptions {
  /** A name of the driver table; probed when absent. */
  format?: string;
  /** Allow a smaller size (qemu-img resize --shrink). */
  shrink?: boolean;
}

/** `SIZE`, `+SIZE` or `-SIZE` (qemu-img resize's forms), already parsed. */
export interface SizeChange {
  sign: '' | '+' | '-';
  bytes: number;
}

const SCAN = 4 * 1024 * 1024;

/**
 * Resizes an image in place (qemu-img resize), through the format's optional `resize` hook. Shrinking
 * needs `shrink` and is refused, naming the first thing in the way, when a partition or a file system
 * ends past the new size, or when the range cut off holds anything but zeros.
 */
export async function resizeImage(path: string, change: SizeChange, o: ResizeOptions = {}): Promise<{ oldSize: number; newSize: number }> {
  const image = await openImage(path, { format: o.format, mode: 'rw' });
  try {
    if (!image.resize) throw new VdiskError('UNSUPPORTED', `${path}: vdisk cannot resize ${image.format} images`);
    const oldSize = image.virtualSize;
    const newSize = change.sign === '+' ? oldSize + change.bytes : change.sign === '-' ? oldSize - change.bytes : change.bytes;
    if (!Number.isSafeInteger(newSize) || newSize < 0) throw new VdiskError('USAGE', `${path}: the new size would be ${newSize} bytes`);
    if (newSize < oldSize) {
      if (!o.shrink) {
        throw new VdiskError('USAGE', `${path}: shrinking from ${oldSize} to ${newSize} bytes cuts off the disk's end; say --shrink after making sure nothing is stored there`);
      }
      await refuseShrinkOver(image, newSize);
    }
    await image.resize(newSize);
    return { oldSize, newSize };
  } finally {
    await image.close();
  }
}

/** Throws (one line naming it) when a partition, a file system or stored data lies past `newSize`. */
export async function refuseShrinkOver(image: DiskImage, newSize: number): Promise<void> {
  const name = image.filename;
  const table = await readPartitionTable(image);
  for (const p of table.partitions) {
    if (p.start + p.size > newSize) {
      throw new VdiskError('USAGE', `${name}: partition ${p.index} ends at byte ${p.start + p.size}, past the new size ${newSize}; shrink it first`);
    }
  }
  const { volumes } = await detectVolumes(image);
  for (const v of volumes) {
    if (v.filesystem && v.fsSize !== undefined && v.offset + v.fsSize > newSize) {
      const where = v.partition === null ? 'the disk' : `partition ${v.partition}`;
      throw new VdiskError('USAGE', `${name}: the ${v.filesystem} file system on ${where} ends at byte ${v.offset + v.fsSize}, past the new size ${newSize}; shrink it first`);
    }
  }
  const end = image.virtualSize;
  const buf = Buffer.alloc(SCAN);
  for (const e of await image.blockStatus(newSize, end - newSize)) {
    if (e.state !== 'data') continue;
    for (let at = e.offset; at < e.offset + e.length; at += SCAN) {
      const piece = buf.subarray(0, Math.min(SCAN, e.offset + e.length - at));
      await image.read(piece, at);
      const k = piece.findIndex((b) => b !== 0);
      if (k >= 0) throw new VdiskError('USAGE', `${name}: data at byte ${at + k} lies past the new size ${newSize}; it would be lost`);
    }
  }
}
