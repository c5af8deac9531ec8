import type { CachedInode, FsTime } from '../filesystem.js';
import { xfsCrcOk } from './checksum.js';

/**
 * The on-disk inode (xfs_format.h, struct xfs_dinode): a core of 100 bytes (v1/v2) or 176 (v3, with a
 * crc, its own number and a creation time), then the data fork and, from di_forkoff * 8 on, the
 * attribute fork, both inside the inode's own bytes.
 */
const INODE_MAGIC = 0x494e; // 'IN'
const V3_CRC_OFFSET = 100;

export const FORMAT = { DEV: 0, LOCAL: 1, EXTENTS: 2, BTREE: 3 } as const;
export const DIFLAG = { REALTIME: 0x1, IMMUTABLE: 0x8, APPEND: 0x10 } as const;
const DIFLAG2_BIGTIME = 0x8;
const DIFLAG2_NREXT64 = 0x10;
/** Bigtime counts nanoseconds from the smallest 32-bit time, -2^31 s (xfs_format.h, XFS_BIGTIME_EPOCH_OFFSET). */
const BIGTIME_EPOCH_OFFSET = 2 ** 31;

/** Mode, owners and times as in CachedInode (crtime NaN seconds where the inode has none: v1/v2). */
export interface Inode extends CachedInode {
  ino: number;
  version: number;
  format: number;
  nlink: number;
  size: number;
  nblocks: number;
  nextents: number;
  anextents: number;
  aformat: number;
  flags: number;
  /** di_flags2's low 32 bits (every flag defined lies there). */
  flags2: number;
  generation: number;
  /**
   * The data fork's bytes, a copy of the part its format uses (the extent records, a device number;
   * all of a local fork or a btree root): what a cached inode keeps, rather than the whole on-disk inode.
   */
  dataFork: Buffer;
  /** The attribute fork's bytes (a copy), or null when the inode has none (di_forkoff 0). */
  attrFork: Buffer | null;
  /** Whether the v3 crc matched (true for v1/v2, which have none). */
  crcOk: boolean;
}

/** A 64-bit big-endian field as a number, or -1 past 2^53 - 1 (read as halves: a BigInt per field showed in profiles). */
function u64(raw: Buffer, at: number): number {
  const hi = raw.readUInt32BE(at);
  return hi >= 0x200000 ? -1 : hi * 2 ** 32 + raw.readUInt32BE(at + 4);
}

/** A 64-bit field rounded to a double, as Number(BigInt) gives it. */
function u64Rounded(raw: Buffer, at: number): number {
  return raw.readUInt32BE(at) * 2 ** 32 + raw.readUInt32BE(at + 4);
}

/**
 * A bigtime stamp: nanoseconds since -2^31 s as a 64-bit count, divided by 10^9 exactly by long
 * division over its four 16-bit digits (every intermediate stays below 2^53).
 */
export function bigtime(raw: Buffer, at: number): FsTime {
  let q = 0;
  let r = 0;
  for (let k = 0; k < 4; k++) {
    const cur = r * 65536 + raw.readUInt16BE(at + 2 * k);
    const d = Math.floor(cur / 1_000_000_000);
    r = cur - d * 1_000_000_000;
    q = q * 65536 + d;
  }
  return { sec: q - BIGTIME_EPOCH_OFFSET, nsec: r };
}

function time(raw: Buffer, at: number, big: boolean): FsTime {
  return big ? bigtime(raw, at) : { sec: raw.readInt32BE(at), nsec: raw.readUInt32BE(at + 4) };
}

/** A copy of `raw[from, from + length)` (from Buffer's shared pool when short). */
function copyOf(raw: Buffer, from: number, length: number): Buffer {
  const b = Buffer.allocUnsafe(length);
  raw.copy(b, 0, from, from + length);
  return b;
}

/**
 * Why the inode cannot be used, as one phrase, or the parsed inode. `raw` holds exactly the on-disk
 * inode, typically a view of an inode-cluster block: nothing of it is kept but copies.
 */
export function parseInode(raw: Buffer, ino: number, expectV3: boolean): Inode | string {
  if (raw.readUInt16BE(0) !== INODE_MAGIC) return `bad magic 0x${raw.readUInt16BE(0).toString(16)}`;
  const version = raw[4];
  if (expectV3 ? version !== 3 : version !== 1 && version !== 2) return `version ${version} on a v${expectV3 ? 5 : 4} file system`;
  const core = version === 3 ? 176 : 100;
  const flags2 = version === 3 ? raw.readUInt32BE(124) : 0;
  if (version === 3 && u64(raw, 152) !== ino) return `records inode number ${raw.readBigUInt64BE(152)}`;
  const big = (flags2 & DIFLAG2_BIGTIME) !== 0;
  const forkoff = raw[82] * 8;
  const literal = raw.length - core;
  if (forkoff >= literal) return `attribute fork offset ${forkoff} past the ${literal} bytes of forks`;
  const nrext64 = (flags2 & DIFLAG2_NREXT64) !== 0;
  const size = u64(raw, 56);
  if (size < 0) return `size ${raw.readBigUInt64BE(56)} exceeds 2^53 bytes`;
  const atime = time(raw, 32, big);
  const mtime = time(raw, 40, big);
  const ctime = time(raw, 48, big);
  for (const t of [atime, mtime, ctime]) if (t.nsec >= 1e9) return `timestamp with ${t.nsec} nanoseconds`;
  const crtime = version === 3 ? time(raw, 144, big) : null;
  if (crtime && crtime.nsec >= 1e9) return `creation time with ${crtime.nsec} nanoseconds`;
  const format = raw[5];
  const nextents = nrext64 ? u64Rounded(raw, 24) : raw.readUInt32BE(76);
  const dataEnd = forkoff ? core + forkoff : raw.length;
  // The part of the data fork its format can use (the checks on it read the same): the extent records,
  // a device number; a local fork (shortform directory, symlink) and a btree root whole.
  const room = dataEnd - core;
  const used = format === FORMAT.EXTENTS ? Math.min(room, nextents * 16) : format === FORMAT.DEV ? Math.min(room, 4) : room;
  const inode: Inode = {
    ino,
    version,
    mode: raw.readUInt16BE(2),
    format,
    uid: raw.readUInt32BE(8),
    gid: raw.readUInt32BE(12),
    // v1 inodes keep a 16-bit link count (di_onlink); v2 and later the 32-bit di_nlink.
    nlink: version === 1 ? raw.readUInt16BE(6) : raw.readUInt32BE(16),
    atimeSec: atime.sec,
    atimeNsec: atime.nsec,
    mtimeSec: mtime.sec,
    mtimeNsec: mtime.nsec,
    ctimeSec: ctime.sec,
    ctimeNsec: ctime.nsec,
    crtimeSec: crtime ? crtime.sec : NaN,
    crtimeNsec: crtime ? crtime.nsec : 0,
    size,
    nblocks: u64Rounded(raw, 64),
    nextents,
    anextents: nrext64 ? raw.readUInt32BE(76) : raw.readUInt16BE(80),
    aformat: raw[83],
    flags: raw.readUInt16BE(90),
    flags2,
    generation: raw.readUInt32BE(92),
    dataFork: copyOf(raw, core, used),
    attrFork: forkoff ? copyOf(raw, core + forkoff, raw.length - core - forkoff) : null,
    crcOk: version !== 3 || xfsCrcOk(raw, V3_CRC_OFFSET),
  };
  return inode;
}
