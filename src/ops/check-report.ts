/** One thing a check found, naming the structure and where it is. */
export interface Finding {
  severity: 'corruption' | 'leak' | 'warning';
  structure: string;
  offset: number;
  /** Entry index inside the structure (BAT entry, region or metadata entry), when it has one. */
  entry?: number;
  message: string;
  /** What -r all (or -r leaks) can do about it; absent when nothing can. */
  repair?: 'replay-log' | 'rewrite-header' | 'rewrite-region-table' | 'clear-bat-entry' | 'map-block' | 'truncate' | 'move-block' | 'set-refcount' | 'set-copied' | 'rewrite-footer' | 'rewrite-grain-table' | 'rewrite-grain-directory';
  fixed?: boolean;
}

/** `check` as data; keys follow `qemu-img check --output json`, plus the findings. */
export interface CheckReport {
  filename: string;
  format: string;
  'check-errors': number;
  corruptions: number;
  leaks: number;
  'corruptions-fixed': number;
  'leaks-fixed': number;
  'image-end-offset'?: number;
  'total-blocks'?: number;
  'allocated-blocks'?: number;
  /** The first findings (at most 100), each naming its structure and offset. */
  findings: Finding[];
  /** Findings counted but not listed, past the first 100. */
  'unlisted-findings'?: number;
  /** Set when the check could not complete (the image could not be read at all). */
  error?: string;
}

export function exitCodeOf(r: CheckReport): number {
  if (r['check-errors'] > 0) return 1;
  if (r.corruptions > 0) return 2;
  if (r.leaks > 0) return 3;
  return 0;
}
