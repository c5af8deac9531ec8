import { VdiskError } from '../errors.js';
import type { CreateRequest } from '../formats/driver.js';
import type { DiskImage } from '../formats/image.js';
import { driverByName } from '../formats/drivers.js';
import { checkedOptions } from './create.js';

export interface MeasureOptions {
  /** The new image's format, a name of the driver table (qemu-img measure's -O); raw when absent. */
  format?: string;
  /** -o key=value pairs of that format. */
  options?: Record<string, string>;
  /** The image to be converted; or else `size`. */
  source?: DiskImage;
  /** The virtual size of an empty new image (--size). */
  size?: number;
}

export interface MeasureResult {
  required: number;
  'fully-allocated': number;
}

/**
 * `measure` (qemu-img measure): how large a file a new image of `format` needs to hold SOURCE
 * (`required`), and to hold every byte of a disk of its size (`fully-allocated`). The source's data is
 * what its map says is data, counted in the new format's allocation units as qemu-img counts
 * clusters: ranges that read as zeros cost nothing.
 */
export async function measureImage(o: MeasureOptions): Promise<MeasureResult> {
  const driver = driverByName(o.format ?? 'raw', '-O');
  if (!driver.measure) throw new VdiskError('UNSUPPORTED', `-O ${driver.name}: vdisk cannot measure ${driver.name} images`);
  if ((o.source === undefined) === (o.size === undefined)) throw new VdiskError('USAGE', 'measure needs either --size N or one image');
  const size = o.source ? o.source.virtualSize : (o.size as number);
  if (!Number.isSafeInteger(size) || size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${size}`);
  const req: CreateRequest = { size, options: checkedOptions(driver, o.options), path: '', creator: 'vdisk', ...(o.source ? { source: o.source } : {}) };
  const unit = driver.measureGranularity?.(req) ?? 1;
  const allocated = o.source ? await dataBytes(o.source, unit) : 0;
  const m = driver.measure(req, allocated);
  return { required: m.required, 'fully-allocated': m.fullyAllocated };
}

/** Bytes in the `unit`-sized pieces of the disk that hold data, each piece counted once. */
async function dataBytes(image: DiskImage, unit: number): Promise<number> {
  const WINDOW = 1024 ** 3;
  let counted = 0; // the end of what was counted so far: pieces shared by two extents count once
  let total = 0;
  for (let at = 0; at < image.virtualSize; at += WINDOW) {
    for (const e of await image.blockStatus(at, Math.min(WINDOW, image.virtualSize - at))) {
      if (e.state !== 'data') continue;
      const from = Math.max(counted, Math.floor(e.offset / unit) * unit);
      const to = Math.ceil((e.offset + e.length) / unit) * unit;
      if (to > from) total += to - from;
      counted = Math.max(counted, to);
    }
  }
  return total;
}
