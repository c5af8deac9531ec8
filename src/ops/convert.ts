import { VdiskError } from '../errors.js';
import type { DiskImage } from '../formats/image.js';
import type { CreateRequest } from '../formats/driver.js';
import { openWith } from '../formats/open.js';
import { checkedOptions, creatingDriver } from './create.js';
import { exportTo, refuseChainOutput } from './export.js';
import { ReplacingOutput, nodeKind, outputPlace } from '../io/output.js';
import { fillImage } from '../formats/copy-into.js';

export interface ConvertOptions {
  /** The output's format, a name of the driver table (qemu-img's -O). */
  format: string;
  /** -o key=value pairs of the output format; the size comes from the source. */
  options?: Record<string, string>;
  /** Recorded by formats that name their creator. */
  creator?: string;
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
export async function convertImage(source: DiskImage, output: string, options: ConvertOptions): Promise<{ notes: string[] }> {
  const cache = options.cache ?? 'writeback';
  // Every refusal comes before OUTPUT is touched.
  const driver = creatingDriver(options.format, output, '-O');
  const req: CreateRequest = {
    size: source.virtualSize,
    options: checkedOptions(driver, options.options),
    path: output,
    creator: options.creator ?? 'vdisk',
    source,
  };
  const place = await outputPlace(output);
  await refuseChainOutput(source, place);
  if (driver.name === 'raw' && Object.keys(req.options).length === 0) {
    // Raw goes where qemu-img's does: into devices and pipes too, written in place.
    await exportTo(source, place, { onProgress: options.onProgress, sync: cache === 'writeback' });
    return { notes: [] };
  }
  if (place.kind !== 'file') {
    const what = place.kind === 'fd' ? 'a descriptor' : nodeKind(place.existing);
    throw new VdiskError('NOT_A_FILE', `${output}: is ${what}; convert -O ${driver.name} writes a new image file (-O raw writes into devices)`);
  }
  const out = await ReplacingOutput.begin(place.path, place.existing);
  let notes: string[] = [];
  try {
    out.file.cache = cache;
    const done = driver.convertFrom ? await driver.convertFrom(source, out.file, req, options.onProgress) : false;
    if (typeof done === 'object') notes = done.notes ?? [];
    if (done === false) {
      notes = (await driver.create!(out.file, req))?.notes ?? [];
      const dest = await openWith(driver, out.file);
      try {
        await fillImage(source, dest, options.onProgress);
      } finally {
        await dest.close();
      }
    }
    await out.file.close();
    await out.commit();
  } catch (err) {
    await out.abort();
    throw err;
  }
  return { notes };
}
