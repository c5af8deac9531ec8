import type { FsTime } from '../filesystem.js';
import { decodeTimestamp } from './timestamp.js';

/**
 * exFAT directory entries (specification section 6 and 7): 32-byte records whose first byte is the
 * EntryType: bit 7 InUse, bit 6 TypeCategory (secondary), bit 5 TypeImportance (benign), bits 0-4
 * TypeCode (6.2.1). A file is an entry set: one File entry (0x85), a Stream Extension (0xC0), then File
 * Name entries (0xC1), protected together by the SetChecksum (6.3.3).
 */

export const ENTRY_SIZE = 32;
/** An EntryType of 0 ends the directory: no entry after it is in use (6.2.1.1). */
export const TYPE_END_OF_DIRECTORY = 0x00;
export const TYPE_ALLOCATION_BITMAP = 0x81;
export const TYPE_UPCASE_TABLE = 0x82;
export const TYPE_VOLUME_LABEL = 0x83;
export const TYPE_FILE = 0x85;
export const TYPE_STREAM_EXTENSION = 0xc0;
export const TYPE_FILE_NAME = 0xc1;

export const ENTRY_IN_USE = 0x80;
export const ENTRY_SECONDARY = 0x40;
export const ENTRY_BENIGN = 0x20;

/** FileAttributes bits (7.4.4). */
export const ATTR_READ_ONLY = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
export const ATTR_DIRECTORY = 0x10;
export const ATTR_ARCHIVE = 0x20;

/** A File entry's SecondaryCount lies in 2-18: a Stream Extension and 1-17 File Name entries, benign ones included (7.4.1). */
export const MIN_SECONDARY_COUNT = 2;
export const MAX_SECONDARY_COUNT = 18;
/** Name characters per File Name entry (7.7.3). */
const NAME_CHARS_PER_ENTRY = 15;

/** GeneralSecondaryFlags bit 1 (6.4.2.2); bit 0, AllocationPossible, is always set in a Stream Extension. */
const FLAG_NO_FAT_CHAIN = 0x02;

export interface FileEntrySet {
  /** Entries in the set, the File entry included. */
  entries: number;
  attributes: number;
  created?: FsTime;
  modified?: FsTime;
  accessed?: FsTime;
  name: string;
  /** The Stream Extension's NameHash over the up-cased name (7.6.4). */
  nameHash: number;
  /** The clusters are consecutive from firstCluster and the FAT is not consulted (6.4.2.2). */
  noFatChain: boolean;
  firstCluster: number;
  dataLength: number;
  /** Bytes past this were never written and read as zeros (7.6.5). */
  validDataLength: number;
  /** Whether the stored SetChecksum matches the entries. */
  checksumOk: boolean;
}

/**
 * The SetChecksum (6.3.3): a 16-bit rotate-right-and-add over every byte of the set except the checksum
 * field itself (bytes 2-3 of the File entry).
 */
export function entrySetChecksum(buf: Buffer, offset: number, entries: number): number {
  let sum = 0;
  const end = offset + entries * ENTRY_SIZE;
  for (let i = offset; i < end; i++) {
    if (i === offset + 2 || i === offset + 3) continue;
    sum = ((((sum & 1) << 15) | (sum >>> 1)) + buf[i]) & 0xffff;
  }
  return sum;
}

/** The File entry's SecondaryCount: how many entries follow it in its set. */
export function secondaryCount(buf: Buffer, offset: number): number {
  return buf[offset + 1];
}

/**
 * Parses the entry set whose File entry is at `offset`; `buf` holds the whole set (1 + SecondaryCount
 * entries, a count the caller has bounded to 2-18). Returns what is wrong with the set when it cannot be
 * read as a file.
 */
