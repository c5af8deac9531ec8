import type { FsTime } from '../filesystem.js';
import { parseLongAd, type AllocationDescriptor } from './addresses.js';
import { TAG } from './tag.js';
import { parseTimestamp } from './timestamp.js';

/**
 * The file entry (ECMA-167 4/14.9) and the extended file entry (4/14.17, UDF 2.00+), each opening with
 * an ICB tag (4/14.6): owner, permissions, link count, length, times, unique id, then the extended
 * attributes and the allocation descriptors (or, embedded, the data itself). The indirect entry
 * (4/14.7) of strategy 4096 points to the next ICB.
 */

/** ICB file types (4/14.6.6; UDF 2.60 2.3.5.2 adds 248-252). */
export const FILE_TYPE = {
  UNSPECIFIED: 0,
  DIRECTORY: 4,
  FILE: 5,
  BLOCK: 6,
  CHAR: 7,
  FIFO: 9,
  SOCKET: 10,
  SYMLINK: 12,
  STREAM_DIRECTORY: 13,
  VAT: 248,
  REALTIME: 249,
  METADATA: 250,
  METADATA_MIRROR: 251,
  METADATA_BITMAP: 252,
} as const;

/** Allocation descriptor types in the ICB tag's flags (4/14.6.8). */
export const AD_SHORT = 0;
export const AD_LONG = 1;
export const AD_EXTENDED = 2;
export const AD_EMBEDDED = 3;

const ICB_SETUID = 1 << 6;
const ICB_SETGID = 1 << 7;
const ICB_STICKY = 1 << 8;

export interface FileEntry {
  extended: boolean;
  strategy: number;
  fileType: number;
  adType: number;
  uid: number;
  gid: number;
  /** ECMA-167 4/14.9.5: five bits (execute, write, read, change attributes, delete) for other, group, owner. */
  permissions: number;
  /** setuid, setgid and sticky from the ICB flags, as st_mode's 0o7000 bits. */
  specialBits: number;
  linkCount: number;
  length: number;
  blocksRecorded: number;
  atime?: FsTime;
  mtime?: FsTime;
  ctime?: FsTime;
  birthtime?: FsTime;
  uniqueId: number;
  /** Offsets in the entry's block of the extended attributes and of the allocation descriptors (or embedded data). */
  eaOffset: number;
  eaLength: number;
  adOffset: number;
  adLength: number;
}

/** A 64-bit field, clamped to 2^53 - 1 (read as two halves: a BigInt per field showed in profiles). */
function u64(b: Buffer, at: number): number {
  const hi = b.readUInt32LE(at + 4);
  if (hi >= 0x200000) return Number.MAX_SAFE_INTEGER;
  return hi * 2 ** 32 + b.readUInt32LE(at);
}

/** Parses a FE or EFE whose tag was checked; a string names what is wrong. */
export function parseFileEntry(b: Buffer, tagId: number): FileEntry | string {
  const extended = tagId === TAG.EXTENDED_FILE_ENTRY;
  const fixed = extended ? 216 : 176;
  const flags = b.readUInt16LE(34);
  const e: FileEntry = {
    extended,
    strategy: b.readUInt16LE(20),
    fileType: b[27],
    adType: flags & 7,
    uid: b.readUInt32LE(36),
    gid: b.readUInt32LE(40),
    permissions: b.readUInt32LE(44),
    specialBits: (flags & ICB_SETUID ? 0o4000 : 0) | (flags & ICB_SETGID ? 0o2000 : 0) | (flags & ICB_STICKY ? 0o1000 : 0),
    linkCount: b.readUInt16LE(48),
    length: u64(b, 56),
    blocksRecorded: u64(b, extended ? 72 : 64),
    atime: parseTimestamp(b, extended ? 80 : 72),
    mtime: parseTimestamp(b, extended ? 92 : 84),
    ctime: parseTimestamp(b, extended ? 116 : 96),
    birthtime: extended ? parseTimestamp(b, 104) : undefined,
    uniqueId: u64(b, extended ? 200 : 160),
    eaOffset: fixed,
    eaLength: b.readUInt32LE(fixed - 8),
    adOffset: 0,
    adLength: b.readUInt32LE(fixed - 4),
  };
  e.adOffset = fixed + e.eaLength;
  if (e.eaLength > b.length || e.adLength > b.length || e.adOffset + e.adLength > b.length) {
    return `extended attributes (${e.eaLength} bytes) and allocation descriptors (${e.adLength} bytes) overrun the entry`;
  }
  if (e.adType > AD_EMBEDDED) return `allocation descriptor type ${e.adType}`;
  return e;
}

/** The long_ad an indirect entry points to. */
export function parseIndirectEntry(b: Buffer): AllocationDescriptor {
  return parseLongAd(b, 36);
}

/**
 * st_mode's permission bits from ECMA-167 permissions, dropping the change-attribute and delete bits
 * that POSIX has no place for (as the Linux driver maps them).
 */
export function permissionsToMode(p: number, special: number): number {
  return (p & 7) | (((p >> 5) & 7) << 3) | (((p >> 10) & 7) << 6) | special;
}
