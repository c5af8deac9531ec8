import type { VolumeReader } from '../types.js';

/** Bytes read at once for small reads, and how many such windows are kept (8 MiB). */
const WINDOW = 1024 * 1024;
const MAX_WINDOWS = 8;

/**
 * Small reads served from aligned 1 MiB windows of the volume. Directories and small files are mostly
 * laid out one after another (every FAT writer allocates forward), so extracting a tree of small files
 * costs one read per MiB instead of one per file: on a busy machine each read is a thread-pool round
 * trip. Large reads go straight through and are not cached. Not a general-purpose cache: it holds
 * at most MAX_WINDOWS windows and forgets the oldest.
 */
export class ReadWindows implements VolumeReader {
  private readonly windows = new Map<number, Promise<Buffer>>();

  constructor(private readonly volume: VolumeReader) {}

  get size(): number {
    return this.volume.size;
  }

  private window(index: number): Promise<Buffer> {
    const hit = this.windows.get(index);
    if (hit) {
      this.windows.delete(index);
      this.windows.set(index, hit);
      return hit;
    }
    const p = this.volume.read(index * WINDOW, WINDOW);
    // A failed read is not kept: the next caller tries again and sees the error itself.
    p.catch(() => this.windows.get(index) === p && this.windows.delete(index));
    if (this.windows.size >= MAX_WINDOWS) this.windows.delete(this.windows.keys().next().value as number);
    this.windows.set(index, p);
    return p;
  }

  /** Fills `buf`: large reads straight into it when the volume can, small ones from the windows. */
  async readInto(buf: Uint8Array, offset: number): Promise<void> {
    const length = buf.length;
    if (length > WINDOW / 4) {
      if (this.volume.readInto) return this.volume.readInto(buf, offset);
      buf.set(await this.volume.read(offset, length));
      return;
    }
    if (length === 0) return;
    const first = Math.floor(offset / WINDOW);
    const last = Math.floor((offset + length - 1) / WINDOW);
    const from = offset - first * WINDOW;
    if (first === last) {
      buf.set((await this.window(first)).subarray(from, from + length));
      return;
    }
    const [a, b] = await Promise.all([this.window(first), this.window(last)]);
    const split = WINDOW - from;
    buf.set(a.subarray(from));
    buf.set(b.subarray(0, length - split), split);
  }

  async read(offset: number, length: number): Promise<Buffer> {
    if (length > WINDOW / 4) return this.volume.read(offset, length);
    const out = Buffer.allocUnsafe(length);
    await this.readInto(out, offset);
    return out;
  }
}
