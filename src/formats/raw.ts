import { PositionalFile, type OpenMode } from '../io/file.js';
import { VdiskError } from '../errors.js';
import type { DiskImage, Extent } from './image.js';

/** A raw image: the file is the disk. Holes cannot be seen portably from Node, so all of it is data. */
export class RawImage implements DiskImage {
  readonly format = 'raw' as const;
  readonly filename: string;
  readonly logicalSectorSize = 512;
  readonly preferredChunk = 4 * 1024 * 1024;
  readonly file: PositionalFile;

  private constructor(file: PositionalFile) {
    this.file = file;
    this.filename = file.path;
  }

  static async open(path: string, mode: OpenMode = 'r'): Promise<RawImage> {
    return new RawImage(await PositionalFile.open(path, mode));
  }

  static fromFile(file: PositionalFile): RawImage {
    return new RawImage(file);
  }

  get virtualSize(): number {
    return this.file.size();
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    await this.file.readAt(buf, offset);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    await this.file.writeAt(buf, offset);
  }

  async flush(): Promise<void> {
    if (this.file.mode === 'rw') await this.file.flush();
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    return length > 0 ? [{ offset, length, state: 'data' }] : [];
  }

  async close(): Promise<void> {
    await this.flush();
    await this.file.close();
  }
}

export function checkRange(img: { filename: string; virtualSize: number }, offset: number, length: number): void {
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 ||
      offset + length > img.virtualSize) {
    throw new VdiskError(
      'RANGE',
      `${img.filename}: range ${offset}+${length} is outside the virtual disk (${img.virtualSize} bytes)`,
    );
  }
}
