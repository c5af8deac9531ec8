import { VdiskError } from '../../errors.js';
import { modeOf, type ByteRange, type FsContext, type FsDirEntry, type FsFile, type FsReader, type FsStats } from '../filesystem.js';
import { dosSerial, type VolumeReader } from '../types.js';
import { freeRanges } from './bitmap.js';
import {
  BOOT_REGION_SECTORS,
  VOLUME_FLAG_ACTIVE_FAT,
  VOLUME_FLAG_DIRTY,
  VOLUME_FLAG_MEDIA_FAILURE,
  bootChecksumMatches,
  clusterSize,
  geometryProblem,
  parseBootSector,
  sectorSize,
  type BootSector,
} from './boot-sector.js';
import { ClusterChain, chainLength } from './cluster-chain.js';
import { MAX_DIRECTORY_BYTES, readDirectory, type DirectoryContents } from './directory.js';
import { ATTR_DIRECTORY, ATTR_HIDDEN, ATTR_READ_ONLY, ATTR_SYSTEM, ENTRY_SIZE, type BitmapEntry, type FileEntrySet } from './entries.js';
import { FatTable } from './fat.js';
import { corruptExfat, type ExfatLayout } from './layout.js';
import { WindowCache } from '../window-cache.js';
import { ClusterStream } from './stream.js';
import { MAX_UPCASE_BYTES, UpcaseTable, upcaseChecksum } from './upcase.js';

/** A file or directory: the root, or the entry set that describes it. */
export interface ExfatNode {
  /** The path from the root, for messages. */
  path: string;
  ino: number;
  /** Null for the root directory, which has no entry set (7.4). */
  set: FileEntrySet | null;
}

/** The Linux driver's inode number for the root (EXFAT_ROOT_INO); entry sets are numbered by position. */
const ROOT_INO = 1;
/** Directory listings kept, counted in entries, so walking a tree never reads a directory twice in a row. */
const CACHED_ENTRIES = 100_000;
const MAX_WARNINGS = 100;

interface Listing {
  contents: DirectoryContents;
  entries: FsDirEntry<ExfatNode>[];
  subdirectories: number;
  /** Up-cased name to node, built on the first lookup. */
  byName?: Map<string, ExfatNode>;
}

export class ExfatReader implements FsReader<ExfatNode> {
  readonly type = 'exfat';
  readonly uuid: string;
  readonly blockSize: number;
  readonly warnings: string[] = [];
  readonly caseInsensitive = true;
  private readonly layout: ExfatLayout;
  private readonly rootNode: ExfatNode = { path: '/', ino: ROOT_INO, set: null };
  private readonly rootCluster: number;
  /** The root directory's length in clusters: its chain, walked to the end at open (it has no stated size). */
  private readonly rootClusters: number;
  private upcase: UpcaseTable = UpcaseTable.ascii();
  private bitmap: BitmapEntry | string = 'not read';
  private readonly listings = new Map<number, Listing>();
  private cachedEntries = 0;
  private readonly warned = new Set<string>();
  /** From the root's Volume Label entry (7.3), read at open. */
  private volumeLabel?: string;

  private constructor(layout: ExfatLayout, uuid: string, rootCluster: number, rootClusters: number) {
    this.layout = layout;
    this.uuid = uuid;
    this.rootCluster = rootCluster;
    this.rootClusters = rootClusters;
    this.blockSize = layout.clusterSize;
  }

  get label(): string | undefined {
    return this.volumeLabel;
  }

  private warn(message: string): void {
    if (this.warned.has(message)) return;
    this.warned.add(message);
    if (this.warned.size <= MAX_WARNINGS) this.warnings.push(message);
    else if (this.warned.size === MAX_WARNINGS + 1) this.warnings.push('exfat: further warnings suppressed');
  }

