import type { FsTime } from '../filesystem.js';

/**
 * The two date forms of ECMA-119: the 7-byte recording date of directory records (9.1.5) and the
 * 17-byte digit form of volume descriptors (8.4.26.1), which Rock Ridge TF also uses in its long form
 * (RRIP 4.1.6). Both end in the offset from GMT in 15-minute units, -48 (west) to +52 (east).
 */

/** Offsets outside ECMA-119's range are ignored (taken as GMT), as Linux's isofs does. */
function gmtOffsetSeconds(b: number): number {
  const q = b > 127 ? b - 256 : b;
  return q >= -48 && q <= 52 ? q * 15 * 60 : 0;
}

/**
 * Midnights (ms) of the dates met: the records of a tree share few dates, and a Date object per time
 * (four a record with Rock Ridge) showed in profiles. Bounded: cleared when full.
 */
const midnights = new Map<number, number>();
const MAX_MIDNIGHTS = 4096;

/** Milliseconds since the epoch; Date.UTC alone would read years 0-99 as 1900-1999. */
function utc(year: number, month: number, day: number, h: number, m: number, s: number): number {
  // Month and day as they stand (out-of-range ones roll over as setUTCFullYear rolls them); the key
  // keeps every combination apart (month and day are single bytes or two digits: below 256).
  const key = (year * 256 + month) * 256 + day;
  let midnight = midnights.get(key);
  if (midnight === undefined) {
    const d = new Date(0);
    d.setUTCFullYear(year, month - 1, day);
    midnight = d.getTime();
    if (midnights.size >= MAX_MIDNIGHTS) midnights.clear();
    midnights.set(key, midnight);
  }
  return midnight + ((h * 60 + m) * 60 + s) * 1000;
}

/**
 * The times met, by their seconds: one object for every record of a tree that shares a time (files
 * written in the same second), not three new ones per Rock Ridge record, each kept as long as its node.
 * Shared, so never to be changed. Bounded: cleared when full.
 */
const times = new Map<number, FsTime>();
const MAX_TIMES = 4096;

/** A 7-byte recording date; undefined when all zero ("not specified"). */
export function recordingDate(b: Buffer, at: number): FsTime | undefined {
  let any = false;
  for (let i = 0; i < 7; i++) if (b[at + i] !== 0) any = true;
  if (!any) return undefined;
  const ms = utc(1900 + b[at], b[at + 1], b[at + 2], b[at + 3], b[at + 4], b[at + 5]);
  const sec = Math.floor(ms / 1000) - gmtOffsetSeconds(b[at + 6]);
  let t = times.get(sec);
  if (t === undefined) {
    if (times.size >= MAX_TIMES) times.clear();
    t = { sec, nsec: 0 };
    times.set(sec, t);
  }
  return t;
}

/** A 17-byte digit date as an FsTime (hundredths become nanoseconds); undefined when unset or not digits. */
export function digitDate(b: Buffer, at: number): FsTime | undefined {
  const s = b.toString('latin1', at, at + 16);
  if (!/^\d{16}$/.test(s) || /^0+$/.test(s)) return undefined;
  const n = (i: number, len: number) => Number(s.slice(i, i + len));
  const ms = utc(n(0, 4), n(4, 2), n(6, 2), n(8, 2), n(10, 2), n(12, 2));
  return { sec: Math.floor(ms / 1000) - gmtOffsetSeconds(b[at + 16]), nsec: n(14, 2) * 10_000_000 };
}

/** `YYYY-MM-DD-HH-MM-SS-CC` from a 17-byte digit date, as blkid builds an ISO's UUID; undefined when unset. */
export function digitDateUuid(b: Buffer, at: number): string | undefined {
  const s = b.toString('latin1', at, at + 16);
  if (!/^\d{16}$/.test(s) || /^0+$/.test(s)) return undefined;
  return `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}-${s.slice(8, 10)}-${s.slice(10, 12)}-${s.slice(12, 14)}-${s.slice(14, 16)}`;
}
