import { PositionalFile, type OpenMode } from '../io/file.js';
import { VdiskError } from '../errors.js';
import type { DiskImage, ImageFormat } from './image.js';
import { RawImage } from './raw.js';
import { VhdxImage } from './vhdx/vhdx-image.js';
import { hasVhdxSignature } from './vhdx/file-identifier.js';
import { foreignFormat } from './signatures.js';

export interface OpenImageOptions {
  /** Skip probing and treat the file as this format. */
  format?: ImageFormat;
  mode?: OpenMode;
  /** 'unsafe': skip flushes (qemu-img's cache=unsafe). */
  cache?: 'writeback' | 'unsafe';
}

/**
 * The format by the file's signature: VHDX, else raw, the fallback. A file carrying the signature of a
 * format vdisk does not read yet is refused by name instead (`-f raw` still reads it as bytes).
 */
export async function probeFormat(file: PositionalFile): Promise<ImageFormat> {
  const head = Buffer.alloc(512);
  await file.readAt(head, 0);
  if (hasVhdxSignature(head)) return 'vhdx';
  let tail: Buffer | null = null;
  if (file.size() >= 1024) {
    tail = Buffer.alloc(512);
    await file.readAt(tail, file.size() - 512);
  }
  const foreign = foreignFormat(head, tail, file.size());
  if (foreign) {
    throw new VdiskError('UNSUPPORTED', `${file.path}: unsupported format ${foreign} (vdisk reads vhdx and raw; -f raw reads the file as plain bytes)`);
  }
  return 'raw';
}

/** Opens an image by path, probing the format unless one is given. The single entry point of the library. */
export async function openImage(path: string, options: OpenImageOptions = {}): Promise<DiskImage> {
  const mode = options.mode ?? 'r';
  if (options.format && options.format !== 'raw' && options.format !== 'vhdx') {
    throw new VdiskError('USAGE', `unknown image format '${options.format}' (vhdx, raw)`);
  }
  const file = await PositionalFile.open(path, mode);
  if (options.cache) file.cache = options.cache;
  try {
    const format = options.format ?? (await probeFormat(file));
    // qemu-img's rule: a probed raw image's first sector is not to be changed (see RawImage.write).
    if (format === 'raw') return RawImage.fromFile(file, options.format === undefined);
    if (!hasVhdxSignature(await readSig(file))) {
      throw new VdiskError('CORRUPT', `${path}: not a VHDX image (no vhdxfile signature)`);
    }
    return await VhdxImage.fromFile(file);
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
