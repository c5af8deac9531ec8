import type { ByteSource } from '../../io/file.js';
import { readExact } from '../../io/file.js';
import { SECTOR_SIZE } from './constants.js';

/** Entries per page: 256 KiB of map, 256 GiB of disk with 1 MiB blocks. */
const PAGE_ENTRIES = 64 * 1024;
/** Pages kept: 16 MiB of map, enough for a 16 TiB disk to be walked without a second read. */
const MAX_PAGES = 64;
const ENTRIES_PER_SECTOR = SECTOR_SIZE / 4;

/**
 * The block map (one u32 LE per block: its slot in the data area, or unallocated / zero), read a page
 * at a time into a bounded cache: a map of millions of entries is never held whole. Entries changed by
 * writes and not yet committed are kept apart (`pending`) and win over the file's.
 */
export class BlockMap {
  private readonly pages = new Map<number, Buffer>();
  /** Entries changed in memory, not yet in the file: block -> entry. */
  readonly pending = new Map<number, number>();

  constructor(
    private readonly src: ByteSource,
    readonly offset: number,
    readonly count: number,
  ) {}

  private async page(p: number): Promise<Buffer> {
    const cached = this.pages.get(p);
    if (cached) {
      // Most recently used last, so the first key is the one to evict.
      this.pages.delete(p);
      this.pages.set(p, cached);
      return cached;
    }
    const first = p * PAGE_ENTRIES;
    const n = Math.min(PAGE_ENTRIES, this.count - first);
    const buf = await readExact(this.src, this.offset + first * 4, n * 4, 'VDI block map');
    if (this.pages.size >= MAX_PAGES) this.pages.delete(this.pages.keys().next().value as number);
    this.pages.set(p, buf);
    return buf;
  }

  async entry(block: number): Promise<number> {
    const mine = this.pending.get(block);
    if (mine !== undefined) return mine;
    const page = await this.page(Math.floor(block / PAGE_ENTRIES));
    return page.readUInt32LE((block % PAGE_ENTRIES) * 4);
  }

  /** Calls `fn` for every block of [from, to) in order, with its entry (pending ones included). */
  async walk(from: number, to: number, fn: (block: number, entry: number) => void): Promise<void> {
    for (let b = from; b < to; ) {
      const p = Math.floor(b / PAGE_ENTRIES);
      const page = await this.page(p);
      const end = Math.min(to, (p + 1) * PAGE_ENTRIES);
      for (; b < end; b++) {
        const mine = this.pending.size > 0 ? this.pending.get(b) : undefined;
        fn(b, mine ?? page.readUInt32LE((b - p * PAGE_ENTRIES) * 4));
      }
    }
  }

  /**
   * The map's sectors holding `blocks` (entries from `values`), as runs of whole sectors read from the
   * file with the new entries laid over them: what a commit writes. Runs are at most `maxRun` bytes.
   */
  async sectorsFor(values: Map<number, number>, maxRun: number): Promise<{ fileOffset: number; data: Buffer }[]> {
    const sectors = [...new Set([...values.keys()].map((b) => Math.floor(b / ENTRIES_PER_SECTOR)))].sort((a, b) => a - b);
    const runs: { first: number; count: number }[] = [];
    for (const s of sectors) {
      const last = runs[runs.length - 1];
      if (last && last.first + last.count === s && (last.count + 1) * SECTOR_SIZE <= maxRun) last.count++;
      else runs.push({ first: s, count: 1 });
    }
    const out: { fileOffset: number; data: Buffer }[] = [];
    for (const r of runs) {
      const fileOffset = this.offset + r.first * SECTOR_SIZE;
      // The map's last sector may end past its last entry (QEMU pads the map to a sector); those bytes
      // are kept as the file has them.
      const data = Buffer.alloc(r.count * SECTOR_SIZE);
      await this.src.readAt(data, fileOffset);
      const b0 = r.first * ENTRIES_PER_SECTOR;
      const b1 = Math.min(this.count, (r.first + r.count) * ENTRIES_PER_SECTOR);
      for (let b = b0; b < b1; b++) {
        const v = values.get(b);
        if (v !== undefined) data.writeUInt32LE(v, (b - b0) * 4);
      }
      out.push({ fileOffset, data });
    }
    return out;
  }

  /** `values` are in the file now: cached pages take them and they stop being pending (unless changed since). */
  committed(values: Map<number, number>): void {
    for (const [b, v] of values) {
      const page = this.pages.get(Math.floor(b / PAGE_ENTRIES));
      if (page) page.writeUInt32LE(v, (b % PAGE_ENTRIES) * 4);
      if (this.pending.get(b) === v) this.pending.delete(b);
    }
  }
}
