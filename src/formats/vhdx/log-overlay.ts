import type { ByteSource } from '../../io/file.js';
import { LOG_SECTOR_SIZE } from './constants.js';
import { loggedData, replayedFileSize, type LogRegion, type ReplayPlan } from './log.js';

/** A logged data sector: where its descriptor and data are in the log, and its order in the plan. */
interface Page {
  descriptor: number;
  sector: number;
  order: number;
}

/**
 * The file as it will be once the pending log is replayed, without writing anything: reads come from
 * the file and the log's sectors are laid over them, read from the log when asked for. This is how
 * read-only commands see a dirty image.
 */
export class LogOverlay implements ByteSource {
  readonly path: string;
  private readonly base: ByteSource;
  private readonly log: LogRegion;
  private readonly length: number;
  /** 4 KiB page index -> the last data sector the log writes there, when no later zero range covers it. */
  private readonly pages = new Map<number, Page>();
  /** Zeroed ranges, sorted and disjoint; a page above outlives them (it was written after). */
  private readonly zeros: { start: number; end: number }[];

  constructor(base: ByteSource, plan: ReplayPlan) {
    this.base = base;
    this.path = base.path;
    this.log = plan.log;
    this.length = replayedFileSize(plan, base.size());
    const zeros: { start: number; end: number; order: number }[] = [];
    let order = 0;
    for (const entry of plan.entries) {
      for (const op of entry.operations) {
        order++;
        if (op.kind === 'logged') this.pages.set(op.fileOffset / LOG_SECTOR_SIZE, { descriptor: op.descriptor, sector: op.sector, order });
        else if (op.length > 0) zeros.push({ start: op.fileOffset, end: op.fileOffset + op.length, order });
      }
    }
    this.dropZeroedPages(zeros);
    this.zeros = mergeRanges(zeros);
  }

  /**
   * Forgets pages that a later zero range clears: one sweep over pages and ranges in file order,
   * with the latest-ordered active range on a heap, so many ranges over many pages cost n log n.
   */
  private dropZeroedPages(zeros: { start: number; end: number; order: number }[]): void {
    if (zeros.length === 0 || this.pages.size === 0) return;
    const byStart = [...zeros].sort((a, b) => a.start - b.start);
    const keys = [...this.pages.keys()].sort((a, b) => a - b);
    const active = new MaxHeap<{ end: number; order: number }>((a, b) => a.order - b.order);
    let z = 0;
    for (const key of keys) {
      const at = key * LOG_SECTOR_SIZE;
      while (z < byStart.length && byStart[z].start <= at) active.push(byStart[z++]);
      while (active.size() > 0 && (active.peek() as { end: number }).end <= at) active.pop();
      const top = active.peek();
      if (top && top.order > (this.pages.get(key) as Page).order) this.pages.delete(key);
    }
  }

  size(): number {
    return this.length;
  }

  async readAt(buf: Uint8Array, position: number): Promise<number> {
    await this.base.readAt(buf, position);
    const end = position + buf.length;
    // First zero range ending after `position`, by binary search over the sorted, disjoint ranges.
    let lo = 0;
    let hi = this.zeros.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.zeros[mid].end <= position) lo = mid + 1;
      else hi = mid;
    }
    for (let i = lo; i < this.zeros.length && this.zeros[i].start < end; i++) {
      const s = Math.max(this.zeros[i].start, position);
      const e = Math.min(this.zeros[i].end, end);
      if (s < e) buf.fill(0, s - position, e - position);
    }
    if (this.pages.size > 0) {
      const first = Math.floor(position / LOG_SECTOR_SIZE);
      const last = Math.floor((end - 1) / LOG_SECTOR_SIZE);
      for (let p = first; p <= last; p++) {
        const page = this.pages.get(p);
        if (!page) continue;
        const data = await loggedData(this.log, page);
        const pageStart = p * LOG_SECTOR_SIZE;
        const s = Math.max(pageStart, position);
        const e = Math.min(pageStart + LOG_SECTOR_SIZE, end);
        buf.set(data.subarray(s - pageStart, e - pageStart), s - position);
      }
    }
    return Math.max(0, Math.min(buf.length, this.length - position));
  }
}

/** Sorted, disjoint union of ranges. */
function mergeRanges(ranges: { start: number; end: number }[]): { start: number; end: number }[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  const out: { start: number; end: number }[] = [];
  for (const r of sorted) {
    const last = out[out.length - 1];
    if (last && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else out.push({ start: r.start, end: r.end });
  }
  return out;
}

/** A binary max-heap by `compare`. */
class MaxHeap<T> {
  private readonly items: T[] = [];
  constructor(private readonly compare: (a: T, b: T) => number) {}
  size(): number {
    return this.items.length;
  }
  peek(): T | undefined {
    return this.items[0];
  }
  push(item: T): void {
    const a = this.items;
    a.push(item);
    for (let i = a.length - 1; i > 0; ) {
      const parent = (i - 1) >> 1;
      if (this.compare(a[i], a[parent]) <= 0) break;
      [a[i], a[parent]] = [a[parent], a[i]];
      i = parent;
    }
  }
  pop(): T | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (a.length > 0 && last !== undefined) {
      a[0] = last;
      for (let i = 0; ; ) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.compare(a[l], a[m]) > 0) m = l;
        if (r < a.length && this.compare(a[r], a[m]) > 0) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}
