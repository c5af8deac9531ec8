import type { FsTime } from '../filesystem.js';
import { extCrc, extCrcU32 } from './checksum.js';

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

export interface Inode {
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  linksCount: number;
  /** i_blocks as stored (units depend on huge_file; see `allocatedBytes`). */
  blocks: number;
  flags: number;
  /** The 60 bytes of i_block: block map, extent tree root, inline data or a fast symlink's target. */
  iBlock: Buffer;
  generation: number;
  fileAcl: number;
  extraIsize: number;
  atime: FsTime;
  ctime: FsTime;
  mtime: FsTime;
  crtime?: FsTime;
  /** The whole on-disk inode (s_inode_size bytes), for in-inode xattrs and the checksum. */
  raw: Buffer;
}

/**
 * A timestamp from its 32-bit seconds and, where the inode is large enough, its "extra" word: the low
 * two bits extend the signed seconds past 2038 (epoch bits), the upper 30 are nanoseconds (inodes.rst,
 * "Inode Timestamps").
 */
function time(raw: Buffer, secAt: number, extraAt: number | null, limit: number): FsTime {
  const sec = raw.readInt32LE(secAt);
  if (extraAt === null || extraAt + 4 > limit) return { sec, nsec: 0 };
  const extra = raw.readUInt32LE(extraAt);
  const nsec = extra >>> 2;
  return { sec: sec + (extra & 3) * 2 ** 32, nsec: nsec > 999_999_999 ? 0 : nsec };
}

/** Parses one inode's bytes; `largeFile`-independent: i_size_high is always used, as for ext4. */
export function parseInode(ino: number, raw: Buffer, hugeFileFeature: boolean): Inode {
  const extraIsize = raw.length > GOOD_OLD_INODE_SIZE ? raw.readUInt16LE(0x80) : 0;
  // The large-inode fields exist up to 128 + i_extra_isize (validated by the caller against the inode size).
  const limit = GOOD_OLD_INODE_SIZE + extraIsize;
  const blocksHi = hugeFileFeature ? raw.readUInt16LE(0x74) : 0;
  // One object shape for every inode (crtime undefined when absent), built without a spread: a tree of
  // 20,000 files parses 20,000 of them.
  return {
    ino,
    mode: raw.readUInt16LE(0x0),
    uid: (raw.readUInt16LE(0x2) | (raw.readUInt16LE(0x78) << 16)) >>> 0,
    gid: (raw.readUInt16LE(0x18) | (raw.readUInt16LE(0x7a) << 16)) >>> 0,
    size: raw.readUInt32LE(0x4) + raw.readUInt32LE(0x6c) * 2 ** 32,
    linksCount: raw.readUInt16LE(0x1a),
    blocks: raw.readUInt32LE(0x1c) + blocksHi * 2 ** 32,
    flags: raw.readUInt32LE(0x20),
    iBlock: raw.subarray(0x28, 0x28 + 60),
    generation: raw.readUInt32LE(0x64),
    fileAcl: raw.readUInt32LE(0x68) + raw.readUInt16LE(0x76) * 2 ** 32,
    extraIsize,
    atime: time(raw, 0x08, 0x8c, limit),
    ctime: time(raw, 0x0c, 0x84, limit),
    mtime: time(raw, 0x10, 0x88, limit),
    crtime: limit >= 0x98 ? time(raw, 0x90, 0x94, limit) : undefined,
    raw,
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

export function inodeChecksumOk(seed: number, inode: Inode): boolean {
  const raw = inode.raw;
  const hasHi = raw.length > GOOD_OLD_INODE_SIZE && inode.extraIsize >= 4;
  const stored = raw.readUInt16LE(0x7c) + (hasHi ? raw.readUInt16LE(0x82) * 0x10000 : 0);
  // The checksum fields count as zeros: summed around them rather than over a zeroed copy of each inode.
  let c = extCrcU32(extCrcU32(seed, inode.ino), inode.generation);
  c = extCrc(c, raw.subarray(0, 0x7c));
  c = extCrc(c, ZERO16);
  if (hasHi) {
    c = extCrc(c, raw.subarray(0x7e, 0x82));
    c = extCrc(c, ZERO16);
    c = extCrc(c, raw.subarray(0x84));
  } else c = extCrc(c, raw.subarray(0x7e));
  return (hasHi ? c : c & 0xffff) === stored;
}
