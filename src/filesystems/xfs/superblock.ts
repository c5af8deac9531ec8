import { xfsCrcOk } from './checksum.js';

/**
 * The XFS superblock (xfs_format.h, struct xfs_dsb): big-endian, in the first sector of every
 * allocation group; AG 0's copy is the primary. Offsets below are the on-disk ones.
 */
export const XFS_MAGIC = 0x58465342; // 'XFSB'
const CRC_OFFSET = 224;

/** Version 5 incompatible features (XFS_SB_FEAT_INCOMPAT_*). */
export const INCOMPAT = {
  FTYPE: 0x1,
  SPINODES: 0x2,
  META_UUID: 0x4,
  BIGTIME: 0x8,
  NEEDSREPAIR: 0x10,
  NREXT64: 0x20,
} as const;
const INCOMPAT_NAMES: Record<number, string> = { 0x40: 'exchange-range', 0x80: 'parent pointers', 0x100: 'metadir' };
/** Version 4 features2 bits (XFS_SB_VERSION2_*). */
const FEATURES2_FTYPE = 0x200;
const VERSION_MOREBITS = 0x8000;
const VERSION_DIRV2 = 0x2000;
/** ASCII case-insensitive directories (mkfs.xfs -n version=ci; XFS_SB_VERSION_BORGBIT). */
const VERSION_ASCII_CI = 0x4000;

export interface Superblock {
  blockSize: number;
  dblocks: number;
  rblocks: number;
  uuid: Buffer;
  logStart: number;
  rootIno: number;
  agBlocks: number;
  agCount: number;
  logBlocks: number;
  version: number;
  versionNum: number;
  sectSize: number;
  inodeSize: number;
  inoPerBlock: number;
  label: string;
  blockLog: number;
  sectLog: number;
  inodeLog: number;
  inoPerBlockLog: number;
  agBlockLog: number;
  inProgress: number;
  dirBlockLog: number;
  features2: number;
  featuresIncompat: number;
  featuresRoCompat: number;
  featuresLogIncompat: number;
  /** The first 264 bytes as read (the whole primary sector is checksummed). */
  raw: Buffer;
}

const u64 = (b: Buffer, at: number): number => Number(b.readBigUInt64BE(at));

/** Parses the primary superblock; null without the magic. Validation is the reader's (validateSuperblock). */
export function parseSuperblock(b: Buffer): Superblock | null {
  if (b.length < 264 || b.readUInt32BE(0) !== XFS_MAGIC) return null;
  const versionNum = b.readUInt16BE(100);
  return {
    blockSize: b.readUInt32BE(4),
    dblocks: u64(b, 8),
    rblocks: u64(b, 16),
    uuid: Buffer.from(b.subarray(32, 48)),
    logStart: u64(b, 48),
    rootIno: u64(b, 56),
    agBlocks: b.readUInt32BE(84),
    agCount: b.readUInt32BE(88),
    logBlocks: b.readUInt32BE(96),
    versionNum,
    version: versionNum & 0xf,
    sectSize: b.readUInt16BE(102),
    inodeSize: b.readUInt16BE(104),
    inoPerBlock: b.readUInt16BE(106),
    label: b.toString('utf8', 108, 120).split('\0')[0],
    blockLog: b[120],
    sectLog: b[121],
    inodeLog: b[122],
    inoPerBlockLog: b[123],
    agBlockLog: b[124],
    inProgress: b[126],
    dirBlockLog: b[192],
    features2: versionNum & VERSION_MOREBITS ? b.readUInt32BE(200) : 0,
    featuresIncompat: (versionNum & 0xf) === 5 ? b.readUInt32BE(216) : 0,
    featuresRoCompat: (versionNum & 0xf) === 5 ? b.readUInt32BE(212) : 0,
    featuresLogIncompat: (versionNum & 0xf) === 5 ? b.readUInt32BE(220) : 0,
    raw: Buffer.from(b.subarray(0, 264)),
  };
}

