import type { VolumeReader } from '../types.js';
import { Lru } from './lru.js';

/**
 * Small reads served from recently read, aligned windows of the volume. mke2fs and the kernel's
 * allocator lay a directory's inodes, its blocks and its small files' data close together, so walking
 * a tree of small files costs one positional read per window instead of one per block: each read is a
 * round trip through the thread pool, which dominates when files are a few KiB. Memory is bounded by
 * the window count; callers copy what they keep.
 */
export class ReadAhead {
  private readonly windows: Lru<number, Promise<Buffer>>;

  constructor(private readonly volume: VolumeReader, readonly windowSize: number, count: number) {
    this.windows = new Lru(count);
  }

  private window(i: number): Promise<Buffer> {
    let w = this.windows.get(i);
    if (!w) {
      w = this.volume.read(i * this.windowSize, this.windowSize);
      // A failed read is not remembered: the next request tries again and reports its own error.
      w.catch(() => this.windows.delete(i));
      this.windows.set(i, w);
    }
    return w;
  }

  /** `length` bytes at `offset`; at most one window long. */
  async read(offset: number, length: number): Promise<Buffer> {
    const W = this.windowSize;
    const first = Math.floor(offset / W);
    const last = Math.floor((offset + length - 1) / W);
    if (first === last) {
      const w = await this.window(first);
      return w.subarray(offset - first * W, offset - first * W + length);
    }
    const parts: Buffer[] = [];
    for (let i = first; i <= last; i++) {
      const w = await this.window(i);
      const from = Math.max(offset, i * W) - i * W;
      const to = Math.min(offset + length, (i + 1) * W) - i * W;
      parts.push(w.subarray(from, to));
    }
    return Buffer.concat(parts);
  }
}
