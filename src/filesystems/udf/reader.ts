import { VdiskError } from '../../errors.js';
import { modeOf, type ByteRange, type FileType, type FsContext, type FsDirEntry, type FsFile, type FsReader, type FsStats, type PeekedFile } from '../filesystem.js';
import type { VolumeReader } from '../types.js';
import {
  EXTENT_CONTINUATION, EXTENT_RECORDED, EXT_AD_SIZE, LONG_AD_SIZE, parseExtAd, parseLongAd, parseShortAd, SHORT_AD_SIZE,
  type AllocationDescriptor,
} from './addresses.js';
import { parseAllocationExtent } from './allocation-extent.js';
import {
  AD_EMBEDDED, AD_EXTENDED, AD_LONG, AD_SHORT, FILE_TYPE, parseFileEntry, parseIndirectEntry, permissionsToMode, type FileEntry,
} from './file-entry.js';
import { FID_DELETED, FID_DIRECTORY, FID_HIDDEN, FID_PARENT, fidSize, parseFileIdentifier } from './file-identifier.js';
import { parseFileSet } from './file-set.js';
import { decodeCs0 } from './osta.js';
import type { PartitionDescriptor } from './partition-descriptor.js';
import { PartitionSpaces, type MetadataRun } from './partitions.js';
import { pathFromComponents } from './path-component.js';
import { UdfFile, type Extent } from './file.js';
import { bitmapRuns, tableRuns, type SpaceIo } from './free-space.js';
import { volumeSetUuid } from './primary-volume.js';
import { parseSparingTable } from './sparing-table.js';
import { parseTag, tagProblem, TAG } from './tag.js';
import { parseVat } from './vat.js';
import { readVolumeStructures, type VolumeStructures } from './volume.js';
import { WindowCache } from '../window-cache.js';
import { GenerationCache } from '../../io/generation-cache.js';

/** A file or directory: the ICB's logical block, and whether its directory entry hides it. */
export interface UdfNode {
  ref: number;
  block: number;
  hidden?: boolean;
}

interface Entry {
  fe: FileEntry;
  /**
   * A copy of the entry's allocation descriptors, or its embedded data (`fe.adLength` bytes from
   * `fe.adOffset`): all a file's reads need of its block, so the cache keeps a few bytes per entry
   * rather than a block (or a view pinning the window the block came from).
   */
  area: Buffer;
  ref: number;
  block: number;
  /** The ICB's sector in the volume: the inode number, as Linux numbers UDF inodes. */
  sector: number;
}


interface Fid {
  name: string;
  node: UdfNode;
  directory: boolean;
}

/** Indirect entries followed for one ICB, and newer ICBs for one file (strategy 4096, ECMA-167 4/A.6). */
const MAX_INDIRECT = 32;
/** Allocation extent descriptors followed for one file: each holds at least one descriptor, so this bounds a list of millions. */
const MAX_CONTINUATIONS = 1 << 20;
const MAX_EXTENTS = 1 << 22;
/** Directories are streamed in chunks; larger ones than this are refused rather than listed into memory. */
const MAX_DIRECTORY = 1 << 30;
const DIR_CHUNK = 1 << 20;
/** A symbolic link's path components: a path is at most 4096 bytes on Linux, a component at most 255+4. */
const MAX_SYMLINK = 1 << 16;
/** The VAT maps at most 2^32 blocks; more than 64 MiB of it (16 M blocks) is refused. */
const MAX_VAT = 64 << 20;
/** How far back from the end of the volume the VAT's ICB is looked for (the last recorded sector). */
const VAT_SCAN = 256 << 20;
const ENTRY_CACHE = 4096;
/** Reads up to SMALL_READ bytes are served from windows of WINDOW bytes, at most WINDOWS of them (8 MiB). */
const SMALL_READ = 64 << 10;
const WINDOW = 256 << 10;
const WINDOWS = 32;
const EMPTY = Buffer.alloc(0);
const DIR_CACHE = 16;
/** File entries are read in runs of neighbouring sectors of at most this many bytes. */
const PREFETCH_RUN = 1 << 20;
/** Linux shows an unset owner (0xFFFFFFFF, UDF 2.60 3.3.3.1) as the overflow id with default mount options. */
const UNSET_ID = 0xffffffff;
const OVERFLOW_ID = 65534;

