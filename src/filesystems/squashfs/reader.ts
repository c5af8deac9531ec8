import { VdiskError } from '../../errors.js';
import {
  modeOf,
  type ByteRange,
  type FileType,
  type FsContext,
  type FsDirEntry,
  type FsFile,
  type FsReader,
  type FsStats,
} from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { decompressBlock, decompressorFor, type Decompressor } from './compression.js';
import { parseListing } from './directory.js';
import { SquashFile, type FileContext } from './file.js';
import { NO_XATTR, readInode, BLOCK_UNCOMPRESSED, type Inode, type InodeSource } from './inode.js';
import { cached, Lru } from './cache.js';
import { Metadata, maxDecompressed } from './metadata.js';
import { parseSuperblock, tableEnd, SUPERBLOCK_SIZE, type Superblock } from './superblock.js';
import { fragmentTable, readFragment, readIds, type LookupTable } from './tables.js';
import { XattrTable } from './xattr.js';

/** A file, directory or other inode, by its reference; the path it was reached by names it in messages. */
export interface SquashNode {
  ref: number;
  /** What the directory entry says it is (the root: a directory); the inode must agree. */
  type: FileType;
  path: string;
}

interface Listing {
  entries: FsDirEntry<SquashNode>[];
  byName: Map<string, SquashNode>;
}

/** mksquashfs pads the image to a multiple of 4 KiB (unless -nopad): that padding is its own. */
const PADDING = 4096;
/** Far past what mksquashfs writes for a directory (about 300,000 entries), and what bounds one listing's memory. */
const MAX_LISTING = 32 * 1024 * 1024;
/**
 * Inodes kept parsed: enough for a walk of a 20,000-file tree followed by opening each file. A kept
 * file inode is about 0.4 KiB (its fields and its block list), so this is about 12 MiB.
 */
const CACHED_INODES = 32768;
const CACHED_LISTINGS = 64;
/** Fragment blocks are at most 1 MiB each. */
const CACHED_FRAGMENTS = 8;

/** squashfs 4.0, read-only by nature: a packed image of compressed blocks and metadata tables. */
export class SquashfsReader implements FsReader<SquashNode> {
  readonly type = 'squashfs';
  readonly blockSize: number;
  readonly warnings: string[] = [];
  readonly superblock: Superblock;
  private readonly volume: VolumeReader;
  private readonly name: string;
  private readonly meta: Metadata;
  private readonly decompress: Decompressor;
  private readonly inodeSource: InodeSource;
  private readonly dirEnd: number;
  private ids: number[] = [];
  private fragments: LookupTable | null = null;
  private xattrTable: XattrTable | null = null;
  /** Inodes by reference: the pending read, replaced by the inode once parsed (so a hit needs no await). */
  private readonly inodes = new Lru<number, Promise<Inode> | Inode>(CACHED_INODES);
  private readonly listings = new Lru<number, Promise<Listing>>(CACHED_LISTINGS);
  private readonly fragmentBlocks = new Lru<number, Promise<Buffer>>(CACHED_FRAGMENTS);
  /** What every file read needs from the reader: one object shared by all files. */
  private readonly fileContext: FileContext;

