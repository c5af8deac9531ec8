import { trimLabel } from '../types.js';

/**
 * The 32-byte directory entry (fatgen103 section 6) and the VFAT long-name entry laid over it
 * (section 7), parsed from one slot of a directory.
 */

export const ENTRY_SIZE = 32;

export const ATTR_READ_ONLY = 0x01;
export const ATTR_HIDDEN = 0x02;
export const ATTR_SYSTEM = 0x04;
export const ATTR_VOLUME_ID = 0x08;
export const ATTR_DIRECTORY = 0x10;
export const ATTR_ARCHIVE = 0x20;
/** Section 7: a long-name slot has these four attribute bits set, and the top two are ignored. */
const ATTR_LONG_NAME = 0x0f;
const ATTR_LONG_NAME_MASK = 0x3f;

/** DIR_Name[0] values (section 6.1): the slot is free and so are all after it, or it is free (deleted). */
export const END_OF_DIRECTORY = 0x00;
export const DELETED = 0xe5;
/** DIR_Name[0] = 0x05 stands for a real first byte 0xE5 (a lead byte in Japanese code pages). */
const KANJI_E5 = 0x05;

/** Windows NT's byte 12 (DIR_NTRes): the base name, resp. the extension, is shown in lower case. */
const NT_LOWER_BASE = 0x08;
const NT_LOWER_EXT = 0x10;

/**
 * The OEM code page short names are decoded with: 850 (multilingual Latin-1), the code page mtools
 * writes by default. Linux defaults to 437, which has the same letters at 0x80-0xA8 and box-drawing
 * and Greek symbols where 850 has the rest of the Latin-1 letters.
 */
const CP850_HIGH =
  'ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜø£Ø×ƒáíóúñÑªº¿®¬½¼¡«»░▒▓│┤ÁÂÀ©╣║╗╝¢¥┐└┴┬├─┼ãÃ╚╔╩╦╠═╬¤ðÐÊËÈıÍÎÏ┘┌█▄¦Ì▀ÓßÔÒõÕµþÞÚÛÙýÝ¯´\u00ad±‗¾¶§÷¸°¨·¹³²■\u00a0';

/** The name field `b[from..to)`, trailing blanks dropped; `first` says it starts the entry (where 0x05 means 0xE5). */
function oemChars(b: Buffer, from: number, to: number, first: boolean): string {
  // Trailing blanks found by scanning rather than by a pattern over the decoded string: twice per entry.
  while (to > from && b[to - 1] === 0x20) to--;
  let ascii = !first || b[from] !== KANJI_E5;
  for (let i = from; i < to && ascii; i++) ascii = b[i] < 0x80;
  if (ascii) return b.toString('latin1', from, to);
  let s = '';
  for (let i = from; i < to; i++) {
    const c = first && i === from && b[i] === KANJI_E5 ? DELETED : b[i];
    s += c < 0x80 ? String.fromCharCode(c) : CP850_HIGH[c - 0x80];
  }
  return s;
}

export interface ShortEntry {
  /** The 8.3 name as shown: trailing blanks dropped, the NT lower-case flags applied. */
  name: string;
  attr: number;
  startCluster: number;
  size: number;
  /** Raw DOS fields (see dos-time.ts). */
  createCs: number;
  createTime: number;
  createDate: number;
  accessDate: number;
  writeTime: number;
  writeDate: number;
}

/**
 * A short (8.3) entry at `at`. `fat32` says whether DIR_FstClusHI counts: on FAT12/16 that field is
 * reserved (OS/2 kept extended-attribute handles there), so it is ignored, as Linux does.
 */
export function parseShortEntry(b: Buffer, at: number, fat32: boolean): ShortEntry {
  // Read in place (no view of the slot): a directory of a 20,000-file tree parses 20,000 of them.
  const nt = b[at + 12];
  let base = oemChars(b, at, at + 8, true);
  let ext = oemChars(b, at + 8, at + 11, false);
  if (nt & NT_LOWER_BASE) base = base.toLowerCase();
  if (nt & NT_LOWER_EXT) ext = ext.toLowerCase();
  return {
    name: ext === '' ? base : `${base}.${ext}`,
    attr: b[at + 11],
    startCluster: (fat32 ? b.readUInt16LE(at + 20) * 0x10000 : 0) + b.readUInt16LE(at + 26),
    size: b.readUInt32LE(at + 28),
    createCs: b[at + 13],
    createTime: b.readUInt16LE(at + 14),
    createDate: b.readUInt16LE(at + 16),
    accessDate: b.readUInt16LE(at + 18),
    writeTime: b.readUInt16LE(at + 22),
    writeDate: b.readUInt16LE(at + 24),
  };
}

export function isLongNameSlot(b: Buffer, at: number): boolean {
  return (b[at + 11] & ATTR_LONG_NAME_MASK) === ATTR_LONG_NAME;
}

/** The `.` and `..` entries a subdirectory starts with (section 6.7). */
export function isDotEntry(b: Buffer, at: number): boolean {
  if (b[at] !== 0x2e) return false;
  let i = b[at + 1] === 0x2e ? 2 : 1;
  for (; i < 11; i++) if (b[at + i] !== 0x20) return false;
  return true;
}

/** A volume label entry: the volume bit without the directory bit, and not a long-name slot. */
export function isVolumeLabel(b: Buffer, at: number): boolean {
  return !isLongNameSlot(b, at) && (b[at + 11] & (ATTR_VOLUME_ID | ATTR_DIRECTORY)) === ATTR_VOLUME_ID;
}

export interface LongNameSlot {
  /** LDIR_Ord without the last-slot flag: 1 for the slot holding the name's first 13 characters. */
  order: number;
  /** LDIR_Ord bit 0x40: the slot with the name's end, stored first. */
  last: boolean;
  checksum: number;
}

export const UNITS_PER_SLOT = 13;
/** Where LDIR_Name1, 2 and 3 keep the slot's 13 UTF-16 code units. */
const UNIT_OFFSETS = [1, 3, 5, 7, 9, 14, 16, 18, 20, 22, 24, 28, 30];

export function parseLongNameSlot(b: Buffer, at: number): LongNameSlot {
  const ord = b[at];
  return { order: ord & ~0x40, last: (ord & 0x40) !== 0, checksum: b[at + 13] };
}

/** Copies the slot's 13 code units to `into` from `index` (the slot of order n holds characters 13(n-1) on). */
export function copyLongNameUnits(b: Buffer, at: number, into: Uint16Array, index: number): void {
  for (let k = 0; k < UNITS_PER_SLOT; k++) into[index + k] = b[at + UNIT_OFFSETS[k]] | (b[at + UNIT_OFFSETS[k] + 1] << 8);
}

/** Section 7.2: the checksum of the 11-byte short name each long-name slot of its name carries. */
export function shortNameChecksum(b: Buffer, at: number): number {
  let sum = 0;
  for (let i = 0; i < 11; i++) sum = (((sum & 1) << 7) + (sum >> 1) + b[at + i]) & 0xff;
  return sum;
}

const NO_NAME = 'NO NAME';

/** The label a volume-label entry holds, as blkid reads it: bytes as they are, trimmed ("NO NAME" is no label). */
export function volumeLabelOf(b: Buffer, at: number): string | undefined {
  // 0x05 in the first byte stands for 0xE5, which would mark the entry deleted (as in file names).
  const l = (b[at] === 0x05 ? '\xe5' : '') + b.toString('latin1', b[at] === 0x05 ? at + 1 : at, at + 11);
  return l.startsWith(NO_NAME) ? undefined : trimLabel(l);
}