const TYPES: Record<number, FileType> = {
  [FILE_TYPE.UNSPECIFIED]: 'file',
  [FILE_TYPE.FILE]: 'file',
  [FILE_TYPE.REALTIME]: 'file',
  [FILE_TYPE.VAT]: 'file',
  [FILE_TYPE.DIRECTORY]: 'directory',
  [FILE_TYPE.STREAM_DIRECTORY]: 'directory',
  [FILE_TYPE.SYMLINK]: 'symlink',
  [FILE_TYPE.BLOCK]: 'block',
  [FILE_TYPE.CHAR]: 'char',
  [FILE_TYPE.FIFO]: 'fifo',
  [FILE_TYPE.SOCKET]: 'socket',
};

/** What an ICB's first block may be. */
const ICB_TAGS = [TAG.FILE_ENTRY, TAG.EXTENDED_FILE_ENTRY, TAG.INDIRECT_ENTRY];

/**
 * The cache key of an ICB: partition reference (16 bits) and block (32 bits) in one number, exact
 * below 2^53 (a string key per lookup showed in profiles).
 */
function icbKey(ref: number, block: number): number {
  return ref * 2 ** 32 + block;
}

function lru<K, V>(map: Map<K, V>, key: K, value: V, max: number): void {
  map.delete(key);
  map.set(key, value);
  if (map.size > max) map.delete(map.keys().next().value as K);
}

export class UdfReader implements FsReader<UdfNode> {
  readonly type = 'udf';
  readonly label?: string;
  readonly uuid?: string;
  readonly blockSize: number;
  readonly warnings: string[];
  /** The UDF revision the logical volume descriptor's domain names (0x0201 for 2.01). */
  readonly revision: number;
  readonly structures: VolumeStructures;
  private readonly v: VolumeReader;
  private readonly name: string;
  private readonly spaces: PartitionSpaces;
  private rootNode!: UdfNode;
  private readonly readExtent = (x: Extent, within: number, into: Uint8Array): Promise<void> => this.readBlocksInto(x.ref, x.block, into, within);
  /** What the free-space module reads through. */
  private readonly io: SpaceIo = {
    blockSize: 0,
    read: (ref, block, length, skip) => this.readBlocks(ref, block, length, skip),
    corrupt: (what) => this.corrupt(what),
  };
  /**
   * File entries by ICB, in a GenerationCache: a Map trimmed at its front (`keys().next()` per eviction)
   * stepped over the holes deletions leave until the Map is rehashed, and a strict LRU moves an entry
   * on every hit, where a walk looks each entry up three or four times.
   */
  private readonly entries = new GenerationCache<number, Entry>(ENTRY_CACHE);
  private readonly windows: WindowCache;
  private readonly dirs = new Map<number, Fid[]>();
  /** Per partition number, the VAT's block: on write-once media what follows it is the free space. */
  private readonly vatBlock = new Map<number, number>();

  private constructor(v: VolumeReader, name: string, s: VolumeStructures, warnings: string[]) {
    this.v = v;
    // No read-ahead: genisoimage puts a directory's files in an order of their own, and windows read
    // ahead were mostly dropped unused (half again as many bytes read for a 20,000-file tree).
    this.windows = new WindowCache(v, WINDOW, WINDOWS, 0, SMALL_READ);
    this.name = name;
    this.structures = s;
    this.warnings = warnings;
    this.blockSize = s.blockSize;
    this.revision = s.lvd.revision;
    this.label = s.lvd.identifier ?? s.pvd.volumeIdentifier;
    this.uuid = volumeSetUuid(s.pvd.volumeSetIdentifier);
    this.spaces = new PartitionSpaces(s.maps, s.partitions, name);
    this.io.blockSize = s.blockSize;
  }

  static async open(v: VolumeReader, ctx: FsContext): Promise<UdfReader> {
    const warnings: string[] = [];
    const s = await readVolumeStructures(v, ctx.name, warnings);
    const r = new UdfReader(v, ctx.name, s, warnings);
    await r.loadMaps();
    await r.loadFileSet();
    return r;
  }

