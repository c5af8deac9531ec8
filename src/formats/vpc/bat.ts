import type { ByteSource, PositionalFile } from '../../io/file.js';
import { UNALLOCATED } from './constants.js';

/** Entries read at a time: 64 KiB of the table. */
const WINDOW = 16 * 1024;
/** Windows kept: 16 MiB of table, a 32 TiB disk of 2 MiB blocks; more are read again as needed. */
const MAX_WINDOWS = 256;

/**
 * The Block Allocation Table: big-endian u32 sector numbers, 0xFFFFFFFF for a block stored nowhere.
 * Read in windows on demand and kept in a bounded cache, so a table the header claims is never
 * allocated whole; only `entries` entries (the ones the virtual size needs) are ever looked at.
 */
export class Bat {
  private readonly windows = new Map<number, Uint32Array>();

  constructor(
    private readonly src: ByteSource,
    readonly offset: number,
    readonly entries: number,
  ) {}

  async get(index: number): Promise<number> {
    const w = Math.floor(index / WINDOW);
    let win = this.windows.get(w);
    if (win) {
      // Most recently used last, so eviction takes the oldest.
      this.windows.delete(w);
      this.windows.set(w, win);
    } else {
      win = await this.load(w);
    }
    return win[index - w * WINDOW];
  }

  private async load(w: number): Promise<Uint32Array> {
    const first = w * WINDOW;
    const n = Math.min(WINDOW, this.entries - first);
    const buf = Buffer.alloc(n * 4);
    await this.src.readAt(buf, this.offset + first * 4);
    const win = new Uint32Array(n);
    for (let i = 0; i < n; i++) win[i] = buf.readUInt32BE(i * 4);
    if (this.windows.size >= MAX_WINDOWS) this.windows.delete(this.windows.keys().next().value as number);
    this.windows.set(w, win);
    return win;
  }

  /** Writes entry `index` to the file (one 4-byte write: inside one sector, never torn) and the cache. */
  async set(file: PositionalFile, index: number, sector: number): Promise<void> {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(sector >>> 0);
    await file.writeAt(b, this.offset + index * 4);
    const win = this.windows.get(Math.floor(index / WINDOW));
    if (win) win[index % WINDOW] = sector >>> 0;
  }

  /**
   * Marks entries [from, to) unallocated on disk, a MiB of the table per write (whole sectors
   * where they lie inside the range: a torn write leaves each sector old or new). Entries past
   * `entries` (room the header reserves) may be written too.
   */
  async clearRange(file: PositionalFile, from: number, to: number): Promise<void> {
    const per = 16 * WINDOW;
    const chunk = Buffer.alloc(Math.min(per, Math.max(0, to - from)) * 4, 0xff);
    for (let at = from; at < to; at += per) {
      const n = Math.min(per, to - at);
      await file.writeAt(chunk.subarray(0, n * 4), this.offset + at * 4);
    }
    for (const [w, win] of this.windows) {
      for (let i = Math.max(from, w * WINDOW); i < Math.min(to, w * WINDOW + win.length); i++) win[i - w * WINDOW] = UNALLOCATED;
    }
  }

  /** Calls `fn` with every allocated entry in order, a window at a time. */
  async forEachAllocated(fn: (index: number, sector: number) => void): Promise<void> {
    for (let w = 0; w * WINDOW < this.entries; w++) {
      const win = this.windows.get(w) ?? (await this.load(w));
      for (let i = 0; i < win.length; i++) if (win[i] !== UNALLOCATED) fn(w * WINDOW + i, win[i]);
    }
  }
}