  private constructor(volume: VolumeReader, ctx: FsContext, sb: Superblock) {
    this.volume = volume;
    this.name = ctx.name;
    this.superblock = sb;
    this.blockSize = sb.blockSize;
    this.decompress = decompressorFor(sb.compressor, ctx.name);
    this.meta = new Metadata(volume, this.decompress, ctx.name);
    this.inodeSource = {
      meta: this.meta,
      start: sb.inodeTable,
      end: sb.directoryTable,
      blockSize: sb.blockSize,
      maxBytes: maxDecompressed(sb.directoryTable - sb.inodeTable),
    };
    this.dirEnd = tableEnd(sb, sb.directoryTable);
    this.fileContext = {
      volume,
      decompress: this.decompress,
      blockSize: this.blockSize,
      bytesUsed: sb.bytesUsed,
      fragment: (i, where) => this.fragmentBlock(i, where),
    };
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<SquashfsReader> {
    const sb = parseSuperblock(await volume.read(0, SUPERBLOCK_SIZE), volume.size, ctx.name);
    const reader = new SquashfsReader(volume, ctx, sb);
    reader.ids = await readIds(volume, reader.meta, sb, ctx.name);
    reader.fragments = fragmentTable(volume, reader.meta, sb, ctx.name);
    reader.xattrTable = await XattrTable.open(volume, reader.meta, sb, ctx.name);
    const root = await reader.inodeOf(await reader.root());
    if (root.type !== 'directory') throw new VdiskError('CORRUPT', `${ctx.name}: squashfs root inode is a ${root.type}, not a directory`);
    return reader;
  }

  private where(node: SquashNode): string {
    return `${this.name}: ${node.path}`;
  }

  private async inodeOf(node: SquashNode): Promise<Inode> {
    return this.inodeNow(node) ?? this.checked(node, await this.loadInode(node.ref, node));
  }

  /** The node's inode when it is parsed already, else null. */
  private inodeNow(node: SquashNode): Inode | null {
    const hit = this.inodes.get(node.ref);
    return hit === undefined || hit instanceof Promise ? null : this.checked(node, hit);
  }

  private loadInode(ref: number, node: SquashNode): Promise<Inode> {
    const hit = this.inodes.get(ref);
    if (hit !== undefined) return Promise.resolve(hit);
    const p = readInode(this.inodeSource, ref, this.where(node));
    this.inodes.set(ref, p);
    p.then(
      (inode) => {
        if (this.inodes.get(ref) === p) this.inodes.set(ref, inode);
      },
      () => {
        if (this.inodes.get(ref) === p) this.inodes.delete(ref);
      },
    );
    return p;
  }

  private checked(node: SquashNode, inode: Inode): Inode {
    if (inode.type !== node.type) {
      throw new VdiskError('CORRUPT', `${this.where(node)}: the directory entry says ${node.type}, its inode says ${inode.type}`);
    }
    return inode;
  }

  private id(index: number, node: SquashNode, what: string): number {
    if (index >= this.ids.length) throw new VdiskError('CORRUPT', `${this.where(node)}: ${what} index ${index} is past the id table's ${this.ids.length} entries`);
    return this.ids[index];
  }

  async root(): Promise<SquashNode> {
    return { ref: this.superblock.rootInode, type: 'directory', path: '/' };
  }

  async stat(node: SquashNode): Promise<FsStats> {
    const inode = this.inodeNow(node) ?? (await this.inodeOf(node));
    const st: FsStats = {
      type: inode.type,
      mode: modeOf(inode.type, inode.perms),
      uid: this.id(inode.uidIndex, node, 'uid'),
      gid: this.id(inode.gidIndex, node, 'gid'),
      nlink: inode.nlink,
      ino: inode.ino,
      size: inode.size,
      // squashfs keeps one time, in seconds.
      mtime: { sec: inode.mtime, nsec: 0 },
    };
    if (inode.file?.blocks.some((w) => w === 0)) st.flags = ['sparse'];
    if (inode.rdev) st.rdev = inode.rdev;
    return st;
  }

  private listing(dir: SquashNode): Promise<Listing> {
    return cached(this.listings, dir.ref, async () => {
      const inode = await this.inodeOf(dir);
      const d = inode.dir;
      if (!d) throw new VdiskError('USAGE', `${this.where(dir)}: not a directory`);
      const length = Math.max(0, inode.size - 3);
      const sb = this.superblock;
      const where = this.where(dir);
      if (length > Math.min(MAX_LISTING, maxDecompressed(this.dirEnd - sb.directoryTable))) {
        throw new VdiskError('CORRUPT', `${where}: a listing of ${length} bytes is more than the directory table holds`);
      }
      const at = sb.directoryTable + d.block;
      if (at >= this.dirEnd) throw new VdiskError('CORRUPT', `${where}: its listing at block ${d.block} is past the directory table`);
      const buf = length === 0 ? Buffer.alloc(0) : (await this.meta.read({ block: at, offset: d.offset }, length, this.dirEnd, 'directory table')).data;
      const entries: FsDirEntry<SquashNode>[] = [];
      const byName = new Map<string, SquashNode>();
      const prefix = dir.path === '/' ? '/' : `${dir.path}/`;
      for (const e of parseListing(buf, where)) {
        if (byName.has(e.name)) throw new VdiskError('CORRUPT', `${where}: the name ${JSON.stringify(e.name)} is listed twice`);
        const node: SquashNode = { ref: e.ref, type: e.type, path: prefix + e.name };
        entries.push({ name: e.name, type: e.type, node });
        byName.set(e.name, node);
      }
      return { entries, byName };
    });
  }

  async readdir(dir: SquashNode): Promise<FsDirEntry<SquashNode>[]> {
    const listing = await this.listing(dir);
    const prefix = dir.path === '/' ? '/' : `${dir.path}/`;
    // The cached listing may have been reached by another path (a hard-linked or looping directory).
    return listing.entries.map((e) => ({ name: e.name, type: e.type, node: { ref: e.node.ref, type: e.node.type, path: prefix + e.name } }));
  }

  async lookup(dir: SquashNode, name: string): Promise<SquashNode | null> {
    const n = (await this.listing(dir)).byName.get(name);
    if (!n) return null;
    return { ...n, path: dir.path === '/' ? `/${name}` : `${dir.path}/${name}` };
  }

  async readlink(node: SquashNode): Promise<string> {
    const inode = await this.inodeOf(node);
    if (inode.target === undefined) throw new VdiskError('USAGE', `${this.where(node)}: not a symbolic link`);
    return inode.target;
  }

  /**
   * A fragment block, decompressed. mksquashfs fills fragments in the order it writes files, so a
   * reader going through a directory moves from one fragment to the next: the next one is started in
   * the background, to inflate while this one's files are copied.
   */
  private fragmentBlock(index: number, where: string): Promise<Buffer> {
    if (this.fragmentBlocks.get(index) === undefined && index + 1 < this.superblock.fragmentCount) {
      setImmediate(() => this.loadFragment(index + 1, where).catch(() => undefined));
    }
    return this.loadFragment(index, where);
  }

  private loadFragment(index: number, where: string): Promise<Buffer> {
    return cached(this.fragmentBlocks, index, async () => {
      const f = await readFragment(this.fragments, index, this.superblock, where);
      const stored = f.size & 0xffffff;
      const raw = await this.volume.read(f.start, stored);
      if (f.size & BLOCK_UNCOMPRESSED) return raw;
      return decompressBlock(this.decompress, raw, this.blockSize, `${this.name}: fragment ${index} at byte ${f.start}`);
    });
  }

  async open(node: SquashNode, stream?: string): Promise<FsFile> {
    if (stream !== undefined) throw new VdiskError('UNSUPPORTED', `${this.where(node)}: squashfs files have no named streams`);
    const inode = this.inodeNow(node) ?? (await this.inodeOf(node));
    if (!inode.file) throw new VdiskError('USAGE', `${this.where(node)}: not a regular file`);
    return new SquashFile(this.fileContext, inode, this.where(node));
  }

  async xattrs(node: SquashNode): Promise<{ name: string; value: Buffer }[]> {
    const inode = await this.inodeOf(node);
    if (inode.xattr === NO_XATTR) return [];
    if (!this.xattrTable) throw new VdiskError('CORRUPT', `${this.where(node)}: xattr index ${inode.xattr}, but the image has no xattr table`);
    return this.xattrTable.read(inode.xattr, this.where(node));
  }

  /**
   * squashfs is packed and has no free map: everything it uses lies below bytes_used, and mksquashfs
   * pads that to a multiple of 4 KiB. The rest of the volume, past the padding, is free.
   */
  async *freeExtents(): AsyncIterable<ByteRange> {
    const from = Math.ceil(this.superblock.bytesUsed / PADDING) * PADDING;
    if (from < this.volume.size) yield { offset: from, length: this.volume.size - from };
  }
}
