import { PositionalFile, type OpenMode } from '../io/file.js';
import { VdiskError } from '../errors.js';
import type { DiskImage, ImageFormat } from './image.js';
import { RawImage } from './raw.js';
import { VhdxImage } from './vhdx/vhdx-image.js';
import { lockFor } from '../io/lock.js';
import { hasVhdxSignature } from './vhdx/file-identifier.js';

export interface OpenImageOptions {
  /** Skip probing and treat the file as this format. */
  format?: ImageFormat;
  mode?: OpenMode;
  /** 'unsafe': skip flushes (qemu-img's cache=unsafe). */
  cache?: 'writeback' | 'unsafe';
  /**
   * Open without the image lock (qemu-img's -U, --force-share), for looking at an image another
   * process has open for writing. Refused with mode 'rw'.
   */
  forceShare?: boolean;
}

export async function probeFormat(file: PositionalFile): Promise<ImageFormat> {
  const sig = Buffer.alloc(8);
  await file.readAt(sig, 0);
  return hasVhdxSignature(sig) ? 'vhdx' : 'raw';
}

/** Opens an image by path, probing the format unless one is given. The single entry point of the library. */
export async function openImage(path: string, options: OpenImageOptions = {}): Promise<DiskImage> {
  const mode = options.mode ?? 'r';
  if (options.format && options.format !== 'raw' && options.format !== 'vhdx') {
    throw new VdiskError('USAGE', `unknown image format '${options.format}' (vhdx, raw)`);
  }
  // The one place an image takes its lock (parents: VhdxImage.openParent): shared to look, exclusive
  // to change it, before the first byte is read, held until close.
  const file = await PositionalFile.open(path, mode, { lock: lockFor(mode, options.forceShare) });
  if (options.cache) file.cache = options.cache;
  try {
    const format = options.format ?? (await probeFormat(file));
    if (format === 'raw') return RawImage.fromFile(file);
    if (!hasVhdxSignature(await readSig(file))) {
      throw new VdiskError('CORRUPT', `${path}: not a VHDX image (no vhdxfile signature)`);
    }
    const image = await VhdxImage.fromFile(file);
    image.forceShare = options.forceShare ?? false;
    return image;
  } catch (err) {
    await file.close();
    throw err;
  }
}

async function readSig(file: PositionalFile): Promise<Buffer> {
  const b = Buffer.alloc(8);
  await file.readAt(b, 0);
  return b;
}