/** Whether directory entries carry a file type byte (v5 incompat ftype, or v4 features2 ftype). */
export function hasFtype(sb: Superblock): boolean {
  return sb.version === 5 ? (sb.featuresIncompat & INCOMPAT.FTYPE) !== 0 : (sb.features2 & FEATURES2_FTYPE) !== 0;
}

/** Whether names compare case-insensitively, ASCII letters only (xfs_ascii_ci_hashname). */
export function asciiCi(sb: Superblock): boolean {
  return (sb.versionNum & VERSION_ASCII_CI) !== 0;
}

/** The v5 superblock checksum over the sector it lives in. */
export function superblockCrcOk(sector: Buffer): boolean {
  return xfsCrcOk(sector, CRC_OFFSET);
}

const pow2 = (n: number): boolean => n > 0 && (n & (n - 1)) === 0;

/**
 * What is wrong with the geometry, as one phrase, or null when every size and count is consistent with
 * itself and the log2 fields that duplicate it (the checks of xfs_validate_sb_common that matter for
 * reading): a reader trusts these numbers for every offset it computes.
 */
export function superblockProblem(sb: Superblock): string | null {
  if (sb.version !== 4 && sb.version !== 5) return `version ${sb.version} (4 or 5 expected)`;
  if (sb.version === 4 && !(sb.versionNum & VERSION_DIRV2)) return 'version 4 without version 2 directories';
  if (!pow2(sb.blockSize) || sb.blockSize < 512 || sb.blockSize > 65536 || 2 ** sb.blockLog !== sb.blockSize) {
    return `block size ${sb.blockSize} (log ${sb.blockLog})`;
  }
  if (!pow2(sb.sectSize) || sb.sectSize < 512 || sb.sectSize > 32768 || 2 ** sb.sectLog !== sb.sectSize || sb.sectSize > sb.blockSize) {
    return `sector size ${sb.sectSize} (log ${sb.sectLog})`;
  }
  const minInode = sb.version === 5 ? 512 : 256;
  if (!pow2(sb.inodeSize) || sb.inodeSize < minInode || sb.inodeSize > 2048 || 2 ** sb.inodeLog !== sb.inodeSize || sb.inodeSize > sb.blockSize) {
    return `inode size ${sb.inodeSize} (log ${sb.inodeLog})`;
  }
  if (sb.inoPerBlock !== sb.blockSize / sb.inodeSize || 2 ** sb.inoPerBlockLog !== sb.inoPerBlock) return `${sb.inoPerBlock} inodes per block`;
  if (sb.agBlocks < 16 || sb.agBlockLog > 31 || 2 ** sb.agBlockLog < sb.agBlocks || 2 ** (sb.agBlockLog - 1) >= sb.agBlocks) {
    return `${sb.agBlocks} blocks per allocation group (log ${sb.agBlockLog})`;
  }
  if (sb.agCount < 1 || !Number.isSafeInteger(sb.dblocks) || sb.dblocks <= (sb.agCount - 1) * sb.agBlocks || sb.dblocks > sb.agCount * sb.agBlocks) {
    return `${sb.dblocks} blocks in ${sb.agCount} allocation groups of ${sb.agBlocks}`;
  }
  if (sb.blockSize * 2 ** sb.dirBlockLog > 65536) return `directory block size 2^${sb.dirBlockLog} blocks`;
  if (sb.agBlockLog + sb.inoPerBlockLog > 32 + 20) return 'inode numbers wider than 52 bits';
  return null;
}

/** Incompatible features this reader does not know, as names; empty when it can read the volume. */
export function unknownIncompat(sb: Superblock): string[] {
  const known = INCOMPAT.FTYPE | INCOMPAT.SPINODES | INCOMPAT.META_UUID | INCOMPAT.BIGTIME | INCOMPAT.NEEDSREPAIR | INCOMPAT.NREXT64;
  const unknown = sb.featuresIncompat & ~known;
  const out: string[] = [];
  for (let bit = 1; bit !== 0 && bit <= unknown; bit = (bit << 1) >>> 0) if (unknown & bit) out.push(INCOMPAT_NAMES[bit] ?? `0x${bit.toString(16)}`);
  return out;
}
