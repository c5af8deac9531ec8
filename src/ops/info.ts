import { stat } from 'node:fs/promises';
import type { DiskImage } from '../formats/image.js';
import type { FormatDetails } from '../formats/driver.js';

/** `info` as data; the keys follow `qemu-img info --output json` where qemu-img has them. */
export interface ImageInfo extends FormatDetails {
  filename: string;
  format: string;
  'virtual-size': number;
  'actual-size': number;
  'dirty-flag': boolean;
}

export async function describeImage(image: DiskImage): Promise<ImageInfo> {
  const st = await stat(image.filename);
  const info: ImageInfo = {
    filename: image.filename,
    format: image.format,
    'virtual-size': image.virtualSize,
    // As qemu-img counts it: every file of the image (a VMDK's extents too).
    'actual-size': st.blocks * 512 + (await otherFilesBytes(image)),
    'dirty-flag': false,
  };
  if (image.describe) Object.assign(info, await image.describe());
  return info;
}

async function otherFilesBytes(image: DiskImage): Promise<number> {
  let total = 0;
  for (const f of image.otherFiles ?? []) total += (await stat(f)).blocks * 512;
  return total;
}
