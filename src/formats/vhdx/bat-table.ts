import type { ByteSource } from '../../io/file.js';
import { decodeBatEntry, type BatEntry } from './bat.js';
import { allocIoBuffer } from '../../io/buffers.js';

const PAGE_BYTES = 1024 * 1024;
const PAGE_ENTRIES = PAGE_BYTES / 8;
const MAX_CACHED_PAGES = 64;
const ZERO_ENTRIES = Buffer.alloc(64 * 1024); // 8192 empty entries, compared a span at a time

/**
 * The BAT, read a 1 MiB page at a time when first needed: an image of 64 TiB in 1 MiB blocks has a
 * 512 MiB BAT, and `info` or a small read should not pay for all of it.
 */
export class BatTable {
  private readonly cache = new Map<number, Buffer>();

  constructor(
    private readonly source: ByteSource,
    readonly fileOffset: number,
    readonly entryCount: number,
  ) {}

  async entry(index: number): Promise<BatEntry> {
    const page = await this.page(Math.floor(index / PAGE_ENTRIES));
    return decodeBatEntry(page, (index % PAGE_ENTRIES) * 8);
  }

  /** The entry when its page is already read, else null (nothing is read). */
  entryNow(index: number): BatEntry | null {
    const page = this.cache.get(Math.floor(index / PAGE_ENTRIES));
    return page ? decodeBatEntry(page, (index % PAGE_ENTRIES) * 8) : null;
  }

  /**
   * Calls `visit` for every entry in order, streaming the pages without keeping them. With
   * `zeroRun`, runs of all-zero entries (NOT_PRESENT, offset 0: all of an empty disk) are reported in
   * bulk instead: a 64 TiB image has a million entries, and decoding each one costs more than start-up.
   * `range` limits the walk to entries [from, to).
   */
  async scan(
    visit: (index: number, entry: BatEntry) => void,
    zeroRun?: (first: number, count: number) => void,
    onProgress?: (done: number, total: number) => void,
    range: { from: number; to: number } = { from: 0, to: this.entryCount },
  ): Promise<void> {
    const from = Math.max(0, range.from);
    const to = Math.min(this.entryCount, range.to);
    const zeros = zeroRun ? ZERO_ENTRIES : null;
    // A walk of the whole table reads each page into one scratch buffer: nothing keeps them, so a
    // 512 MiB table need not become 512 allocations. A walk of part of the table (a window of the disk, walked again for the next window) keeps its
    // pages in the cache like single lookups do.
    let scratch: Buffer | null = null;
    const whole = from === 0 && to === this.entryCount;
    for (let p = Math.floor(from / PAGE_ENTRIES); p * PAGE_ENTRIES < to; p++) {
      const buf = whole ? (this.cache.get(p) ?? (await this.loadPage(p, (scratch ??= allocIoBuffer(PAGE_BYTES))))) : await this.page(p);
      const base = p * PAGE_ENTRIES;
      const start = Math.max(0, from - base);
      const n = Math.min(PAGE_ENTRIES, to - base);
      const dv = new DataView(buf.buffer, buf.byteOffset, buf.length);
      const entry: BatEntry = { state: 0, reserved: 0, fileOffset: 0 };
      const SPAN = zeros ? zeros.length / 8 : n;
      for (let first = start; first < n; first += SPAN) {
        const count = Math.min(SPAN, n - first);
        if (zeros && buf.subarray(first * 8, (first + count) * 8).equals(zeros.subarray(0, count * 8))) {
          zeroRun?.(base + first, count);
          continue;
        }
        for (let i = first; i < first + count; i++) {
          const lo = dv.getUint32(i * 8, true);
          const hi = dv.getUint32(i * 8 + 4, true);
          entry.state = lo & 7;
          entry.reserved = (lo >>> 3) & 0x1ffff;
          entry.fileOffset = ((lo >>> 20) + hi * 4096) * 1048576;
          visit(base + i, entry);
        }
      }
      onProgress?.(base + n, to);
    }
  }

  /** Forgets cached pages, after the BAT was changed on disk. */
  invalidate(): void {
    this.cache.clear();
  }

  private async page(p: number): Promise<Buffer> {
    const hit = this.cache.get(p);
    if (hit) return hit;
    const buf = await this.loadPage(p);
    if (this.cache.size >= MAX_CACHED_PAGES) this.cache.delete(this.cache.keys().next().value as number);
    this.cache.set(p, buf);
    return buf;
  }

  private async loadPage(p: number, into?: Buffer): Promise<Buffer> {
    const n = Math.min(PAGE_ENTRIES, this.entryCount - p * PAGE_ENTRIES);
    const buf = into ? into.subarray(0, n * 8) : allocIoBuffer(n * 8);
    await this.source.readAt(buf, this.fileOffset + p * PAGE_BYTES);
    return buf;
  }
}
