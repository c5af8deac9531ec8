import type { FsTime } from '../filesystem.js';
import { recordingDate } from './dates.js';
import { SECTOR, ucs2be } from './descriptors.js';

/**
 * A directory record (ECMA-119 9.1): fixed 33 bytes, the file identifier, a pad byte when the
 * identifier's length is even, then the system use area that SUSP and Rock Ridge fill. Records never
 * cross a 2048-byte sector (6.8.1.1); a zero length byte means the rest of the sector is padding.
 */

export const RECORD_FIXED = 33;

/** File flags (9.1.6). */
export const FLAG_HIDDEN = 0x01; // "existence": hide from the user
export const FLAG_DIRECTORY = 0x02;
export const FLAG_ASSOCIATED = 0x04;
export const FLAG_MULTI_EXTENT = 0x80; // not the final record of a file

/**
 * A parsed record. Its numbers are read at once (where the extent lies may be corrected, as for the
 * root's "." record from its descriptor); the identifier, the system use area and the recording
 * date are read from the directory's bytes (which are never rewritten) only when asked for: a tree of
 * 20,000 files paid for two views and a date per record that most records never needed.
 */
export class DirectoryRecord {
  /** Byte offset of the record in the volume: stable, unique, used as the inode number. */
  readonly position: number;
  readonly length: number;
  /** Extended attribute record length, in logical blocks, that precedes the data (9.1.2). */
  xarLength: number;
  /** First logical block of the extent. */
  extent: number;
  dataLength: number;
  flags: number;
  /** Interleaving (9.1.7, 9.1.8): both zero for a file recorded in one run. */
  readonly fileUnitSize: number;
  readonly interleaveGap: number;
  /** The bytes the record lies in, and where in them its identifier and system use area are. */
  readonly buf: Buffer;
  readonly at: number;
  readonly idLength: number;
  readonly suStart: number;

  constructor(b: Buffer, at: number, position: number) {
    const len = b[at];
    const idLen = b[at + 32];
    this.position = position;
    this.length = len;
    this.xarLength = b[at + 1];
    // Both-endian: the little-endian half (9.1.3, 9.1.4; 7.3.3).
    this.extent = b.readUInt32LE(at + 2);
    this.dataLength = b.readUInt32LE(at + 10);
    this.flags = b[at + 25];
    this.fileUnitSize = b[at + 26];
    this.interleaveGap = b[at + 27];
    this.buf = b;
    this.at = at;
    this.idLength = idLen;
    this.suStart = Math.min(len, RECORD_FIXED + idLen + (idLen % 2 === 0 ? 1 : 0));
  }

  /** The raw file identifier: 0x00 is ".", 0x01 is "..". */
  get identifier(): Buffer {
    return this.buf.subarray(this.at + 33, this.at + 33 + this.idLength);
  }

  /** The system use area (empty when there is none). */
  get systemUse(): Buffer {
    return this.buf.subarray(this.at + this.suStart, this.at + this.length);
  }

  get recorded(): FsTime | undefined {
    return recordingDate(this.buf, this.at + 18);
  }

  /** Whether two records carry the same identifier (the records of one multi-extent file). */
  sameIdentifier(other: DirectoryRecord): boolean {
    return this.idLength === other.idLength && this.buf.compare(other.buf, other.at + 33, other.at + 33 + other.idLength, this.at + 33, this.at + 33 + this.idLength) === 0;
  }
}

/**
 * Where a record is, for messages: "<volume>: directory record at byte N", put together only when a
 * message is made (a string per record of a tree showed in its allocations).
 */
export class RecordPlace {
  constructor(readonly volume: string, readonly position: number) {}

  toString(): string {
    return `${this.volume}: directory record at byte ${this.position}`;
  }
}

/** A place in messages: a record's, or any other spelled out. */
export type Where = string | RecordPlace;

/** Why a record is malformed, or null when it is sound; `room` is what is left of its sector. */
export function recordProblem(b: Buffer, at: number, room: number): string | null {
  const len = b[at];
  if (len < RECORD_FIXED + 1) return `length ${len} is below the ${RECORD_FIXED + 1} bytes of a record`;
  if (len > room) return `length ${len} crosses the end of its sector`;
  const idLen = b[at + 32];
  if (idLen === 0) return 'empty file identifier';
  if (RECORD_FIXED + idLen > len) return `file identifier of ${idLen} bytes overruns the record's ${len}`;
  return null;
}

/** Parses a record already checked with recordProblem; `b` must not be rewritten while the record is in use. */
export function parseRecord(b: Buffer, at: number, position: number): DirectoryRecord {
  return new DirectoryRecord(b, at, position);
}

export function isDotOrDotDot(r: DirectoryRecord): boolean {
  return r.idLength === 1 && (r.buf[r.at + 33] === 0 || r.buf[r.at + 33] === 1);
}

/**
 * A primary-tree name as Linux shows it with its default map=normal: lower case, a trailing ";1" (and
 * the "." before it, ECMA-119 7.5.1 requires one) dropped, any other ";" or "/" made ".".
 */
export function isoName(id: Buffer): string {
  let s = id.toString('latin1');
  const nul = s.indexOf('\0');
  if (nul >= 0) s = s.slice(0, nul);
  if (s.endsWith('.;1')) s = s.slice(0, -3);
  else if (s.endsWith(';1')) s = s.slice(0, -2);
  return s.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/[;/]/g, '.');
}

/** A Joliet name as Linux shows it: UCS-2 big-endian, a trailing ";1" dropped, then trailing dots (but not a lone "."). */
export function jolietName(id: Buffer): string {
  let s = ucs2be(id);
  if (s.length > 2 && s.endsWith(';1')) s = s.slice(0, -2);
  while (s.length >= 2 && s.endsWith('.')) s = s.slice(0, -1);
  return s;
}

/** Where the record at byte `at` of a directory's sector run may end: records do not cross sectors. */
export function roomInSector(at: number): number {
  return SECTOR - (at % SECTOR);
}
