import type { VolumeReader } from '../types.js';

/**
 * Small reads served from a few aligned windows of the volume. Copying a tree reads many small files one
 * after another, and a copy tool writes them next to each other in the cluster heap, so one window read
 * replaces dozens of small ones. Large reads go straight to the volume. Memory: `slots` windows.
 */
export class ReadAhead implements VolumeReader {
  readonly size: number;
  private readonly volume: VolumeReader;
  private readonly window: number;
  private readonly slots: number;
  private readonly windows = new Map<number, Promise<Buffer>>();

  constructor(volume: VolumeReader, window = 1024 * 1024, slots = 8) {
    this.volume = volume;
    this.size = volume.size;
    this.window = window;
    this.slots = slots;
  }

  /** The bytes at [offset, offset + length); a buffer the caller copies from and never writes to. */
  async read(offset: number, length: number): Promise<Buffer> {
    const index = Math.floor(offset / this.window);
    const start = index * this.window;
    if (length > this.window / 4 || offset + length > start + this.window) return this.volume.read(offset, length);
    let w = this.windows.get(index);
    if (w) {
      // Most recently used last, so that eviction takes the oldest.
      this.windows.delete(index);
    } else {
      w = this.volume.read(start, this.window);
      // A failed read is not kept: the next one tries again.
      w.catch(() => this.windows.delete(index));
      if (this.windows.size >= this.slots) this.windows.delete(this.windows.keys().next().value as number);
    }
    this.windows.set(index, w);
    const buf = await w;
    return buf.subarray(offset - start, offset - start + length);
  }
}
