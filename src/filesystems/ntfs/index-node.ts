import { applyFixups } from './fixup.js';
import { parseFileName, type FileName } from './file-name.js';
import { AT, refRecord } from './record.js';

/**
 * Directory index nodes: the $INDEX_ROOT value (the B-tree's root node, resident) and the INDX blocks
 * of $INDEX_ALLOCATION (the other nodes). Both hold an index header and a list of entries sorted by
 * collation; the last entry has no key, and an entry with a child names the node of smaller keys by its
 * VCN (NTFS Documentation, "$INDEX_ROOT", "$INDEX_ALLOCATION", "Index entry").
 */

const ENTRY_HAS_CHILD = 0x1;
const ENTRY_LAST = 0x2;
/** Index header flag of the root: the tree has nodes in $INDEX_ALLOCATION. */
export const INDEX_LARGE = 0x1;

export interface IndexEntry {
  /** The file's record number (unused for the last entry). */
  record: number;
  /** The $FILE_NAME key; absent for the last entry. */
  key?: FileName;
  /** VCN of the child node holding keys that collate before this entry's. */
  child?: number;
}

export interface IndexRoot {
  blockSize: number;
  flags: number;
  entries: IndexEntry[];
}

/** Entries of the node whose index header starts at `header` in b[.., end). */
function parseEntries(b: Buffer, header: number, end: number): IndexEntry[] | string {
  if (header + 16 > end) return 'index header truncated';
  const first = header + b.readUInt32LE(header);
  const used = header + b.readUInt32LE(header + 4);
  if (used > end || first < header + 16 || first > used) return `entries ${first - header}..${used - header} out of bounds`;
  const out: IndexEntry[] = [];
  let at = first;
  // Each entry is at least 16 bytes, so the loop ends within the node's size / 16 steps.
  while (true) {
    if (at + 16 > used) return `entry at ${at - header} runs past the index's bytes in use without a last entry`;
    const length = b.readUInt16LE(at + 8);
    const keyLength = b.readUInt16LE(at + 10);
    const flags = b.readUInt16LE(at + 12);
    if (length < 16 || (length & 7) !== 0 || at + length > used) return `entry at ${at - header}: length ${length} out of bounds`;
    const e: IndexEntry = { record: refRecord(b, at) };
    if ((flags & ENTRY_HAS_CHILD) !== 0) {
      if (length < 24) return `entry at ${at - header}: too short for a child VCN`;
      const vcn = b.readBigUInt64LE(at + length - 8);
      if (vcn > BigInt(Number.MAX_SAFE_INTEGER)) return `entry at ${at - header}: child VCN out of range`;
      e.child = Number(vcn);
    }
    if ((flags & ENTRY_LAST) !== 0) {
      out.push(e);
      return out;
    }
    if (16 + keyLength > length - (e.child !== undefined ? 8 : 0)) return `entry at ${at - header}: key of ${keyLength} bytes out of bounds`;
    const key = parseFileName(b, at + 16, at + 16 + keyLength);
    if (typeof key === 'string') return `entry at ${at - header}: ${key}`;
    e.key = key;
    out.push(e);
    at += length;
  }
}

/** The $INDEX_ROOT value of a $I30 (file name) index, or what is wrong. */
export function parseIndexRoot(v: Buffer): IndexRoot | string {
  if (v.length < 32) return 'index root truncated';
  if (v.readUInt32LE(0) !== AT.FILE_NAME) return `indexes attribute 0x${v.readUInt32LE(0).toString(16)}, not file names`;
  const blockSize = v.readUInt32LE(8);
  if (blockSize < 512 || blockSize > 65536 || (blockSize & (blockSize - 1)) !== 0) return `index block size ${blockSize} is not a power of two from 512 to 65536`;
  const entries = parseEntries(v, 16, v.length);
  if (typeof entries === 'string') return entries;
  return { blockSize, flags: v[16 + 12], entries };
}

/** The entries of an INDX block (raw bytes, fixups applied here), which must say it is at `vcn`. */
export function parseIndexBlock(raw: Buffer, vcn: number): IndexEntry[] | string {
  if (raw.toString('latin1', 0, 4) !== 'INDX') return 'no INDX signature';
  const fix = applyFixups(raw);
  if (fix) return fix;
  const own = raw.readBigUInt64LE(16);
  if (own !== BigInt(vcn)) return `says it is at VCN ${own}`;
  return parseEntries(raw, 24, raw.length);
}