  static async open(volume: VolumeReader, ctx: FsContext): Promise<ExfatReader> {
    const warnings: string[] = [];
    const { boot, bytes } = await readBootRegion(volume, ctx.name, warnings);
    const sector = sectorSize(boot);
    const cs = clusterSize(boot);
    if (boot.volumeFlags & VOLUME_FLAG_DIRTY) warnings.push('exfat: the volume is marked dirty (it was not cleanly unmounted); reading it as it is');
    if (boot.volumeFlags & VOLUME_FLAG_MEDIA_FAILURE) warnings.push('exfat: the volume is marked as having had media failures');
    const claimed = boot.volumeLength * BigInt(sector);
    if (claimed > BigInt(volume.size)) {
      warnings.push(`exfat: the boot sector says the volume is ${claimed} bytes but it has ${volume.size}: what lies past the end reads as zeros`);
    }
    // With two FATs (TexFAT), VolumeFlags' ActiveFat picks the FAT and the allocation bitmap in use (3.1.13.1).
    const active = boot.numberOfFats === 2 && boot.volumeFlags & VOLUME_FLAG_ACTIVE_FAT ? 1 : 0;
    const fat = new FatTable(volume, (boot.fatOffset + active * boot.fatLength) * sector, boot.clusterCount);
    let reader: ExfatReader | undefined;
    const layout: ExfatLayout = {
      // Small reads share 1 MiB windows (32 MiB in all: fewer were evicted before use with many files in
      // flight), read ahead along the heap; larger ones go straight through.
      volume: new WindowCache(volume, 1024 * 1024, 32, 2, 256 * 1024),
      name: ctx.name,
      clusterSize: cs,
      heapOffset: boot.clusterHeapOffset * sector,
      clusterCount: boot.clusterCount,
      fat,
      warn: (m) => (reader ? reader.warn(m) : warnings.push(m)),
    };
    const rootClusters = await chainLength(layout, 'root directory', boot.rootCluster, Math.max(1, Math.floor(MAX_DIRECTORY_BYTES / cs)));
    // The serial as blkid shows it, like the detector (3.1.11).
    reader = new ExfatReader(layout, dosSerial(bytes, 100), boot.rootCluster, rootClusters);
    for (const w of warnings) reader.warn(w);
    const root = await reader.listing(reader.rootNode);
    reader.volumeLabel = root.contents.label || undefined;
    await reader.loadUpcase(root.contents);
    reader.bitmap = reader.pickBitmap(root.contents, active, boot.clusterCount);
    if (typeof reader.bitmap === 'string') reader.warn(`exfat: ${reader.bitmap}; free space cannot be listed`);
    return reader;
  }

  /** The up-case table, checked against its checksum; ASCII folding with a warning when it is missing or bad. */
  private async loadUpcase(root: DirectoryContents): Promise<void> {
    const e = root.upcase;
    let problem: string | undefined;
    if (!e) problem = 'the root directory has no up-case table entry';
    else if (e.dataLength === 0 || e.dataLength > MAX_UPCASE_BYTES) problem = `up-case table length ${e.dataLength} is not in 1-${MAX_UPCASE_BYTES}`;
    else {
      try {
        const clusters = Math.ceil(e.dataLength / this.layout.clusterSize);
        const stream = new ClusterStream(this.layout, new ClusterChain(this.layout, 'up-case table', e.firstCluster, clusters, false), e.dataLength, e.dataLength);
        const data = Buffer.alloc(e.dataLength);
        await stream.read(data, 0);
        const sum = upcaseChecksum(data);
        if (sum !== e.tableChecksum) problem = `up-case table checksum 0x${sum.toString(16)} does not match 0x${e.tableChecksum.toString(16)}`;
        else {
          const table = UpcaseTable.parse(data);
          if (typeof table === 'string') problem = `up-case table: ${table}`;
          else this.upcase = table;
        }
      } catch (err) {
        if (!(err instanceof VdiskError)) throw err;
        problem = err.message;
      }
    }
    if (problem) this.warn(`exfat: ${problem}; names are compared with ASCII case folding only`);
  }

  private pickBitmap(root: DirectoryContents, active: number, clusterCount: number): BitmapEntry | string {
    const e = root.bitmaps.find((b) => b.index === active) ?? (active === 0 ? root.bitmaps[0] : undefined);
    if (!e) return 'the root directory has no allocation bitmap entry';
    const need = Math.ceil(clusterCount / 8);
    if (e.dataLength < need) return `the allocation bitmap is ${e.dataLength} bytes, short of the ${need} that ${clusterCount} clusters need`;
    return e;
  }

  async root(): Promise<ExfatNode> {
    return this.rootNode;
  }

