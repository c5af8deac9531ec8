import { VdiskError } from '../../errors.js';
import { inodeStats, typeFromMode, type ByteRange, type FsContext, type FsDirEntry, type FsFile, type FsReader, type FsStats } from '../filesystem.js';
import { trimLabel, uuidFromBytes, type VolumeReader } from '../types.js';
import { GenerationCache } from '../../io/generation-cache.js';
import { ListingCache } from '../listing-cache.js';
import { WindowCache } from '../window-cache.js';
import { agiProblem } from './ag.js';
import {
  aclName, aclToXattr, ATTR3_LEAF_MAGIC, ATTR3_RMT_MAGIC, ATTR_LEAF_MAGIC, DA3_CRC_OFFSET, DA3_NODE_MAGIC, DA_NODE_MAGIC, daNode,
  parseLeafAttrs, parseShortformAttrs, type RawAttr,
} from './attr.js';
import { findExtent, forkExtents, type BmbtSource, type Extent } from './bmap.js';
import { xfsCrcOk } from './checksum.js';
import { DIR3_CRC_OFFSET, parseDataBlock, parseShortform, type RawEntry } from './dir.js';
import { freeRuns, type FreeSource } from './free-space.js';
import { DIFLAG, FORMAT, parseInode, type Inode } from './inode.js';
import { logState } from './log.js';
import { asciiCi, hasFtype, INCOMPAT, parseSuperblock, superblockCrcOk, superblockProblem, unknownIncompat, type Superblock } from './superblock.js';
import { awaitedLater } from '../../util/promises.js';

const S_IFMT = 0o170000;
const S_IFREG = 0o100000;
const S_IFDIR = 0o040000;
const S_IFLNK = 0o120000;
/** Read-ahead windows: 64 of 256 KiB serve inodes, directory and btree blocks and small data reads. */
const WINDOW = 256 * 1024;
const WINDOWS = 64;
/**
 * Data pieces up to this size go through the read-ahead windows (small files lie next to each other);
 * larger ones are read directly. XFS interleaves the extents of files written together: through 256 KiB
 * windows, a file in 64 KiB pieces would read its neighbour's pieces too (get of two such files: 0.8-1.2 s
 * with 128 KiB here, 0.3-0.6 s with 32 KiB).
 */
const SMALL_READ = 32 * 1024;
/**
 * Inodes kept parsed: a walk of a 20,000-file tree followed by opening each file reads each inode once.
 * A kept inode is about 0.5 KiB (its fields, times, the used part of its forks), so this is about 16 MiB.
 */
const INODE_CACHE = 32768;
const EXTENT_CACHE = 256;
const CACHED_EXTENTS_MAX = 65536;
const DIR_CACHE = 64;
const DIR_CACHE_ENTRIES = 100_000;
const MAX_WARNINGS = 100;
/** Directory data lives below 32 GiB of the directory's address space; leaf and free blocks above (XFS_DIR2_LEAF_OFFSET). */
const DIR_LEAF_OFFSET = 2 ** 35;
/** The longest symlink target (XFS_SYMLINK_MAXLEN). */
const SYMLINK_MAX = 1024;
const SYMLINK3_MAGIC = 0x58534c4d; // 'XSLM'
const REMOTE_HDR = 56;
/** dabtree depth bound (XFS_DA_NODE_MAXDEPTH is 5). */
const DA_MAX_DEPTH = 5;

/** ASCII letters only, as xfs_ascii_ci_hashname and xfs_ascii_ci_compname fold them. */
const foldAscii = (s: string): string => s.replace(/[A-Z]+/g, (m) => m.toLowerCase());

