import { VdiskError } from '../../errors.js';
import {
  modeOf,
  typeFromMode,
  type ByteRange,
  type FileType,
  type FsContext,
  type FsDirEntry,
  type FsFile,
  type FsReader,
  type FsStats,
  type FsTime,
  type PeekedFile,
} from '../filesystem.js';
import { trimLabel, type VolumeReader } from '../types.js';
import { digitDateUuid } from './dates.js';
import { readDescriptorSet, SECTOR, ucs2be, type DescriptorSet, type VolumeDescriptor } from './descriptors.js';
import {
  FLAG_ASSOCIATED,
  FLAG_DIRECTORY,
  FLAG_HIDDEN,
  FLAG_MULTI_EXTENT,
  isDotOrDotDot,
  isoName,
  jolietName,
  parseRecord,
  recordProblem,
  RecordPlace,
  type Where,
  type DirectoryRecord,
} from './directory-record.js';
import { WindowCache } from '../window-cache.js';
import { ExtentFile, type Extent } from './extent-file.js';
import { ENTRY, parseBootCatalog, validationProblem, type BootEntry } from './el-torito.js';
import { readRockRidge, type RockRidge } from './rock-ridge.js';
import { ZisofsFile } from './zisofs.js';
import { extensionIds, followContinuations, parseArea, readSuspEntries, ROCK_RIDGE_IDS, suspSkip, type SuspEntry, type SuspSource } from './susp.js';

/** Which directory tree names come from: Rock Ridge on the primary tree wins, then Joliet, then plain ISO names (Linux's order). */
export type Tree = 'rockridge' | 'joliet' | 'iso';

export interface IsoNode {
  name: string;
  type: FileType;
  ino: number;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  /** The data: one extent, several for a multi-extent file (ECMA-119 6.5.1). For a directory, its records. */
  extents: Extent[];
  /** Whose names and attributes a directory's records carry. */
  tree: Tree;
  mtime?: FsTime;
  atime?: FsTime;
  ctime?: FsTime;
  birthtime?: FsTime;
  flags: string[];
  symlink?: string;
  rdev?: { major: number; minor: number };
  /** Why its contents cannot be read, if they cannot. */
  refusal?: string;
  /** zisofs: the file's size once inflated (`size`); the extents hold the compressed form. */
  zisofsSize?: number;
  /** Where the record is, for messages (`whereOf` adds the name where `quoteName` says). */
  where: Where;
  /**
   * Messages name the node as `where (name)`: put together only when a message is made, not for
   * every record of a tree.
   */
  quoteName?: boolean;
  /** The virtual El Torito directory: its entries are the boot images. */
  boot?: BootEntry[];
  associated: boolean;
}

interface Listing {
  entries: IsoNode[];
  byName: Map<string, IsoNode>;
  /** Continuation areas the directory's records use (for freeExtents). */
  continuations: Extent[];
  /** Directories hidden by RE (relocated): not listed, but their space is used (for freeExtents). */
  relocated: IsoNode[];
}

/** The El Torito images' directory, as 7-Zip shows it. */
export const BOOT_DIR = '[BOOT]';
/**
 * Directories are read in chunks of this many bytes (whole sectors, since records never cross one),
 * through the read-ahead windows: mastering tools write the directories one after another, so a tree's
 * hundreds of directories come from a few reads. One read each, the main thread's waits for the thread
 * pool were a tenth of a 20,000-file extraction (each wakes a thread on a busy machine).
 */
const DIR_CHUNK = 1024 * 1024;
/**
 * A directory of 32 MiB holds about 250,000 Rock Ridge entries (a million bare ones): far past what
 * mastering tools write, and what bounds the memory one listing takes.
 */
const MAX_DIR_BYTES = 32 * 1024 * 1024;
/** Parsed directories kept, most recently used last, up to this many entries in all. */
const CACHED_ENTRIES = 200_000;
/** The boot catalog has no length field; this many sectors bounds the walk of its entries. */
const CATALOG_SECTORS = 4;
const MAX_WARNINGS = 50;
/** Reads up to this long are served from the read-ahead windows (larger ones go straight to the volume). */
const SMALL_FILE = 64 * 1024;

/** Linux shows ISO files without Rock Ridge as r-x for all, owned by root (isofs defaults, mode and dmode unset). */
const DEFAULT_PERMS = 0o555;

