import type { ByteSource } from '../../io/file.js';
import { decodeBatEntry, type BatEntry } from './bat.js';

const PAGE_BYTES = 1024 * 1024;
const PAGE_ENTRIES = PAGE_BYTES / 8;
const MAX_CACHED_PAGES = 64;

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

  /** Calls `visit` for every entry in order, streaming the pages without keeping them. */
  async scan(visit: (index: number, entry: BatEntry) => void): Promise<void> {
    const pages = Math.ceil(this.entryCount / PAGE_ENTRIES);
    for (let p = 0; p < pages; p++) {
      const buf = this.cache.get(p) ?? (await this.loadPage(p));
      const n = Math.min(PAGE_ENTRIES, this.entryCount - p * PAGE_ENTRIES);
      for (let i = 0; i < n; i++) visit(p * PAGE_ENTRIES + i, decodeBatEntry(buf, i * 8));
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

  private async loadPage(p: number): Promise<Buffer> {
    const n = Math.min(PAGE_ENTRIES, this.entryCount - p * PAGE_ENTRIES);
    const buf = Buffer.alloc(n * 8);
    await this.source.readAt(buf, this.fileOffset + p * PAGE_BYTES);
    return buf;
  }
}
