import { xfsCrcOk } from './checksum.js';

/**
 * File block maps: packed 128-bit extent records (xfs_bmbt_rec), kept in the inode's data or attribute
 * fork (extents format) or in the leaves of a BMBT btree rooted there (btree format).
 */
export interface Extent {
  /** First file block. */
  offset: number;
  /** First file-system block (agno << agblklog | agbno), as stored. */
  block: number;
  count: number;
  /** Allocated but never written: reads as zeros (the extent flag, preallocated space). */
  unwritten: boolean;
}

/**
 * Unpacks one record: flag (1 bit), startoff (54), startblock (52), blockcount (21). From 32-bit
 * halves (BigInt per record showed in profiles); a startoff past 2^53 rounds as Number(BigInt) does.
 */
export function parseExtent(b: Buffer, at: number): Extent {
  const h0 = b.readUInt32BE(at);
  const l0 = b.readUInt32BE(at + 4);
  const h1 = b.readUInt32BE(at + 8);
  const l1 = b.readUInt32BE(at + 12);
  return {
    unwritten: h0 >>> 31 === 1,
    offset: (h0 & 0x7fffffff) * 2 ** 23 + (l0 >>> 9),
    block: (l0 & 0x1ff) * 2 ** 43 + h1 * 2 ** 11 + (l1 >>> 21),
    count: l1 & 0x1fffff,
  };
}

const BMAP_MAGIC = 0x424d4150; // 'BMAP'
const BMAP3_MAGIC = 0x424d4133; // 'BMA3'
const LBLOCK_CRC_OFFSET = 64;
/** The BMBT is at most this deep for any file (XFS_BM_MAXLEVELS stays below 10 for 2^64 extents). */
const MAX_DEPTH = 10;

/** What the btree walker needs from the reader. */
export interface BmbtSource {
  readonly blockSize: number;
  readonly v5: boolean;
  /** A metadata block by file-system block number (validated there), from a bounded cache. */
  readMeta(fsb: number): Promise<Buffer>;
  fail(what: string): Error;
  warn(what: string): void;
}

/**
 * Every extent of a fork, sorted and checked not to overlap. `limit` bounds how many records and btree
 * blocks may be read (the fork's extent count and the inode's block count), so a damaged tree can
 * neither loop nor fill memory beyond what the inode itself claims.
 */
export async function forkExtents(
  src: BmbtSource, fork: Buffer, format: 'extents' | 'btree', nextents: number, maxBlocks: number, what: string,
): Promise<Extent[]> {
  const out: Extent[] = [];
  let end = 0;
  // Checked as they come: a btree whose pointers repeat a leaf fails at the first repeated record instead
  // of collecting the same records again and again.
  const add = (e: Extent) => {
    if (e.count === 0) throw src.fail(`${what}: extent of no blocks at file block ${e.offset}`);
    if (e.offset < end) throw src.fail(`${what}: extents overlap or are out of order at file block ${e.offset}`);
    end = e.offset + e.count;
    out.push(e);
  };
  if (format === 'extents') {
    if (nextents * 16 > fork.length) throw src.fail(`${what}: ${nextents} extents do not fit in the inode's ${fork.length} bytes`);
    for (let i = 0; i < nextents; i++) add(parseExtent(fork, i * 16));
    return out;
  }
  // The root (xfs_bmdr_block) lives in the fork: level, numrecs, keys, then pointers at the root's maxrecs.
  if (fork.length < 4) throw src.fail(`${what}: btree root does not fit`);
  const level = fork.readUInt16BE(0);
  const numrecs = fork.readUInt16BE(2);
  const maxrecs = Math.floor((fork.length - 4) / 16);
  if (level === 0 || level > MAX_DEPTH) throw src.fail(`${what}: btree root of level ${level}`);
  if (numrecs === 0 || numrecs > maxrecs) throw src.fail(`${what}: btree root holds ${numrecs} records (at most ${maxrecs})`);
  let visited = 0;
  const walk = async (fsb: number, expect: number): Promise<void> => {
    if (++visited > maxBlocks) throw src.fail(`${what}: btree has more blocks than the inode owns`);
    const b = await src.readMeta(fsb);
    const magic = b.readUInt32BE(0);
    const hdr = src.v5 ? 72 : 24;
    if (magic !== (src.v5 ? BMAP3_MAGIC : BMAP_MAGIC)) throw src.fail(`${what}: btree block ${fsb}: bad magic 0x${magic.toString(16)}`);
    if (src.v5 && !xfsCrcOk(b, LBLOCK_CRC_OFFSET)) src.warn(`${what}: btree block ${fsb}: checksum mismatch`);
    const lvl = b.readUInt16BE(4);
    const n = b.readUInt16BE(6);
    if (lvl !== expect) throw src.fail(`${what}: btree block ${fsb} at level ${lvl}, ${expect} expected`);
    if (lvl === 0) {
      if (n > (src.blockSize - hdr) / 16) throw src.fail(`${what}: btree leaf ${fsb} holds ${n} records`);
      if (out.length + n > nextents) throw src.fail(`${what}: btree holds more than the ${nextents} extents the inode counts`);
      for (let i = 0; i < n; i++) add(parseExtent(b, hdr + i * 16));
      return;
    }
    const max = Math.floor((src.blockSize - hdr) / 16);
    if (n === 0 || n > max) throw src.fail(`${what}: btree node ${fsb} holds ${n} records (at most ${max})`);
    // Read the pointers before descending: the cache may drop this block meanwhile.
    const ptrs: number[] = [];
    for (let i = 0; i < n; i++) ptrs.push(Number(b.readBigUInt64BE(hdr + max * 8 + i * 8)));
    for (const p of ptrs) await walk(p, lvl - 1);
  };
  const ptrs: number[] = [];
  for (let i = 0; i < numrecs; i++) ptrs.push(Number(fork.readBigUInt64BE(4 + maxrecs * 8 + i * 8)));
  for (const p of ptrs) await walk(p, level - 1);
  return out;
}

/** The index of the extent holding file block `fblock`, or of the first after it (list.length: none). */
export function findExtent(list: Extent[], fblock: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (list[mid].offset + list[mid].count <= fblock) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
