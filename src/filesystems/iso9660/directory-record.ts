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

export interface DirectoryRecord {
  /** Byte offset of the record in the volume: stable, unique, used as the inode number. */
  position: number;
  length: number;
  /** Extended attribute record length, in logical blocks, that precedes the data (9.1.2). */
  xarLength: number;
  /** First logical block of the extent. */
  extent: number;
  dataLength: number;
  recorded?: FsTime;
  flags: number;
  /** Interleaving (9.1.7, 9.1.8): both zero for a file recorded in one run. */
  fileUnitSize: number;
  interleaveGap: number;
  /** The raw file identifier: 0x00 is ".", 0x01 is "..". */
  identifier: Buffer;
  systemUse: Buffer;
}

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

/** Parses a record already checked with recordProblem. */
export function parseRecord(b: Buffer, at: number, position: number): DirectoryRecord {
  const len = b[at];
  const idLen = b[at + 32];
  const suStart = RECORD_FIXED + idLen + (idLen % 2 === 0 ? 1 : 0);
  return {
    position,
    length: len,
    xarLength: b[at + 1],
    // Both-endian: the little-endian half (9.1.3, 9.1.4; 7.3.3).
    extent: b.readUInt32LE(at + 2),
    dataLength: b.readUInt32LE(at + 10),
    recorded: recordingDate(b, at + 18),
    flags: b[at + 25],
    fileUnitSize: b[at + 26],
    interleaveGap: b[at + 27],
    identifier: b.subarray(at + 33, at + 33 + idLen),
    systemUse: suStart < len ? b.subarray(at + suStart, at + len) : Buffer.alloc(0),
  };
}

export function isDotOrDotDot(r: DirectoryRecord): boolean {
  return r.identifier.length === 1 && (r.identifier[0] === 0 || r.identifier[0] === 1);
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