  async stat(node: ExfatNode): Promise<FsStats> {
    const cs = this.layout.clusterSize;
    const set = node.set;
    if (!set) {
      const size = this.rootClusters * cs;
      return { type: 'directory', mode: modeOf('directory', 0o755), uid: 0, gid: 0, nlink: await this.nlink(node), ino: ROOT_INO, size, allocated: size };
    }
    const isDir = (set.attributes & ATTR_DIRECTORY) !== 0;
    // Modes as the Linux driver shows them with its default masks (the mounter's umask, 022): 0755 for
    // everything, and the read-only attribute drops the write bits of files only (exfat_make_mode).
    const perms = !isDir && set.attributes & ATTR_READ_ONLY ? 0o555 : 0o755;
    const flags: string[] = [];
    if (set.attributes & ATTR_READ_ONLY) flags.push('readonly');
    if (set.attributes & ATTR_HIDDEN) flags.push('hidden');
    if (set.attributes & ATTR_SYSTEM) flags.push('system');
    if (set.noFatChain) flags.push('contiguous');
    return {
      type: isDir ? 'directory' : 'file',
      mode: modeOf(isDir ? 'directory' : 'file', perms),
      uid: 0,
      gid: 0,
      nlink: isDir ? await this.nlink(node) : 1,
      ino: node.ino,
      size: set.dataLength,
      allocated: Math.ceil(set.dataLength / cs) * cs,
      ...(set.accessed ? { atime: set.accessed } : {}),
      ...(set.modified ? { mtime: set.modified } : {}),
      ...(set.created ? { birthtime: set.created } : {}),
      ...(flags.length ? { flags } : {}),
    };
  }

  /**
   * As the Linux driver counts them: 2 plus the subdirectories. A directory that cannot be read gets 2
   * here; reading it reports why.
   */
  private async nlink(dir: ExfatNode): Promise<number> {
    try {
      return 2 + (await this.listing(dir)).subdirectories;
    } catch (err) {
      if (err instanceof VdiskError) return 2;
      throw err;
    }
  }

  async readdir(dir: ExfatNode): Promise<FsDirEntry<ExfatNode>[]> {
    return [...(await this.listing(dir)).entries];
  }

  /** Names compare through the volume's up-case table (7.7.3), as the Linux driver compares them. */
  async lookup(dir: ExfatNode, name: string): Promise<ExfatNode | null> {
    const l = await this.listing(dir);
    if (!l.byName) {
      l.byName = new Map();
      for (const e of l.entries) {
        const key = this.upcase.fold(e.name);
        if (!l.byName.has(key)) l.byName.set(key, e.node);
      }
    }
    return l.byName.get(this.upcase.fold(name)) ?? null;
  }

  async readlink(node: ExfatNode): Promise<string> {
    throw new VdiskError('UNSUPPORTED', `${this.layout.name}: exfat ${node.path}: exFAT has no symbolic links`);
  }

  async open(node: ExfatNode, stream?: string): Promise<FsFile> {
    if (stream !== undefined) throw new VdiskError('UNSUPPORTED', `${this.layout.name}: exfat ${node.path}: exFAT has no named streams`);
    const set = node.set;
    if (!set || set.attributes & ATTR_DIRECTORY) throw new VdiskError('USAGE', `${this.layout.name}: exfat ${node.path}: is a directory`);
    if (set.validDataLength > set.dataLength) {
      throw corruptExfat(this.layout, node.path, `ValidDataLength ${set.validDataLength} exceeds DataLength ${set.dataLength}`);
    }
    return this.streamOf(node, set);
  }

  async *freeExtents(): AsyncGenerator<ByteRange> {
    const b = this.bitmap;
    if (typeof b === 'string') throw corruptExfat(this.layout, 'allocation bitmap', b);
    const clusters = Math.ceil(b.dataLength / this.layout.clusterSize);
    const stream = new ClusterStream(this.layout, new ClusterChain(this.layout, 'allocation bitmap', b.firstCluster, clusters, false), b.dataLength, b.dataLength);
    yield* freeRanges(this.layout, stream, this.layout.volume.size);
  }

