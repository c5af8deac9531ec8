import { VdiskError } from '../../errors.js';
import { modeOf, type ByteRange, type FsContext, type FsDirEntry, type FsFile, type FsReader, type FsStats, type PeekedFile } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import { WindowCache } from '../window-cache.js';
import { bootDirty, fatLayout, readBpb, volumeSerial, type FatLayout } from './boot-sector.js';
import { ATTR_ARCHIVE, ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM, ENTRY_SIZE, type ShortEntry } from './dir-entry.js';
import { parseDirectory } from './directory.js';
import { dosTime } from './dos-time.js';
import { FatTable, type ClusterRuns } from './fat-table.js';
import { awaitedLater } from '../../util/promises.js';

/** FAT directories hold at most 65536 entries, 2 MiB (fatgen103 section 6; Linux's FAT_MAX_DIR_SIZE). */
const MAX_DIR_BYTES = 2 * 1024 * 1024;
/**
 * Windows of the data area for small reads (32 MiB in all); reads over a quarter window go straight
 * through. Sixteen files in flight, directories listed ahead and the windows read ahead all hold
 * windows: with 8 of them a 20,000-file tree re-read each window about four times.
 */
const DATA_WINDOW = 1024 * 1024;
const DATA_WINDOWS = 32;
/** Parsed directories kept: at most this many, holding at most this many entries in all. */
const MAX_CACHED_DIRS = 1024;
const MAX_CACHED_ENTRIES = 200_000;
/** Warnings kept; a badly damaged volume would otherwise grow the list without bound. */
const MAX_WARNINGS = 100;
/** The largest single read a file read issues; larger spans go as several reads in flight. */
const MAX_READ = 2 * 1024 * 1024;
/** Linux's inode number for the root (MSDOS_ROOT_INO). */
const ROOT_INO = 1;

/** A file or directory: its short entry (none for the root) and the path it was reached by, for messages. */
export interface FatNode {
  readonly path: string;
  /** The last component of `path` ('' for the root). */
  readonly name: string;
  readonly ino: number;
  readonly directory: boolean;
  readonly entry: ShortEntry | null;
}

interface Listing {
  nodes: FatNode[];
  /** Bytes the directory spans (the root region, or its clusters), as Linux reports a directory's size. */
  bytes: number;
  /** Subdirectories plus on-disk `.` and `..`: the link count Linux gives (fat_subdirs). */
  links: number;
  label?: string;
  byName?: Map<string, FatNode>;
}

/**
 * A read-only FAT12/16/32 volume. Modes are synthesised as Linux's vfat shows them with default mount
 * options and a umask of 022: 0755 for files and directories, without the write bits for a file with
 * the read-only attribute (a directory's read-only bit is ignored without `rodir`); owner root.
 * Times are the DOS local times read as UTC (see dos-time.ts). There is no change time in FAT: ctime is
 * absent (Linux shows the modification time there).
 */
export class FatReader implements FsReader<FatNode> {
  readonly type = 'vfat';
  readonly caseInsensitive = true;
  readonly warnings: string[] = [];
  readonly blockSize: number;
  label?: string;
  readonly uuid?: string;
  readonly layout: FatLayout;
  private readonly table: FatTable;
  /** File and directory contents: small reads share 1 MiB windows, read ahead along the volume. */
  private readonly data: WindowCache;
  private readonly listings = new Map<number, Listing>();
  private cachedEntries = 0;
  private readonly rootNode: FatNode = { path: '/', name: '', ino: ROOT_INO, directory: true, entry: null };