  private corrupt(what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.name}: udf ${what}`);
  }

  /** Sparing tables, the VAT and the metadata file: what the partition maps need before any file can be read. */
  private async loadMaps(): Promise<void> {
    const bs = this.blockSize;
    for (const [i, m] of this.structures.maps.entries()) {
      if (m.kind === 'sparable') {
        if (m.tableSize > 1 << 20) throw this.corrupt(`partition map ${i}: sparing table of ${m.tableSize} bytes`);
        const problems: string[] = [];
        for (const sector of m.tables) {
          const t = parseSparingTable(await this.v.read(sector * bs, Math.max(bs, Math.ceil(m.tableSize / bs) * bs)));
          if (typeof t === 'string') {
            problems.push(`at sector ${sector}: ${t}`);
            continue;
          }
          this.spaces.setSparing(i, t);
          break;
        }
        if (problems.length === m.tables.length) throw this.corrupt(`partition map ${i}: no usable sparing table (${problems.join('; ')})`);
        if (problems.length) this.warnings.push(`udf: sparing table ${problems[0]}; used a copy`);
      } else if (m.kind === 'virtual') {
        await this.loadVat(i, m.partition);
      } else if (m.kind === 'metadata') {
        const phys = this.spaces.physicalRef(m.partition) as number;
        let runs: MetadataRun[] | null = null;
        const problems: string[] = [];
        for (const [what, block] of [['metadata file', m.file], ['metadata mirror file', m.mirror]] as const) {
          if (block === 0xffffffff) continue;
          try {
            runs = await this.metadataRuns(phys, block, what);
            if (problems.length) this.warnings.push(`udf: ${problems[0]}; read the metadata mirror file`);
            break;
          } catch (err) {
            if (!(err instanceof VdiskError)) throw err;
            problems.push(err.message.slice(this.name.length + 2));
          }
        }
        if (!runs) throw new VdiskError('CORRUPT', `${this.name}: ${problems.join('; ') || 'udf metadata partition without a metadata file'}`);
        this.spaces.setMetadata(i, runs);
      } else if (m.kind === 'unknown') {
        this.warnings.push(`udf: partition map ${i} of unknown type "${m.identifier}"; files there cannot be read`);
      }
    }
  }

  /** The metadata file's extents as runs of the metadata partition (UDF 2.60 2.2.13). */
  private async metadataRuns(phys: number, block: number, what: string): Promise<MetadataRun[]> {
    const e = await this.entry(phys, block);
    if (e.fe.fileType !== FILE_TYPE.METADATA && e.fe.fileType !== FILE_TYPE.METADATA_MIRROR) {
      throw this.corrupt(`${what} at block ${block}: ICB file type ${e.fe.fileType}`);
    }
    if (e.fe.adType === AD_EMBEDDED) throw this.corrupt(`${what} at block ${block}: embedded data`);
    const runs: MetadataRun[] = [];
    for (const x of await this.extents(e)) {
      if (x.ref !== phys) throw this.corrupt(`${what}: an extent in partition reference ${x.ref}, not its own partition`);
      if (x.offset % this.blockSize !== 0) throw this.corrupt(`${what}: extent at byte ${x.offset} not block-aligned`);
      runs.push({ block: x.offset / this.blockSize, count: Math.ceil(x.length / this.blockSize), physical: x.block });
    }
    return runs;
  }

  /**
   * The VAT (UDF 2.60 2.2.11) is the file whose ICB is the last recorded sector: looked for backwards
   * from the end of the volume over unrecorded (zero) sectors, then read whole (it is small: 4 bytes a block).
   */
  private async loadVat(ref: number, partition: number): Promise<void> {
    const bs = this.blockSize;
    const phys = this.spaces.physicalRef(partition) as number;
    const pd = this.spaces.partitionOf(phys) as PartitionDescriptor;
    const end = Math.min(Math.floor(this.v.size / bs), pd.start + pd.length);
    const chunk = Math.max(1, Math.floor((1 << 20) / bs));
    let scanned = 0;
    let tried = 0;
    const zero = Buffer.alloc(bs);
    for (let hi = end; hi > pd.start && scanned < VAT_SCAN && tried < 64; hi -= chunk) {
      const lo = Math.max(pd.start, hi - chunk);
      const data = await this.v.read(lo * bs, (hi - lo) * bs);
      scanned += data.length;
      for (let s = hi - 1; s >= lo; s--) {
        const d = data.subarray((s - lo) * bs, (s - lo + 1) * bs);
        const id = parseTag(d).id;
        if (id !== TAG.FILE_ENTRY && id !== TAG.EXTENDED_FILE_ENTRY) {
          if (id !== TAG.ANCHOR && !d.equals(zero)) tried++;
          continue;
        }
        tried++;
        const vat = await this.tryVat(phys, s - pd.start).catch((err) => {
          if (err instanceof VdiskError) return null;
          throw err;
        });
        if (vat) {
          this.spaces.setVat(ref, vat);
          this.vatBlock.set(partition, s - pd.start);
          return;
        }
      }
    }
    throw this.corrupt(`virtual partition: no virtual allocation table in the last recorded sectors of partition ${partition}`);
  }

  private async tryVat(phys: number, block: number): Promise<Uint32Array | null> {
    const e = await this.entry(phys, block);
    const withHeader = e.fe.fileType === FILE_TYPE.VAT;
    if (!withHeader && e.fe.fileType !== FILE_TYPE.UNSPECIFIED) return null;
    if (e.fe.length > MAX_VAT) throw this.corrupt(`VAT of ${e.fe.length} bytes`);
    const data = Buffer.alloc(e.fe.length);
    await (await this.fileOf(e)).read(data, 0);
    const vat = parseVat(data, withHeader);
    return typeof vat === 'string' ? null : vat.entries;
  }

  private async loadFileSet(): Promise<void> {
    const fs = this.structures.lvd.fileSet;
    const what = `file set descriptor at block ${fs.block} of partition reference ${fs.partition}`;
    const d = await this.readBlocks(fs.partition, fs.block, this.blockSize);
    const problem = tagProblem(d, 0, TAG.FILE_SET, fs.block);
    if (problem) throw this.corrupt(`${what}: ${problem}`);
    const set = parseFileSet(d);
    if (set.root.length === 0) throw this.corrupt(`${what}: no root directory`);
    this.rootNode = { ref: set.root.partition as number, block: set.root.block };
    const root = await this.entry(this.rootNode.ref, this.rootNode.block);
    if (root.fe.fileType !== FILE_TYPE.DIRECTORY) throw this.corrupt(`root directory ICB at block ${set.root.block}: file type ${root.fe.fileType}`);
  }

  /**
   * Bytes of the volume. Small reads (entries, directories, small files) come from a few cached
   * windows read whole: writers put a directory's entries and small files side by side, so one read
   * serves many of them; large reads go straight through.
   */
  private async readVolume(offset: number, length: number): Promise<Buffer> {
    return this.windows.read(offset, length);
  }

  /** `length` bytes from logical block `block` of space `ref`, through as many sector runs as the mapping makes. */
  private async readBlocks(ref: number, block: number, length: number, skip = 0): Promise<Buffer> {
    if (length <= 0) return EMPTY;
    const bs = this.blockSize;
    const within = skip % bs;
    const run = this.spaces.mapRun(ref, block + Math.floor(skip / bs), Math.ceil((within + length) / bs));
    // One run: a view of the volume's bytes, no copy.
    if (run.count * bs - within >= length) return this.readVolume(run.sector * bs + within, length);
    const out = Buffer.allocUnsafe(length);
    await this.readBlocksInto(ref, block, out, skip);
    return out;
  }

  /**
   * Fills `into` from logical block `block` of space `ref` (from byte `skip`), run by run: a file's
   * pieces land straight in the caller's buffer, large ones without passing through a buffer of their own.
   */
  private async readBlocksInto(ref: number, block: number, into: Uint8Array, skip = 0): Promise<void> {
    const bs = this.blockSize;
    let done = 0;
    let b = block + Math.floor(skip / bs);
    let within = skip % bs;
    while (done < into.length) {
      const want = Math.ceil((within + into.length - done) / bs);
      const run = this.spaces.mapRun(ref, b, want);
      const n = Math.min(into.length - done, run.count * bs - within);
      await this.windows.readInto(into.subarray(done, done + n), run.sector * bs + within);
      done += n;
      b += run.count;
      within = 0;
    }
  }

  /** The file entry of an ICB, following indirect entries (strategy 4096), with a bounded cache. */
  private async entry(ref: number, block: number, prefetched?: { sector: number; raw: Buffer }): Promise<Entry> {
    const key = icbKey(ref, block);
    const hit = this.entries.get(key);
    if (hit) return hit;
    let r = ref;
    let b = block;
    for (let hop = 0; hop <= MAX_INDIRECT; hop++) {
      const what = () => `file entry at block ${b} of partition reference ${r}`;
      const sector = hop === 0 && prefetched ? prefetched.sector : this.spaces.mapRun(r, b, 1).sector;
      const raw = hop === 0 && prefetched ? prefetched.raw : await this.readVolume(sector * this.blockSize, this.blockSize);
      const problem = tagProblem(raw, 0, ICB_TAGS, b);
      if (problem) throw this.corrupt(`${what()}: ${problem}`);
      const id = raw.readUInt16LE(0);
      if (id === TAG.INDIRECT_ENTRY) {
        const next = parseIndirectEntry(raw);
        r = next.partition as number;
        b = next.block;
        continue;
      }
      const fe = parseFileEntry(raw, id);
      if (typeof fe === 'string') throw this.corrupt(`${what()}: ${fe}`);
      // Copied before anything is awaited: `raw` may be a view of a buffer that is reused.
      const area = Buffer.allocUnsafe(fe.adLength);
      raw.copy(area, 0, fe.adOffset, fe.adOffset + fe.adLength);
      // Strategy 4096 (ECMA-167 4/A.6): a two-entry ICB, this direct entry then, once the file was
      // rewritten on write-once media, an indirect entry to the ICB holding the newer one.
      if (fe.strategy === 4096) {
        const next = await this.successor(r, b);
        if (next) {
          r = next.partition as number;
          b = next.block;
          continue;
        }
      }
      const e: Entry = { fe, area, ref: r, block: b, sector };
      this.entries.set(key, e);
      return e;
    }
    throw this.corrupt(`ICB at block ${block} of partition reference ${ref}: more than ${MAX_INDIRECT} indirect entries`);
  }

  /** The indirect entry recorded after a strategy 4096 direct entry, if any. */
  private async successor(ref: number, block: number): Promise<AllocationDescriptor | null> {
    let raw: Buffer;
    try {
      raw = await this.readBlocks(ref, block + 1, this.blockSize);
    } catch (err) {
      if (err instanceof VdiskError) return null; // the partition's last block: nothing follows
      throw err;
    }
    if (tagProblem(raw, 0, TAG.INDIRECT_ENTRY, block + 1) !== null) return null;
    const next = parseIndirectEntry(raw);
    return next.length > 0 ? next : null;
  }

  /**
   * Loads the entries of many ICBs (a directory's children) with few reads: their sectors sorted and
   * read in runs of neighbouring sectors (writers put a directory's entries together).
   */
  private async prefetch(nodes: UdfNode[]): Promise<void> {
    const bs = this.blockSize;
    const want = new Map<number, UdfNode>();
    for (const n of nodes) {
      if (this.entries.get(icbKey(n.ref, n.block)) !== undefined) continue;
      want.set(this.spaces.mapRun(n.ref, n.block, 1).sector, n);
      if (want.size >= ENTRY_CACHE / 2) break;
    }
    const sectors = [...want.keys()].sort((a, b) => a - b);
    const maxRun = Math.max(1, Math.floor(PREFETCH_RUN / bs));
    for (let i = 0; i < sectors.length;) {
      let j = i + 1;
      // Gaps of a few sectors are read through: one read beats several.
      while (j < sectors.length && sectors[j] - sectors[j - 1] <= 4 && sectors[j] - sectors[i] < maxRun) j++;
      const first = sectors[i];
      const data = await this.v.read(first * bs, (sectors[j - 1] - first + 1) * bs);
      for (let k = i; k < j; k++) {
        const n = want.get(sectors[k]) as UdfNode;
        // A view: the entry copies what it keeps.
        const raw = data.subarray((sectors[k] - first) * bs, (sectors[k] - first + 1) * bs);
        await this.entry(n.ref, n.block, { sector: sectors[k], raw });
      }
      i = j;
    }
  }

  /** The file's extents from its allocation descriptors and their continuation extents (ECMA-167 4/12), up to its length. */
  private async extents(e: Entry): Promise<Extent[]> {
    const bs = this.blockSize;
    const { fe } = e;
    const what = () => `file entry at block ${e.block} of partition reference ${e.ref}`;
    const adSize = fe.adType === AD_SHORT ? SHORT_AD_SIZE : fe.adType === AD_LONG ? LONG_AD_SIZE : fe.adType === AD_EXTENDED ? EXT_AD_SIZE : 0;
    const parse = fe.adType === AD_SHORT ? parseShortAd : fe.adType === AD_LONG ? parseLongAd : parseExtAd;
    const out: Extent[] = [];
    let buf = e.area;
    let at = 0;
    let end = fe.adLength;
    let offset = 0;
    let hops = 0;
    const limit = Math.min(MAX_EXTENTS, Math.ceil(fe.length / bs) + 2);
    while (offset < fe.length) {
      if (at + adSize > end) break;
      const ad: AllocationDescriptor = parse(buf, at);
      at += adSize;
      if (ad.length === 0) break;
      const ref = ad.partition ?? e.ref;
      if (ad.kind === EXTENT_CONTINUATION) {
        if (++hops > MAX_CONTINUATIONS) throw this.corrupt(`${what()}: more than ${MAX_CONTINUATIONS} allocation extents`);
        const next = await this.readBlocks(ref, ad.block, bs);
        const aed = parseAllocationExtent(next, ad.block);
        if (typeof aed === 'string') throw this.corrupt(`${what()}: allocation extent at block ${ad.block}: ${aed}`);
        buf = next;
        at = aed.adOffset;
        end = aed.adOffset + Math.min(aed.adLength, Math.max(0, ad.length - aed.adOffset));
        continue;
      }
      if (out.length >= limit) throw this.corrupt(`${what()}: more than ${limit} extents for ${fe.length} bytes`);
      out.push({ offset, length: ad.length, ref, block: ad.block, recorded: ad.kind === EXTENT_RECORDED });
      offset += ad.length;
    }
    return out;
  }

  /** The bytes of a file, a directory, a symlink or the VAT: embedded in the entry, or through its extents. */
  private async fileOf(e: Entry): Promise<UdfFile> {
    if (e.fe.adType === AD_EMBEDDED) {
      if (e.fe.length > e.fe.adLength) throw this.corrupt(`file entry at block ${e.block}: ${e.fe.length} bytes of embedded data in a ${e.fe.adLength}-byte area`);
      return new UdfFile(e.fe.length, e.area.subarray(0, e.fe.length), [], this.readExtent);
    }
    return new UdfFile(e.fe.length, null, await this.extents(e), this.readExtent);
  }

  async root(): Promise<UdfNode> {
    return this.rootNode;
  }

  async stat(node: UdfNode): Promise<FsStats> {
    const e = this.entries.get(icbKey(node.ref, node.block)) ?? (await this.entry(node.ref, node.block));
    const st = this.statOf(node, e);
    if (st.type === 'symlink') st.size = Buffer.byteLength(await this.readlink(node));
    return st;
  }

  /** The stat when the node's entry is cached (a symlink's size needs its path read: not now). */
  statNow(node: UdfNode): FsStats | null {
    const e = this.entries.get(icbKey(node.ref, node.block));
    if (!e || e.fe.fileType === FILE_TYPE.SYMLINK) return null;
    return this.statOf(node, e);
  }

  /**
   * A small file's bytes when its entry is cached and its data is embedded in it, or lies in the one
   * recorded extent its first descriptor names, in a window already read (see FsReader.peekFile).
   * Anything else goes the way of `open`.
   */
  peekFile(node: UdfNode): PeekedFile | Promise<unknown> | null {
    const e = this.entries.get(icbKey(node.ref, node.block));
    if (!e || TYPES[e.fe.fileType] !== 'file') return null;
    const { fe } = e;
    const size = fe.length;
    if (size > SMALL_READ) return null;
    if (fe.adType === AD_EMBEDDED) {
      if (size > fe.adLength) return null;
      return { size, pieces: size > 0 ? [{ offset: 0, buf: e.area, at: 0, length: size }] : [] };
    }
    const run = this.recordedRun(e, size);
    return run ? this.windows.peekFile(run.offset, run.length) : null;
  }

  /** Where such a file lies when it is not embedded (see FsReader.fileRunNow). */
  fileRunNow(node: UdfNode): ByteRange | null {
    const e = this.entries.get(icbKey(node.ref, node.block));
    if (!e || TYPES[e.fe.fileType] !== 'file' || e.fe.adType === AD_EMBEDDED || e.fe.length > SMALL_READ) return null;
    return this.recordedRun(e, e.fe.length);
  }

  /** The `size` bytes of the one recorded extent a file's first descriptor names, when they lie in one run of sectors. */
  private recordedRun(e: Entry, size: number): ByteRange | null {
    const { fe } = e;
    if (size === 0) return { offset: 0, length: 0 };
    const adSize = fe.adType === AD_SHORT ? SHORT_AD_SIZE : fe.adType === AD_LONG ? LONG_AD_SIZE : 0;
    if (adSize === 0 || adSize > fe.adLength) return null;
    const ad = fe.adType === AD_SHORT ? parseShortAd(e.area, 0) : parseLongAd(e.area, 0);
    if (ad.kind !== EXTENT_RECORDED || ad.length < size) return null;
    const bs = this.blockSize;
    const blocks = Math.ceil(size / bs);
    const run = this.spaces.mapRun(ad.partition ?? e.ref, ad.block, blocks);
    if (run.count < blocks) return null;
    return { offset: run.sector * bs, length: size };
  }

  private statOf(node: UdfNode, e: Entry): FsStats {
    const { fe } = e;
    const type = TYPES[fe.fileType] ?? 'other';
    const st: FsStats = {
      type,
      // Linux shows every UDF symlink as 0777, whatever permissions the entry records.
      mode: type === 'symlink' ? modeOf(type, 0o777) : modeOf(type, permissionsToMode(fe.permissions, fe.specialBits)),
      uid: fe.uid === UNSET_ID ? OVERFLOW_ID : fe.uid,
      gid: fe.gid === UNSET_ID ? OVERFLOW_ID : fe.gid,
      // Linux counts a directory's "." on top of the FIDs that name it, and shows no file with 0 links.
      nlink: type === 'directory' ? fe.linkCount + 1 : Math.max(1, fe.linkCount),
      ino: e.sector,
      size: fe.length,
      allocated: fe.blocksRecorded * this.blockSize,
    };
    if (fe.atime) st.atime = fe.atime;
    if (fe.mtime) st.mtime = fe.mtime;
    if (fe.ctime) st.ctime = fe.ctime;
    if (fe.birthtime) st.birthtime = fe.birthtime;
    // Most entries carry neither flag: no array for them.
    if (node.hidden || fe.adType === AD_EMBEDDED) {
      const flags: string[] = [];
      if (node.hidden) flags.push('hidden');
      if (fe.adType === AD_EMBEDDED) flags.push('embedded');
      st.flags = flags;
    }
    return st;
  }

  /** The directory's live entries (not deleted, not the parent), from its FIDs streamed in chunks; cached for a few directories. */
  private async fids(dir: UdfNode): Promise<Fid[]> {
    const key = icbKey(dir.ref, dir.block);
    const hit = this.dirs.get(key);
    if (hit) return hit;
    const e = await this.entry(dir.ref, dir.block);
    const what = `directory at block ${dir.block} of partition reference ${dir.ref}`;
    if (TYPES[e.fe.fileType] !== 'directory') throw new VdiskError('USAGE', `${this.name}: udf ${what}: not a directory`);
    if (e.fe.length > MAX_DIRECTORY) throw this.corrupt(`${what}: ${e.fe.length} bytes, more than ${MAX_DIRECTORY}`);
    const file = await this.fileOf(e);
    const out: Fid[] = [];
    let carry = Buffer.alloc(0);
    let pos = 0;
    while (pos < file.size || carry.length > 0) {
      const n = Math.min(DIR_CHUNK, file.size - pos);
      const chunk = Buffer.allocUnsafe(n);
      if (n > 0) await file.read(chunk, pos);
      pos += n;
      const buf = carry.length ? Buffer.concat([carry, chunk]) : chunk;
      const last = pos >= file.size;
      let at = 0;
      while (at < buf.length) {
        const size = fidSize(buf, at);
        if (size === null || at + size > buf.length) {
          if (last) {
            if (buf.subarray(at).every((x) => x === 0)) at = buf.length;
            else throw this.corrupt(`${what}: file identifier at byte ${pos - buf.length + at} runs past the directory's end`);
          }
          break;
        }
        if (buf.readUInt16LE(at) === 0 && buf.subarray(at, at + 16).every((x) => x === 0)) {
          at = buf.length; // zero padding after the last FID
          if (!last) pos = file.size;
          break;
        }
        const fid = parseFileIdentifier(buf, at);
        if (typeof fid === 'string') throw this.corrupt(`${what}: file identifier at byte ${pos - buf.length + at}: ${fid}`);
        at += size;
        if (fid.characteristics & (FID_DELETED | FID_PARENT)) continue;
        if (fid.icb.length === 0 && fid.icb.block === 0) continue;
        const name = decodeCs0(fid.name);
        if (name === undefined) throw this.corrupt(`${what}: file identifier with compression id ${fid.name[0]}`);
        if (name === '' || name === '.' || name === '..') throw this.corrupt(`${what}: file identifier named "${name}"`);
        out.push({
          // '/' and NUL cannot be in a POSIX name; UDF allows them (UDF 2.60 4.2.2.1 maps them for Unix).
          name: name.replace(/[/\0]/gu, '_'),
          node: fid.characteristics & FID_HIDDEN ? { ref: fid.icb.partition as number, block: fid.icb.block, hidden: true } : { ref: fid.icb.partition as number, block: fid.icb.block },
          directory: (fid.characteristics & FID_DIRECTORY) !== 0,
        });
      }
      carry = at < buf.length ? Buffer.from(buf.subarray(at)) : Buffer.alloc(0);
      if (last) break;
    }
    lru(this.dirs, key, out, DIR_CACHE);
    return out;
  }

  async readdir(dir: UdfNode): Promise<FsDirEntry<UdfNode>[]> {
    const fids = await this.fids(dir);
    // The FID says only "directory or not": the ICB tells a symlink from a file.
    await this.prefetch(fids.map((f) => f.node));
    const out: FsDirEntry<UdfNode>[] = [];
    for (const f of fids) {
      const e = this.entries.get(icbKey(f.node.ref, f.node.block)) ?? (await this.entry(f.node.ref, f.node.block));
      const type = TYPES[e.fe.fileType] ?? 'other';
      out.push({ name: f.name, type, node: f.node });
    }
    return out;
  }

  async lookup(dir: UdfNode, name: string): Promise<UdfNode | null> {
    for (const f of await this.fids(dir)) if (f.name === name) return f.node;
    return null;
  }

  async readlink(node: UdfNode): Promise<string> {
    const e = await this.entry(node.ref, node.block);
    if (e.fe.fileType !== FILE_TYPE.SYMLINK) throw new VdiskError('USAGE', `${this.name}: udf ICB at block ${node.block}: not a symbolic link`);
    if (e.fe.length > MAX_SYMLINK) throw this.corrupt(`symbolic link at block ${node.block}: ${e.fe.length} bytes of path components`);
    const f = await this.fileOf(e);
    const data = Buffer.alloc(f.size);
    await f.read(data, 0);
    const p = pathFromComponents(data);
    if (typeof p === 'string') throw this.corrupt(`symbolic link at block ${node.block}: ${p}`);
    return p.path;
  }

  async open(node: UdfNode, stream?: string): Promise<FsFile> {
    if (stream) throw new VdiskError('UNSUPPORTED', `${this.name}: udf named streams are not read`);
    return this.fileOf(this.entries.get(icbKey(node.ref, node.block)) ?? (await this.entry(node.ref, node.block)));
  }

  /**
   * Free blocks from each partition's unallocated (else freed) space bitmap or table (ECMA-167
   * 4/14.3), as byte ranges of the volume, partition by partition in order. With a metadata partition,
   * its physical partition's bitmap (UDF 2.60 2.2.10). Write-once media with a VAT keep no map: there
   * the free space is what follows the VAT, the last block written (as udfinfo counts it).
   */
  async *freeExtents(): AsyncGenerator<ByteRange> {
    const bs = this.blockSize;
    const pds = [...this.structures.partitions.values()].sort((a, b) => a.start - b.start);
    let pending: ByteRange | null = null;
    for (const pd of pds) {
      const ref = this.spaces.physicalRef(pd.number);
      if (ref === undefined) continue;
      const bitmap = pd.unallocatedBitmap ?? pd.freedBitmap;
      const table = pd.unallocatedTable ?? pd.freedTable;
      const vat = this.vatBlock.get(pd.number);
      const runs = bitmap ? bitmapRuns(this.io, ref, pd, bitmap.block)
        : table ? tableRuns(this.io, ref, pd, table.block)
          : vat !== undefined && vat + 1 < pd.length ? [[vat + 1, pd.length - vat - 1] as [number, number]]
            : null;
      if (!runs) continue;
      for await (const [first, count] of runs) {
        // A partition that runs past the volume's end (warned at open) is free only up to it.
        const offset = (pd.start + first) * bs;
        const r = { offset, length: Math.min(count * bs, this.v.size - offset) };
        if (r.length <= 0) break;
        if (pending && pending.offset + pending.length === r.offset) pending.length += r.length;
        else {
          if (pending) yield pending;
          pending = r;
        }
      }
    }
    if (pending) yield pending;
  }
}
