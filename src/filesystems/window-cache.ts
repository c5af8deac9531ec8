import type { VolumeReader } from './types.js';

/**
 * Small reads served from recently read, aligned windows of the volume, shared by the readers whose
 * trees of small files lie one after another on the volume (mke2fs -d, mcopy, mkisofs, genisoimage all
 * write forward). Extracting such a tree then costs one positional read per window instead of one per
 * file, and when the walk moves from one window to the next the following windows are already being
 * read: a strictly one-at-a-time walk otherwise waits for every window's thread-pool round trip (on
 * 20,000 files that wait was a third of the run). Windows are read into unzeroed buffers (zero-filling
 * them was a tenth of the CPU time), and memory stays bounded by `count` windows. Callers get views
 * and copy what they keep.
 */
export class WindowCache implements VolumeReader {
  private readonly windows = new Map<number, Promise<Buffer>>();
  /** The window served last, for the common case of many reads from one window without map traffic. */
  private lastIndex = -1;
  private last: Promise<Buffer> | null = null;

  /** Reads longer than this go straight to the volume (a large file's pieces would only flush the windows). */
  private readonly direct: number;

  /**
   * @param windowSize bytes per window; @param count windows kept; @param ahead windows read ahead of a
   * sequential walk (0: none); @param direct the longest read served from windows (default: a window).
   */
  constructor(private readonly volume: VolumeReader, readonly windowSize: number, private readonly count: number, private readonly ahead = 2, direct = windowSize) {
    this.direct = direct;
  }

  get size(): number {
    return this.volume.size;
  }

  private fetch(i: number): Promise<Buffer> {
    const at = i * this.windowSize;
    let p: Promise<Buffer>;
    if (this.volume.readInto) {
      const buf = Buffer.allocUnsafeSlow(this.windowSize);
      p = this.volume.readInto(buf, at).then(() => buf);
    } else p = this.volume.read(at, this.windowSize);
    // A failed read is not remembered: the next request tries again and reports its own error.
    p.catch(() => {
      if (this.windows.get(i) === p) this.windows.delete(i);
      if (this.last === p) this.last = null;
    });
    this.windows.set(i, p);
    if (this.windows.size > this.count) this.windows.delete(this.windows.keys().next().value as number);
    return p;
  }

  private window(i: number): Promise<Buffer> {
    if (i === this.lastIndex && this.last) return this.last;
    let w = this.windows.get(i);
    if (w) {
      // Most recently used last, so that eviction takes the oldest.
      this.windows.delete(i);
      this.windows.set(i, w);
    } else {
      // A walk that reaches the window after one it read is sequential: read its followers too.
      const sequential = this.windows.has(i - 1);
      w = this.fetch(i);
      if (sequential) {
        const stop = Math.min(i + this.ahead, Math.ceil(this.volume.size / this.windowSize) - 1);
        for (let k = i + 1; k <= stop; k++) if (!this.windows.has(k)) this.fetch(k).catch(() => undefined);
      }
    }
    // Keep the read-ahead going: reaching a window read ahead asks for the one `ahead` further on.
    if (this.ahead > 0 && this.windows.has(i - 1)) {
      const next = i + this.ahead;
      if (!this.windows.has(next) && next * this.windowSize < this.volume.size) this.fetch(next).catch(() => undefined);
    }
    this.lastIndex = i;
    this.last = w;
    return w;
  }

  /**
   * `length` bytes at `offset` (past the volume's end: zeros): a view of a window when the read is
   * short and lies in one (windows are never rewritten, so the view stays valid; copy what is kept
   * long, so as not to pin the window).
   */
  async read(offset: number, length: number): Promise<Buffer> {
    if (length > this.direct) return this.volume.read(offset, length);
    const W = this.windowSize;
    const first = Math.floor(offset / W);
    const last = Math.floor((offset + length - 1) / W);
    if (first === last || length === 0) {
      const w = await this.window(first);
      return w.subarray(offset - first * W, offset - first * W + length);
    }
    const out = Buffer.allocUnsafe(length);
    await this.copyOut(out, offset);
    return out;
  }

  /** Copies `buf.length` bytes of the volume from `offset` into `buf`; long reads go straight into it. */
  async readInto(buf: Uint8Array, offset: number): Promise<void> {
    if (buf.length > this.direct) {
      if (this.volume.readInto) return this.volume.readInto(buf, offset);
      buf.set(await this.volume.read(offset, buf.length));
      return;
    }
    await this.copyOut(buf, offset);
  }

  private async copyOut(buf: Uint8Array, offset: number): Promise<void> {
    const W = this.windowSize;
    const end = offset + buf.length;
    for (let i = Math.floor(offset / W); i * W < end; i++) {
      const w = await this.window(i);
      const from = Math.max(offset, i * W);
      const to = Math.min(end, (i + 1) * W);
      w.copy(buf, from - offset, from - i * W, to - i * W);
    }
  }
}
