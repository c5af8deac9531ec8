import { VdiskError } from '../../errors.js';
import type { ByteSource } from '../../io/file.js';
import { Lru } from '../../io/lru.js';
import { SECTOR } from './constants.js';

/** Grain directory entries read at a time: a hostile directory size never sizes a buffer. */
const GD_CHUNK = 1024;
/** Grain tables kept in memory: 4096 tables of 512 entries cover 128 GiB of 64 KiB grains in 8 MiB. */
const GT_CACHE = 4096;

/**
 * The grain directory and its grain tables: the two-level map from a grain to its sector in the
 * file. Tables are read on first need and kept in a bounded cache; tables changed by writes stay
 * in memory until written (`dirtyTables`).
 */
export class GrainDirectory {
  private readonly gdChunks = new Lru<number, Promise<Uint32Array>>(64);
  private readonly tables: Lru<number, Promise<Uint32Array>>;
  readonly dirty = new Set<number>();

  constructor(
    private readonly file: ByteSource,
    /** Sector of the directory. */
    readonly gdSector: number,
    readonly entries: number,
    readonly gtes: number,
  ) {
    this.tables = new Lru(GT_CACHE, (k) => this.dirty.has(k));
  }

  /** Directory entries of chunk `chunk`, read on first need. */
  private chunk(chunk: number): Promise<Uint32Array> {
    let p = this.gdChunks.get(chunk);
    if (!p) {
      p = this.readEntries(this.gdSector * SECTOR + chunk * GD_CHUNK * 4, Math.min(GD_CHUNK, this.entries - chunk * GD_CHUNK), 'grain directory');
      this.gdChunks.set(chunk, p);
      p.catch(() => this.gdChunks.delete(chunk));
    }
    return p;
  }

  /** Sector of grain table `index` (0: none), checked against the file. */
  async tableSector(index: number): Promise<number> {
    if (index >= this.entries) return 0;
    const sector = (await this.chunk(Math.floor(index / GD_CHUNK)))[index % GD_CHUNK];
    if (sector !== 0 && sector * SECTOR + this.gtes * 4 > this.file.size()) {
      throw new VdiskError('TRUNCATED', `${this.file.path}: grain directory entry ${index} points to a grain table at sector ${sector}, past the end of the file (${this.file.size()} bytes)`);
    }
    return sector;
  }

  /**
   * The first grain table index in [from, to) the directory has an entry for, or `to`: empty
   * stretches are skipped a chunk at a time. The entry found is not checked; reading its table does.
   */
  async firstTable(from: number, to: number): Promise<number> {
    const end = Math.min(to, this.entries);
    for (let i = from; i < end; ) {
      const chunk = Math.floor(i / GD_CHUNK);
      const entries = await this.chunk(chunk);
      const stop = Math.min(end, (chunk + 1) * GD_CHUNK);
      for (; i < stop; i++) if (entries[i % GD_CHUNK] !== 0) return i;
    }
    return to;
  }

  /** Grain table `index`, or null when the directory has none there. */
  async table(index: number): Promise<Uint32Array | null> {
    const cached = this.tables.get(index);
    if (cached) return cached;
    const sector = await this.tableSector(index);
    if (sector === 0) return null;
    const again = this.tables.get(index);
    if (again) return again;
    const p = this.readEntries(sector * SECTOR, this.gtes, `grain table ${index}`);
    this.tables.set(index, p);
    p.catch(() => this.tables.delete(index));
    return p;
  }

  /** The grain table entry of `grain` (0: unallocated). */
  async entry(grain: number): Promise<number> {
    const t = await this.table(Math.floor(grain / this.gtes));
    return t ? t[grain % this.gtes] : 0;
  }

  /** Sets an entry of a table already in memory and keeps the table until it is written. */
  async setEntry(grain: number, sector: number): Promise<void> {
    const index = Math.floor(grain / this.gtes);
    const t = await this.table(index);
    if (!t) throw new VdiskError('UNSUPPORTED', `${this.file.path}: grain directory entry ${index} has no grain table; vdisk writes only into images whose grain tables exist`);
    t[grain % this.gtes] = sector;
    this.dirty.add(index);
  }

  /** The changed tables with their contents, and forgets that they changed. */
  async takeDirty(): Promise<{ index: number; sector: number; data: Uint32Array }[]> {
    const out = [];
    for (const index of [...this.dirty].sort((a, b) => a - b)) {
      out.push({ index, sector: await this.tableSector(index), data: (await this.table(index))! });
    }
    this.dirty.clear();
    return out;
  }

  private async readEntries(position: number, count: number, what: string): Promise<Uint32Array> {
    const buf = Buffer.alloc(count * 4);
    const got = await this.file.readAt(buf, position);
    if (got < buf.length) {
      throw new VdiskError('TRUNCATED', `${this.file.path}: file ends at ${this.file.size()} bytes, inside the ${what} (bytes ${position}..${position + buf.length})`);
    }
    const out = new Uint32Array(count);
    for (let i = 0; i < count; i++) out[i] = buf.readUInt32LE(i * 4);
    return out;
  }
}
