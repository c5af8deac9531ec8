import type { PeekedFile } from './filesystem.js';
import type { VolumeReader } from './types.js';

/**
 * Small reads served from recently read, aligned windows of the volume, shared by the readers whose
 * trees of small files lie one after another on the volume (mke2fs -d, mcopy, mkisofs, genisoimage all
 * write forward). Extracting such a tree then costs one positional read per window instead of one per
 * file, and when the walk moves from one window to the next the following windows are already being
 * read: a strictly one-at-a-time walk otherwise waits for every window's thread-pool round trip (on
 * 20,000 files that wait was a third of the run). Windows are read into unzeroed buffers (zero-filling
 * them was a tenth of the CPU time), reused once dropped where no view of them was handed out, and
 * memory stays bounded by `count` windows. Callers of `read` get views and copy what they keep.
 */
/** One window: its bytes once read, and what decides whether its buffer may be reused after it is dropped. */
interface Window {
  data: Promise<Buffer>;
  /** The buffer it reads into (ours to reuse), null once handed back. */
  buf: Buffer | null;
  /** Handed out as a view at least once: its buffer is never reused. */
  viewed: boolean;
  /** Copies out of it waiting for its read. */
  copying: number;
  dropped: boolean;
  settled: boolean;
  /** The bytes once read (for `peek`), null before. */
  bytes: Buffer | null;
}

export class WindowCache implements VolumeReader {
  private readonly windows = new Map<number, Window>();
  /** The window served last, for the common case of many reads from one window without map traffic. */
  private lastIndex = -1;
  private last: Window | null = null;
  /** Buffers of dropped windows, refilled by later ones: a fresh buffer per window grew the heap by half. */
  private readonly spare: Buffer[] = [];

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

  private fetch(i: number): Window {
    const at = i * this.windowSize;
    const w: Window = { data: null as unknown as Promise<Buffer>, buf: null, viewed: false, copying: 0, dropped: false, settled: false, bytes: null };
    if (this.volume.readInto) {
      const buf = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.windowSize);
      w.buf = buf;
      w.data = this.volume.readInto(buf, at).then(() => buf);
    } else {
      // The volume's own buffer, which it may share: never handed on for reuse.
      w.viewed = true;
      w.data = this.volume.read(at, this.windowSize);
    }
    w.data.then(
      (bytes) => {
        w.settled = true;
        w.bytes = bytes;
        this.release(w);
      },
      () => {
        // A failed read is not remembered: the next request tries again and reports its own error.
        w.settled = true;
        w.viewed = true;
        if (this.windows.get(i) === w) this.windows.delete(i);
        if (this.last === w) this.last = null;
      },
    );
    this.windows.set(i, w);
    if (this.windows.size > this.count) {
      const oldest = this.windows.keys().next().value as number;
      const gone = this.windows.get(oldest) as Window;
      this.windows.delete(oldest);
      if (this.last === gone) this.last = null;
      gone.dropped = true;
      this.release(gone);
    }
    return w;
  }

  /**
   * A dropped window's buffer goes back for reuse once its read is done and no copy out of it is
   * pending, unless it was ever handed out as a view (a caller may still hold that view).
   */
  private release(w: Window): void {
    if (!w.dropped || !w.settled || w.copying > 0 || w.viewed || !w.buf) return;
    if (this.spare.length < this.count) this.spare.push(w.buf);
    w.buf = null;
    w.bytes = null;
  }

  private window(i: number): Window {
    if (i === this.lastIndex && this.last && !this.last.dropped) return this.last;
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
        for (let k = i + 1; k <= stop; k++) if (!this.windows.has(k)) this.fetch(k);
      }
    }
    this.keepAhead(i);
    this.lastIndex = i;
    this.last = w;
    return w;
  }

  /**
   * The window holding `offset..offset+length` and the offset in it, when that window is already read
   * and the range lies in it; else null (the caller then reads). No read is started and nothing awaits:
   * a reader parsing many small records (inodes) out of one block skips a promise per record. The view
   * is valid until the caller next gives way (await) and must not be kept: it is not marked as handed
   * out, so the window's buffer may be reused once it is dropped.
   */
  peek(offset: number, length: number): { buf: Buffer; at: number } | null {
    const W = this.windowSize;
    const i = Math.floor(offset / W);
    if (Math.floor((offset + length - 1) / W) !== i) return null;
    let w: Window | undefined;
    if (i === this.lastIndex && this.last && !this.last.dropped) w = this.last;
    else {
      w = this.windows.get(i);
      if (!w || !w.bytes) return null;
      // Most recently used last, as `window` keeps them.
      this.windows.delete(i);
      this.windows.set(i, w);
    }
    if (!w.bytes) return null;
    // A walk served by peeks alone (files read ahead with their neighbours) keeps the read-ahead going
    // too, or it would stop at the windows read ahead of the last real read. Fetching can drop only
    // older windows: `w` was just made the most recent.
    if (i !== this.lastIndex) this.keepAhead(i);
    this.lastIndex = i;
    this.last = w;
    return { buf: w.bytes, at: offset - i * W };
  }

  /**
   * A file of `size` bytes lying in one piece at `offset` of the volume, as FsReader.peekFile gives it:
   * its bytes from a window already read; while that window is not read yet, a promise that settles
   * once it is (the read started now if need be, with its read-ahead), after which the caller asks
   * again; null when the bytes cross windows.
   */
  peekFile(offset: number, size: number): PeekedFile | Promise<unknown> | null {
    if (size === 0) return { size, pieces: [] };
    const view = this.peek(offset, size);
    if (view) return { size, pieces: [{ offset: 0, buf: view.buf, at: view.at, length: size }] };
    const i = Math.floor(offset / this.windowSize);
    if (Math.floor((offset + size - 1) / this.windowSize) !== i) return null;
    return this.window(i).data.then(noop, noop);
  }

  /** Reaching a window read ahead asks for the one `ahead` further on. */
  private keepAhead(i: number): void {
    if (this.ahead > 0 && this.windows.has(i - 1)) {
      const next = i + this.ahead;
      if (!this.windows.has(next) && next * this.windowSize < this.volume.size) this.fetch(next);
    }
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
      const w = this.window(first);
      w.viewed = true;
      return (await w.data).subarray(offset - first * W, offset - first * W + length);
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
      const w = this.window(i);
      // Held while the copy waits, so that a drop meanwhile does not hand the buffer to another window.
      w.copying++;
      try {
        const data = await w.data;
        const from = Math.max(offset, i * W);
        const to = Math.min(end, (i + 1) * W);
        data.copy(buf, from - offset, from - i * W, to - i * W);
      } finally {
        w.copying--;
        this.release(w);
      }
    }
  }
}

function noop(): void {
  // settled either way: a failed read is retried and reported by the caller's own read
}
