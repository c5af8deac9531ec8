import { crc16, extCrc, le32 } from './checksum.js';
import { COMPAT, INCOMPAT, RO_COMPAT, type Superblock } from './superblock.js';

/**
 * Block group descriptors (Documentation/filesystems/ext4/group_descr.rst): 32 bytes, or s_desc_size
 * (at least 64) with the 64bit feature, the high halves of the block numbers in the second 32 bytes.
 */
export const BG_INODE_UNINIT = 0x1;
export const BG_BLOCK_UNINIT = 0x2;

export interface GroupDesc {
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: number;
  flags: number;
  checksum: number;
  /** crc32c of the block bitmap (metadata_csum): 16 bits, 32 with 64-byte descriptors. */
  blockBitmapCsum: number;
}

export function parseGroupDesc(b: Buffer, is64: boolean): GroupDesc {
  const hi = (o: number) => (is64 && b.length >= 64 ? b.readUInt32LE(o) * 2 ** 32 : 0);
  return {
    blockBitmap: b.readUInt32LE(0x0) + hi(0x20),
    inodeBitmap: b.readUInt32LE(0x4) + hi(0x24),
    inodeTable: b.readUInt32LE(0x8) + hi(0x28),
    flags: b.readUInt16LE(0x12),
    checksum: b.readUInt16LE(0x1e),
    blockBitmapCsum: b.readUInt16LE(0x18) + (b.length >= 0x3c ? b.readUInt16LE(0x38) * 0x10000 : 0),
  };
}

/**
 * Whether the descriptor's bg_checksum matches: metadata_csum takes the low 16 bits of crc32c over the
 * group number and the descriptor with the checksum zeroed; gdt_csum a crc16 over the UUID, the group
 * number and the descriptor around the checksum field (group_descr.rst, bg_checksum). True when the
 * volume has neither.
 */
export function groupDescChecksumOk(sb: Superblock, seed: number, group: number, desc: Buffer): boolean {
  const stored = desc.readUInt16LE(0x1e);
  if (sb.featureRoCompat & RO_COMPAT.METADATA_CSUM) {
    const copy = Buffer.from(desc);
    copy.writeUInt16LE(0, 0x1e);
    return (extCrc(extCrc(seed, le32(group)), copy) & 0xffff) === stored;
  }
  if (sb.featureRoCompat & RO_COMPAT.GDT_CSUM) {
    let c = crc16(0xffff, sb.uuid);
    c = crc16(c, le32(group));
    c = crc16(c, desc.subarray(0, 0x1e));
    if (desc.length > 0x20) c = crc16(c, desc.subarray(0x20));
    return c === stored;
  }
  return true;
}

/** Whether group `g` carries a superblock backup (sparse_super: 0, 1 and powers of 3, 5, 7; super.rst). */
export function groupHasSuper(sb: Superblock, g: number): boolean {
  if (g === 0) return true;
  if (sb.featureCompat & COMPAT.SPARSE_SUPER2) return g === sb.backupBgs[0] || g === sb.backupBgs[1];
  if (g <= 1 || !(sb.featureRoCompat & RO_COMPAT.SPARSE_SUPER)) return true;
  if (!(g & 1)) return false;
  for (const base of [3, 5, 7]) {
    let p = base;
    while (p < g) p *= base;
    if (p === g) return true;
  }
  return false;
}

/** The geometry the reader derives once from a validated superblock. */
export interface Geometry {
  blockSize: number;
  blocksCount: number;
  firstDataBlock: number;
  blocksPerGroup: number;
  groupCount: number;
  descSize: number;
  descPerBlock: number;
  /** Blocks of the contiguous descriptor table after the superblock (meta_bg: only the first s_first_meta_bg). */
  gdtBlocks: number;
}

/**
 * The block holding descriptor block `i` (the i-th block's worth of descriptors). Without meta_bg the
 * table follows the primary superblock; with it, descriptor blocks from s_first_meta_bg on live in the
 * first group of their meta group, after that group's superblock backup if it has one
 * (Documentation/filesystems/ext4/blockgroup.rst, "Meta Block Groups").
 */
export function descBlockLocation(sb: Superblock, geo: Geometry, i: number): number {
  // The table follows the block holding the primary superblock (byte 1024): block 1 with 1 KiB blocks even
  // when s_first_data_block is 0, as bigalloc makes it.
  if (!(sb.featureIncompat & INCOMPAT.META_BG) || i < sb.firstMetaBg) return Math.floor(1024 / geo.blockSize) + 1 + i;
  const group = i * geo.descPerBlock;
  const zeroAdjust = group === 0 && geo.blockSize === 1024 && geo.firstDataBlock === 0 ? 1 : 0;
  return geo.firstDataBlock + group * geo.blocksPerGroup + (groupHasSuper(sb, group) ? 1 : 0) + zeroAdjust;
}

/**
 * The blocks of group `g` holding a superblock backup and descriptors (ext2fs_super_and_bgd_loc2's
 * reckoning): the superblock, then either the old-style table with its reserved growth blocks, or with
 * meta_bg one descriptor block in the first, second and last group of each meta group.
 */
export function superAndDescBlocks(sb: Superblock, geo: Geometry, g: number): { start: number; count: number }[] {
  const first = geo.firstDataBlock + g * geo.blocksPerGroup;
  const out: { start: number; count: number }[] = [];
  const hasSuper = groupHasSuper(sb, g);
  // With 1 KiB blocks and s_first_data_block 0 (bigalloc), group 0's superblock sits in block 1.
  const superBlock = g === 0 && geo.blockSize === 1024 && geo.firstDataBlock === 0 ? 1 : first;
  if (hasSuper) out.push({ start: first, count: superBlock - first + 1 });
  const metaBg = Math.floor(g / geo.descPerBlock);
  const metaBgOn = (sb.featureIncompat & INCOMPAT.META_BG) !== 0;
  if (!metaBgOn || metaBg < sb.firstMetaBg) {
    if (hasSuper) {
      const old = metaBgOn ? sb.firstMetaBg : geo.gdtBlocks + sb.reservedGdtBlocks;
      if (old > 0) out.push({ start: superBlock + 1, count: old });
    }
  } else {
    const r = g % geo.descPerBlock;
    if (r === 0 || r === 1 || r === geo.descPerBlock - 1) out.push({ start: first + (hasSuper ? 1 : 0), count: 1 });
  }
  return out;
}
