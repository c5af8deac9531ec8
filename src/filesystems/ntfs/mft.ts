import { VdiskError } from '../../errors.js';
import type { VolumeReader } from '../types.js';
import { parseAttributeList } from './attribute-list.js';
import type { BootSector } from './boot-sector.js';
import { AT, MAX_RUNS, parseRecord, type Attribute, type MftRecord } from './record.js';
import { AttributeStream } from './stream.js';
import { Lru } from '../../io/lru.js';

/**
 * The master file table: record N of $MFT's own $DATA (which may be fragmented, its runlist in record 0
 * and, for a very fragmented $MFT, in extension records its $ATTRIBUTE_LIST names), and files assembled
 * from a base record and its extension records.
 */

/** A file: its base record and every attribute, extents of one non-resident attribute merged into one. */
export interface NtfsFile {
  number: number;
  record: MftRecord;
  attributes: Attribute[];
}

/** Bounds on attribute lists: no file needs more (a list entry is at least 32 bytes). */
const MAX_LIST_BYTES = 8 * 1024 * 1024;
const MAX_LIST_ENTRIES = 1 << 18;
const MAX_EXTENSION_RECORDS = 1 << 16;
/**
 * MFT chunks of 64 KiB kept (16 MiB): a directory's records may lie anywhere in the MFT (files written
 * to several directories in turn interleave), so a walk goes round the MFT once per directory, and an
 * LRU smaller than what it goes round hits nothing. With 8 MiB, a 10,000-file tree so written read its
 * 10 MiB MFT five times over (839 chunk reads for 160 chunks); 16 MiB reads it once.
 */
const CHUNK_CACHE = 256;
const FILE_CACHE = 4096;

export class Mft {
  readonly recordSize: number;
  readonly recordCount: number;
  private readonly volume: VolumeReader;
  private readonly boot: BootSector;
  private readonly name: string;
  private readonly data: AttributeStream;
  private readonly chunkSize: number;
  private readonly chunks = new Lru<number, Promise<Buffer>>(CHUNK_CACHE);
  /**
   * Files by record. An Lru rather than a Map trimmed at its front: a Map keeps deleted slots as holes
   * until it is rehashed, and `keys().next()` per eviction stepped over all of them.
   */
  private readonly files = new Lru<number, Promise<NtfsFile>>(FILE_CACHE);

  private constructor(volume: VolumeReader, boot: BootSector, name: string, data: Attribute) {
    this.volume = volume;
    this.boot = boot;
    this.name = name;
    this.recordSize = boot.recordSize;
    this.data = new AttributeStream(volume, boot.clusterSize, data, `${name}: $MFT`);
    this.recordCount = Math.floor(data.dataSize / boot.recordSize);
    this.chunkSize = Math.max(64 * 1024, boot.recordSize);
  }

  /** Reads record 0 where the boot sector says, then the rest of $MFT's runlist from its extensions. */
  static async open(volume: VolumeReader, boot: BootSector, name: string): Promise<Mft> {
    const at = boot.mftLcn * boot.clusterSize;
    if (boot.mftLcn >= boot.totalClusters || at + boot.recordSize > volume.size) {
      throw new VdiskError('CORRUPT', `${name}: boot sector: $MFT at cluster ${boot.mftLcn} lies outside the volume`);
    }
    const raw = Buffer.from(await volume.read(at, boot.recordSize));
    const rec = parseRecord(raw, 0, boot.totalClusters);
    if (rec === null || typeof rec === 'string') throw new VdiskError('CORRUPT', `${name}: MFT record 0 ($MFT): ${rec ?? 'not in use'}`);
    const extents = rec.attributes.filter((a) => a.type === AT.DATA && a.name === '');
    const first = extents.find((a) => !a.resident && a.startVcn === 0);
    if (!first) throw new VdiskError('CORRUPT', `${name}: MFT record 0 ($MFT): no non-resident $DATA attribute`);
    let mft = new Mft(volume, boot, name, first);
    const list = rec.attributes.find((a) => a.type === AT.ATTRIBUTE_LIST);
    if (list) {
      // Bootstrapping: each further extent lies in a record the extents read so far can reach.
      const entries = await mft.listEntries(list, 0);
      const wanted = entries.filter((e) => e.type === AT.DATA && e.name === '' && e.startVcn > 0 && e.record !== 0).sort((a, b) => a.startVcn - b.startVcn);
      for (const e of wanted) {
        const ext = await mft.record(e.record);
        if (!ext || ext.base !== 0) throw new VdiskError('CORRUPT', `${name}: MFT record ${e.record}: not an extension of $MFT`);
        extents.push(...ext.attributes.filter((a) => a.type === AT.DATA && a.name === '' && !a.resident && a.startVcn === e.startVcn));
        const merged = mergeExtents(extents.filter((a) => !a.resident), `${name}: $MFT`);
        mft = new Mft(volume, boot, name, merged);
      }
    }
    if (mft.recordCount < 16) throw new VdiskError('CORRUPT', `${name}: $MFT holds ${mft.recordCount} records, fewer than the 16 system files`);
    return mft;
  }

  private corrupt(n: number, what: string): VdiskError {
    return new VdiskError('CORRUPT', `${this.name}: MFT record ${n}: ${what}`);
  }

