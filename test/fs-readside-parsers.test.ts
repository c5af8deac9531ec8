import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { dosTime } from '../src/filesystems/fat/dos-time.js';
import { digitDate, recordingDate } from '../src/filesystems/iso9660/dates.js';
import { parseTimestamp } from '../src/filesystems/udf/timestamp.js';
import { bigtime } from '../src/filesystems/xfs/inode.js';
import { parseExtent } from '../src/filesystems/xfs/bmap.js';
import type { FsTime } from '../src/filesystems/filesystem.js';

/**
 * Parsers the read side made faster, held against the plain forms they replace. The readers cache the midnight of each date they meet instead of building a Date per time. These
 * hold the cached forms against the plain Date arithmetic they replace, over every byte value a
 * hostile volume could put in the fields (and the same dates met twice, to go through the cache).
 */

function refUtc(year: number, month: number, day: number, h: number, m: number, s: number): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(h, m, s, 0);
  return d.getTime();
}

function refRecording(b: Buffer): FsTime | undefined {
  if (b.subarray(0, 7).every((x) => x === 0)) return undefined;
  const q = b[6] > 127 ? b[6] - 256 : b[6];
  const off = q >= -48 && q <= 52 ? q * 15 * 60 : 0;
  return { sec: Math.floor(refUtc(1900 + b[0], b[1], b[2], b[3], b[4], b[5]) / 1000) - off, nsec: 0 };
}

function refUdf(b: Buffer): FsTime | undefined {
  const typeAndZone = b.readUInt16LE(0);
  const year = b.readInt16LE(2);
  const [month, day, hour, minute, second, cs, hus, us] = [4, 5, 6, 7, 8, 9, 10, 11].map((i) => b[i]);
  if (year === 0 && month === 0 && day === 0) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60 || cs > 99 || hus > 99 || us > 99) return undefined;
  let zone = typeAndZone & 0xfff;
  if (zone & 0x800) zone -= 0x1000;
  const offset = typeAndZone >> 12 === 1 && zone >= -1440 && zone <= 1440 ? zone : 0;
  const ms = Date.UTC(year, month - 1, day, hour, minute, second);
  const fixed = year >= 0 && year < 100 ? new Date(ms).setUTCFullYear(year) : ms;
  return { sec: Math.floor(fixed / 1000) - offset * 60, nsec: (cs * 10000 + hus * 100 + us) * 1000 };
}

function refDos(date: number, time: number, centiseconds: number): FsTime {
  const midnight = Date.UTC(1980 + (date >> 9), Math.max(1, (date >> 5) & 0x0f) - 1, Math.max(1, date & 0x1f)) / 1000;
  const seconds = (time >> 11) * 3600 + ((time >> 5) & 0x3f) * 60 + (time & 0x1f) * 2;
  const cs = Math.min(centiseconds, 199);
  return { sec: midnight + seconds + Math.floor(cs / 100), nsec: (cs % 100) * 10_000_000 };
}

test('ISO-9660 recording and digit dates equal Date arithmetic, cached or not', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 7, maxLength: 7 }), (bytes) => {
      const b = Buffer.from(bytes);
      assert.deepEqual(recordingDate(b, 0), refRecording(b));
      assert.deepEqual(recordingDate(b, 0), refRecording(b));
    }),
    { numRuns: 2000 },
  );
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 16, maxLength: 16 }), fc.integer({ min: 0, max: 255 }), (digits, zone) => {
      const b = Buffer.from(digits.join('') + String.fromCharCode(zone), 'latin1');
      const s = digits.join('');
      const n = (i: number, len: number) => Number(s.slice(i, i + len));
      const q = zone > 127 ? zone - 256 : zone;
      const expected = /^0+$/.test(s) ? undefined : {
        sec: Math.floor(refUtc(n(0, 4), n(4, 2), n(6, 2), n(8, 2), n(10, 2), n(12, 2)) / 1000) - (q >= -48 && q <= 52 ? q * 900 : 0),
        nsec: n(14, 2) * 10_000_000,
      };
      assert.deepEqual(digitDate(b, 0), expected);
    }),
    { numRuns: 2000 },
  );
});

test('UDF timestamps equal Date arithmetic, cached or not', () => {
  fc.assert(
    fc.property(fc.uint8Array({ minLength: 12, maxLength: 12 }), fc.boolean(), (bytes, plausible) => {
      const b = Buffer.from(bytes);
      if (plausible) {
        // Mostly valid fields, so that the date arithmetic itself is reached.
        b[4] = 1 + (b[4] % 12);
        b[5] = 1 + (b[5] % 31);
        b[6] %= 24;
        b[7] %= 60;
        b[8] %= 61;
        b[9] %= 100;
        b[10] %= 100;
        b[11] %= 100;
      }
      assert.deepEqual(parseTimestamp(b, 0), refUdf(b));
      assert.deepEqual(parseTimestamp(b, 0), refUdf(b));
    }),
    { numRuns: 3000 },
  );
});

test('FAT DOS times equal Date arithmetic, cached or not', () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 255 }), (date, time, cs) => {
      assert.deepEqual(dosTime(date, time, cs), refDos(date, time, cs));
      assert.deepEqual(dosTime(date, time, cs), refDos(date, time, cs));
    }),
    { numRuns: 3000 },
  );
});

test('XFS bigtime stamps and extent records read from 32-bit halves equal the BigInt arithmetic', () => {
  fc.assert(
    fc.property(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), (a, b) => {
      const buf = Buffer.alloc(16);
      buf.writeBigUInt64BE(a, 0);
      buf.writeBigUInt64BE(b, 8);
      assert.deepEqual(bigtime(buf, 0), { sec: Number(a / 1_000_000_000n - 2n ** 31n), nsec: Number(a % 1_000_000_000n) });
      assert.deepEqual(parseExtent(buf, 0), {
        unwritten: a >> 63n === 1n,
        offset: Number((a & ((1n << 63n) - 1n)) >> 9n),
        block: Number(((a & 0x1ffn) << 43n) | (b >> 21n)),
        count: Number(b & 0x1fffffn),
      });
    }),
    { numRuns: 5000 },
  );
});
