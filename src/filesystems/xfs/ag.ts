import { xfsCrcOk } from './checksum.js';

/**
 * Allocation group headers (xfs_format.h): the AGF (free space, sector 1 of the AG) and the AGI
 * (inodes, sector 2). Both are big-endian and, on v5, checksummed over their sector.
 */
const AGF_MAGIC = 0x58414746; // 'XAGF'
const AGI_MAGIC = 0x58414749; // 'XAGI'
const AGF_CRC_OFFSET = 216;
const AGI_CRC_OFFSET = 312;

export interface Agf {
  seqno: number;
  length: number;
  bnoRoot: number;
  bnoLevel: number;
  freeBlocks: number;
  flFirst: number;
  flLast: number;
  flCount: number;
  crcOk: boolean;
}

/** Why the AGF cannot be used, or the parsed header. */
export function parseAgf(b: Buffer, v5: boolean): Agf | string {
  if (b.readUInt32BE(0) !== AGF_MAGIC) return `bad magic 0x${b.readUInt32BE(0).toString(16)}`;
  return {
    seqno: b.readUInt32BE(8),
    length: b.readUInt32BE(12),
    bnoRoot: b.readUInt32BE(16),
    bnoLevel: b.readUInt32BE(28),
    flFirst: b.readUInt32BE(40),
    flLast: b.readUInt32BE(44),
    flCount: b.readUInt32BE(48),
    freeBlocks: b.readUInt32BE(52),
    crcOk: !v5 || xfsCrcOk(b, AGF_CRC_OFFSET),
  };
}

/** The AGI's magic, sequence number and checksum (the reader finds inodes by number, not through it). */
export function agiProblem(b: Buffer, v5: boolean, agno: number): string | null {
  if (b.readUInt32BE(0) !== AGI_MAGIC) return `bad magic 0x${b.readUInt32BE(0).toString(16)}`;
  if (b.readUInt32BE(8) !== agno) return `sequence number ${b.readUInt32BE(8)}`;
  if (v5 && !xfsCrcOk(b, AGI_CRC_OFFSET)) return 'checksum mismatch';
  return null;
}

const ABTB_MAGIC = 0x41425442; // 'ABTB'
const AB3B_MAGIC = 0x41423342; // 'AB3B'
const SBLOCK_CRC_OFFSET = 52;

export interface ShortBlock {
  level: number;
  numrecs: number;
  rightSibling: number;
  /** Where records (leaves) or keys (nodes) start. */
  header: number;
  crcOk: boolean;
}

/** A by-block free-space btree block (short-form btree header), or why it is not one. */
export function parseBnoBlock(b: Buffer, v5: boolean): ShortBlock | string {
  const magic = b.readUInt32BE(0);
  if (magic !== (v5 ? AB3B_MAGIC : ABTB_MAGIC)) return `bad magic 0x${magic.toString(16)}`;
  return {
    level: b.readUInt16BE(4),
    numrecs: b.readUInt16BE(6),
    rightSibling: b.readUInt32BE(12),
    header: v5 ? 56 : 16,
    crcOk: !v5 || xfsCrcOk(b, SBLOCK_CRC_OFFSET),
  };
}

const AGFL_MAGIC = 0x5841464c; // 'XAFL'
const AGFL_CRC_OFFSET = 32;

/**
 * The AG free list (sector 3): blocks set aside for btree growth, free as far as data is concerned, a ring
 * of flcount entries from flfirst. Returns the blocks, or why the list cannot be read.
 */
export function agflBlocks(b: Buffer, v5: boolean, agf: Agf, warn: (what: string) => void): number[] | string {
  const hdr = v5 ? 36 : 0;
  if (v5) {
    if (b.readUInt32BE(0) !== AGFL_MAGIC) return `bad magic 0x${b.readUInt32BE(0).toString(16)}`;
    if (!xfsCrcOk(b, AGFL_CRC_OFFSET)) warn('AGFL checksum mismatch');
  }
  const size = (b.length - hdr) / 4;
  if (agf.flCount === 0) return [];
  if (agf.flCount > size || agf.flFirst >= size || agf.flLast >= size) return `free list of ${agf.flCount} from ${agf.flFirst} to ${agf.flLast} in ${size} slots`;
  const out: number[] = [];
  for (let i = 0; i < agf.flCount; i++) out.push(b.readUInt32BE(hdr + ((agf.flFirst + i) % size) * 4));
  return out.sort((x, y) => x - y);
}