  private chunk(index: number): Promise<Buffer> {
    let p = this.chunks.get(index);
    if (p) return p;
    p = (async () => {
      const b = Buffer.alloc(this.chunkSize);
      await this.data.read(b, index * this.chunkSize);
      return b;
    })();
    p.catch(() => this.chunks.delete(index));
    this.chunks.set(index, p);
    return p;
  }

  /** One record, fixups applied; null when it is not in use. */
  async record(n: number): Promise<MftRecord | null> {
    if (!Number.isSafeInteger(n) || n < 0 || n >= this.recordCount) throw this.corrupt(n, `beyond the ${this.recordCount} records of $MFT`);
    const offset = n * this.recordSize;
    const index = Math.floor(offset / this.chunkSize);
    const c = await this.chunk(index);
    const at = offset - index * this.chunkSize;
    const raw = Buffer.from(c.subarray(at, at + this.recordSize));
    const rec = parseRecord(raw, n, this.boot.totalClusters);
    if (typeof rec === 'string') throw this.corrupt(n, rec);
    return rec;
  }

  /** A file by its base record number, with its extension records merged in. */
  file(n: number): Promise<NtfsFile> {
    let p = this.files.get(n);
    if (p) return p;
    p = this.loadFile(n);
    p.catch(() => this.files.delete(n));
    this.files.set(n, p);
    return p;
  }

  private async listEntries(list: Attribute, n: number) {
    if (!list.resident && list.dataSize > MAX_LIST_BYTES) throw this.corrupt(n, `$ATTRIBUTE_LIST of ${list.dataSize} bytes exceeds ${MAX_LIST_BYTES}`);
    const s = new AttributeStream(this.volume, this.boot.clusterSize, list, `${this.name}: MFT record ${n}: $ATTRIBUTE_LIST`);
    const b = Buffer.alloc(s.size);
    await s.read(b, 0);
    const entries = parseAttributeList(b, MAX_LIST_ENTRIES);
    if (typeof entries === 'string') throw this.corrupt(n, `$ATTRIBUTE_LIST: ${entries}`);
    return entries;
  }

  private async loadFile(n: number): Promise<NtfsFile> {
    const record = await this.record(n);
    if (!record) throw this.corrupt(n, 'not in use');
    if (record.base !== 0 && record.base !== n) throw this.corrupt(n, `an extension of record ${record.base}, not a file`);
    let attributes = record.attributes;
    const list = attributes.find((a) => a.type === AT.ATTRIBUTE_LIST);
    if (list) {
      const entries = await this.listEntries(list, n);
      // Each extension record once, whatever the list says: no loops, no repeats.
      const others = [...new Set(entries.map((e) => e.record))].filter((r) => r !== n);
      if (others.length > MAX_EXTENSION_RECORDS) throw this.corrupt(n, `$ATTRIBUTE_LIST names ${others.length} extension records`);
      attributes = attributes.filter((a) => a.type !== AT.ATTRIBUTE_LIST);
      for (const r of others) {
        const ext = await this.record(r);
        if (!ext) throw this.corrupt(n, `$ATTRIBUTE_LIST names record ${r}, which is not in use`);
        if (ext.base !== n) throw this.corrupt(n, `$ATTRIBUTE_LIST names record ${r}, an extension of record ${ext.base}`);
        attributes = attributes.concat(ext.attributes.filter((a) => a.type !== AT.ATTRIBUTE_LIST));
      }
    }
    // Extents of one non-resident attribute (same type and name) become one attribute.
    const groups = new Map<string, Attribute[]>();
    const merged: Attribute[] = [];
    for (const a of attributes) {
      if (a.resident) {
        merged.push(a);
        continue;
      }
      const key = `${a.type}:${a.name}`;
      const g = groups.get(key);
      if (g) g.push(a);
      else {
        groups.set(key, [a]);
        merged.push(a);
      }
    }
    for (const [key, g] of groups) {
      if (g.length === 1 && g[0].startVcn === 0) continue;
      const m = mergeExtents(g, `${this.name}: MFT record ${n}: attribute 0x${Number(key.split(':')[0]).toString(16)}`);
      merged[merged.indexOf(g[0])] = m;
    }
    return { number: n, record, attributes: merged };
  }
}

/** One attribute from its extents: in VCN order from 0, each starting where the previous ended. */
export function mergeExtents(extents: Attribute[], what: string): Attribute {
  const sorted = [...extents].sort((a, b) => a.startVcn - b.startVcn);
  const first = sorted[0];
  if (first.startVcn !== 0) throw new VdiskError('CORRUPT', `${what}: first extent starts at VCN ${first.startVcn}, not 0`);
  let runs = first.runs;
  let next = first.lastVcn + 1;
  for (const e of sorted.slice(1)) {
    if (e.startVcn !== next) throw new VdiskError('CORRUPT', `${what}: extent at VCN ${e.startVcn} does not follow VCN ${next - 1}`);
    if (runs.length + e.runs.length > MAX_RUNS) throw new VdiskError('CORRUPT', `${what}: more than ${MAX_RUNS} runs`);
    runs = runs.concat(e.runs);
    next = e.lastVcn + 1;
  }
  return { ...first, lastVcn: next - 1, runs };
}
