import type { FsTime } from '../filesystem.js';

/**
 * A timestamp (ECMA-167 1/7.3, UDF 2.60 2.1.4): type and time zone, then the local date and time with
 * centi-, hundreds-of-micro- and microseconds. Type 1 is local time with the zone's offset from UTC in
 * minutes (-2047: unknown, read as UTC); the result is seconds since the Unix epoch.
 */
export function parseTimestamp(b: Buffer, at: number): FsTime | undefined {
  const typeAndZone = b.readUInt16LE(at);
  const year = b.readInt16LE(at + 2);
  const [month, day, hour, minute, second, cs, hus, us] = [4, 5, 6, 7, 8, 9, 10, 11].map((i) => b[at + i]);
  if (year === 0 && month === 0 && day === 0) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || cs > 99 || hus > 99 || us > 99) return undefined;
  let zone = typeAndZone & 0xfff;
  if (zone & 0x800) zone -= 0x1000;
  const offset = (typeAndZone >> 12) === 1 && zone >= -1440 && zone <= 1440 ? zone : 0;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  // Date.UTC maps years 0-99 to 1900-1999.
  const fixed = year >= 0 && year < 100 ? new Date(ms).setUTCFullYear(year) : ms;
  return { sec: Math.floor(fixed / 1000) - offset * 60, nsec: (cs * 10000 + hus * 100 + us) * 1000 };
}
