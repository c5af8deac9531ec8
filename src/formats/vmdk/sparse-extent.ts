import { promisify } from 'node:util';
import { inflate } from 'node:zlib';
import { VdiskError, corrupt, unsupported } from '../../errors.js';
import { readExact, type PositionalFile } from '../../io/file.js';
import { COWD_MAGIC, FLAG_MARKERS, FLAG_ZERO_GRAIN, GD_AT_END, GTE_ZERO, MARKER_FOOTER, MAX_DESCRIPTOR, SECTOR, SPARSE_MAGIC } from './constants.js';
import { checkSparseHeader, parseSparseHeader, type SparseGeometry, type SparseHeader } from './header.js';
import { GrainDirectory } from './grain-directory.js';
import { GRAIN_MARKER_SIZE, parseGrainMarker, parseMetadataMarker } from './marker.js';
import { Lru } from '../../io/lru.js';
import type { ExtentRun, VmdkExtent } from './extent.js';

const inflateAsync = promisify(inflate);

/** A hosted sparse extent (KDMV): monolithicSparse, a twoGbMaxExtentSparse piece, a streamOptimized disk. */
export class SparseExtent implements VmdkExtent {
  readonly kind = 'sparse' as const;
  readonly grainBytes: number;
  readonly gd: GrainDirectory;
  /** The redundant directory, which writers keep in step (null when the header has none). */
  readonly rgd: GrainDirectory | null;
  private readonly zeroGrain: boolean;
  private readonly markers: boolean;
  private readonly grains = new Lru<number, Promise<Buffer>>(8);
  /** Where the next new grain goes, in sectors (writers only). */
  allocSector = 0;

  private constructor(
    readonly file: PositionalFile,
    readonly header: SparseHeader,
    readonly geo: SparseGeometry,
    gdSector: number,
  ) {
    this.grainBytes = geo.grainSectors * SECTOR;
    this.gd = new GrainDirectory(file, gdSector, geo.gdEntries, geo.gtes);
    const rgd = Number(header.rgdOffset);
    this.rgd = header.rgdOffset !== 0n && header.rgdOffset !== GD_AT_END && rgd * SECTOR + geo.gdEntries * 4 <= file.size()
      ? new GrainDirectory(file, rgd, geo.gdEntries, geo.gtes) : null;
    this.zeroGrain = (header.flags & FLAG_ZERO_GRAIN) !== 0;
    this.markers = (header.flags & FLAG_MARKERS) !== 0;
    this.allocSector = Math.ceil(file.size() / SECTOR);
  }

  get filename(): string {
    return this.file.path;
  }

  get compressed(): boolean {
    return this.geo.compressed;
  }

  get sizeBytes(): number {
    return this.geo.capacitySectors * SECTOR;
  }

  static async open(file: PositionalFile): Promise<SparseExtent> {
    const head = await readExact(file, 0, SECTOR, 'sparse extent header');
    const magic = head.readUInt32LE(0);
    if (magic === COWD_MAGIC) throw unsupported(file.path, 'an ESX Server sparse (COWD) extent, which vdisk does not read');
    if (magic !== SPARSE_MAGIC) throw corrupt(file.path, 'sparse extent without its KDMV header');
    let header = parseSparseHeader(head);
    if (header.gdOffset === GD_AT_END) header = await readFooter(file, header);
    const geo = checkSparseHeader(file.path, header, file.size());
    return new SparseExtent(file, header, geo, Number(header.gdOffset));
  }

  /** The embedded descriptor's text, or null when the extent has none. */
  async embeddedDescriptor(): Promise<string | null> {
    const { descriptorOffset: at, descriptorSize: size } = this.header;
    if (at === 0n || size === 0n) return null;
    if (size * BigInt(SECTOR) > BigInt(MAX_DESCRIPTOR)) throw corrupt(this.filename, `embedded descriptor of ${size} sectors (at most ${MAX_DESCRIPTOR / SECTOR})`);
    if ((at + size) * BigInt(SECTOR) > BigInt(this.file.size())) {
      throw new VdiskError('TRUNCATED', `${this.filename}: embedded descriptor at sector ${at} ends past the end of the file (${this.file.size()} bytes)`);
    }
    const buf = await readExact(this.file, Number(at) * SECTOR, Number(size) * SECTOR, 'embedded descriptor');
    return buf.toString('latin1');
  }

  /** What the grain table says of grain `grain`: its sector (0 unallocated, GTE_ZERO zeros where the flag allows). */
  private async grainState(grain: number): Promise<{ kind: ExtentRun['kind']; sector: number }> {
    const e = await this.gd.entry(grain);
    if (e === 0) return { kind: 'unallocated', sector: 0 };
    if (e === GTE_ZERO && this.zeroGrain) return { kind: 'zero', sector: 0 };
    const firstSector = grain * this.geo.grainSectors;
    const need = this.compressed ? GRAIN_MARKER_SIZE : Math.min(this.geo.grainSectors, this.geo.capacitySectors - firstSector) * SECTOR;
    if (e * SECTOR + need > this.file.size()) {
      throw new VdiskError('TRUNCATED', `${this.filename}: grain ${grain} is stored at sector ${e}, past the end of the file (${this.file.size()} bytes)`);
    }
    return { kind: 'data', sector: e };
  }

