import type { FsTime } from '../filesystem.js';

/**
 * DOS dates and times (fatgen103 section 6.1, "Date and Time Formats"): date bits 15-9 are years
 * since 1980, 8-5 the month, 4-0 the day; time bits 15-11 hours, 10-5 minutes, 4-0 two-second units.
 * They carry no time zone: they are the writer's local time. We read them as UTC, as Linux does when
 * mounted with tz=UTC (and by default on a machine whose kernel time zone is UTC), and as mtools and
 * 7-Zip show them under TZ=UTC.
 *
 * Out-of-range fields are taken as Linux takes them: month and day 0 count as 1, and hours, minutes
 * and seconds are added as they stand.
 */
/** Midnight of each DOS date met, in seconds: a tree's files share few dates, and Date.UTC per entry showed in profiles. */
const midnights = new Map<number, number>();

function midnightOf(date: number): number {
  let m = midnights.get(date);
  if (m === undefined) {
    const year = 1980 + (date >> 9);
    const month = Math.max(1, (date >> 5) & 0x0f);
    const day = Math.max(1, date & 0x1f);
    m = Date.UTC(year, month - 1, day) / 1000;
    // At most 65536 dates exist: the map is bounded whatever the volume holds.
    midnights.set(date & 0xffff, m);
  }
  return m;
}

export function dosTime(date: number, time: number, centiseconds = 0): FsTime {
  const midnight = midnightOf(date & 0xffff);
  const seconds = (time >> 11) * 3600 + ((time >> 5) & 0x3f) * 60 + (time & 0x1f) * 2;
  // The creation time's tenths field (DIR_CrtTimeTenth) counts 10 ms units, 0-199, on top of the two-second time.
  const cs = Math.min(centiseconds, 199);
  return { sec: midnight + seconds + Math.floor(cs / 100), nsec: (cs % 100) * 10_000_000 };
}
