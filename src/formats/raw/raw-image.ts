import { PositionalFile, type OpenMode } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import { checkRange, type DiskImage, type Extent, type HostRange } from '../image.js';

/** A raw image: the file is the disk. Holes cannot be seen portably from Node, so all of it is data. */
export class RawImage implements DiskImage {
  readonly format = 'raw' as const;
  readonly filename: string;
  readonly logicalSectorSize = 512;
  readonly preferredChunk = 4 * 1024 * 1024;
  readonly file: PositionalFile;
  /**
   * Raw was the probe's fallback rather than the user's word: then, as in qemu-img, the first sector
   * may not be changed, since new bytes there could make the file probe as another format next time
   * (and a format the probe did not know is not to be overwritten by accident).
   */
  readonly probed: boolean;

  private constructor(file: PositionalFile, probed = false) {
    this.file = file;
    this.filename = file.path;
    this.probed = probed;
  }

  static async open(path: string, mode: OpenMode = 'r'): Promise<RawImage> {
    return new RawImage(await PositionalFile.open(path, mode));
  }

  static fromFile(file: PositionalFile, probed = false): RawImage {
    return new RawImage(file, probed);
  }

  get virtualSize(): number {
    return this.file.size();
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    await this.file.readAt(buf, offset);
  }

  /** The file is the disk: every range lies in it as it is. */
  hostRange(offset: number, length: number): HostRange | null {
    if (offset < 0 || length < 0 || offset + length > this.virtualSize) return null;
    return { fd: this.file.fd, position: offset };
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    if (this.probed && offset < FIRST_SECTOR && buf.length > 0) {
      const n = Math.min(buf.length, FIRST_SECTOR - offset);
      const now = Buffer.alloc(n);
      await this.file.readAt(now, offset);
      if (!now.equals(buf.subarray(0, n))) {
        throw new VdiskError('USAGE', `${this.filename}: refusing to change the first sector of an image whose format was probed as raw; say -f raw to allow it`);
      }
    }
    await this.file.writeAt(buf, offset);
  }

  /** The file is the disk: a resize is a truncate (new bytes read as zeros and stay holes). */
  async resize(newSize: number): Promise<void> {
    if (this.file.mode !== 'rw') throw new VdiskError('IO', `${this.filename}: opened read-only`);
    await this.file.truncate(newSize);
    await this.file.flush();
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

const FIRST_SECTOR = 512;
