import type { ByteRange } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { extCrc } from './checksum.js';
import { BG_BLOCK_UNINIT, superAndDescBlocks, type GroupDesc, type Geometry } from './group-desc.js';
import { RO_COMPAT, type Superblock } from './superblock.js';

/** What the free-space scan needs from the reader. */
export interface FreeSpaceSource {
  readonly sb: Superblock;
  readonly geo: Geometry;
  readonly blockSize: number;
  group(g: number): Promise<GroupDesc>;
  warn(what: string): void;
  corrupt(what: string): import('../../errors.js').VdiskError;
  /** The metadata_csum seed, or null. */
  readonly csumSeed: number | null;
}

/**
 * The block bitmap of a BLOCK_UNINIT group, which was never written: everything is free except the
 * group's superblock backup and descriptor blocks and those of its own bitmaps and inode table that
 * lie inside it (the kernel's ext4_init_block_bitmap; group_descr.rst, bg_flags).
 */
function uninitBitmap(src: FreeSpaceSource, g: number, gd: GroupDesc, ratio: number): Buffer {
  const { sb, geo } = src;
  const bitmap = Buffer.alloc(geo.blockSize);
  const first = geo.firstDataBlock + g * geo.blocksPerGroup;
  const mark = (start: number, count: number) => {
    for (let b = Math.max(start, first); b < Math.min(start + count, first + geo.blocksPerGroup); b++) {
      const bit = Math.floor((b - first) / ratio);
      bitmap[bit >> 3] |= 1 << (bit & 7);
    }
  };
  for (const r of superAndDescBlocks(sb, geo, g)) mark(r.start, r.count);
  mark(gd.blockBitmap, 1);
  mark(gd.inodeBitmap, 1);
  mark(gd.inodeTable, Math.ceil((sb.inodesPerGroup * sb.inodeSize) / geo.blockSize));
  return bitmap;
}

/**
 * The volume's free blocks from the block bitmaps, one group at a time, merged across groups and
 * yielded as byte ranges: memory stays one bitmap block however large the volume. With bigalloc the
 * bitmaps count clusters.
 */
export async function* freeRuns(src: FreeSpaceSource, volume: VolumeReader): AsyncGenerator<ByteRange> {
  const { sb, geo } = src;
  const bigalloc = (sb.featureRoCompat & RO_COMPAT.BIGALLOC) !== 0;
  const ratio = bigalloc ? 2 ** (sb.logClusterSize - sb.logBlockSize) : 1;
  const csumGroups = (sb.featureRoCompat & (RO_COMPAT.GDT_CSUM | RO_COMPAT.METADATA_CSUM)) !== 0;
  const bs = geo.blockSize;
  let runStart = -1;
  let runEnd = -1;
  for (let g = 0; g < geo.groupCount; g++) {
    const gd = await src.group(g);
    const first = geo.firstDataBlock + g * geo.blocksPerGroup;
    const blocks = Math.min(geo.blocksPerGroup, geo.blocksCount - first);
    const units = Math.ceil(blocks / ratio);
    let bitmap: Buffer;
    if (csumGroups && gd.flags & BG_BLOCK_UNINIT) bitmap = uninitBitmap(src, g, gd, ratio);
    else {
      if (gd.blockBitmap === 0 || gd.blockBitmap >= geo.blocksCount) {
        throw src.corrupt(`group ${g}: block bitmap at block ${gd.blockBitmap} lies outside the volume`);
      }
      bitmap = await volume.read(gd.blockBitmap * bs, bs);
      if (src.csumSeed !== null) {
        const perGroup = bigalloc ? sb.clustersPerGroup : sb.blocksPerGroup;
        const c = extCrc(src.csumSeed, bitmap.subarray(0, Math.ceil(perGroup / 8)));
        const want = geo.descSize >= 64 ? c : c & 0xffff;
        if (want !== gd.blockBitmapCsum) src.warn(`group ${g}: block bitmap checksum mismatch (metadata_csum)`);
      }
    }
    // Whole 32-bit words of ones (used) or zeros (free) are skipped at once; bitmaps are little-endian bit order.
    const word = (at: number) => (at + 32 <= units ? bitmap.readUInt32LE(at >> 3) : -1);
    for (let u = 0; u < units;) {
      if ((u & 31) === 0 && word(u) === 0xffffffff) {
        u += 32;
        continue;
      }
      if (bitmap[u >> 3] & (1 << (u & 7))) {
        u++;
        continue;
      }
      // A free unit: extend to the end of its run of zero bits.
      let v = u + 1;
      while (v < units) {
        if ((v & 31) === 0 && word(v) === 0) v += 32;
        else if (bitmap[v >> 3] & (1 << (v & 7))) break;
        else v++;
      }
      const start = first + u * ratio;
      const end = Math.min(first + v * ratio, first + blocks);
      if (start === runEnd) runEnd = end;
      else {
        if (runStart >= 0) yield { offset: runStart * bs, length: (runEnd - runStart) * bs };
        runStart = start;
        runEnd = end;
      }
      u = v;
    }
  }
  if (runStart >= 0) yield { offset: runStart * bs, length: (runEnd - runStart) * bs };
}