  async runs(offset: number, length: number): Promise<ExtentRun[]> {
    const out: ExtentRun[] = [];
    const end = offset + length;
    const gb = this.grainBytes;
    for (let at = offset; at < end; ) {
      const grain = Math.floor(at / gb);
      let next = Math.min(end, (grain + 1) * gb);
      const table = Math.floor(grain / this.geo.gtes);
      // A grain table that does not exist leaves all its grains unallocated: skipped whole, so that
      // mapping a huge, empty disk costs one look per table rather than per grain.
      let s: { kind: ExtentRun['kind']; sector: number };
      if ((await this.gd.table(table)) === null) {
        const coverage = this.geo.gtes * gb;
        const found = await this.gd.firstTable(table + 1, Math.ceil(end / coverage));
        next = Math.min(end, found * coverage);
        s = { kind: 'unallocated', sector: 0 };
      } else {
        s = await this.grainState(grain);
      }
      const run: ExtentRun = { offset: at, length: next - at, kind: s.kind };
      if (s.kind === 'data') {
        if (this.compressed) run.compressed = true;
        else run.fileOffset = s.sector * SECTOR + (at - grain * gb);
      }
      const last = out[out.length - 1];
      if (last && last.kind === run.kind && last.compressed === run.compressed &&
          (run.fileOffset === undefined || last.fileOffset! + last.length === run.fileOffset)) last.length += run.length;
      else out.push(run);
      at = next;
    }
    return out;
  }

  /** Reads a data run (from runs()) into `buf`. */
  async readData(buf: Uint8Array, run: ExtentRun, from: number): Promise<void> {
    if (!run.compressed) {
      await this.file.readAt(buf, run.fileOffset! + (from - run.offset));
      return;
    }
    const gb = this.grainBytes;
    const end = from + buf.length;
    // Every grain of the run inflates at once, on zlib's thread pool: a stream reads on all cores.
    const copies: Promise<void>[] = [];
    for (let at = from; at < end; ) {
      const grain = Math.floor(at / gb);
      const next = Math.min(end, (grain + 1) * gb);
      const [a, b] = [at, next];
      copies.push(this.grain(grain).then((data) => buf.set(data.subarray(a - grain * gb, b - grain * gb), a - from)));
      at = next;
    }
    await Promise.all(copies);
  }

  /** Grain `grain` of a compressed extent, inflated (a few kept, for reads smaller than a grain). */
  private grain(grain: number): Promise<Buffer> {
    let p = this.grains.get(grain);
    if (!p) {
      p = this.inflateGrain(grain);
      this.grains.set(grain, p);
      p.catch(() => this.grains.delete(grain));
    }
    return p;
  }

  private async inflateGrain(grain: number): Promise<Buffer> {
    const { sector } = await this.grainState(grain);
    const gb = this.grainBytes;
    let data: Buffer;
    const at = sector * SECTOR;
    if (this.markers) {
      const m = parseGrainMarker(await readExact(this.file, at, GRAIN_MARKER_SIZE, `marker of grain ${grain}`));
      if (m.lba !== BigInt(grain * this.geo.grainSectors)) {
        throw corrupt(this.filename, `the marker at sector ${sector} is for sector ${m.lba}, not for grain ${grain} (sector ${grain * this.geo.grainSectors})`);
      }
      // deflate never grows data by more than a few bytes per 16 KiB block.
      if (m.size === 0 || m.size > gb + gb / 8 + 1024) throw corrupt(this.filename, `compressed grain ${grain} claims ${m.size} bytes`);
      data = await readExact(this.file, at + GRAIN_MARKER_SIZE, m.size, `compressed grain ${grain}`);
    } else {
      data = Buffer.alloc(Math.min(gb + gb / 8 + 1024, this.file.size() - at));
      await this.file.readAt(data, at);
    }
    let out: Buffer;
    try {
      out = await inflateAsync(data, { maxOutputLength: gb, finishFlush: 2 /* Z_SYNC_FLUSH: tolerate padding */ });
    } catch (err) {
      throw corrupt(this.filename, `compressed grain ${grain} at sector ${sector} does not inflate (${(err as Error).message})`);
    }
    if (out.length === gb) return out;
    const full = Buffer.alloc(gb);
    out.copy(full);
    return full;
  }
}

/**
 * A stream whose header says "directory at the end" keeps its real header in a footer: a footer
 * marker, the footer (a header copy), an end-of-stream marker, the last three sectors of the file.
 */
async function readFooter(file: PositionalFile, header: SparseHeader): Promise<SparseHeader> {
  const size = file.size();
  if (size < 4 * SECTOR) throw new VdiskError('TRUNCATED', `${file.path}: stream ends (${size} bytes) before its footer`);
  const tail = await readExact(file, size - 3 * SECTOR, 3 * SECTOR, 'footer');
  const marker = parseMetadataMarker(tail.subarray(0, SECTOR));
  const footerHead = tail.subarray(SECTOR, 2 * SECTOR);
  if ((header.flags & FLAG_MARKERS) !== 0 && (marker.type !== MARKER_FOOTER || marker.size !== 0)) {
    throw corrupt(file.path, 'stream: no footer marker before the footer at the end of the file');
  }
  if (footerHead.readUInt32LE(0) !== SPARSE_MAGIC) throw corrupt(file.path, 'stream: the footer at the end of the file has no KDMV signature');
  const footer = parseSparseHeader(footerHead);
  if (footer.gdOffset === GD_AT_END) throw corrupt(file.path, 'stream: the footer too says the grain directory is at the end');
  return footer;
}