  /** The stream of a file or directory's data, its size checked against the cluster heap and its first cluster. */
  private streamOf(node: ExfatNode, set: FileEntrySet): ClusterStream {
    const cs = this.layout.clusterSize;
    if (set.dataLength > this.layout.clusterCount * cs) {
      throw corruptExfat(this.layout, node.path, `DataLength ${set.dataLength} exceeds the cluster heap (${this.layout.clusterCount} clusters of ${cs} bytes)`);
    }
    const clusters = Math.ceil(set.dataLength / cs);
    if (clusters > 0 && set.firstCluster === 0) throw corruptExfat(this.layout, node.path, `DataLength ${set.dataLength} but no first cluster`);
    const chain = new ClusterChain(this.layout, node.path, set.firstCluster, clusters, set.noFatChain);
    const valid = set.attributes & ATTR_DIRECTORY ? set.dataLength : Math.min(set.validDataLength, set.dataLength);
    return new ClusterStream(this.layout, chain, set.dataLength, valid);
  }

  private directoryStream(dir: ExfatNode): ClusterStream {
    const set = dir.set;
    if (!set) {
      const size = this.rootClusters * this.layout.clusterSize;
      return new ClusterStream(this.layout, new ClusterChain(this.layout, 'root directory', this.rootCluster, this.rootClusters, false), size, size);
    }
    if (!(set.attributes & ATTR_DIRECTORY)) throw new VdiskError('USAGE', `${this.layout.name}: exfat ${dir.path}: not a directory`);
    if (set.dataLength > MAX_DIRECTORY_BYTES) throw corruptExfat(this.layout, dir.path, `directory size ${set.dataLength} exceeds 256 MiB`);
    return this.streamOf(dir, set);
  }

  /** A directory's entries, from the cache or read once; the cache holds a bounded number of entries. */
  private async listing(dir: ExfatNode): Promise<Listing> {
    const cached = this.listings.get(dir.ino);
    if (cached) {
      this.listings.delete(dir.ino);
      this.listings.set(dir.ino, cached);
      return cached;
    }
    const contents = await readDirectory(this.layout, this.directoryStream(dir), dir.set ? dir.path : 'root directory');
    const prefix = dir.path === '/' ? '/' : `${dir.path}/`;
    let subdirectories = 0;
    const entries = contents.files.map((f): FsDirEntry<ExfatNode> => {
      const isDir = (f.set.attributes & ATTR_DIRECTORY) !== 0;
      if (isDir) subdirectories++;
      return { name: f.set.name, type: isDir ? 'directory' : 'file', node: { path: prefix + f.set.name, ino: f.volumeOffset / ENTRY_SIZE, set: f.set } };
    });
    const listing: Listing = { contents, entries, subdirectories };
    while (this.listings.size > 0 && this.cachedEntries + entries.length > CACHED_ENTRIES) {
      const [oldest, l] = this.listings.entries().next().value as [number, Listing];
      this.listings.delete(oldest);
      this.cachedEntries -= l.entries.length;
    }
    this.listings.set(dir.ino, listing);
    this.cachedEntries += entries.length;
    return listing;
  }
}

/**
 * The boot region, its checksum verified (3.4). A main region that fails its checksum or describes an
 * impossible layout gives way to a sound backup region (sectors 12-23, 3.2); failing that, a main region
 * with a sound layout is read with a warning, and an unsound one is refused.
 */
async function readBootRegion(volume: VolumeReader, name: string, warnings: string[]): Promise<{ boot: BootSector; bytes: Buffer }> {
  const first = await volume.read(0, 512);
  const main = parseBootSector(first);
  if (!main) throw new VdiskError('CORRUPT', `${name}: exfat boot sector: not an exFAT boot sector, or its sector or cluster size is out of range`);
  const sector = sectorSize(main);
  const region = await volume.read(0, BOOT_REGION_SECTORS * sector);
  const checksumOk = bootChecksumMatches(region, sector);
  const problem = geometryProblem(main);
  if (checksumOk && !problem) return { boot: main, bytes: region };
  const backupRegion = await volume.read(BOOT_REGION_SECTORS * sector, BOOT_REGION_SECTORS * sector);
  const backup = parseBootSector(backupRegion);
  const why = problem ?? 'the boot checksum (sector 11) does not match';
  if (backup && sectorSize(backup) === sector && bootChecksumMatches(backupRegion, sector) && !geometryProblem(backup)) {
    warnings.push(`exfat: main boot region: ${why}; using the backup boot region`);
    return { boot: backup, bytes: backupRegion };
  }
  if (problem) throw new VdiskError('CORRUPT', `${name}: exfat boot sector: ${problem}`);
  warnings.push(`exfat: boot region: ${why}, and the backup region is no better; reading on`);
  return { boot: main, bytes: region };
}
