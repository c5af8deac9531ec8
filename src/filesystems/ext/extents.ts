import { extCrc } from './checksum.js';
import { LOGICAL_LIMIT, type BlockMapper, type BlockSource, type Run } from './mapping.js';

/**
 * Extent trees (Documentation/filesystems/ext4/extents.rst, "Extent Tree"): a 12-byte header (magic
 * 0xF30A, entries, max, depth), then 12-byte entries: index entries (first logical block, child block)
 * above depth 0, leaf extents (first logical block, length, start) at depth 0. The root lives in the
 * inode's 60-byte i_block; other nodes are whole blocks ending in a crc32c tail when metadata_csum is on.
 */
export const EXTENT_MAGIC = 0xf30a;
/** The kernel refuses deeper trees (EXT4_MAX_EXTENT_DEPTH). */
export const MAX_DEPTH = 5;
/** ee_len above this marks an uninitialized (preallocated) extent of ee_len - 32768 blocks. */
const INIT_MAX_LEN = 32768;

export interface ExtentHeader {
  entries: number;
  max: number;
  depth: number;
}

/**
 * Names an extent node in messages: the inode and the node's block (null: the root in i_block). Put
 * together only when a message is made (a string per lookup showed in profiles).
 */
function nodeName(ino: number, block: number | null): string {
  return `inode ${ino}: extent ${block === null ? 'root' : `block ${block}`}`;
}

/** Validates a node's header against the space it occupies; throws CORRUPT naming the inode and node. */
export function parseExtentHeader(node: Buffer, src: BlockSource, ino: number, block: number | null): ExtentHeader {
  const magic = node.readUInt16LE(0);
  if (magic !== EXTENT_MAGIC) throw src.corrupt(`${nodeName(ino, block)}: bad extent header magic 0x${magic.toString(16)}`);
  const h = { entries: node.readUInt16LE(2), max: node.readUInt16LE(4), depth: node.readUInt16LE(6) };
  const room = Math.floor((node.length - 12) / 12);
  if (h.max > room) throw src.corrupt(`${nodeName(ino, block)}: extent node claims room for ${h.max} entries, it has ${room}`);
  if (h.entries > h.max) throw src.corrupt(`${nodeName(ino, block)}: extent node has ${h.entries} entries, more than its maximum ${h.max}`);
  if (h.depth > MAX_DEPTH) throw src.corrupt(`${nodeName(ino, block)}: extent tree depth ${h.depth} exceeds ${MAX_DEPTH}`);
  return h;
}

/** The extent block's tail checksum: crc32c from the inode's seed over the header and `max` entries. */
export function extentBlockChecksumOk(node: Buffer, max: number, inodeSeed: number): boolean {
  const end = 12 + 12 * max;
  if (end + 4 > node.length) return false;
  return extCrc(inodeSeed, node.subarray(0, end)) === node.readUInt32LE(end);
}

/** Walks an inode's extent tree from the root in i_block; each lookup descends at most MAX_DEPTH levels. */
export class ExtentTree implements BlockMapper {
  /** Extent blocks whose checksum was checked; made on the first one (most files have none). */
  private checked: Set<number> | null = null;

  /** `inodeSeed`: the inode's crc32c seed (metadata_csum), or null to skip checking extent blocks. */
  constructor(private readonly root: Buffer, private readonly src: BlockSource, private readonly ino: number, private readonly inodeSeed: number | null) {}

  private where(block: number | null): string {
    return nodeName(this.ino, block);
  }

  runNow(lblk: number): Run | null {
    const h = parseExtentHeader(this.root, this.src, this.ino, null);
    return h.depth === 0 ? this.inLeaf(this.root, h, lblk, LOGICAL_LIMIT, null) : null;
  }

  async run(lblk: number): Promise<Run> {
    let node = this.root;
    let block: number | null = null;
    let h = parseExtentHeader(node, this.src, this.ino, null);
    // The logical block where the subtree we are in ends (the next sibling's start above us).
    let end = LOGICAL_LIMIT;
    for (let level = 0; ; level++) {
      if (h.depth === 0) return this.inLeaf(node, h, lblk, end, block);
      // The last index whose first block is at or before lblk; none: a hole up to the first one.
      let i = -1;
      for (let k = 0; k < h.entries; k++) {
        const first = node.readUInt32LE(12 + 12 * k);
        if (k > 0 && first <= node.readUInt32LE(12 + 12 * (k - 1))) {
          throw this.src.corrupt(`${this.where(block)}: index entries out of order`);
        }
        if (first <= lblk) i = k;
        else {
          if (i === k - 1) end = Math.min(end, first);
          break;
        }
      }
      if (i < 0) return { physical: 0, count: Math.max(1, (h.entries ? node.readUInt32LE(12) : end) - lblk), uninit: false };
      const at = 12 + 12 * i;
      const child = node.readUInt32LE(at + 4) + node.readUInt16LE(at + 8) * 2 ** 32;
      if (child === 0 || child >= this.src.blocksCount) {
        throw this.src.corrupt(`${this.where(block)}: index points at block ${child}, outside the volume`);
      }
      const next = await this.src.readBlock(child);
      const nh = parseExtentHeader(next, this.src, this.ino, child);
      if (nh.depth !== h.depth - 1) {
        throw this.src.corrupt(`${this.where(child)}: depth ${nh.depth} under a node of depth ${h.depth}`);
      }
      if (this.inodeSeed !== null && !this.checked?.has(child)) {
        (this.checked ??= new Set()).add(child);
        if (!extentBlockChecksumOk(next, nh.max, this.inodeSeed)) this.src.warn(`inode ${this.ino}: extent block ${child}: checksum mismatch (metadata_csum)`);
      }
      node = next;
      block = child;
      h = nh;
      if (level >= MAX_DEPTH) throw this.src.corrupt(`${this.where(block)}: extent tree deeper than ${MAX_DEPTH}`);
    }
  }

  private inLeaf(node: Buffer, h: ExtentHeader, lblk: number, end: number, block: number | null): Run {
    let prevEnd = 0;
    for (let k = 0; k < h.entries; k++) {
      const at = 12 + 12 * k;
      const first = node.readUInt32LE(at);
      let len = node.readUInt16LE(at + 4);
      const uninit = len > INIT_MAX_LEN;
      if (uninit) len -= INIT_MAX_LEN;
      const start = node.readUInt16LE(at + 6) * 2 ** 32 + node.readUInt32LE(at + 8);
      if (len === 0) throw this.src.corrupt(`${this.where(block)}: extent ${k} has length 0`);
      if (first < prevEnd) throw this.src.corrupt(`${this.where(block)}: extents overlap or are out of order`);
      prevEnd = first + len;
      if (lblk < first) return { physical: 0, count: first - lblk, uninit: false };
      if (lblk < first + len) {
        if (start === 0 || start + len > this.src.blocksCount) {
          throw this.src.corrupt(`${this.where(block)}: extent ${k} (blocks ${start}+${len}) lies outside the volume`);
        }
        return { physical: start + (lblk - first), count: first + len - lblk, uninit };
      }
    }
    return { physical: 0, count: Math.max(1, end - lblk), uninit: false };
  }
}
