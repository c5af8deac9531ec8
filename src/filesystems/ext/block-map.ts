import { LOGICAL_LIMIT, type BlockMapper, type BlockSource, type Run } from './mapping.js';

/**
 * The ext2/ext3 block map (Documentation/filesystems/ext4/blockmap.rst): i_block holds 12 direct block
 * numbers, then one indirect, one double-indirect and one triple-indirect block number; each indirect
 * block is an array of 32-bit block numbers. A zero anywhere is a hole over everything below it.
 */
const DIRECT = 12;

export class BlockMap implements BlockMapper {
  private readonly perBlock: number;

  constructor(private readonly iBlock: Buffer, private readonly src: BlockSource, private readonly ino: number) {
    this.perBlock = src.blockSize / 4;
  }

  private check(block: number, what: string): void {
    if (block >= this.src.blocksCount) {
      throw this.src.corrupt(`inode ${this.ino}: ${what} points at block ${block}, outside the volume`);
    }
  }

  runNow(lblk: number): Run | null {
    return lblk < DIRECT ? this.scan(this.iBlock, lblk, DIRECT - lblk, 'block map') : null;
  }

  async run(lblk: number): Promise<Run> {
    const a = this.perBlock;
    if (lblk < DIRECT) return this.scan(this.iBlock, lblk, DIRECT - lblk, 'block map');
    // Which indirect tree (1, 2 or 3 levels) holds lblk, and lblk's index inside it.
    let rel = lblk - DIRECT;
    let levels = 1;
    let span = a;
    while (rel >= span) {
      rel -= span;
      levels++;
      if (levels > 3) return { physical: 0, count: Math.max(1, LOGICAL_LIMIT - lblk), uninit: false };
      span *= a;
    }
    let node = this.iBlock;
    let index = DIRECT + levels - 1;
    let what = 'block map';
    for (let level = levels; level > 0; level--) {
      const ptr = node.readUInt32LE(index * 4);
      // `span` blocks lie under ptr and lblk is `rel` of them in: a zero pointer is a hole to their end.
      if (ptr === 0) return { physical: 0, count: span - rel, uninit: false };
      this.check(ptr, what);
      node = await this.src.readBlock(ptr);
      what = `indirect block ${ptr}`;
      span /= a;
      index = Math.floor(rel / span);
      rel %= span;
      if (level === 1) break;
    }
    return this.scan(node, index, a - index, what);
  }

  /** The run of contiguous (or zero) block numbers in `arr` from `index`, at most `max` entries. */
  private scan(arr: Buffer, index: number, max: number, what: string): Run {
    const first = arr.readUInt32LE(index * 4);
    let count = 1;
    if (first === 0) {
      while (count < max && arr.readUInt32LE((index + count) * 4) === 0) count++;
      return { physical: 0, count, uninit: false };
    }
    this.check(first, what);
    while (count < max && arr.readUInt32LE((index + count) * 4) === first + count) count++;
    this.check(first + count - 1, what);
    return { physical: first, count, uninit: false };
  }
}
