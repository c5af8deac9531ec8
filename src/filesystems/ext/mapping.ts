import type { VdiskError } from '../../errors.js';

/** What the block-map and extent-tree walkers need from the reader. */
export interface BlockSource {
  readonly blockSize: number;
  readonly blocksCount: number;
  /** One metadata block, from the reader's bounded cache. */
  readBlock(block: number): Promise<Buffer>;
  /** A CORRUPT error naming the volume, for a message that names the structure. */
  corrupt(what: string): VdiskError;
  /** A warning about the volume (a checksum mismatch), kept once. */
  warn(what: string): void;
}

/**
 * A run of logical blocks starting at the one asked for: `physical` is where the first lies, 0 for a
 * hole; `uninit` extents are allocated but read as zeros (extents.rst, ee_len above 32768).
 */
export interface Run {
  physical: number;
  count: number;
  uninit: boolean;
}

/** Maps a file's logical blocks to volume blocks: one per inode, over a block map or an extent tree. */
export interface BlockMapper {
  /** The run that starts at logical block `lblk` (at least one block long). */
  run(lblk: number): Promise<Run>;
  /** The same run when the inode alone maps it (no map block to read), else null. */
  runNow(lblk: number): Run | null;
}

/** The largest logical block number plus one: i_block numbers are 32 bits wide in both schemes. */
export const LOGICAL_LIMIT = 2 ** 32;
