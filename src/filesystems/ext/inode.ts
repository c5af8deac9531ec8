import type { CachedInode } from '../filesystem.js';
import { extCrc, extCrcRange, extCrcU32 } from './checksum.js';
import { XATTR_MAGIC } from './xattr.js';

/**
 * The inode (Documentation/filesystems/ext4/inodes.rst): 128 bytes of the original layout, then
 * i_extra_isize bytes of the large-inode fields (checksum high half, nanoseconds and epoch bits, birth
 * time), then in-inode extended attributes up to s_inode_size.
 */
export const INODE_FLAG = {
  ENCRYPT: 0x800,
  INDEX: 0x1000,
  HUGE_FILE: 0x40000,
  EXTENTS: 0x80000,
  VERITY: 0x100000,
  EA_INODE: 0x200000,
  INLINE_DATA: 0x10000000,
  CASEFOLD: 0x40000000,
} as const;

export const GOOD_OLD_INODE_SIZE = 128;

/** Mode, owners and times (flat seconds and nanoseconds; crtime NaN where the inode is too small) as in CachedInode. */
export interface Inode extends CachedInode {
  ino: number;
  size: number;
  linksCount: number;
  /** i_blocks as stored (units depend on huge_file; see `allocatedBytes`). */
  blocks: number;
  flags: number;
  /** The 60 bytes of i_block (a copy): block map, extent tree root, inline data or a fast symlink's target. */
  iBlock: Buffer;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  /**
   * The in-inode extended attribute area (a copy, from its magic to the inode's end), or null when the
   * inode holds none: the rest of the on-disk inode is not kept, so a cache of many inodes stays small.
   */
  xattrArea: Buffer | null;
}

/**
 * A timestamp from its 32-bit seconds and, where the inode is large enough, its "extra" word: the low
 * two bits extend the signed seconds past 2038 (epoch bits), the upper 30 are nanoseconds (inodes.rst,
 * "Inode Timestamps"). Seconds and nanoseconds come apart: `seconds` and `nanoseconds`.
 */
function seconds(raw: Buffer, at: number, secAt: number, extraAt: number, limit: number): number {
  const sec = raw.readInt32LE(at + secAt);
  return extraAt + 4 > limit ? sec : sec + (raw.readUInt32LE(at + extraAt) & 3) * 2 ** 32;
}

function nanoseconds(raw: Buffer, at: number, extraAt: number, limit: number): number {
  if (extraAt + 4 > limit) return 0;
  const nsec = raw.readUInt32LE(at + extraAt) >>> 2;
  return nsec > 999_999_999 ? 0 : nsec;
}

/** A copy of `length` bytes of `raw` from `at` (from Buffer's shared pool: no backing store of its own). */
function copyOf(raw: Buffer, at: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  raw.copy(b, 0, at, at + length);
  return b;
}

/**
 * Parses the `size`-byte inode at `raw[at]` (typically a view of an inode-table block, which is not
 * kept: what outlives the call is copied). `largeFile`-independent: i_size_high is always used, as for
 * ext4. The caller has checked i_extra_isize against `size`.
 */
export function parseInode(ino: number, raw: Buffer, at: number, size: number, hugeFileFeature: boolean): Inode {
  const extraIsize = size > GOOD_OLD_INODE_SIZE ? raw.readUInt16LE(at + 0x80) : 0;
  // The large-inode fields exist up to 128 + i_extra_isize (validated by the caller against the inode size).
  const limit = GOOD_OLD_INODE_SIZE + extraIsize;
  const blocksHi = hugeFileFeature ? raw.readUInt16LE(at + 0x74) : 0;
  const xattrAt = GOOD_OLD_INODE_SIZE + extraIsize;
  const hasXattrs = size >= xattrAt + 4 && raw.readUInt32LE(at + xattrAt) === XATTR_MAGIC;
  // One object shape for every inode (crtime NaN when absent), built without a spread: a tree of
  // 20,000 files parses 20,000 of them.
  return {
    ino,
    mode: raw.readUInt16LE(at),
    uid: (raw.readUInt16LE(at + 0x2) | (raw.readUInt16LE(at + 0x78) << 16)) >>> 0,
    gid: (raw.readUInt16LE(at + 0x18) | (raw.readUInt16LE(at + 0x7a) << 16)) >>> 0,
    size: raw.readUInt32LE(at + 0x4) + raw.readUInt32LE(at + 0x6c) * 2 ** 32,
    linksCount: raw.readUInt16LE(at + 0x1a),
    blocks: raw.readUInt32LE(at + 0x1c) + blocksHi * 2 ** 32,
    flags: raw.readUInt32LE(at + 0x20),
    iBlock: copyOf(raw, at + 0x28, 60),
    generation: raw.readUInt32LE(at + 0x64),
    fileAcl: raw.readUInt32LE(at + 0x68) + raw.readUInt16LE(at + 0x76) * 2 ** 32,
    extraIsize,
    atimeSec: seconds(raw, at, 0x08, 0x8c, limit),
    atimeNsec: nanoseconds(raw, at, 0x8c, limit),
    ctimeSec: seconds(raw, at, 0x0c, 0x84, limit),
    ctimeNsec: nanoseconds(raw, at, 0x84, limit),
    mtimeSec: seconds(raw, at, 0x10, 0x88, limit),
    mtimeNsec: nanoseconds(raw, at, 0x88, limit),
    crtimeSec: limit >= 0x98 ? seconds(raw, at, 0x90, 0x94, limit) : NaN,
    crtimeNsec: limit >= 0x98 ? nanoseconds(raw, at, 0x94, limit) : 0,
    xattrArea: hasXattrs ? copyOf(raw, at + xattrAt, size - xattrAt) : null,
  };
}

/** Bytes the inode occupies: i_blocks counts 512-byte sectors, or file-system blocks with HUGE_FILE set. */
export function allocatedBytes(inode: Inode, blockSize: number, hugeFileFeature: boolean): number {
  return inode.blocks * (hugeFileFeature && inode.flags & INODE_FLAG.HUGE_FILE ? blockSize : 512);
}

/**
 * metadata_csum: crc32c over the inode number, generation and the whole inode with both checksum
 * halves zeroed; only the low 16 bits are stored when the inode is too small for i_checksum_hi
 * (inodes.rst, i_checksum_lo / i_checksum_hi).
 */
const ZERO16 = Buffer.alloc(2);

export function inodeChecksumOk(seed: number, inode: Inode, raw: Buffer, at: number, size: number): boolean {
  const hasHi = size > GOOD_OLD_INODE_SIZE && inode.extraIsize >= 4;
  const stored = raw.readUInt16LE(at + 0x7c) + (hasHi ? raw.readUInt16LE(at + 0x82) * 0x10000 : 0);
  // The checksum fields count as zeros: summed around them rather than over a zeroed copy of each inode.
  let c = extCrcU32(extCrcU32(seed, inode.ino), inode.generation);
  c = extCrcRange(c, raw, at, at + 0x7c);
  c = extCrc(c, ZERO16);
  if (hasHi) {
    c = extCrcRange(c, raw, at + 0x7e, at + 0x82);
    c = extCrc(c, ZERO16);
    c = extCrcRange(c, raw, at + 0x84, at + size);
  } else c = extCrcRange(c, raw, at + 0x7e, at + size);
  return (hasHi ? c : c & 0xffff) === stored;
}
