import { VdiskError } from '../../errors.js';
import type { FileType } from '../filesystem.js';
import type { Metadata, MetaPos } from './metadata.js';

/**
 * Inodes (squashfs_fs.h): a 16-byte header (type, permissions, uid and gid indexes, mtime, inode
 * number), then a body by type. Types 1-7 are the basic forms, 8-14 the extended ones (wider fields,
 * a link count, an xattr index).
 */

export const NO_FRAGMENT = 0xffffffff;
export const NO_XATTR = 0xffffffff;
/** A data block's size word: bit 24 set when the block is stored uncompressed; 0 is a hole. */
export const BLOCK_UNCOMPRESSED = 0x1000000;

/** The stored length a block size word gives, or -1 when bits above the flag are set (damage). */
export function storedSize(word: number): number {
  return word >>> 25 !== 0 ? -1 : word & 0xffffff;
}
/** Linux's limit on a symlink's target (PATH_MAX). */
const MAX_SYMLINK = 4096;

const TYPES: FileType[] = ['directory', 'file', 'symlink', 'block', 'char', 'fifo', 'socket'];

/** The file type a basic or extended inode type (1-14), or a directory entry's type (1-7), stands for. */
export function typeOfInode(kind: number): FileType | null {
  return kind >= 1 && kind <= 14 ? TYPES[(kind - 1) % 7] : null;
}

export interface Inode {
  kind: number;
  type: FileType;
  perms: number;
  uidIndex: number;
  gidIndex: number;
  mtime: number;
  ino: number;
  nlink: number;
  /** File: its length; directory: the listing's length + 3 (for "." and ".."), as the kernel reports it. */
  size: number;
  xattr: number;
  /** Directory: where its listing starts (block relative to the directory table) and how long. */
  dir?: { block: number; offset: number; parent: number };
  /** File: the first data block's byte offset, each block's size word, and the tail's fragment. */
  file?: { start: number; blocks: Uint32Array; fragment: number; fragmentOffset: number };
  target?: string;
  rdev?: { major: number; minor: number };
}

export interface InodeSource {
  meta: Metadata;
  /** The inode table's start and end. */
  start: number;
  end: number;
  blockSize: number;
  /** The most bytes the table holds decompressed: no block list may claim more. */
  maxBytes: number;
}

/**
 * The inode a reference names: (block relative to the inode table) << 16 | offset in its data.
 * `where` names the volume and the path it was reached by.
 */
