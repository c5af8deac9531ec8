import type { ByteSource } from '../../io/file.js';
import { LOG_SECTOR_SIZE } from './constants.js';
import { replayedFileSize, type ReplayPlan } from './log.js';

/**
 * The file as it will be once the pending log is replayed, without writing anything: reads come from
 * the file and the log's sectors are laid over them. This is how read-only commands see a dirty image.
 */
export class LogOverlay implements ByteSource {
  readonly path: string;
  private readonly base: ByteSource;
  private readonly length: number;
  /** 4 KiB page index -> the bytes the log puts there (the last writer wins). */
  private readonly pages = new Map<number, Buffer>();
  /** Zero ranges not overwritten later by a data page (those pages were removed when written). */
  private readonly zeros: { start: number; end: number }[] = [];

  constructor(base: ByteSource, plan: ReplayPlan) {
    this.base = base;
    this.path = base.path;
    this.length = replayedFileSize(plan, base.size());
    for (const entry of plan.entries) {
      for (const op of entry.operations) {
        if (op.kind === 'data') {
          this.pages.set(op.fileOffset / LOG_SECTOR_SIZE, op.data);
        } else if (op.length > 0) {
          const start = op.fileOffset;
          const end = op.fileOffset + op.length;
          for (const key of [...this.pages.keys()]) {
            const at = key * LOG_SECTOR_SIZE;
            if (at >= start && at < end) this.pages.delete(key);
          }
          this.zeros.push({ start, end });
        }
      }
    }
  }

  size(): number {
    return this.length;
  }

  async readAt(buf: Uint8Array, position: number): Promise<number> {
    await this.base.readAt(buf, position);
    const end = position + buf.length;
    for (const z of this.zeros) {
      const s = Math.max(z.start, position);
      const e = Math.min(z.end, end);
      if (s < e) buf.fill(0, s - position, e - position);
    }
    if (this.pages.size > 0) {
      const first = Math.floor(position / LOG_SECTOR_SIZE);
      const last = Math.floor((end - 1) / LOG_SECTOR_SIZE);
      for (let p = first; p <= last; p++) {
        const page = this.pages.get(p);
        if (!page) continue;
        const pageStart = p * LOG_SECTOR_SIZE;
        const s = Math.max(pageStart, position);
        const e = Math.min(pageStart + LOG_SECTOR_SIZE, end);
        buf.set(page.subarray(s - pageStart, e - pageStart), s - position);
      }
    }
    return Math.max(0, Math.min(buf.length, this.length - position));
  }
}