  private constructor(
    private readonly volume: VolumeReader,
    private readonly name: string,
    layout: FatLayout,
    uuid: string | undefined,
  ) {
    this.layout = layout;
    this.blockSize = layout.clusterSize;
    this.uuid = uuid;
    this.table = new FatTable(volume, layout, name);
    this.data = new WindowCache(volume, DATA_WINDOW, DATA_WINDOWS, 2, DATA_WINDOW / 4);
    for (const n of layout.notes) this.warn(n);
    if (layout.totalBytes > volume.size) {
      this.warn(`the ${layout.version} file system spans ${layout.totalBytes} bytes but the volume has ${volume.size}; the missing part reads as zeros`);
    }
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<FatReader> {
    const found = await readBpb(volume);
    if (!found) throw new VdiskError('CORRUPT', `${ctx.name}: no FAT boot sector (BIOS parameter block)`);
    const layout = fatLayout(found.bpb);
    if (!layout) throw new VdiskError('CORRUPT', `${ctx.name}: FAT boot sector: reserved sectors, FATs and root directory leave no data region`);
    if (layout.clusterCount === 0) throw new VdiskError('CORRUPT', `${ctx.name}: ${layout.version} has no data clusters`);
    const reader = new FatReader(volume, ctx.name, layout, volumeSerial(found.boot, found.bpb));
    await reader.checkClean(bootDirty(found.boot, found.bpb));
    reader.label = (await reader.listing(reader.rootNode)).label;
    return reader;
  }

  /**
   * FAT[1] keeps two flags on FAT16 and FAT32 (fatgen103 section 4.2, ClnShutBitMask and
   * HrdErrBitMask): a clear bit means the volume was not cleanly unmounted, resp. that a disk I/O
   * error was met. With the boot sector's dirty bit, worth a warning: the last writer may not have finished.
   */
  private async checkClean(bootSaysDirty: boolean): Promise<void> {
    const bits = this.layout.bits;
    const entry1 = bits === 12 ? -1 : await this.table.entry(1);
    const clean = bits === 16 ? 0x8000 : 0x08000000;
    const noErrors = bits === 16 ? 0x4000 : 0x04000000;
    if (bootSaysDirty || (entry1 >= 0 && !(entry1 & clean))) {
      this.warn(`the ${this.layout.version} volume was not cleanly unmounted (dirty flag set): what its last writer was doing may be unfinished`);
    }
    if (entry1 >= 0 && !(entry1 & noErrors)) this.warn(`the ${this.layout.version} volume records disk I/O errors (FAT hard-error flag)`);
  }

  private warn(msg: string): void {
    if (this.warnings.length < MAX_WARNINGS) this.warnings.push(msg);
    else if (this.warnings.length === MAX_WARNINGS) this.warnings.push('further warnings left out');
  }

  private where(node: FatNode): string {
    return `${this.name}: ${this.layout.version} ${node.directory ? 'directory' : 'file'} ${node.path}`;
  }

  /** The cluster a directory's entries start at; -1 for the fixed FAT12/16 root region, 0 for none. */
  private dirKey(node: FatNode): number {
    if (node.entry === null) return this.layout.version === 'FAT32' ? this.layout.rootCluster : -1;
    return node.entry.startCluster;
  }

  private isRootCluster(cluster: number): boolean {
    return this.layout.version === 'FAT32' && cluster === this.layout.rootCluster;
  }

  async root(): Promise<FatNode> {
    return this.rootNode;
  }

  /**
   * A copy of volume bytes: a listing keeps its bytes, and a view would keep a whole window from being
   * reused (mcopy puts a directory's cluster in nearly every window of a tree).
   */
  private async copyOf(offset: number, length: number): Promise<Buffer> {
    const b = Buffer.allocUnsafe(length);
    await this.data.readInto(b, offset);
    return b;
  }

  /**
   * The directory's bytes (the root region, or its cluster chain, at most 2 MiB) and the volume
   * offset of each of its clusters' starts, to place its entries.
   */
  private async dirBytes(node: FatNode, key: number): Promise<{ bytes: Buffer; volumeOffset: (at: number) => number }> {
    if (key === -1) {
      const start = this.layout.rootOffset;
      return { bytes: await this.copyOf(start, this.layout.rootBytes), volumeOffset: (at) => start + at };
    }
    const cs = this.layout.clusterSize;
    const limit = Math.max(1, Math.floor(MAX_DIR_BYTES / cs));
    const chain = await this.table.chain(key, limit, `${this.layout.version} directory ${node.path}`);
    if (chain.ended === 'limit') {
      throw new VdiskError('CORRUPT', `${this.where(node)}: directory is larger than ${MAX_DIR_BYTES} bytes (65536 entries), the most FAT allows`);
    }
    const parts = await Promise.all(chain.starts.map((s, i) => this.copyOf(this.table.clusterOffset(s), chain.counts[i] * cs)));
    const clusters = chain.starts.flatMap((s, i) => Array.from({ length: chain.counts[i] }, (_, k) => s + k));
    return {
      bytes: parts.length === 1 ? parts[0] : Buffer.concat(parts),
      volumeOffset: (at) => this.table.clusterOffset(clusters[Math.floor(at / cs)]) + (at % cs),
    };
  }

  private async listing(node: FatNode): Promise<Listing> {
    const key = this.dirKey(node);
    // A subdirectory entry without a cluster has nothing to read: Linux shows it empty. (A FAT32 root
    // without one is corrupt: the chain walk says so.)
    if (key === 0 && node.entry !== null) return { nodes: [], bytes: 0, links: 2 };
    const hit = this.listings.get(key);
    if (hit) {
      this.listings.delete(key);
      this.listings.set(key, hit);
      return hit;
    }
    const { bytes, volumeOffset } = await this.dirBytes(node, key);
    const parsed = parseDirectory(bytes, this.layout.version === 'FAT32');
    const prefix = node.path === '/' ? '/' : `${node.path}/`;
    const nodes: FatNode[] = [];
    let subdirs = 0;
    for (const r of parsed.records) {
      const directory = (r.entry.attr & ATTR_DIRECTORY) !== 0;
      if (directory) subdirs++;
      nodes.push({ path: prefix + r.name, name: r.name, ino: this.inoOf(directory, r.entry.startCluster, volumeOffset(r.offset)), directory, entry: r.entry });
    }
    for (const at of parsed.unnamed) this.warn(`${this.where(node)}: entry ${at / ENTRY_SIZE} has no usable name; left out`);
    const listing: Listing = {
      nodes,
      bytes: bytes.length,
      links: node.entry === null ? subdirs + 2 : subdirs + parsed.dotDirs,
      label: parsed.label,
    };
    this.remember(key, listing);
    return listing;
  }

  /**
   * Inode numbers: 1 for the root, as Linux; a directory's first cluster (so that a directory reached
   * twice through damaged entries shows the same number, and tree walkers can see the cycle); a file's
   * entry position. Both in units of 32 bytes of the volume, so they cannot meet.
   */
  private inoOf(directory: boolean, start: number, entryOffset: number): number {
    if (directory && this.isRootCluster(start)) return ROOT_INO;
    if (directory && this.table.isCluster(start)) return this.table.clusterOffset(start) / ENTRY_SIZE;
    return entryOffset / ENTRY_SIZE;
  }

  private remember(key: number, listing: Listing): void {
    this.listings.set(key, listing);
    this.cachedEntries += listing.nodes.length;
    for (const [k, l] of this.listings) {
      if ((this.cachedEntries <= MAX_CACHED_ENTRIES && this.listings.size <= MAX_CACHED_DIRS) || k === key) break;
      this.listings.delete(k);
      this.cachedEntries -= l.nodes.length;
    }
  }

  async stat(node: FatNode): Promise<FsStats> {
    return this.statNow(node) ?? this.statOf(node, await this.listing(node));
  }

  /** A file's stat, from its entry; a directory's once its listing is at hand (its size and links). */
  statNow(node: FatNode): FsStats | null {
    if (node.entry !== null && !node.directory) return this.statOf(node, null);
    const l = this.listings.get(this.dirKey(node));
    return l ? this.statOf(node, l) : null;
  }

  private statOf(node: FatNode, l: Listing | null): FsStats {
    const e = node.entry;
    if (e === null || node.directory) {
      l = l as Listing;
      const st: FsStats = { type: 'directory', mode: modeOf('directory', 0o755), uid: 0, gid: 0, nlink: l.links, ino: node.ino, size: l.bytes, allocated: l.bytes };
      if (e !== null) {
        this.setTimes(st, e);
        st.flags = this.flags(e.attr);
      }
      return st;
    }
    const cs = this.layout.clusterSize;
    // Built field by field rather than spread together: one stat per file of a tree.
    const st: FsStats = {
      type: 'file',
      mode: modeOf('file', e.attr & ATTR_READ_ONLY ? 0o555 : 0o755),
      uid: 0,
      gid: 0,
      nlink: 1,
      ino: node.ino,
      size: e.size,
      allocated: Math.ceil(e.size / cs) * cs,
    };
    this.setTimes(st, e);
    st.flags = this.flags(e.attr);
    return st;
  }

  /** mtime always (Linux shows 1980-01-01 for a zero date); access date and creation time where set (0 means not recorded). */
  private setTimes(st: FsStats, e: ShortEntry): void {
    st.mtime = dosTime(e.writeDate, e.writeTime);
    if (e.accessDate !== 0) st.atime = dosTime(e.accessDate, 0);
    if (e.createDate !== 0) st.birthtime = dosTime(e.createDate, e.createTime, e.createCs);
  }

  private flags(attr: number): string[] {
    const f: string[] = [];
    if (attr & ATTR_READ_ONLY) f.push('readonly');
    if (attr & ATTR_HIDDEN) f.push('hidden');
    if (attr & ATTR_SYSTEM) f.push('system');
    if (attr & ATTR_ARCHIVE) f.push('archive');
    return f;
  }

  async readdir(dir: FatNode): Promise<FsDirEntry<FatNode>[]> {
    return (await this.listing(dir)).nodes.map((node) => ({ name: node.name, type: node.directory ? 'directory' : 'file', node }));
  }

  /** Long and short names, case-insensitively; a long name wins over another entry's short name. */
  async lookup(dir: FatNode, name: string): Promise<FatNode | null> {
    const l = await this.listing(dir);
    if (!l.byName) {
      l.byName = new Map();
      for (const n of l.nodes) {
        const key = foldCase(n.name);
        if (!l.byName.has(key)) l.byName.set(key, n);
      }
      for (const n of l.nodes) {
        const key = foldCase((n.entry as ShortEntry).name);
        if (!l.byName.has(key)) l.byName.set(key, n);
      }
    }
    return l.byName.get(foldCase(name)) ?? null;
  }

  async readlink(node: FatNode): Promise<string> {
    throw new VdiskError('USAGE', `${this.where(node)}: FAT has no symbolic links`);
  }

  async open(node: FatNode): Promise<FsFile> {
    const e = node.entry;
    if (e === null || node.directory) throw new VdiskError('USAGE', `${this.where(node)}: is a directory`);
    const cs = this.layout.clusterSize;
    if (e.size === 0) return new FatFile(this.data, this.table, 0, { starts: [], counts: [], clusters: 0 });
    const needed = Math.ceil(e.size / cs);
    if (needed > this.layout.clusterCount) {
      throw new VdiskError('CORRUPT', `${this.where(node)}: size ${e.size} needs ${needed} clusters, more than the volume's ${this.layout.clusterCount}`);
    }
    const chain = await this.table.chain(e.startCluster, needed, `${this.layout.version} file ${node.path}`);
    if (chain.clusters < needed) {
      throw new VdiskError('CORRUPT', `${this.where(node)}: size ${e.size} needs ${needed} clusters but the cluster chain ends after ${chain.clusters}`);
    }
    if (chain.ended === 'limit') this.warn(`${this.where(node)}: cluster chain goes on past the ${needed} clusters its size ${e.size} needs`);
    return new FatFile(this.data, this.table, e.size, chain);
  }

  /** A small file in one run of clusters, from the read-ahead windows (see FsReader.peekFile). */
  peekFile(node: FatNode): PeekedFile | Promise<unknown> | null {
    const run = this.fileRunNow(node);
    return run ? this.data.peekFile(run.offset, run.length) : null;
  }

  /** Where such a file lies (see FsReader.fileRunNow): a chain of consecutive clusters, from cached FAT pieces. */
  fileRunNow(node: FatNode): ByteRange | null {
    const e = node.entry;
    if (e === null || node.directory || e.size > DATA_WINDOW / 4) return null;
    if (e.size === 0) return { offset: 0, length: 0 };
    const needed = Math.ceil(e.size / this.layout.clusterSize);
    if (this.table.contiguousNow(e.startCluster, needed) !== true) return null;
    return { offset: this.table.clusterOffset(e.startCluster), length: e.size };
  }

  /** Where a file's clusters lie on the volume, run by run (`filefrag`'s view). */
  async fileExtents(node: FatNode): Promise<ByteRange[]> {
    const file = await this.open(node);
    return (file as FatFile).extents();
  }

  async *freeExtents(): AsyncGenerator<ByteRange> {
    yield* this.table.freeExtents();
  }
}

/** Case folding for lookups: each character's upper case where it is one character (FAT compares names as Windows does, by upper case). */
function foldCase(s: string): string {
  let out = '';
  for (const c of s) {
    const u = c.toUpperCase();
    out += u.length === c.length ? u : c;
  }
  return out;
}

/** A file's bytes through its cluster runs: one read per run of consecutive clusters, all in flight together. */
class FatFile implements FsFile {
  /** Clusters of the file before each run. */
  private readonly before: number[] = [];