const S_IFMT = 0o170000;

export class IsoReader implements FsReader<IsoNode> {
  readonly type = 'iso9660';
  readonly label?: string;
  readonly uuid?: string;
  readonly blockSize: number;
  readonly warnings: string[] = [];
  readonly tree: Tree;
  readonly descriptors: DescriptorSet;
  private readonly volume: VolumeReader;
  private readonly name: string;
  private rootNode!: IsoNode;
  /** SUSP bytes to skip at the start of each record's system use area (SP, SUSP 5.3). */
  private readonly skip: number;
  /** Where SP sits in the root's own "." record: 0, or 14 after a CD-XA entry. */
  private readonly rootSuspAt: number;
  private bootEntries: BootEntry[] = [];
  private bootCatalogSector?: number;
  private readonly cache = new Map<string, Listing>();
  private cachedEntries = 0;
  /** Read-ahead for small files, shared by every file opened on the volume. */
  private readonly chunks: WindowCache;
  /** Continuation areas of neighbouring records share blocks: read through the chunk cache (one function for all records). */
  private readonly readContinuation = async (offset: number, length: number): Promise<Buffer> => {
    const b = Buffer.alloc(length);
    await this.chunks.readInto(b, offset);
    return b;
  };
  /** The end of the ISO's data: its volume space, but never past the volume we were given. */
  private readonly end: number;