export function parseFileEntrySet(buf: Buffer, offset: number): FileEntrySet | string {
  const count = secondaryCount(buf, offset);
  if (count < MIN_SECONDARY_COUNT || count > MAX_SECONDARY_COUNT) return `SecondaryCount ${count} is not in 2-18`;
  const s = offset + ENTRY_SIZE;
  if (buf[s] !== TYPE_STREAM_EXTENSION) return `the entry after the File entry is 0x${hex(buf[s])}, not a Stream Extension`;
  const nameLength = buf[s + 3];
  if (nameLength === 0) return 'the name is empty (NameLength 0)';
  const nameEntries = Math.ceil(nameLength / NAME_CHARS_PER_ENTRY);
  if (1 + nameEntries > count) return `NameLength ${nameLength} needs ${nameEntries} File Name entries but the set has ${count - 1}`;
  const units: Buffer[] = [];
  for (let i = 0; i < nameEntries; i++) {
    const n = s + (1 + i) * ENTRY_SIZE;
    if (buf[n] !== TYPE_FILE_NAME) return `entry ${2 + i} of the set is 0x${hex(buf[n])}, not a File Name entry`;
    const chars = Math.min(NAME_CHARS_PER_ENTRY, nameLength - i * NAME_CHARS_PER_ENTRY);
    units.push(buf.subarray(n + 2, n + 2 + chars * 2));
  }
  // Past the name, only benign secondaries (vendor extensions, 7.8 and 7.9) may follow; a critical one
  // this reader does not know changes how the file must be read (6.4).
  for (let i = 1 + nameEntries; i < count; i++) {
    const t = buf[s + i * ENTRY_SIZE];
    if ((t & (ENTRY_IN_USE | ENTRY_SECONDARY)) !== (ENTRY_IN_USE | ENTRY_SECONDARY)) return `entry ${2 + i} of the set (0x${hex(t)}) is not an in-use secondary entry`;
    if (!(t & ENTRY_BENIGN)) return `the set holds an unknown critical secondary entry 0x${hex(t)}`;
  }
  const dataLength = buf.readBigUInt64LE(s + 24);
  const validDataLength = buf.readBigUInt64LE(s + 8);
  if (dataLength > BigInt(Number.MAX_SAFE_INTEGER) || validDataLength > BigInt(Number.MAX_SAFE_INTEGER)) {
    return `DataLength ${dataLength} or ValidDataLength ${validDataLength} exceeds 2^53`;
  }
  const flags = buf[s + 1];
  const stored = buf.readUInt16LE(offset + 2);
  return {
    entries: 1 + count,
    attributes: buf.readUInt16LE(offset + 4),
    created: decodeTimestamp(buf.readUInt32LE(offset + 8), buf[offset + 20], buf[offset + 22]),
    modified: decodeTimestamp(buf.readUInt32LE(offset + 12), buf[offset + 21], buf[offset + 23]),
    // LastAccessed has no 10 ms increment (7.4.7).
    accessed: decodeTimestamp(buf.readUInt32LE(offset + 16), 0, buf[offset + 24]),
    name: Buffer.concat(units).toString('utf16le'),
    nameHash: buf.readUInt16LE(s + 4),
    noFatChain: (flags & FLAG_NO_FAT_CHAIN) !== 0,
    // The Stream Extension always sets AllocationPossible (7.6.1); like the Linux driver, FirstCluster is
    // read whatever the flag says, and checked against DataLength when the file is opened.
    firstCluster: buf.readUInt32LE(s + 20),
    dataLength: Number(dataLength),
    validDataLength: Number(validDataLength),
    checksumOk: entrySetChecksum(buf, offset, 1 + count) === stored,
  };
}

/** The Volume Label entry (7.3): up to 11 UTF-16 characters. */
export function parseVolumeLabel(buf: Buffer, offset: number): string {
  const chars = Math.min(buf[offset + 1], 11);
  return buf.toString('utf16le', offset + 2, offset + 2 + chars * 2);
}

/** The Allocation Bitmap (7.1) and Up-case Table (7.2) entries: where their data lies. */
export interface SystemStream {
  firstCluster: number;
  dataLength: number;
}

export interface BitmapEntry extends SystemStream {
  /** BitmapFlags bit 0: 0 for the first bitmap (with the first FAT), 1 for the second (TexFAT, 7.1.2). */
  index: number;
}

export interface UpcaseEntry extends SystemStream {
  tableChecksum: number;
}

function systemStream(buf: Buffer, offset: number): SystemStream {
  const length = buf.readBigUInt64LE(offset + 24);
  return {
    firstCluster: buf.readUInt32LE(offset + 20),
    dataLength: length > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(length),
  };
}

export function parseBitmapEntry(buf: Buffer, offset: number): BitmapEntry {
  return { ...systemStream(buf, offset), index: buf[offset + 1] & 1 };
}

export function parseUpcaseEntry(buf: Buffer, offset: number): UpcaseEntry {
  return { ...systemStream(buf, offset), tableChecksum: buf.readUInt32LE(offset + 4) };
}

function hex(b: number): string {
  return b.toString(16).padStart(2, '0');
}