export async function readInode(src: InodeSource, ref: number, where: string): Promise<Inode> {
  const block = Math.floor(ref / 65536);
  const at: MetaPos = { block: src.start + block, offset: ref % 65536 };
  const what = `${where}: inode at block ${block} offset ${at.offset}`;
  const bad = (m: string) => new VdiskError('CORRUPT', `${what}: ${m}`);
  if (at.block >= src.end) throw bad('the reference points past the inode table');
  const read = async (n: number) => {
    const r = await src.meta.read(at, n, src.end, 'inode table');
    Object.assign(at, r.next);
    return r.data;
  };
  // Straight from a block already decompressed where it can be (most inodes): no promise per field group.
  const take = (n: number) => src.meta.readNow(at, n, 'inode table');
  const h = take(16) ?? (await read(16));
  const kind = h.readUInt16LE(0);
  const type = typeOfInode(kind);
  if (type === null) throw bad(`unknown inode type ${kind}`);
  const inode: Inode = {
    kind,
    type,
    perms: h.readUInt16LE(2) & 0o7777,
    uidIndex: h.readUInt16LE(4),
    gidIndex: h.readUInt16LE(6),
    mtime: h.readUInt32LE(8),
    ino: h.readUInt32LE(12),
    nlink: 1,
    size: 0,
    xattr: NO_XATTR,
  };
  if (inode.ino === 0) throw bad('inode number 0');
  switch (kind) {
    case 1: {
      const b = take(16) ?? (await read(16));
      inode.dir = { block: b.readUInt32LE(0), offset: b.readUInt16LE(10), parent: b.readUInt32LE(12) };
      inode.nlink = b.readUInt32LE(4);
      inode.size = b.readUInt16LE(8);
      break;
    }
    case 8: {
      const b = take(24) ?? (await read(24));
      inode.nlink = b.readUInt32LE(0);
      inode.size = b.readUInt32LE(4);
      inode.dir = { block: b.readUInt32LE(8), offset: b.readUInt16LE(18), parent: b.readUInt32LE(12) };
      inode.xattr = b.readUInt32LE(20);
      // The directory index (b.readUInt16LE(16) entries) that follows only speeds up lookups in big directories.
      break;
    }
    case 2:
    case 9: {
      let start: number, fragment: number, fragmentOffset: number;
      if (kind === 2) {
        const b = take(16) ?? (await read(16));
        start = b.readUInt32LE(0);
        fragment = b.readUInt32LE(4);
        fragmentOffset = b.readUInt32LE(8);
        inode.size = b.readUInt32LE(12);
      } else {
        const b = take(40) ?? (await read(40));
        const s = b.readBigUInt64LE(0);
        const size = b.readBigUInt64LE(8);
        if (s > BigInt(Number.MAX_SAFE_INTEGER) || size > BigInt(Number.MAX_SAFE_INTEGER)) throw bad(`block start ${s} or file size ${size} is out of range`);
        start = Number(s);
        inode.size = Number(size);
        inode.nlink = b.readUInt32LE(24);
        fragment = b.readUInt32LE(28);
        fragmentOffset = b.readUInt32LE(32);
        inode.xattr = b.readUInt32LE(36);
      }
      const count = fragment === NO_FRAGMENT ? Math.ceil(inode.size / src.blockSize) : Math.floor(inode.size / src.blockSize);
      if (count * 4 > src.maxBytes) throw bad(`a file of ${inode.size} bytes needs ${count} block sizes, more than the inode table holds`);
      if (fragment !== NO_FRAGMENT && fragmentOffset >= src.blockSize) throw bad(`fragment offset ${fragmentOffset} is past the ${src.blockSize}-byte block`);
      const list = take(count * 4) ?? (await read(count * 4));
      const blocks = new Uint32Array(count);
      for (let i = 0; i < count; i++) blocks[i] = list.readUInt32LE(i * 4);
      inode.file = { start, blocks, fragment, fragmentOffset };
      break;
    }
    case 3:
    case 10: {
      const b = take(8) ?? (await read(8));
      inode.nlink = b.readUInt32LE(0);
      const n = b.readUInt32LE(4);
      if (n > MAX_SYMLINK) throw bad(`symbolic link target of ${n} bytes is longer than 4096`);
      inode.target = (take(n) ?? (await read(n))).toString('utf8');
      inode.size = Buffer.byteLength(inode.target);
      if (kind === 10) inode.xattr = (take(4) ?? (await read(4))).readUInt32LE(0);
      break;
    }
    case 4:
    case 5:
    case 11:
    case 12: {
      const n = kind > 7 ? 12 : 8;
      const b = take(n) ?? (await read(n));
      inode.nlink = b.readUInt32LE(0);
      const dev = b.readUInt32LE(4);
      // The kernel's new_decode_dev: 12 bits of major, 20 of minor split around it.
      inode.rdev = { major: (dev >>> 8) & 0xfff, minor: (dev & 0xff) | ((dev >>> 12) & 0xfff00) };
      if (kind > 7) inode.xattr = b.readUInt32LE(8);
      break;
    }
    default: {
      const n = kind > 7 ? 8 : 4;
      const b = take(n) ?? (await read(n));
      inode.nlink = b.readUInt32LE(0);
      if (kind > 7) inode.xattr = b.readUInt32LE(4);
    }
  }
  return inode;
}