export class XfsReader implements FsReader<number>, BmbtSource, FreeSource {
  readonly type = 'xfs';
  readonly label?: string;
  readonly uuid?: string;
  readonly blockSize: number;
  readonly warnings: string[] = [];
  readonly sb: Superblock;
  readonly v5: boolean;
  readonly agCount: number;
  readonly agBlocks: number;
  readonly dblocks: number;
  readonly sectSize: number;
  readonly caseInsensitive: boolean;
  private readonly ftype: boolean;
  private readonly volume: VolumeReader;
  private readonly name: string;
  private readonly ahead: WindowCache;
  private readonly inodes = new GenerationCache<number, Inode>(INODE_CACHE);
  /** Extent lists by inode number, of data forks and of attribute forks (number keys: a string per lookup showed in profiles). */
  private readonly dataExtents = new GenerationCache<number, Promise<Extent[]>>(EXTENT_CACHE);
  private readonly attrExtents = new GenerationCache<number, Promise<Extent[]>>(EXTENT_CACHE);
  private readonly listings = new ListingCache(DIR_CACHE, DIR_CACHE_ENTRIES, (dir) => this.dirEntries(dir), async (ino) => (await this.inode(ino)).mode);
  private readonly warned = new GenerationCache<string, true>(4096);

  private constructor(volume: VolumeReader, ctx: FsContext, sb: Superblock) {
    this.volume = volume;
    this.name = ctx.name;
    this.sb = sb;
    this.v5 = sb.version === 5;
    this.blockSize = sb.blockSize;
    this.agCount = sb.agCount;
    this.agBlocks = sb.agBlocks;
    this.dblocks = sb.dblocks;
    this.sectSize = sb.sectSize;
    this.ftype = hasFtype(sb);
    this.caseInsensitive = asciiCi(sb);
    const label = trimLabel(sb.label);
    if (label) this.label = label;
    const uuid = uuidFromBytes(sb.uuid);
    if (uuid) this.uuid = uuid;
    this.ahead = new WindowCache(volume, Math.max(WINDOW, sb.blockSize), WINDOWS);
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<XfsReader> {
    const head = await volume.read(0, 512);
    const sb = parseSuperblock(head);
    const bad = (what: string) => new VdiskError('CORRUPT', `${ctx.name}: xfs superblock: ${what}`);
    if (!sb) throw bad('no XFSB magic at byte 0');
    const problem = superblockProblem(sb);
    if (problem) throw bad(problem);
    const unknown = unknownIncompat(sb);
    if (unknown.length) throw new VdiskError('UNSUPPORTED', `${ctx.name}: xfs file system uses incompatible features this reader does not know: ${unknown.join(', ')}`);
    const r = new XfsReader(volume, ctx, sb);
    if (r.v5 && !superblockCrcOk(await volume.read(0, sb.sectSize))) r.warn('superblock: checksum mismatch');
    if (sb.inProgress) r.warn('mkfs did not finish making this file system (sb_inprogress)');
    if (sb.featuresIncompat & INCOMPAT.NEEDSREPAIR) r.warn('the file system is marked as needing xfs_repair');
    if (sb.dblocks * sb.blockSize > volume.size) {
      r.warn(`the file system claims ${sb.dblocks * sb.blockSize} bytes but the volume holds ${volume.size}: blocks past its end read as zeros`);
    }
    const agi = agiProblem(await volume.read(2 * sb.sectSize, sb.sectSize), r.v5, 0);
    if (agi) r.warn(`allocation group 0: AGI: ${agi}`);
    const log = await logState(r, volume);
    if (log) r.warn(log);
    return r;
  }

  warn(what: string): void {
    if (this.warned.get(what)) return;
    this.warned.set(what, true);
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(`xfs ${what}`);
    else if (this.warnings.length === MAX_WARNINGS) this.warnings.push('further warnings not shown');
  }

  fail(what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.name}: xfs ${what}`);
  }

  private refuse(what: string): VdiskError {
    return new VdiskError('UNSUPPORTED', `${this.name}: xfs ${what}`);
  }

  /** The volume byte offset of file-system block `fsb` (agno << agblklog | agbno), checked to lie inside an AG. */
  fsbOffset(fsb: number, count = 1): number {
    const per = 2 ** this.sb.agBlockLog;
    const agno = Math.floor(fsb / per);
    const agbno = fsb - agno * per;
    if (agno >= this.agCount || agbno + count > this.agBlocks || agno * this.agBlocks + agbno + count > this.dblocks) {
      throw this.fail(`block ${agno}/${agbno} (+${count}) lies outside the file system`);
    }
    return (agno * this.agBlocks + agbno) * this.blockSize;
  }

  readMeta(fsb: number): Promise<Buffer> {
    return this.ahead.read(this.fsbOffset(fsb), this.blockSize);
  }

  readSector(offset: number): Promise<Buffer> {
    return this.ahead.read(offset, this.sectSize);
  }

  readAgBlock(agno: number, agbno: number): Promise<Buffer> {
    return this.ahead.read((agno * this.agBlocks + agbno) * this.blockSize, this.blockSize);
  }

  async inode(ino: number): Promise<Inode> {
    return this.inodeNow(ino) ?? this.loadInode(ino);
  }

  /**
   * Inode `ino` from the cache, or parsed straight from a read-ahead window already read (the common
   * case on a walk, which meets inodes cluster by cluster); null when it must be read.
   */
  private inodeNow(ino: number): Inode | null {
    const hit = this.inodes.get(ino);
    if (hit) return hit;
    const at = this.inodeOffset(ino);
    const view = this.ahead.peek(at, this.sb.inodeSize);
    return view ? this.keepInode(ino, view.buf.subarray(view.at, view.at + this.sb.inodeSize)) : null;
  }

  private async loadInode(ino: number): Promise<Inode> {
    // A copy, not a view: the window could be dropped and refilled before the parse.
    const raw = Buffer.allocUnsafe(this.sb.inodeSize);
    await this.ahead.readInto(raw, this.inodeOffset(ino));
    return this.inodes.get(ino) ?? this.keepInode(ino, raw);
  }

  /** The volume byte offset of inode `ino`, checked to lie inside the file system. */
  private inodeOffset(ino: number): number {
    const sb = this.sb;
    const aginoBits = sb.agBlockLog + sb.inoPerBlockLog;
    const agno = Math.floor(ino / 2 ** aginoBits);
    const agino = ino - agno * 2 ** aginoBits;
    const agbno = Math.floor(agino / sb.inoPerBlock);
    const index = agino % sb.inoPerBlock;
    if (!Number.isSafeInteger(ino) || ino <= 0 || agno >= this.agCount || agbno === 0 || agbno >= this.agBlocks || agno * this.agBlocks + agbno >= this.dblocks) {
      throw this.fail(`inode ${ino} lies outside the file system`);
    }
    return (agno * this.agBlocks + agbno) * this.blockSize + index * sb.inodeSize;
  }

  /** Parses the inode in `raw` (exactly its bytes; only copies are kept), checks it, and caches it. */
  private keepInode(ino: number, raw: Buffer): Inode {
    const parsed = parseInode(raw, ino, this.v5);
    if (typeof parsed === 'string') throw this.fail(`inode ${ino}: ${parsed}`);
    if (!parsed.crcOk) this.warn(`inode ${ino}: checksum mismatch`);
    const type = parsed.mode & S_IFMT;
    const f = parsed.format;
    const okFormat = type === S_IFDIR ? f === FORMAT.LOCAL || f === FORMAT.EXTENTS || f === FORMAT.BTREE
      : type === S_IFREG ? f === FORMAT.EXTENTS || f === FORMAT.BTREE || f === FORMAT.LOCAL
        : type === S_IFLNK ? f === FORMAT.LOCAL || f === FORMAT.EXTENTS
          : f === FORMAT.DEV;
    if (type === 0 || typeFromMode(parsed.mode) === 'other') throw this.fail(`inode ${ino} is not in use (mode 0${parsed.mode.toString(8)})`);
    if (!okFormat) throw this.fail(`inode ${ino}: data fork format ${f} for mode 0${parsed.mode.toString(8)}`);
    this.inodes.set(ino, parsed);
    return parsed;
  }

  /** The extents of a fork, cached by inode; the btree walk may read no more blocks than the inode owns. */
  private extents(inode: Inode, attr = false): Promise<Extent[]> {
    const cache = attr ? this.attrExtents : this.dataExtents;
    const key = inode.ino;
    const hit = cache.get(key);
    if (hit) return hit;
    const fork = attr ? inode.attrFork : inode.dataFork;
    const format = attr ? inode.aformat : inode.format;
    const what = `inode ${inode.ino}: ${attr ? 'attribute' : 'data'} fork`;
    let p: Promise<Extent[]>;
    if (!fork || (format !== FORMAT.EXTENTS && format !== FORMAT.BTREE)) p = Promise.reject(this.fail(`${what} of format ${format} has no extents`));
    else p = forkExtents(this, fork, format === FORMAT.EXTENTS ? 'extents' : 'btree', attr ? inode.anextents : inode.nextents, inode.nblocks + 1, what);
    // Lists too long to keep many of (a file in millions of pieces) live only as long as their file is open.
    p.then((list) => list.length > CACHED_EXTENTS_MAX && cache.delete(key), () => cache.delete(key));
    cache.set(key, p);
    return p;
  }

  /** `n` blocks of a fork from file block `fblock`, holes and unwritten extents as zeros. */
  private async forkBlocks(list: Extent[], fblock: number, n: number): Promise<Buffer> {
    const bs = this.blockSize;
    const out = Buffer.alloc(n * bs);
    for (let i = findExtent(list, fblock); i < list.length && list[i].offset < fblock + n; i++) {
      const e = list[i];
      if (e.unwritten) continue;
      const from = Math.max(fblock, e.offset);
      const to = Math.min(fblock + n, e.offset + e.count);
      const at = this.fsbOffset(e.block, e.count) + (from - e.offset) * bs;
      (await this.volume.read(at, (to - from) * bs)).copy(out, (from - fblock) * bs);
    }
    return out;
  }

  private refuseRealtime(inode: Inode): void {
    if (inode.flags & DIFLAG.REALTIME) throw this.refuse(`inode ${inode.ino} keeps its data on the realtime device, which this reader cannot read`);
  }

  async root(): Promise<number> {
    const ino = this.sb.rootIno;
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFDIR) throw this.fail(`root inode ${ino} is not a directory`);
    return ino;
  }

  async stat(ino: number): Promise<FsStats> {
    const inode = this.inodeNow(ino) ?? (await this.inode(ino));
    const st = inodeStats(inode, ino, inode.nlink, inode.size, inode.nblocks * this.blockSize);
    const type = st.type;
    const flags: string[] = [];
    if (inode.flags & DIFLAG.IMMUTABLE) flags.push('immutable');
    if (inode.flags & DIFLAG.APPEND) flags.push('append-only');
    if (inode.flags & DIFLAG.REALTIME) flags.push('realtime');
    if (flags.length) st.flags = flags;
    if (type === 'char' || type === 'block') {
      if (inode.dataFork.length < 4) throw this.fail(`inode ${ino}: device number does not fit`);
      // xfs_dev_t: the old SysV split, 14 bits of major over 18 of minor (xfs_to_linux_dev_t).
      const dev = inode.dataFork.readUInt32BE(0);
      st.rdev = { major: (dev >>> 18) & 0x1ff, minor: dev & 0x3ffff };
    }
    return st;
  }

  private async dirEntries(ino: number): Promise<RawEntry[]> {
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFDIR) throw this.fail(`inode ${ino} is not a directory`);
    const out: RawEntry[] = [];
    const what = (where: string, err: unknown) => this.fail(`directory inode ${ino}: ${where}: ${(err as Error).message}`);
    if (inode.format === FORMAT.LOCAL) {
      try {
        parseShortform(inode.dataFork, inode.size, this.ftype, out);
      } catch (err) {
        throw what('shortform entries', err);
      }
      return out;
    }
    const bs = this.blockSize;
    const per = 2 ** this.sb.dirBlockLog;
    const list = await this.extents(inode);
    const dataEnd = DIR_LEAF_OFFSET / bs;
    // Directory blocks holding data, in order of their offset; a block may span extents (dirblklog > 0), so
    // the last one read is remembered rather than a list of them built (a hostile extent may claim 2^21 blocks).
    let owned = 0;
    let lastDone = -1;
    for (const e of list) {
      if (e.offset >= dataEnd) break;
      this.fsbOffset(e.block, e.count);
      owned += e.count;
      if (owned > inode.nblocks) throw this.fail(`directory inode ${ino} maps more blocks than the ${inode.nblocks} it owns`);
      if (e.unwritten) continue;
      const first = Math.max(lastDone + 1, Math.floor(e.offset / per));
      const last = Math.floor((Math.min(dataEnd, e.offset + e.count) - 1) / per);
      for (let d = first; d <= last; d++) {
        const buf = await this.forkBlocks(list, d * per, per);
        if (this.v5 && !xfsCrcOk(buf, DIR3_CRC_OFFSET)) this.warn(`directory inode ${ino}: block ${d}: checksum mismatch`);
        try {
          parseDataBlock(buf, this.v5, this.ftype, out);
        } catch (err) {
          throw what(`block ${d}`, err);
        }
        lastDone = d;
      }
    }
    return out;
  }

  async readdir(dir: number): Promise<FsDirEntry<number>[]> {
    return this.listings.readdir(dir);
  }

  /** One name: exact, else (ASCII case-insensitive volumes) folded as XFS folds. The first entry of a name wins. */
  async lookup(dir: number, name: string): Promise<number | null> {
    const exact = await this.listings.lookup(dir, name);
    if (exact !== null || !this.caseInsensitive) return exact;
    return this.listings.lookupFolded(dir, name, foldAscii);
  }

  async readlink(ino: number): Promise<string> {
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFLNK) throw this.fail(`inode ${ino} is not a symbolic link`);
    const size = inode.size;
    if (size > SYMLINK_MAX) throw this.fail(`symbolic link inode ${ino}: target of ${size} bytes exceeds ${SYMLINK_MAX}`);
    if (inode.format === FORMAT.LOCAL) {
      if (size > inode.dataFork.length) throw this.fail(`symbolic link inode ${ino}: inline target of ${size} bytes overruns the fork`);
      return inode.dataFork.toString('utf8', 0, size);
    }
    // Remote: the target in whole blocks from file block 0. On v5 each extent is one buffer that starts with
    // its own header (xfs_symlink_remote.c maps the link and checks a header per mapping, not per block).
    const list = await this.extents(inode);
    const bs = this.blockSize;
    if (!this.v5) return (await this.forkBlocks(list, 0, Math.ceil(size / bs))).toString('utf8', 0, size);
    let blocks = 0;
    for (const e of list) blocks += e.count;
    // 1024 bytes and a header per extent fit in far fewer blocks than this, whatever the block size.
    if (blocks > 8) throw this.fail(`symbolic link inode ${ino} maps ${blocks} blocks`);
    const parts: Buffer[] = [];
    let got = 0;
    let next = 0;
    for (const e of list) {
      if (got >= size) break;
      if (e.offset !== next) throw this.fail(`symbolic link inode ${ino}: a hole at block ${next} of its target`);
      next += e.count;
      const b = await this.volume.read(this.fsbOffset(e.block, e.count), e.count * bs);
      const bytes = b.readUInt32BE(8);
      if (b.readUInt32BE(0) !== SYMLINK3_MAGIC || b.readUInt32BE(4) !== got || bytes > b.length - REMOTE_HDR || got + bytes > size) {
        throw this.fail(`symbolic link inode ${ino}: remote block ${e.offset}: bad header`);
      }
      if (!xfsCrcOk(b, 12)) this.warn(`symbolic link inode ${ino}: remote block ${e.offset}: checksum mismatch`);
      parts.push(b.subarray(REMOTE_HDR, REMOTE_HDR + bytes));
      got += bytes;
    }
    const target = Buffer.concat(parts);
    if (target.length !== size) throw this.fail(`symbolic link inode ${ino}: remote blocks hold ${target.length} of ${size} bytes`);
    return target.toString('utf8');
  }

  private fileOf(inode: Inode, list: Extent[] | null): FsFile {
    const size = inode.size;
    if (list === null) {
      // A local-format regular file (XFS never writes one, but the format allows it): bytes in the fork.
      if (size > inode.dataFork.length) throw this.fail(`inode ${inode.ino}: inline data of ${size} bytes overruns the fork`);
      const data = inode.dataFork.subarray(0, size);
      return {
        size,
        read: async (buf, position) => (position >= size ? 0 : data.copy(buf, 0, position, Math.min(size, position + buf.length))),
        dataRanges: async () => (size > 0 ? [{ offset: 0, length: size }] : []),
      };
    }
    const bs = this.blockSize;
    return {
      size,
      read: async (buf, position) => {
        const end = Math.min(size, position + buf.length);
        if (!(position < end)) return 0;
        buf.fill(0, 0, end - position);
        const jobs: Promise<void>[] = [];
        for (let i = findExtent(list, Math.floor(position / bs)); i < list.length && list[i].offset * bs < end; i++) {
          const e = list[i];
          if (e.unwritten) continue;
          const from = Math.max(position, e.offset * bs);
          const to = Math.min(end, (e.offset + e.count) * bs);
          const src = this.fsbOffset(e.block, e.count) + (from - e.offset * bs);
          const at = from - position;
          const len = to - from;
          if (len > SMALL_READ && this.volume.readInto) jobs.push(awaitedLater(this.volume.readInto(buf.subarray(at, at + len), src)));
          else {
            const p = len <= SMALL_READ ? this.ahead.read(src, len) : this.volume.read(src, len);
            jobs.push(awaitedLater(p.then((b) => void b.copy(buf, at))));
          }
        }
        await Promise.all(jobs);
        return end - position;
      },
      dataRanges: async () => {
        const out: ByteRange[] = [];
        for (const e of list) {
          if (e.unwritten) continue;
          const offset = e.offset * bs;
          if (offset >= size) break;
          const length = Math.min(size, (e.offset + e.count) * bs) - offset;
          const last = out[out.length - 1];
          if (last && last.offset + last.length === offset) last.length += length;
          else out.push({ offset, length });
        }
        return out;
      },
    };
  }

  async open(ino: number): Promise<FsFile> {
    const inode = await this.inode(ino);
    if ((inode.mode & S_IFMT) !== S_IFREG) throw this.fail(`inode ${ino} is not a regular file`);
    this.refuseRealtime(inode);
    if (inode.format === FORMAT.LOCAL) return this.fileOf(inode, null);
    const list = await this.extents(inode);
    let mapped = 0;
    for (const e of list) mapped += e.count;
    // Reflinked files share blocks but each inode still counts its own: more mapped than owned is damage.
    if (mapped > inode.nblocks) throw this.fail(`inode ${ino} maps ${mapped} blocks but owns ${inode.nblocks}`);
    return this.fileOf(inode, list);
  }

  /** Attribute-fork blocks as one buffer (remote values span several). */
  private async attrBlocks(inode: Inode, fblock: number, n: number): Promise<Buffer> {
    return this.forkBlocks(await this.extents(inode, true), fblock, n);
  }

  private async remoteValue(inode: Inode, name: string, block: number, length: number): Promise<Buffer> {
    const bs = this.blockSize;
    const room = this.v5 ? bs - REMOTE_HDR : bs;
    // XATTR_SIZE_MAX: Linux never stores a value above 64 KiB.
    if (length > 65536) throw this.fail(`inode ${inode.ino}: attribute ${name}: value of ${length} bytes`);
    const n = Math.ceil(length / room);
    const raw = await this.attrBlocks(inode, block, n);
    if (!this.v5) return raw.subarray(0, length);
    const parts: Buffer[] = [];
    let got = 0;
    for (let i = 0; i < n; i++) {
      const b = raw.subarray(i * bs, (i + 1) * bs);
      const bytes = b.readUInt32BE(8);
      if (b.readUInt32BE(0) !== ATTR3_RMT_MAGIC || b.readUInt32BE(4) !== got || bytes > room || got + bytes > length) {
        throw this.fail(`inode ${inode.ino}: attribute ${name}: remote value block ${block + i}: bad header`);
      }
      if (!xfsCrcOk(b, 12)) this.warn(`inode ${inode.ino}: attribute ${name}: remote value block ${block + i}: checksum mismatch`);
      parts.push(b.subarray(REMOTE_HDR, REMOTE_HDR + bytes));
      got += bytes;
    }
    if (got !== length) throw this.fail(`inode ${inode.ino}: attribute ${name}: remote blocks hold ${got} of ${length} bytes`);
    return Buffer.concat(parts);
  }

  /** Leaf blocks of the attribute dabtree: down the first pointers, then along the forward links. */
  private async leafAttrs(inode: Inode, out: RawAttr[]): Promise<void> {
    const list = await this.extents(inode, true);
    let total = 0;
    for (const e of list) total += e.count;
    const leafMagic = this.v5 ? ATTR3_LEAF_MAGIC : ATTR_LEAF_MAGIC;
    const nodeMagic = this.v5 ? DA3_NODE_MAGIC : DA_NODE_MAGIC;
    const what = (b: number) => `inode ${inode.ino}: attribute block ${b}`;
    let fblock = 0;
    let buf = await this.forkBlocks(list, 0, 1);
    for (let depth = 0; buf.readUInt16BE(8) === nodeMagic; depth++) {
      if (depth >= DA_MAX_DEPTH) throw this.fail(`${what(fblock)}: attribute tree deeper than ${DA_MAX_DEPTH}`);
      const node = daNode(buf, this.v5);
      if (node.count === 0) throw this.fail(`${what(fblock)}: empty node`);
      fblock = node.first;
      buf = await this.forkBlocks(list, fblock, 1);
    }
    // Forward links must not return to a leaf already read (a cycle), and cannot outnumber the fork's blocks.
    const seen = new Set<number>();
    for (;;) {
      if (seen.has(fblock) || seen.size >= total) throw this.fail(`${what(fblock)}: attribute leaves loop`);
      seen.add(fblock);
      if (buf.readUInt16BE(8) !== leafMagic) throw this.fail(`${what(fblock)}: bad magic 0x${buf.readUInt16BE(8).toString(16)}`);
      if (this.v5 && !xfsCrcOk(buf, DA3_CRC_OFFSET)) this.warn(`${what(fblock)}: checksum mismatch`);
      try {
        parseLeafAttrs(buf, this.v5, out);
      } catch (err) {
        throw this.fail(`${what(fblock)}: ${(err as Error).message}`);
      }
      const forw = buf.readUInt32BE(0);
      if (forw === 0) return;
      fblock = forw;
      buf = await this.forkBlocks(list, fblock, 1);
    }
  }

  async xattrs(ino: number): Promise<{ name: string; value: Buffer }[]> {
    const inode = await this.inode(ino);
    if (!inode.attrFork) return [];
    const raw: RawAttr[] = [];
    if (inode.aformat === FORMAT.LOCAL) {
      try {
        parseShortformAttrs(inode.attrFork, raw);
      } catch (err) {
        throw this.fail(`inode ${ino}: shortform attributes: ${(err as Error).message}`);
      }
    } else if (inode.aformat === FORMAT.EXTENTS || inode.aformat === FORMAT.BTREE) {
      if (inode.anextents === 0) return [];
      await this.leafAttrs(inode, raw);
    } else throw this.fail(`inode ${ino}: attribute fork of format ${inode.aformat}`);
    const out: { name: string; value: Buffer }[] = [];
    for (const a of raw) {
      const value = Buffer.isBuffer(a.value) ? a.value : await this.remoteValue(inode, a.name, a.value.block, a.value.length);
      out.push({ name: a.name, value });
      const acl = aclName(a.name);
      if (acl) {
        const converted = aclToXattr(value);
        if (!converted) throw this.fail(`inode ${ino}: ${a.name}: malformed access control list`);
        out.push({ name: acl, value: converted });
      }
    }
    return out;
  }

  freeExtents(): AsyncIterable<ByteRange> {
    return freeRuns(this);
  }
}
