import { VdiskError } from '../../errors.js';
import type { ByteRange, FsFile } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { decompressBlock, type Decompressor } from './compression.js';
import { cached, Lru } from './cache.js';
import { BLOCK_UNCOMPRESSED, NO_FRAGMENT, storedSize, type Inode } from './inode.js';

/** Blocks read and decompressed at once for one large read. */
const BLOCKS_IN_FLIGHT = 8;
/**
 * Bytes of blocks read and decompressed ahead of a sequential reader, while it writes out what it
 * has: the decompression (on zlib's threads for gzip) overlaps the copy.
 */
const READ_AHEAD_BYTES = 2 * 1024 * 1024;

export interface FileContext {
  volume: VolumeReader;
  decompress: Decompressor;
  blockSize: number;
  bytesUsed: number;
  /** A fragment block, decompressed (shared and cached by the reader). */
  fragment(index: number, where: string): Promise<Buffer>;
}

/**
 * A regular file's bytes: its full blocks one after another from the inode's start (each compressed
 * or stored; a size of 0 is a block of zeros never written), then the tail, if any, in a fragment.
 */
export class SquashFile implements FsFile {
  readonly size: number;
  private readonly ctx: FileContext;
  private readonly where: string;
  private readonly sizes: Uint32Array;
  /** Where each block is stored (byte offset in the volume). */
  private readonly offsets: Float64Array;
  private readonly fragment: number;
  private readonly fragmentOffset: number;
  /** Blocks read or being read: the last ones (reads smaller than a block come back) and those read ahead. */
  private readonly blocks: Lru<number, Promise<Buffer>>;
  private readonly readAhead: number;
  /** Where the last read ended, to tell a sequential reader. */
  private lastEnd = -1;

  constructor(ctx: FileContext, inode: Inode, where: string) {
    const f = inode.file;
    if (!f) throw new VdiskError('USAGE', `${where}: not a regular file`);
    this.ctx = ctx;
    this.where = where;
    this.size = inode.size;
    this.sizes = f.blocks;
    this.fragment = f.fragment;
    this.fragmentOffset = f.fragmentOffset;
    this.readAhead = Math.max(2, Math.ceil(READ_AHEAD_BYTES / ctx.blockSize));
    this.blocks = new Lru(this.readAhead + BLOCKS_IN_FLIGHT + 2);
    this.offsets = new Float64Array(f.blocks.length);
    let at = f.start;
    for (let i = 0; i < f.blocks.length; i++) {
      const w = f.blocks[i];
      const stored = storedSize(w);
      if (stored < 0 || stored > ctx.blockSize) throw new VdiskError('CORRUPT', `${where}: data block ${i}: size word 0x${w.toString(16)} is larger than a block`);
      this.offsets[i] = at;
      at += stored;
    }
    if (f.blocks.length > 0 && at > ctx.bytesUsed) {
      throw new VdiskError('CORRUPT', `${where}: data blocks from byte ${f.start} run to byte ${at}, past the image's ${ctx.bytesUsed} bytes`);
    }
  }

  private get tail(): number {
    return this.fragment === NO_FRAGMENT ? 0 : this.size - this.sizes.length * this.ctx.blockSize;
  }

  /** Block `index` (the tail when it is one past the full blocks), exactly as long as the file has bytes there. */
  private block(index: number): Promise<Buffer> {
    return cached(this.blocks, index, () => this.load(index));
  }

  private async load(index: number): Promise<Buffer> {
    const bs = this.ctx.blockSize;
    const want = Math.min(bs, this.size - index * bs);
    let data: Buffer;
    if (index < this.sizes.length) {
      const w = this.sizes[index];
      const stored = storedSize(w);
      const where = `${this.where}: data block ${index} at byte ${this.offsets[index]}`;
      if (stored === 0) data = Buffer.alloc(want);
      else {
        const raw = await this.ctx.volume.read(this.offsets[index], stored);
        data = w & BLOCK_UNCOMPRESSED ? raw : await decompressBlock(this.ctx.decompress, raw, bs, where);
        if (data.length < want) throw new VdiskError('CORRUPT', `${where} holds ${data.length} bytes, not the file's ${want}`);
      }
    } else {
      const frag = await this.ctx.fragment(this.fragment, this.where);
      if (this.fragmentOffset + want > frag.length) {
        throw new VdiskError('CORRUPT', `${this.where}: tail of ${want} bytes at offset ${this.fragmentOffset} runs past fragment ${this.fragment} (${frag.length} bytes)`);
      }
      data = frag.subarray(this.fragmentOffset, this.fragmentOffset + want);
    }
    return data;
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    const want = Math.max(0, Math.min(buf.length, this.size - position));
    if (want === 0) return 0;
    const bs = this.ctx.blockSize;
    const first = Math.floor(position / bs);
    const last = Math.floor((position + want - 1) / bs);
    if (last > this.sizes.length || (last === this.sizes.length && this.tail <= 0)) {
      throw new VdiskError('CORRUPT', `${this.where}: ${this.size} bytes but only ${this.sizes.length} blocks and no tail`);
    }
    let next = first;
    const worker = async () => {
      while (next <= last) {
        const index = next++;
        const data = await this.block(index);
        const from = Math.max(position, index * bs);
        const to = Math.min(position + want, index * bs + data.length);
        buf.set(data.subarray(from - index * bs, to - index * bs), from - position);
      }
    };
    await Promise.all(Array.from({ length: Math.min(BLOCKS_IN_FLIGHT, last - first + 1) }, worker));
    if (position === this.lastEnd) {
      // A sequential reader: start on the blocks it will ask for next; a failure there is its own read's to report.
      const end = Math.min(last + this.readAhead, this.sizes.length - 1);
      for (let i = last + 1; i <= end; i++) this.block(i).catch(() => undefined);
    }
    this.lastEnd = position + want;
    return want;
  }

  /** Blocks of size 0 are holes (mksquashfs writes them for runs of zeros a whole block long). */
  async dataRanges(): Promise<ByteRange[]> {
    const out: ByteRange[] = [];
    const bs = this.ctx.blockSize;
    const add = (offset: number, length: number) => {
      const prev = out[out.length - 1];
      if (prev && prev.offset + prev.length === offset) prev.length += length;
      else out.push({ offset, length });
    };
    for (let i = 0; i < this.sizes.length; i++) if (this.sizes[i] !== 0) add(i * bs, Math.min(bs, this.size - i * bs));
    if (this.tail > 0) add(this.sizes.length * bs, this.tail);
    return out;
  }
}