  constructor(
    private readonly volume: WindowCache,
    private readonly table: FatTable,
    readonly size: number,
    private readonly runs: ClusterRuns,
  ) {
    let n = 0;
    for (const c of runs.counts) {
      this.before.push(n);
      n += c;
    }
  }

  /** The run holding the file's cluster `index`. */
  private runAt(index: number): number {
    let lo = 0;
    let hi = this.before.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.before[mid] <= index) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  extents(): ByteRange[] {
    const cs = this.table.layout.clusterSize;
    return this.runs.starts.map((s, i) => ({ offset: this.table.clusterOffset(s), length: this.runs.counts[i] * cs }));
  }

  async read(buf: Uint8Array, position: number): Promise<number> {
    const total = Math.max(0, Math.min(buf.length, this.size - position));
    if (total === 0) return 0;
    const cs = this.table.layout.clusterSize;
    let run = this.runAt(Math.floor(position / cs));
    const runStart = this.before[run] * cs;
    if (position + total <= runStart + this.runs.counts[run] * cs && total <= MAX_READ) {
      // The common case, a small file in one run of clusters read at once: one read, no list of them.
      await this.volume.readInto(buf.subarray(0, total), this.table.clusterOffset(this.runs.starts[run]) + (position - runStart));
      return total;
    }
    const reads: Promise<void>[] = [];
    let done = 0;
    while (done < total) {
      const pos = position + done;
      const runStart = this.before[run] * cs;
      const runEnd = runStart + this.runs.counts[run] * cs;
      const n = Math.min(total - done, runEnd - pos, MAX_READ);
      const from = this.table.clusterOffset(this.runs.starts[run]) + (pos - runStart);
      const into = done;
      reads.push(awaitedLater(this.volume.readInto(buf.subarray(into, into + n), from)));
      done += n;
      if (pos + n === runEnd) run++;
    }
    await Promise.all(reads);
    return total;
  }
}
