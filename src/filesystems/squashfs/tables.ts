import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import { Metadata, METADATA_SIZE } from './metadata.js';
import { SUPERBLOCK_SIZE, type Superblock } from './superblock.js';

/**
 * The lookup tables (ids, fragments, xattr ids): entries of a fixed size packed into metadata blocks,
 * and at the table's start an index of 64-bit pointers to those blocks, which come before the index.
 */
export class LookupTable {
  private readonly volume: VolumeReader;
  private readonly meta: Metadata;
  private readonly name: string;
  private readonly what: string;
  /** Where the index of block pointers starts. */
  private readonly index: number;
  /** The lowest byte the table's blocks may start at. */
  private readonly floor: number;
  readonly count: number;
  private readonly entrySize: number;
  private readonly pointers = new Map<number, number>();

  constructor(init: { volume: VolumeReader; meta: Metadata; name: string; what: string; index: number; floor?: number; count: number; entrySize: number; bytesUsed: number }) {
    this.volume = init.volume;
    this.meta = init.meta;
    this.name = init.name;
    this.what = init.what;
    this.index = init.index;
    this.floor = init.floor ?? SUPERBLOCK_SIZE;
    this.count = init.count;
    this.entrySize = init.entrySize;
    const blocks = Math.ceil((this.count * this.entrySize) / METADATA_SIZE);
    if (this.index + blocks * 8 > init.bytesUsed) {
      throw new VdiskError('CORRUPT', `${this.name}: squashfs ${this.what}: its index of ${blocks} block pointers at byte ${this.index} runs past bytes_used (${init.bytesUsed})`);
    }
  }

  private async pointer(block: number): Promise<number> {
    let p = this.pointers.get(block);
    if (p === undefined) {
      const v = (await this.volume.read(this.index + block * 8, 8)).readBigUInt64LE(0);
      if (v < BigInt(this.floor) || v >= BigInt(this.index)) {
        throw new VdiskError('CORRUPT', `${this.name}: squashfs ${this.what}: block pointer ${block} (${v}) is not between byte ${this.floor} and the table's index at ${this.index}`);
      }
      p = Number(v);
      // At most count / entries-per-block pointers: 8192 for the largest fragment table, a few for the rest.
      if (this.pointers.size < 65536) this.pointers.set(block, p);
    }
    return p;
  }

  /** Entry `i`, checked against the table's count. */
  async entry(i: number): Promise<Buffer> {
    if (!Number.isInteger(i) || i < 0 || i >= this.count) {
      throw new VdiskError('CORRUPT', `${this.name}: squashfs ${this.what}: entry ${i} is past its ${this.count} entries`);
    }
    const at = i * this.entrySize;
    const block = Math.floor(at / METADATA_SIZE);
    const pos = await this.pointer(block);
    return (await this.meta.read({ block: pos, offset: at % METADATA_SIZE }, this.entrySize, this.index, `${this.what} entry ${i}`)).data;
  }
}

/** The uids and gids, each inode naming its owner and group by index (at most 65535 of them). */
export async function readIds(volume: VolumeReader, meta: Metadata, sb: Superblock, name: string): Promise<number[]> {
  const table = new LookupTable({ volume, meta, name, what: 'id table', index: sb.idTable, count: sb.idCount, entrySize: 4, bytesUsed: sb.bytesUsed });
  const ids: number[] = [];
  for (let i = 0; i < sb.idCount; i++) ids.push((await table.entry(i)).readUInt32LE(0));
  return ids;
}

export interface Fragment {
  /** The fragment block's byte offset. */
  start: number;
  /** Its stored length, with bit 24 set when stored uncompressed (as a data block's size word). */
  size: number;
}

export function fragmentTable(volume: VolumeReader, meta: Metadata, sb: Superblock, name: string): LookupTable | null {
  if (sb.fragmentTable === null || sb.fragmentCount === 0) return null;
  return new LookupTable({ volume, meta, name, what: 'fragment table', index: sb.fragmentTable, count: sb.fragmentCount, entrySize: 16, bytesUsed: sb.bytesUsed });
}

export async function readFragment(table: LookupTable | null, i: number, sb: Superblock, name: string): Promise<Fragment> {
  if (!table) throw new VdiskError('CORRUPT', `${name}: a file's tail is in fragment ${i}, but the image has no fragments`);
  const e = await table.entry(i);
  const start = e.readBigUInt64LE(0);
  const size = e.readUInt32LE(8);
  const stored = size & 0xffffff;
  if ((size & ~0x1ffffff) !== 0 || stored === 0 || stored > sb.blockSize || start + BigInt(stored) > BigInt(sb.bytesUsed) || start < BigInt(SUPERBLOCK_SIZE)) {
    throw new VdiskError('CORRUPT', `${name}: squashfs fragment table entry ${i}: block at byte ${start} (size word 0x${size.toString(16)}) is not inside the image`);
  }
  return { start: Number(start), size };
}
