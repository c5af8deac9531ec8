import { extCrc } from './checksum.js';

/**
 * The ext2/3/4 superblock: 1024 bytes at byte 1024 of the volume, little-endian. Field offsets follow
 * the kernel's ext4 documentation ("The Super Block", Documentation/filesystems/ext4/super.rst). The
 * detector and the reader both parse it here.
 */
export const SUPERBLOCK_OFFSET = 1024;
export const SUPERBLOCK_SIZE = 1024;
export const EXT_MAGIC = 0xef53;

export const COMPAT = {
  HAS_JOURNAL: 0x4,
  EXT_ATTR: 0x8,
  DIR_INDEX: 0x20,
  SPARSE_SUPER2: 0x200,
} as const;

export const INCOMPAT = {
  COMPRESSION: 0x1,
  FILETYPE: 0x2,
  RECOVER: 0x4,
  JOURNAL_DEV: 0x8,
  META_BG: 0x10,
  EXTENTS: 0x40,
  BIT64: 0x80,
  MMP: 0x100,
  FLEX_BG: 0x200,
  EA_INODE: 0x400,
  DIRDATA: 0x1000,
  CSUM_SEED: 0x2000,
  LARGEDIR: 0x4000,
  INLINE_DATA: 0x8000,
  ENCRYPT: 0x10000,
  CASEFOLD: 0x20000,
} as const;

export const RO_COMPAT = {
  SPARSE_SUPER: 0x1,
  LARGE_FILE: 0x2,
  HUGE_FILE: 0x8,
  GDT_CSUM: 0x10,
  DIR_NLINK: 0x20,
  EXTRA_ISIZE: 0x40,
  BIGALLOC: 0x200,
  METADATA_CSUM: 0x400,
} as const;

/** Incompatible features this reader understands; any other bit set means we cannot read the volume right. */
export const KNOWN_INCOMPAT = INCOMPAT.FILETYPE | INCOMPAT.RECOVER | INCOMPAT.META_BG | INCOMPAT.EXTENTS | INCOMPAT.BIT64 |
  INCOMPAT.MMP | INCOMPAT.FLEX_BG | INCOMPAT.EA_INODE | INCOMPAT.CSUM_SEED | INCOMPAT.LARGEDIR | INCOMPAT.INLINE_DATA |
  INCOMPAT.ENCRYPT | INCOMPAT.CASEFOLD;

/** The names dumpe2fs gives the incompatible features we refuse, for the refusal's message. */
export const INCOMPAT_NAMES: Record<number, string> = {
  0x1: 'compression',
  0x8: 'journal_dev',
  0x1000: 'dirdata',
};

export interface Superblock {
  inodesCount: number;
  blocksCount: number;
  freeBlocksCount: number;
  firstDataBlock: number;
  logBlockSize: number;
  logClusterSize: number;
  blocksPerGroup: number;
  clustersPerGroup: number;
  inodesPerGroup: number;
  magic: number;
  state: number;
  revLevel: number;
  minorRevLevel: number;
  firstIno: number;
  inodeSize: number;
  featureCompat: number;
  featureIncompat: number;
  featureRoCompat: number;
  uuid: Buffer;
  volumeName: string;
  reservedGdtBlocks: number;
  descSize: number;
  firstMetaBg: number;
  minExtraIsize: number;
  logGroupsPerFlex: number;
  checksumType: number;
  checksumSeed: number;
  /** sparse_super2: the only two groups carrying backups. */
  backupBgs: [number, number];
  encoding: number;
  encodingFlags: number;
  checksum: number;
  raw: Buffer;
}

const u16 = (b: Buffer, o: number) => b.readUInt16LE(o);
const u32 = (b: Buffer, o: number) => b.readUInt32LE(o);

/** Parses the 1024 superblock bytes; null when the magic is not ext's. Values are not validated here. */
export function parseSuperblock(s: Buffer): Superblock | null {
  if (s.length < SUPERBLOCK_SIZE || u16(s, 0x38) !== EXT_MAGIC) return null;
  const incompat = u32(s, 0x60);
  const is64 = (incompat & INCOMPAT.BIT64) !== 0;
  const revLevel = u32(s, 0x4c);
  return {
    inodesCount: u32(s, 0x0),
    blocksCount: u32(s, 0x4) + (is64 ? u32(s, 0x150) * 2 ** 32 : 0),
    freeBlocksCount: u32(s, 0xc) + (is64 ? u32(s, 0x158) * 2 ** 32 : 0),
    firstDataBlock: u32(s, 0x14),
    logBlockSize: u32(s, 0x18),
    logClusterSize: u32(s, 0x1c),
    blocksPerGroup: u32(s, 0x20),
    clustersPerGroup: u32(s, 0x24),
    inodesPerGroup: u32(s, 0x28),
    magic: u16(s, 0x38),
    state: u16(s, 0x3a),
    revLevel,
    minorRevLevel: u16(s, 0x3e),
    // Revision 0 file systems have fixed 128-byte inodes and first usable inode 11 (super.rst, s_rev_level).
    firstIno: revLevel === 0 ? 11 : u32(s, 0x54),
    inodeSize: revLevel === 0 ? 128 : u16(s, 0x58),
    featureCompat: u32(s, 0x5c),
    featureIncompat: incompat,
    featureRoCompat: u32(s, 0x64),
    uuid: Buffer.from(s.subarray(0x68, 0x78)),
    volumeName: s.toString('latin1', 0x78, 0x88),
    reservedGdtBlocks: u16(s, 0xce),
    descSize: u16(s, 0xfe),
    firstMetaBg: u32(s, 0x104),
    minExtraIsize: u16(s, 0x15c),
    logGroupsPerFlex: s[0x174],
    checksumType: s[0x175],
    checksumSeed: u32(s, 0x270),
    backupBgs: [u32(s, 0x24c), u32(s, 0x250)],
    encoding: u16(s, 0x27c),
    encodingFlags: u16(s, 0x27e),
    checksum: u32(s, 0x3fc),
    raw: s,
  };
}

/** metadata_csum: crc32c of the superblock up to its checksum field (super.rst, s_checksum). */
export function superblockChecksumOk(sb: Superblock): boolean {
  return extCrc(0xffffffff, sb.raw.subarray(0, 0x3fc)) === sb.checksum;
}

/** The seed every other metadata checksum starts from: stored (csum_seed) or crc32c of the UUID. */
export function checksumSeed(sb: Superblock): number {
  if (sb.featureIncompat & INCOMPAT.CSUM_SEED) return sb.checksumSeed;
  return extCrc(0xffffffff, sb.uuid);
}