  private constructor(volume: VolumeReader, ctx: FsContext, init: {
    set: DescriptorSet; tree: Tree; blockSize: number; skip: number; rootSuspAt: number; label?: string; end: number;
  }) {
    this.volume = volume;
    // Small reads (records, continuation areas, small files) share 1 MiB windows, 8 MiB in all, read
    // ahead along the volume: ISO writers lay a directory's files out one after another.
    this.chunks = new WindowCache(volume, 1024 * 1024, 8, 2, SMALL_FILE);
    this.name = ctx.name;
    this.descriptors = init.set;
    this.tree = init.tree;
    this.blockSize = init.blockSize;
    this.skip = init.skip;
    this.rootSuspAt = init.rootSuspAt;
    this.end = init.end;
    if (init.label) this.label = init.label;
    const uuid = digitDateUuid(init.set.primary?.raw ?? Buffer.alloc(0), 813) ?? digitDateUuid(init.set.primary?.raw ?? Buffer.alloc(0), 830);
    if (uuid) this.uuid = uuid;
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<IsoReader> {
    const set = await readDescriptorSet(volume);
    const pvd = set.primary;
    if (!pvd) throw new VdiskError('CORRUPT', `${ctx.name}: no ISO-9660 primary volume descriptor at sector 16 or after`);
    const blockSize = pvd.logicalBlockSize;
    // ECMA-119 6.1.2: 2^(n+9) and at most the 2048-byte sector.
    if (![512, 1024, 2048].includes(blockSize)) {
      throw new VdiskError('CORRUPT', `${ctx.name}: ISO-9660 primary volume descriptor: logical block size ${blockSize} is not 512, 1024 or 2048`);
    }
    const warnings: string[] = [];
    if (!set.terminated) warnings.push(`volume descriptor set has no terminator within ${set.sectors + 16} sectors`);
    const end = Math.min(volume.size, pvd.volumeSpaceSize * blockSize || volume.size);

    // SUSP is in use when the root's "." record starts with SP (SUSP 5.3; at 14 after a CD-XA entry, as
    // Linux also looks). Rock Ridge wins over Joliet when an ER there names it, as on Linux; SUSP without
    // that ER yields to Joliet, and is read as Rock Ridge only where there is no Joliet tree.
    const pvdRoot = await readRootRecord(volume, pvd, ctx.name, blockSize);
    const skipAt0 = suspSkip(pvdRoot.systemUse, 0);
    const skipAt14 = skipAt0 === null ? suspSkip(pvdRoot.systemUse, 14) : null;
    const susp = skipAt0 !== null || skipAt14 !== null;
    const skip = skipAt0 ?? (skipAt14 !== null ? skipAt14 + 14 : 0);
    let announced = false;
    if (susp) {
      const rootSusp = pvdRoot.systemUse.subarray(Math.min(skipAt0 === null ? 14 : 0, pvdRoot.systemUse.length));
      const entries = await readSuspEntries(rootSusp, {
        blockSize, volumeSize: volume.size, read: (o, l) => volume.read(o, l), where: `${ctx.name}: root directory`,
      });
      announced = extensionIds(entries).some((id) => ROCK_RIDGE_IDS.includes(id));
    }
    const tree: Tree = susp && (announced || !set.joliet) ? 'rockridge' : set.joliet ? 'joliet' : 'iso';

    const label = trimLabel(tree === 'joliet' && set.joliet ? ucs2be(set.joliet.volumeId) : pvd.volumeId.toString('latin1'));
    const reader = new IsoReader(volume, ctx, {
      set, tree, blockSize, skip, rootSuspAt: skipAt0 === null ? 14 : 0, label, end,
    });
    reader.warnings.push(...warnings);
    const rootRecord = tree === 'joliet' && set.joliet ? await readRootRecord(volume, set.joliet, ctx.name, blockSize) : pvdRoot;
    const root = await reader.nodeFor([rootRecord], tree, `${ctx.name}: root directory`, 'root');
    if (root.type !== 'directory') throw new VdiskError('CORRUPT', `${ctx.name}: ISO-9660 root directory record is not a directory`);
    reader.rootNode = root;
    await reader.readBootCatalog();
    return reader;
  }

  private async readBootCatalog(): Promise<void> {
    const rec = this.descriptors.boot.find((b) => b.catalogSector !== undefined);
    if (!rec || rec.catalogSector === undefined) return;
    const at = rec.catalogSector * SECTOR;
    const where = `El Torito boot catalog at sector ${rec.catalogSector}`;
    if (at + ENTRY > this.volume.size) {
      this.warnings.push(`${where} lies past the end of the volume; boot images not listed`);
      return;
    }
    const buf = await this.volume.read(at, Math.min(CATALOG_SECTORS * SECTOR, this.volume.size - at));
    const problem = validationProblem(buf);
    if (problem) {
      this.warnings.push(`${where}: validation entry: ${problem}; boot images not listed`);
      return;
    }
    const entries = parseBootCatalog(buf);
    this.bootCatalogSector = rec.catalogSector;
    this.bootEntries = entries.filter((e) => {
      if (e.loadRba * SECTOR + e.size <= this.volume.size) return true;
      this.warnings.push(`${where}: boot image ${e.name} (sector ${e.loadRba}, ${e.size} bytes) lies past the end of the volume; not listed`);
      return false;
    });
  }

  /** Warnings about single records, bounded: a damaged volume could have one per record. */
  private warn(message: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(message);
    else if (this.warnings.length === MAX_WARNINGS) this.warnings.push('further warnings not shown');
  }

  async root(): Promise<IsoNode> {
    return this.rootNode;
  }

  async stat(node: IsoNode): Promise<FsStats> {
    return this.statNow(node);
  }

  /** Every node carries its attributes from its directory record: always at hand. */
  statNow(node: IsoNode): FsStats {
    const st: FsStats = {
      type: node.type,
      mode: node.mode,
      uid: node.uid,
      gid: node.gid,
      nlink: node.nlink,
      ino: node.ino,
      size: node.size,
    };
    // Fields are added, never deleted: a deleted one turns the object into a slow dictionary, and the
    // walk's readers of every stat with it.
    if (node.type === 'file') st.allocated = node.extents.reduce((n, e) => n + Math.ceil(e.length / this.blockSize) * this.blockSize, 0);
    if (node.mtime) st.mtime = node.mtime;
    if (node.atime) st.atime = node.atime;
    if (node.ctime) st.ctime = node.ctime;
    if (node.birthtime) st.birthtime = node.birthtime;
    if (node.flags.length) st.flags = [...node.flags];
    if (node.rdev) st.rdev = node.rdev;
    return st;
  }

  async readdir(dir: IsoNode): Promise<FsDirEntry<IsoNode>[]> {
    const listing = await this.listing(dir);
    return listing.entries.map((node) => ({ name: node.name, type: node.type, node }));
  }

  async lookup(dir: IsoNode, name: string): Promise<IsoNode | null> {
    return (await this.listing(dir)).byName.get(name) ?? null;
  }

  async readlink(node: IsoNode): Promise<string> {
    if (node.symlink === undefined) throw new VdiskError('USAGE', `${whereOf(node)}: not a symbolic link`);
    return node.symlink;
  }

  async open(node: IsoNode, stream?: string): Promise<FsFile> {
    if (stream !== undefined) throw new VdiskError('UNSUPPORTED', `${whereOf(node)}: ISO-9660 files have no named streams`);
    if (node.type !== 'file') throw new VdiskError('USAGE', `${whereOf(node)}: not a regular file`);
    if (node.refusal) throw new VdiskError('UNSUPPORTED', `${whereOf(node)}: ${node.refusal}`);
    for (const e of node.extents) {
      if (e.length > 0 && e.offset + e.length > this.volume.size) {
        throw new VdiskError('TRUNCATED', `${whereOf(node)}: data at byte ${e.offset} (${e.length} bytes) extends past the end of the volume (${this.volume.size} bytes)`);
      }
    }
    if (node.zisofsSize !== undefined) {
      const stored = new ExtentFile(this.volume, this.chunks, node.extents, node.extents.reduce((n, e) => n + e.length, 0));
      return ZisofsFile.open(stored, node.zisofsSize, whereOf(node));
    }
    return new ExtentFile(this.volume, this.chunks, node.extents, node.size);
  }

  /** A small plain file of one extent (see FsReader.fileRunNow). */
  fileRunNow(node: IsoNode): ByteRange | null {
    if (node.type !== 'file' || node.refusal || node.zisofsSize !== undefined || node.extents.length !== 1) return null;
    const e = node.extents[0];
    if (e.length !== node.size || e.length > SMALL_FILE || e.offset + e.length > this.volume.size) return null;
    return e;
  }

  /** Such a file, from the read-ahead windows (see FsReader.peekFile). */
  peekFile(node: IsoNode): PeekedFile | Promise<unknown> | null {
    const run = this.fileRunNow(node);
    return run ? this.chunks.peekFile(run.offset, run.length) : null;
  }

  /** The byte ranges no descriptor, path table, directory, continuation area, file or boot image uses. */
  async *freeExtents(): AsyncIterable<ByteRange> {
    const bs = this.blockSize;
    // Space is allocated in whole logical blocks: a used range takes every block it touches.
    const used = (await this.usedRanges()).map((r) => {
      const from = Math.floor(r.offset / bs) * bs;
      return { offset: from, length: Math.ceil((r.offset + r.length) / bs) * bs - from };
    });
    used.sort((a, b) => a.offset - b.offset);
    let at = 0;
    for (const r of used) {
      if (r.offset > at) yield { offset: at, length: Math.min(r.offset, this.end) - at };
      at = Math.max(at, r.offset + r.length);
      if (at >= this.end) return;
    }
    if (at < this.end) yield { offset: at, length: this.end - at };
  }

  /**
   * Everything ISO-9660 has no allocation map for but a walk can find: the system area, the descriptor
   * set, the path tables, both directory trees (with their continuation areas), every file's extents
   * and the boot catalog with its images. The walk visits each directory once, whatever links to it.
   */
  private async usedRanges(): Promise<Extent[]> {
    const bs = this.blockSize;
    const used: Extent[] = [{ offset: 0, length: (16 + this.descriptors.sectors) * SECTOR }];
    for (const vd of [this.descriptors.primary, this.descriptors.joliet]) {
      if (!vd) continue;
      for (const loc of vd.pathTables) if (loc) used.push({ offset: loc * bs, length: vd.pathTableSize });
    }
    if (this.bootCatalogSector !== undefined) used.push({ offset: this.bootCatalogSector * SECTOR, length: SECTOR });
    for (const e of this.bootEntries) used.push({ offset: e.loadRba * SECTOR, length: e.size });
    const roots: IsoNode[] = [this.rootNode];
    // The tree not shown still occupies space: Joliet's under Rock Ridge, the primary one under Joliet.
    const pvd = this.descriptors.primary as VolumeDescriptor;
    if (this.tree === 'joliet') roots.push(await this.nodeFor([await readRootRecord(this.volume, pvd, this.name, bs)], 'iso', `${this.name}: root directory`, 'root'));
    else if (this.descriptors.joliet) {
      roots.push(await this.nodeFor([await readRootRecord(this.volume, this.descriptors.joliet, this.name, bs)], 'joliet', `${this.name}: Joliet root directory`, 'root'));
    }
    const seen = new Set<string>();
    const pending: IsoNode[] = [...roots];
    while (pending.length) {
      const dir = pending.pop() as IsoNode;
      const key = `${dir.tree}:${dir.extents[0].offset}`;
      if (seen.has(key)) continue;
      seen.add(key);
      used.push(...dir.extents);
      const listing = await this.listing(dir);
      used.push(...listing.continuations);
      for (const n of [...listing.entries, ...listing.relocated]) {
        if (n.boot) continue;
        if (n.type === 'directory') pending.push(n);
        else used.push(...n.extents.filter((e) => e.length > 0));
      }
    }
    return used;
  }

  private async listing(dir: IsoNode): Promise<Listing> {
    if (dir.type !== 'directory') throw new VdiskError('USAGE', `${whereOf(dir)}: not a directory`);
    if (dir.boot) return this.bootListing(dir);
    const key = `${dir.tree}:${dir.extents[0].offset}`;
    const hit = this.cache.get(key);
    if (hit) {
      this.cache.delete(key);
      this.cache.set(key, hit);
      return hit;
    }
    const listing = await this.parseDirectory(dir, dir === this.rootNode);
    this.cache.set(key, listing);
    this.cachedEntries += listing.entries.length;
    for (const [k, old] of this.cache) {
      if (this.cachedEntries <= CACHED_ENTRIES || old === listing) break;
      this.cache.delete(k);
      this.cachedEntries -= old.entries.length;
    }
    return listing;
  }

  private bootListing(dir: IsoNode): Listing {
    const entries = (dir.boot as BootEntry[]).map((e): IsoNode => ({
      name: e.name,
      type: 'file',
      ino: (this.bootCatalogSector as number) * SECTOR + (e.index + 1) * ENTRY,
      mode: modeOf('file', DEFAULT_PERMS),
      uid: 0,
      gid: 0,
      nlink: 1,
      size: e.size,
      extents: [{ offset: e.loadRba * SECTOR, length: e.size }],
      tree: this.tree,
      flags: ['boot-image', ...(e.bootable ? ['bootable'] : [])],
      where: `${this.name}: El Torito boot image ${e.name}`,
      associated: false,
    }));
    return { entries, byName: new Map(entries.map((e) => [e.name, e])), continuations: [], relocated: [] };
  }

  private bootDirectory(): IsoNode {
    return {
      name: BOOT_DIR,
      type: 'directory',
      ino: (this.bootCatalogSector as number) * SECTOR,
      mode: modeOf('directory', DEFAULT_PERMS),
      uid: 0,
      gid: 0,
      nlink: 1,
      size: 0,
      extents: [],
      tree: this.tree,
      flags: ['virtual'],
      where: `${this.name}: ${BOOT_DIR}`,
      boot: this.bootEntries,
      associated: false,
    };
  }

  /** The records of one directory, in on-disk order, multi-extent files joined, "." and ".." left out. */
  private async parseDirectory(dir: IsoNode, isRoot: boolean): Promise<Listing> {
    const { offset: start, length: size } = dir.extents[0];
    const where = `${this.name}: directory at byte ${start}`;
    if (size > MAX_DIR_BYTES) throw new VdiskError('CORRUPT', `${where}: size ${size} exceeds ${MAX_DIR_BYTES} bytes`);
    if (start + size > this.volume.size) {
      throw new VdiskError('TRUNCATED', `${where}: its ${size} bytes extend past the end of the volume (${this.volume.size} bytes)`);
    }
    const listing: Listing = { entries: [], byName: new Map(), continuations: [], relocated: [] };
    let group: DirectoryRecord[] = [];
    for (let chunkAt = 0; chunkAt < size; chunkAt += DIR_CHUNK) {
      const buf = await this.chunks.read(start + chunkAt, Math.min(DIR_CHUNK, size - chunkAt));
      let pos = 0;
      while (pos < buf.length) {
        const room = Math.min(SECTOR - ((chunkAt + pos) % SECTOR), buf.length - pos);
        if (buf[pos] === 0) {
          pos += room; // padding to the end of the sector (ECMA-119 6.8.1.1)
          continue;
        }
        const position = start + chunkAt + pos;
        const problem = recordProblem(buf, pos, room);
        if (problem) throw new VdiskError('CORRUPT', `${this.name}: directory record at byte ${position}: ${problem}`);
        const rec = parseRecord(buf, pos, position);
        pos += rec.length;
        if (isDotOrDotDot(rec)) {
          if (group.length) throw new VdiskError('CORRUPT', `${this.name}: directory record at byte ${position}: "." or ".." inside a multi-extent file`);
          continue;
        }
        if (group.length && !group[0].sameIdentifier(rec)) {
          throw new VdiskError('CORRUPT', `${this.name}: directory record at byte ${group[0].position}: multi-extent file continues with a record of another name at byte ${position}`);
        }
        group.push(rec);
        if (rec.flags & FLAG_MULTI_EXTENT) continue;
        let node = this.nodeFor(group, dir.tree, new RecordPlace(this.name, group[0].position), 'entry', listing);
        // The group's array is reused for the next record unless the node, still being made, holds it.
        if (node instanceof Promise) {
          group = [];
          node = await node;
        } else group.length = 0;
        if (node === null) continue;
        listing.entries.push(node);
      }
    }
    if (group.length) throw new VdiskError('CORRUPT', `${this.name}: directory record at byte ${group[0].position}: multi-extent file has no final record`);
    for (const n of listing.entries) {
      const prev = listing.byName.get(n.name);
      // An associated file precedes the file it belongs to and may share its name (ECMA-119 9.3): the file wins.
      if (!prev || (prev.associated && !n.associated)) listing.byName.set(n.name, n);
    }
    if (isRoot && this.bootEntries.length) {
      const clash = `the root already holds ${BOOT_DIR}; El Torito boot images not listed`;
      if (listing.byName.has(BOOT_DIR)) {
        if (!this.warnings.includes(clash)) this.warn(clash);
      }
      else {
        const boot = this.bootDirectory();
        listing.entries.push(boot);
        listing.byName.set(BOOT_DIR, boot);
      }
    }
    return listing;
  }

  /**
   * The node for a file's records (several for a multi-extent file), or null for a record Rock Ridge
   * hides (RE: a relocated directory, shown where its CL points). `kind` says whose record it is: the
   * volume root's "." (where SP sits), another directory's "." (a CL target), or a directory entry.
   * Without waiting, unless the record's system use continues elsewhere (CE) or Rock Ridge moved it
   * (CL, RE): then a promise. A directory of files is parsed with no promise per record.
   */
  private nodeFor(group: DirectoryRecord[], tree: Tree, where: Where, kind: 'root' | 'dot'): IsoNode | Promise<IsoNode>;
  private nodeFor(group: DirectoryRecord[], tree: Tree, where: Where, kind: 'entry', listing?: Listing, keepRelocated?: boolean): IsoNode | null | Promise<IsoNode | null>;
  private nodeFor(group: DirectoryRecord[], tree: Tree, where: Where, kind: 'root' | 'dot' | 'entry', listing?: Listing, keepRelocated = false): IsoNode | null | Promise<IsoNode | null> {
    if (tree !== 'rockridge') return this.nodeWith(group, tree, where, kind, null, listing, keepRelocated);
    const rec = group[0];
    // SP's skip applies to every system use field but the root's own, where SP itself sits (SUSP 5.3).
    const skip = kind === 'root' ? this.rootSuspAt : this.skip;
    const end = rec.at + rec.length;
    const entries: SuspEntry[] = [];
    const next = parseArea(rec.buf, Math.min(rec.at + rec.suStart + skip, end), end, entries);
    if (next === null) return this.nodeWith(group, tree, where, kind, this.rockRidge(entries, where), listing, keepRelocated);
    // The record's system use continues elsewhere (CE): read on, with a promise.
    const src: SuspSource = {
      blockSize: this.blockSize,
      volumeSize: this.volume.size,
      read: this.readContinuation,
      where,
      onContinuation: listing ? (offset, length) => listing.continuations.push({ offset, length }) : undefined,
    };
    return followContinuations(next, entries, src).then((e) => this.nodeWith(group, tree, where, kind, this.rockRidge(e, where), listing, keepRelocated));
  }

  private rockRidge(entries: SuspEntry[], where: Where): RockRidge {
    const rr = readRockRidge(entries, where);
    if (rr.problems) for (const p of rr.problems) this.warn(p);
    return rr;
  }

  /** CL: this record stands for a directory moved elsewhere; its attributes are that directory's "." record (RRIP 4.1.5.1). */
  private async movedNode(rec: DirectoryRecord, rr: RockRidge, childLink: number, tree: Tree, where: Where): Promise<IsoNode> {
    const target = await this.relocatedRoot(childLink, where);
    const moved = await this.nodeFor([target], tree, `${this.name}: relocated directory at block ${childLink}`, 'dot');
    moved.name = checkName(rr.name ?? isoName(rec.identifier), where);
    moved.where = where;
    moved.quoteName = true;
    return moved;
  }

  /** RE: a directory shown through the CL that points at it, kept aside for the map of used space. */
  private async hideRelocated(group: DirectoryRecord[], tree: Tree, where: Where, listing: Listing): Promise<null> {
    const hidden = await this.nodeFor(group, tree, where, 'entry', undefined, true);
    if (hidden) listing.relocated.push(hidden);
    return null;
  }

  /** nodeFor once the record's Rock Ridge entries (if any) are read. */
  private nodeWith(group: DirectoryRecord[], tree: Tree, where: Where, kind: 'root' | 'dot' | 'entry', rr: RockRidge | null, listing: Listing | undefined, keepRelocated: boolean): IsoNode | null | Promise<IsoNode | null> {
    const rec = group[0];
    const bs = this.blockSize;
    const self = kind !== 'entry';
    let isDir = (rec.flags & FLAG_DIRECTORY) !== 0;
    if (rr?.childLink !== undefined && !self) return this.movedNode(rec, rr, rr.childLink, tree, where);
    if (rr?.relocated && !self && !keepRelocated) return isDir && listing ? this.hideRelocated(group, tree, where, listing) : null;

    let name: string;
    if (self) name = '';
    else if (tree === 'joliet') name = jolietName(rec.identifier);
    else if (rr?.name !== undefined) name = rr.name;
    else name = isoName(rec.identifier);
    if (!self) checkName(name, where);

    let type: FileType = isDir ? 'directory' : 'file';
    let perms = DEFAULT_PERMS;
    if (rr?.mode !== undefined) {
      const t = typeFromMode(rr.mode);
      // The record's directory flag decides what the extent holds; PX gives the other types and the permissions.
      if (!isDir && t !== 'directory' && t !== 'other') type = t;
      perms = rr.mode & ~S_IFMT;
    }
    if (!isDir && rr?.symlink !== undefined) type = 'symlink';
    isDir = type === 'directory';

    // Built in a plain loop, its size with it: a reduce over the array here was where V8 threw away
    // this function's optimized code (a "wrong map" on the array) on every tree.
    const extents: Extent[] = [];
    let size = 0;
    for (const r of group) {
      extents.push({ offset: (r.extent + r.xarLength) * bs, length: r.dataLength });
      size += r.dataLength;
    }
    const flags: string[] = [];
    if (rec.flags & FLAG_HIDDEN) flags.push('hidden');
    if (rec.flags & FLAG_ASSOCIATED) flags.push('associated');
    if (group.length > 1) flags.push('multi-extent');
    const node: IsoNode = {
      name,
      type,
      ino: inodeNumber(isDir, type, rec, rr, bs),
      mode: modeOf(type, perms),
      uid: rr?.uid ?? 0,
      gid: rr?.gid ?? 0,
      nlink: rr?.nlink ?? 1,
      size,
      extents,
      tree,
      flags,
      where,
      quoteName: !self,
      associated: (rec.flags & FLAG_ASSOCIATED) !== 0,
    };
    const mtime = rr?.mtime ?? rec.recorded;
    if (mtime !== undefined) node.mtime = mtime;
    if (rr?.atime) node.atime = rr.atime;
    if (rr?.ctime) node.ctime = rr.ctime;
    if (rr?.birthtime) node.birthtime = rr.birthtime;
    if (type === 'symlink') {
      node.symlink = rr?.symlink ?? '';
      node.size = Buffer.byteLength(node.symlink);
    }
    if ((type === 'block' || type === 'char') && rr?.rdev) node.rdev = rr.rdev;
    if (isDir) {
      node.extents = [extents[0]];
      node.size = extents[0].length;
    }
    if (rec.fileUnitSize !== 0 || rec.interleaveGap !== 0) {
      flags.push('interleaved');
      node.refusal = `interleaved file (file unit size ${rec.fileUnitSize}, gap ${rec.interleaveGap} blocks) is not supported`;
    }
    if (rr?.zisofs && type === 'file') {
      flags.push('zisofs');
      // The record's length is the stored (compressed) size; ZF states the file's own.
      if (rr.zisofs.algorithm === 'pz') {
        node.zisofsSize = rr.zisofs.size;
        node.size = rr.zisofs.size;
      } else node.refusal = `compressed with ZF algorithm ${JSON.stringify(rr.zisofs.algorithm)}, which is not supported`;
    }
    return node;
  }

  /** The "." record of the directory a CL entry points at, checked to be a directory's own record. */
  private async relocatedRoot(block: number, where: Where): Promise<DirectoryRecord> {
    const at = block * this.blockSize;
    if (at + SECTOR > this.volume.size) throw new VdiskError('CORRUPT', `${where}: Rock Ridge CL points at block ${block}, past the end of the volume`);
    const buf = await this.volume.read(at, SECTOR);
    const problem = recordProblem(buf, 0, SECTOR);
    if (problem) throw new VdiskError('CORRUPT', `${where}: Rock Ridge CL points at block ${block}, which holds no directory record: ${problem}`);
    const rec = parseRecord(buf, 0, at);
    if (!(isDotOrDotDot(rec) && rec.identifier[0] === 0 && rec.flags & FLAG_DIRECTORY) || rec.extent !== block) {
      throw new VdiskError('CORRUPT', `${where}: Rock Ridge CL points at block ${block}, which is not the start of a directory`);
    }
    return rec;
  }
}

/** A node's place and name, for messages. */
function whereOf(node: IsoNode): string {
  return node.quoteName ? `${node.where} (${JSON.stringify(node.name)})` : String(node.where);
}

/** A name the path walker and the host can take: not empty, ".", "..", nor holding "/" or NUL. */
function checkName(name: string, where: Where): string {
  if (name === '' || name === '.' || name === '..' || name.includes('/') || name.includes('\0')) {
    throw new VdiskError('CORRUPT', `${where}: file name ${JSON.stringify(name)} is not a valid name`);
  }
  return name;
}

/**
 * Inode numbers as Linux gives them, by where the record is (a directory by its extent, so that every
 * path to it agrees), except hard links: Rock Ridge says a file has several links (PX) and the links
 * share their data extent, so files with both get one number from that extent, above every byte
 * offset an ISO can have (2^43), which lets get and tar keep them linked. Sharing data is what makes
 * them one file: no damaged link count can join two files that differ.
 */
const LINKED = 2 ** 44;
function inodeNumber(isDir: boolean, type: FileType, rec: DirectoryRecord, rr: RockRidge | null, bs: number): number {
  if (isDir) return rec.extent * bs;
  if (type === 'file' && rr?.nlink !== undefined && rr.nlink > 1 && rec.dataLength > 0) return LINKED + rec.extent;
  return rec.position;
}

/** The "." record of a descriptor's root directory (its attributes, and SP for SUSP), checked against the descriptor. */
async function readRootRecord(volume: VolumeReader, vd: VolumeDescriptor, name: string, bs: number): Promise<DirectoryRecord> {
  const which = vd.jolietLevel ? 'Joliet' : 'primary';
  const problem = recordProblem(vd.rootRecord, 0, 34);
  if (problem) throw new VdiskError('CORRUPT', `${name}: ${which} volume descriptor: root directory record: ${problem}`);
  const inVd = parseRecord(vd.rootRecord, 0, vd.sector * SECTOR + 156);
  const at = inVd.extent * bs;
  if (at + SECTOR > volume.size) throw new VdiskError('TRUNCATED', `${name}: ${which} root directory at block ${inVd.extent} lies past the end of the volume`);
  const buf = await volume.read(at, SECTOR);
  const p2 = recordProblem(buf, 0, SECTOR);
  if (p2 || !(buf[32] === 1 && buf[33] === 0)) {
    throw new VdiskError('CORRUPT', `${name}: ${which} root directory at block ${inVd.extent}: first record is not "."${p2 ? `: ${p2}` : ''}`);
  }
  const dot = parseRecord(buf, 0, at);
  // The descriptor's copy is authoritative for where and how long the root is (ECMA-119 8.4.18).
  dot.extent = inVd.extent;
  dot.dataLength = inVd.dataLength;
  dot.xarLength = inVd.xarLength;
  dot.flags |= FLAG_DIRECTORY;
  return dot;
}
