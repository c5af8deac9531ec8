import { applyFixups } from './fixup.js';
import { decodeRunlist, type Run } from './runlist.js';

/**
 * One MFT record ("FILE" record) and the attribute records it holds. Layouts: NTFS Documentation,
 * "MFT record" (FILE_RECORD_SEGMENT_HEADER) and "Attribute header" (resident and non-resident forms).
 */

export const AT = {
  STANDARD_INFORMATION: 0x10,
  ATTRIBUTE_LIST: 0x20,
  FILE_NAME: 0x30,
  VOLUME_NAME: 0x60,
  VOLUME_INFORMATION: 0x70,
  DATA: 0x80,
  INDEX_ROOT: 0x90,
  INDEX_ALLOCATION: 0xa0,
  BITMAP: 0xb0,
  REPARSE_POINT: 0xc0,
  END: 0xffffffff,
} as const;

/** Attribute header flags. */
export const ATTR_COMPRESSED = 0x0001;
export const ATTR_ENCRYPTED = 0x4000;
export const ATTR_SPARSE = 0x8000;

/** Record header flags. */
export const RECORD_IN_USE = 0x0001;
export const RECORD_DIRECTORY = 0x0002;

/** Runs per attribute extent are bounded by the record's size; a whole file by this. */
export const MAX_RUNS = 1 << 22;

export interface Attribute {
  type: number;
  name: string;
  flags: number;
  id: number;
  /** The record the attribute was read from. */
  record: number;
  resident: boolean;
  /** Resident value. */
  value?: Buffer;
  // Non-resident fields, in clusters and bytes.
  startVcn: number;
  lastVcn: number;
  runs: Run[];
  /** log2 of clusters per compression unit; 0 when not compressed. */
  compressionUnit: number;
  allocatedSize: number;
  dataSize: number;
  initializedSize: number;
}

export interface MftRecord {
  number: number;
  flags: number;
  sequence: number;
  linkCount: number;
  /** Record number of the base record, 0 when this is a base record. */
  base: number;
  attributes: Attribute[];
}

/** An MFT reference: the low 48 bits are the record number, the high 16 its sequence number. */
export function refRecord(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt16LE(at + 4) * 2 ** 32;
}

function u64(b: Buffer, at: number): number | null {
  const v = b.readBigUInt64LE(at);
  return v > BigInt(Number.MAX_SAFE_INTEGER) ? null : Number(v);
}

/**
 * Parses one record (its raw bytes, copied: fixups are applied in place). Returns the record, null for a
 * record that is not in use or never written, or a string saying what is wrong.
 */
export function parseRecord(raw: Buffer, number: number, totalClusters: number): MftRecord | null | string {
  const magic = raw.toString('latin1', 0, 4);
  if (magic === '\0\0\0\0') return null;
  if (magic !== 'FILE') return magic === 'BAAD' ? 'marked bad (BAAD) by chkdsk' : 'no FILE signature';
  const fix = applyFixups(raw);
  if (fix) return fix;
  const flags = raw.readUInt16LE(22);
  if ((flags & RECORD_IN_USE) === 0) return null;
  const size = raw.length;
  const used = raw.readUInt32LE(24);
  if (used > size || used < 48) return `bytes in use ${used} out of bounds`;
  const record: MftRecord = {
    number,
    flags,
    sequence: raw.readUInt16LE(16),
    linkCount: raw.readUInt16LE(18),
    base: refRecord(raw, 32),
    attributes: [],
  };
  let at = raw.readUInt16LE(20);
  if (at < 42 || at > used - 4 || (at & 7) !== 0) return `first attribute offset ${at} out of bounds`;
  // Each attribute is at least 24 bytes, so the loop ends within size/24 steps.
  while (true) {
    if (at + 4 > used) return 'attributes run past the bytes in use without an end marker';
    const type = raw.readUInt32LE(at);
    if (type === AT.END) break;
    if (at + 24 > used) return `attribute at ${at} runs past the bytes in use`;
    const len = raw.readUInt32LE(at + 4);
    if (len < 24 || (len & 7) !== 0 || at + len > used) return `attribute 0x${type.toString(16)} at ${at}: length ${len} out of bounds`;
    const a = parseAttribute(raw.subarray(at, at + len), type, number, totalClusters);
    if (typeof a === 'string') return `attribute 0x${type.toString(16)} at ${at}: ${a}`;
    record.attributes.push(a);
    at += len;
  }
  return record;
}

function parseAttribute(b: Buffer, type: number, record: number, totalClusters: number): Attribute | string {
  const nonResident = b[8];
  const nameLength = b[9];
  const nameOffset = b.readUInt16LE(10);
  if (nameLength > 0 && nameOffset + nameLength * 2 > b.length) return 'name out of bounds';
  const a: Attribute = {
    type,
    name: nameLength ? b.toString('utf16le', nameOffset, nameOffset + nameLength * 2) : '',
    flags: b.readUInt16LE(12),
    id: b.readUInt16LE(14),
    record,
    resident: nonResident === 0,
    startVcn: 0,
    lastVcn: -1,
    runs: [],
    compressionUnit: 0,
    allocatedSize: 0,
    dataSize: 0,
    initializedSize: 0,
  };
  if (nonResident === 0) {
    const valueLength = b.readUInt32LE(16);
    const valueOffset = b.readUInt16LE(20);
    if (valueOffset + valueLength > b.length) return `resident value ${valueOffset}+${valueLength} out of bounds`;
    a.value = b.subarray(valueOffset, valueOffset + valueLength);
    a.dataSize = a.allocatedSize = a.initializedSize = valueLength;
    return a;
  }
  if (nonResident !== 1) return `non-resident flag ${nonResident} is neither 0 nor 1`;
  if (b.length < 64) return 'non-resident header truncated';
  const startVcn = u64(b, 16);
  // An attribute without clusters stores last VCN -1.
  const lastVcnBig = b.readBigInt64LE(24);
  const pairsOffset = b.readUInt16LE(32);
  const allocatedSize = u64(b, 40);
  const dataSize = u64(b, 48);
  const initializedSize = u64(b, 56);
  if (startVcn === null || allocatedSize === null || dataSize === null || initializedSize === null) return 'size or VCN out of range';
  if (lastVcnBig < -1n || lastVcnBig > BigInt(Number.MAX_SAFE_INTEGER)) return 'last VCN out of range';
  const lastVcn = Number(lastVcnBig);
  if (lastVcn < startVcn - 1) return `last VCN ${lastVcn} precedes first VCN ${startVcn}`;
  if (pairsOffset < 64 || pairsOffset > b.length) return `mapping pairs offset ${pairsOffset} out of bounds`;
  a.startVcn = startVcn;
  a.lastVcn = lastVcn;
  a.compressionUnit = b[34];
  a.allocatedSize = allocatedSize;
  a.dataSize = dataSize;
  a.initializedSize = initializedSize;
  const runs = decodeRunlist(b, pairsOffset, b.length, startVcn, totalClusters, MAX_RUNS);
  if (typeof runs === 'string') return runs;
  const end = runs.length ? runs[runs.length - 1].vcn + runs[runs.length - 1].length : startVcn;
  if (end !== lastVcn + 1) return `runs end at VCN ${end}, the header says ${lastVcn + 1}`;
  a.runs = runs;
  return a;
}
