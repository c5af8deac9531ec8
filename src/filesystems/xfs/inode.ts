import type { FsTime } from '../filesystem.js';
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
const BIGTIME_EPOCH_OFFSET = 2n ** 31n;

export interface Inode {
  ino: number;
  version: number;
  mode: number;
  format: number;
  uid: number;
  gid: number;
  nlink: number;
  atime: FsTime;
  mtime: FsTime;
  ctime: FsTime;
  crtime?: FsTime;
  size: number;
  nblocks: number;
  nextents: number;
  anextents: number;
  aformat: number;
  flags: number;
  flags2: number;
  generation: number;
  /** The data fork's bytes (a view into `raw`). */
  dataFork: Buffer;
  /** The attribute fork's bytes, or null when the inode has none (di_forkoff 0). */
  attrFork: Buffer | null;
  /** Whether the v3 crc matched (true for v1/v2, which have none). */
  crcOk: boolean;
  raw: Buffer;
}

/** Why the inode cannot be used, as one phrase, or the parsed inode. */
export function parseInode(raw: Buffer, ino: number, expectV3: boolean): Inode | string {
  if (raw.readUInt16BE(0) !== INODE_MAGIC) return `bad magic 0x${raw.readUInt16BE(0).toString(16)}`;
  const version = raw[4];
  if (expectV3 ? version !== 3 : version !== 1 && version !== 2) return `version ${version} on a v${expectV3 ? 5 : 4} file system`;
  const core = version === 3 ? 176 : 100;
  const flags2 = version === 3 ? Number(raw.readBigUInt64BE(120)) : 0;
  if (version === 3 && Number(raw.readBigUInt64BE(152)) !== ino) return `records inode number ${raw.readBigUInt64BE(152)}`;
  const bigtime = (flags2 & DIFLAG2_BIGTIME) !== 0;
  const time = (at: number): FsTime => {
    if (bigtime) {
      const ns = raw.readBigUInt64BE(at);
      return { sec: Number(ns / 1_000_000_000n - BIGTIME_EPOCH_OFFSET), nsec: Number(ns % 1_000_000_000n) };
    }
    return { sec: raw.readInt32BE(at), nsec: raw.readUInt32BE(at + 4) };
  };
  const forkoff = raw[82] * 8;
  const literal = raw.length - core;
  if (forkoff >= literal) return `attribute fork offset ${forkoff} past the ${literal} bytes of forks`;
  const nrext64 = (flags2 & DIFLAG2_NREXT64) !== 0;
  const size = raw.readBigUInt64BE(56);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) return `size ${size} exceeds 2^53 bytes`;
  const times: Inode['atime'][] = [time(32), time(40), time(48)];
  for (const t of times) if (t.nsec >= 1e9) return `timestamp with ${t.nsec} nanoseconds`;
  const inode: Inode = {
    ino,
    version,
    mode: raw.readUInt16BE(2),
    format: raw[5],
    uid: raw.readUInt32BE(8),
    gid: raw.readUInt32BE(12),
    // v1 inodes keep a 16-bit link count (di_onlink); v2 and later the 32-bit di_nlink.
    nlink: version === 1 ? raw.readUInt16BE(6) : raw.readUInt32BE(16),
    atime: times[0],
    mtime: times[1],
    ctime: times[2],
    size: Number(size),
    nblocks: Number(raw.readBigUInt64BE(64)),
    nextents: nrext64 ? Number(raw.readBigUInt64BE(24)) : raw.readUInt32BE(76),
    anextents: nrext64 ? raw.readUInt32BE(76) : raw.readUInt16BE(80),
    aformat: raw[83],
    flags: raw.readUInt16BE(90),
    flags2,
    generation: raw.readUInt32BE(92),
    dataFork: raw.subarray(core, forkoff ? core + forkoff : raw.length),
    attrFork: forkoff ? raw.subarray(core + forkoff) : null,
    crcOk: version !== 3 || xfsCrcOk(raw, V3_CRC_OFFSET),
    raw,
  };
  if (version === 3) {
    inode.crtime = time(144);
    if (inode.crtime.nsec >= 1e9) return `creation time with ${inode.crtime.nsec} nanoseconds`;
  }
  return inode;
}
