import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import { decompressBlock, type Decompressor } from './compression.js';
import { cached, Lru } from './cache.js';

/**
 * Metadata blocks (inode, directory, fragment, id and xattr tables): a 16-bit header (the stored
 * length, and bit 15 set when stored uncompressed), then at most 8 KiB of data once decompressed.
 * A table is a run of such blocks, and a position in it is the block's byte offset plus an offset
 * into its decompressed data.
 */

export const METADATA_SIZE = 8192;
const UNCOMPRESSED = 0x8000;
/** 256 blocks of 8 KiB: 2 MiB of decompressed metadata kept. */
const CACHED_BLOCKS = 256;

const EMPTY = Buffer.alloc(0);

export interface MetaPos {
  /** The metadata block's absolute byte offset in the volume. */
  block: number;
  /** The offset into its decompressed data. */
  offset: number;
}

interface Block {
  data: Buffer;
  /** Where the next block of the table starts. */
  next: number;
}

/** The most bytes a table region of `bytes` can hold decompressed: every block takes 3 bytes at least. */
export function maxDecompressed(bytes: number): number {
  return Math.ceil(bytes / 3) * METADATA_SIZE;
}

export class Metadata {
  private readonly volume: VolumeReader;
  private readonly decompress: Decompressor;
  private readonly name: string;
  private readonly cache = new Lru<number, Promise<Block>>(CACHED_BLOCKS);
  /**
   * Blocks decompressed, by position, for `readNow`: the same bounded set as `cache` (an entry leaves
   * when its promise does). Consecutive inodes and listings lie in the same block: reading them
   * without a promise each is most of a walk's cost.
   */
  private readonly ready = new Map<number, Block>();

  constructor(volume: VolumeReader, decompress: Decompressor, name: string) {
    this.volume = volume;
    this.decompress = decompress;
    this.name = name;
  }

  /** The block at `pos`, which with its data must lie before `end` (its table's end). */
  block(pos: number, end: number, what: string): Promise<Block> {
    const hit = this.cache.get(pos);
    if (hit) return hit;
    return cached(this.cache, pos, async () => {
      const where = `${this.name}: ${what}: metadata block at byte ${pos}`;
      if (pos + 2 > end) throw new VdiskError('CORRUPT', `${where} lies past the table's end (byte ${end})`);
      const h = (await this.volume.read(pos, 2)).readUInt16LE(0);
      const size = h & ~UNCOMPRESSED;
      if (size === 0 || size > METADATA_SIZE) throw new VdiskError('CORRUPT', `${where}: stored length ${size} is not 1 to 8192`);
      if (pos + 2 + size > end) throw new VdiskError('CORRUPT', `${where}: its ${size} bytes run past the table's end (byte ${end})`);
      const raw = await this.volume.read(pos + 2, size);
      const data = h & UNCOMPRESSED ? raw : await decompressBlock(this.decompress, raw, METADATA_SIZE, where);
      const block = { data, next: pos + 2 + size };
      this.keepReady(pos, block);
      return block;
    });
  }

  private keepReady(pos: number, block: Block): void {
    this.ready.set(pos, block);
    // Bounded like the promise cache: the oldest decompressed blocks go first.
    if (this.ready.size > CACHED_BLOCKS) this.ready.delete(this.ready.keys().next().value as number);
  }

  /**
   * `length` bytes of the table from `at` (which is moved past them) when every block they lie in is
   * already decompressed; else null and `at` unchanged (then `read`). Checks as `read` does.
   */
  readNow(at: MetaPos, length: number, what: string): Buffer | null {
    if (length === 0) return EMPTY;
    if (at.offset >= METADATA_SIZE) throw new VdiskError('CORRUPT', `${this.name}: ${what}: offset ${at.offset} into a metadata block is past its 8192 bytes`);
    const b = this.ready.get(at.block);
    if (!b) return null;
    if (at.offset > b.data.length) {
      throw new VdiskError('CORRUPT', `${this.name}: ${what}: offset ${at.offset} is past the ${b.data.length} bytes of the metadata block at byte ${at.block}`);
    }
    // Only the common case, all in one block; a piece running into the next block goes through `read`.
    if (at.offset + length > b.data.length) return null;
    const data = b.data.subarray(at.offset, at.offset + length);
    if (at.offset + length === b.data.length) {
      at.block = b.next;
      at.offset = 0;
    } else at.offset += length;
    return data;
  }

  /** `length` bytes of the table from `at`, reading on into the blocks that follow; and the position after them. */
  async read(at: MetaPos, length: number, end: number, what: string): Promise<{ data: Buffer; next: MetaPos }> {
    let { block, offset } = at;
    if (offset >= METADATA_SIZE) throw new VdiskError('CORRUPT', `${this.name}: ${what}: offset ${offset} into a metadata block is past its 8192 bytes`);
    // Nothing to read loads nothing: an inode may end exactly where its table does.
    if (length === 0) return { data: Buffer.alloc(0), next: at };
    const parts: Buffer[] = [];
    let got = 0;
    // Each pass moves to a later block, and blocks end before `end`: the loop is bounded by the table.
    for (;;) {
      const b = await this.block(block, end, what);
      if (offset > b.data.length) {
        throw new VdiskError('CORRUPT', `${this.name}: ${what}: offset ${offset} is past the ${b.data.length} bytes of the metadata block at byte ${block}`);
      }
      const n = Math.min(length - got, b.data.length - offset);
      parts.push(b.data.subarray(offset, offset + n));
      got += n;
      offset += n;
      if (got === length) {
        const data = parts.length === 1 ? parts[0] : Buffer.concat(parts, length);
        return { data, next: offset === b.data.length ? { block: b.next, offset: 0 } : { block, offset } };
      }
      block = b.next;
      offset = 0;
    }
  }
}
