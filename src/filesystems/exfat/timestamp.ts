import type { FsTime } from '../filesystem.js';

/**
 * exFAT timestamps (specification 7.4.8-7.4.10): a 32-bit local date and time with 2-second resolution,
 * a 10 ms increment (0-199) for the create and modify times, and a UTC offset byte.
 *
 * Timestamp bits: 0-4 DoubleSeconds, 5-10 Minute, 11-15 Hour, 16-20 Day, 21-24 Month, 25-31 Year from 1980.
 * UtcOffset: bit 7 OffsetValid, bits 0-6 a signed count of 15-minute intervals (7.4.10).
 */

const EPOCH_YEAR = 1980;

/**
 * The instant as seconds since the Unix epoch. A local time with a valid offset is converted to UTC; when
 * OffsetValid is clear the time is taken as UTC, as the Linux driver does with its default time_offset on
 * a UTC system. Out-of-range fields are normalised as mktime does (month 0 is December of the year
 * before), again as the Linux driver. A field of all zeros means "never set": no time at all.
 */
export function decodeTimestamp(ts: number, tenMs: number, utcOffset: number): FsTime | undefined {
  if (ts === 0) return undefined;
  const twoSeconds = ts & 0x1f;
  const minute = (ts >>> 5) & 0x3f;
  const hour = (ts >>> 11) & 0x1f;
  const day = (ts >>> 16) & 0x1f;
  const month = (ts >>> 21) & 0x0f;
  const year = EPOCH_YEAR + ((ts >>> 25) & 0x7f);
  let sec = Date.UTC(year, month - 1, day, hour, minute, twoSeconds * 2) / 1000;
  sec += Math.floor(tenMs / 100);
  const nsec = (tenMs % 100) * 10_000_000;
  if (utcOffset & 0x80) {
    // Sign-extend the 7-bit field: 0x40-0x7f are west of UTC.
    const quarters = utcOffset & 0x40 ? (utcOffset & 0x7f) - 0x80 : utcOffset & 0x3f;
    sec -= quarters * 15 * 60;
  }
  return { sec, nsec };
}
