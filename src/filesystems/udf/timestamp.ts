import type { FsTime } from '../filesystem.js';

/**
 * A timestamp (ECMA-167 1/7.3, UDF 2.60 2.1.4): type and time zone, then the local date and time with
 * centi-, hundreds-of-micro- and microseconds. Type 1 is local time with the zone's offset from UTC in
 * minutes (-2047: unknown, read as UTC); the result is seconds since the Unix epoch.
 */
/** Midnights (ms) of the dates met: a tree's entries share few dates, and Date.UTC per time showed in profiles. */
const midnights = new Map<number, number>();
const MAX_MIDNIGHTS = 4096;

function midnight(year: number, month: number, day: number): number {
  const key = (year * 16 + month) * 32 + day;
  let ms = midnights.get(key);
  if (ms === undefined) {
    ms = Date.UTC(year, month - 1, day);
    // Date.UTC maps years 0-99 to 1900-1999.
    if (year >= 0 && year < 100) ms = new Date(ms).setUTCFullYear(year);
    // A volume of many distinct dates (at most 2^16 * 12 * 31) must not grow this without bound.
    if (midnights.size >= MAX_MIDNIGHTS) midnights.clear();
    midnights.set(key, ms);
  }
  return ms;
}

export function parseTimestamp(b: Buffer, at: number): FsTime | undefined {
  const typeAndZone = b.readUInt16LE(at);
  const year = b.readInt16LE(at + 2);
  const month = b[at + 4];
  const day = b[at + 5];
  const hour = b[at + 6];
  const minute = b[at + 7];
  const second = b[at + 8];
  const cs = b[at + 9];
  const hus = b[at + 10];
  const us = b[at + 11];
  if (year === 0 && month === 0 && day === 0) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || cs > 99 || hus > 99 || us > 99) return undefined;
  let zone = typeAndZone & 0xfff;
  if (zone & 0x800) zone -= 0x1000;
  const offset = (typeAndZone >> 12) === 1 && zone >= -1440 && zone <= 1440 ? zone : 0;
  const fixed = midnight(year, month, day) + ((hour * 60 + minute) * 60 + second) * 1000;
  return { sec: Math.floor(fixed / 1000) - offset * 60, nsec: (cs * 10000 + hus * 100 + us) * 1000 };
}
