import type { FsTime } from '../filesystem.js';

/**
 * $STANDARD_INFORMATION (type 0x10): the four timestamps and the DOS-style file attributes
 * (NTFS Documentation, "$STANDARD_INFORMATION").
 */

export interface StandardInformation {
  created: FsTime;
  modified: FsTime;
  /** When the MFT record last changed: Unix's ctime. */
  changed: FsTime;
  accessed: FsTime;
  attributes: number;
}

/** 100 ns intervals between 1601-01-01 (the NT epoch) and 1970-01-01. */
const EPOCH_DELTA = 116444736000000000n;
const TICKS = 10000000n;

/** An NT timestamp (100 ns since 1601, unsigned 64-bit) as seconds and nanoseconds since the Unix epoch. */
export function ntTime(b: Buffer, at: number): FsTime {
  const t = b.readBigUInt64LE(at) - EPOCH_DELTA;
  // Floor division, so times before 1970 keep 0 <= nsec < 1e9.
  let sec = t / TICKS;
  let rem = t % TICKS;
  if (rem < 0n) {
    sec -= 1n;
    rem += TICKS;
  }
  return { sec: Number(sec), nsec: Number(rem) * 100 };
}

/** The value's fields, or null when it is shorter than the 48 bytes of NTFS 1.2. */
export function parseStandardInformation(b: Buffer): StandardInformation | null {
  if (b.length < 48) return null;
  return {
    created: ntTime(b, 0),
    modified: ntTime(b, 8),
    changed: ntTime(b, 16),
    accessed: ntTime(b, 24),
    attributes: b.readUInt32LE(32),
  };
}
