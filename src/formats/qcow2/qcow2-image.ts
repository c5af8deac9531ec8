import { VdiskError, corrupt, unsupported } from '../../errors.js';
import { readExact, type PositionalFile } from '../../io/file.js';
import type { DiskImage, Extent } from '../image.js';
import { checkRange, mergeExtents } from '../image.js';
import type { FormatDetails, Mapping, OpenContext } from '../driver.js';
import { INCOMPAT_CORRUPT, INCOMPAT_DIRTY, AUTOCLEAR_DATA_FILE_RAW, MiB, entryOffset, roundUp, writeEntry } from './constants.js';
import { besideImage, readLayout, type Qcow2Layout } from './layout.js';
import { L2_COMPRESSED, L2_COPIED, decodeL2, encodeCompressed, encodeNormal, type L2Entry } from './l2-entry.js';
import { decompressCluster } from './compression.js';
import { RefcountStore, readRefcountTable } from './refcounts.js';
import { qcow2Details } from './details.js';
import { awaitedLater } from '../../util/promises.js';

/** A run of the virtual disk inside one L2 table, all stored one way. */
export type Segment =
  | { kind: 'data'; length: number; host: number }
  | { kind: 'zero'; length: number; host?: number }
  | { kind: 'unallocated'; length: number }
  | { kind: 'compressed'; length: number; host: number; stored: number; cluster: number };

/** Memory for clean L2 tables, whatever the cluster size. */
const L2_CACHE_BYTES = 32 * MiB;
/** Allocations between metadata commits: crash-safe either way, this only bounds the work lost. */
const COMMIT_BYTES = 256 * MiB;

export class Qcow2Image implements DiskImage {
  readonly format = 'qcow2';
  readonly filename: string;
  readonly virtualSize: number;
  readonly logicalSectorSize = 512;
  readonly preferredChunk: number;
  readonly otherFiles?: readonly string[];
  readonly clusterSize: number;

  private readonly l2Cache = new Map<number, Buffer>();
  private readonly l2Loading = new Map<number, Promise<Buffer>>();
  private readonly l2CacheMax: number;
  private readonly inflated = new Map<number, Promise<Buffer>>();
  private backing: Promise<DiskImage | null> | null = null;

  // Write state: tables changed since the last commit, by L1 index, and the host clusters they go to.
  private writer: RefcountStore | null = null;
  private nextFree = 0;
  private readonly dirtyL2 = new Map<number, { table: Buffer; host: number; newHost: boolean }>();
  private readonly decrefs: number[] = [];
  private pendingBytes = 0;
  private queue: Promise<unknown> = Promise.resolve();
  private compressedTail = 0;
  private broken = false;
  /** Data writes on their way to the file: a commit waits for them before making them reachable. */
  private readonly inflight = new Set<Promise<void>>();
  /** New clusters' first (whole-cluster) writes still on their way, by host offset. */
  private readonly landing = new Map<number, Promise<void>>();
  private compressedEnd = 0;

  private constructor(
    readonly file: PositionalFile,
    readonly layout: Qcow2Layout,
    /** Where guest data lives: the image itself, or its external data file. */
    readonly dataFile: PositionalFile,
    private readonly ctx: OpenContext | null,
  ) {
    this.filename = file.path;
    this.virtualSize = layout.header.size;
    this.clusterSize = layout.clusterSize;
    this.preferredChunk = Math.max(this.clusterSize, 4 * MiB);
    this.l2CacheMax = Math.max(16, L2_CACHE_BYTES / this.clusterSize);
    if (dataFile !== file) this.otherFiles = [dataFile.path];
  }

  static async open(file: PositionalFile, ctx: OpenContext | null): Promise<Qcow2Image> {
    const layout = await readLayout(file);
    let data = file;
    if (layout.ext.dataFile) {
      if (!ctx) throw unsupported(file.path, 'qcow2 image with an external data file opened without a context');
      data = await ctx.openFile(besideImage(file.path, layout.ext.dataFile));
    }
    return new Qcow2Image(file, layout, data, ctx);
  }

  get hasBacking(): boolean {
    return this.layout.backingName !== null;
  }

  get backingPath(): string | null {
    return this.layout.backingName === null ? null : besideImage(this.filename, this.layout.backingName);
  }

  backingImage(): Promise<DiskImage | null> {
    if (!this.backing) {
      const path = this.backingPath;
      this.backing = path === null || !this.ctx ? Promise.resolve(null) : this.ctx.openBacking(path, this.layout.ext.backingFormat);
      this.backing.catch(() => undefined);
    }
    return this.backing;
  }

  describe(): Promise<FormatDetails> {
    return qcow2Details(this);
  }

  // ---- reading ----

  /** The L2 table of L1 entry `i`, or null where none is allocated. */
  async l2Table(i: number): Promise<Buffer | null> {
    const dirty = this.dirtyL2.get(i);
    if (dirty) return dirty.table;
    const offset = this.layout.l1[i];
    if (offset === 0) return null;
    const cached = this.l2Cache.get(offset);
    if (cached) {
      this.l2Cache.delete(offset);
      this.l2Cache.set(offset, cached);
      return cached;
    }
    let loading = this.l2Loading.get(offset);
    if (!loading) {
      loading = this.loadL2(i, offset);
      this.l2Loading.set(offset, loading);
      loading.finally(() => this.l2Loading.delete(offset)).catch(() => undefined);
    }
    return loading;
  }

  private async loadL2(i: number, offset: number): Promise<Buffer> {
    const cs = this.clusterSize;
    if (offset % cs !== 0) throw corrupt(this.filename, `qcow2 L1 entry ${i}: L2 table offset ${offset} is not aligned to a cluster`);
    if (offset + cs > this.file.size()) throw corrupt(this.filename, `qcow2 L1 entry ${i}: L2 table at ${offset} is past the end of the file (${this.file.size()} bytes)`);
    const table = await readExact(this.file, offset, cs, `qcow2 L2 table ${i}`);
    if (this.l2Cache.size >= this.l2CacheMax) this.l2Cache.delete(this.l2Cache.keys().next().value as number);
    this.l2Cache.set(offset, table);
    return table;
  }

  entry(table: Buffer, index: number): L2Entry {
    return decodeL2(table, index, this.layout.extended, this.layout.clusterBits);
  }

  /** How the disk is stored from `offset` on, at most `max` bytes, within one L2 table's reach. */
  async segment(offset: number, max: number): Promise<Segment> {
    const { l2Entries, extended } = this.layout;
    const cs = this.clusterSize;
    const cluster = Math.floor(offset / cs);
    const l1i = Math.floor(cluster / l2Entries);
    const table = await this.l2Table(l1i);
    const tableEnd = (l1i + 1) * l2Entries * cs;
    const reach = Math.min(max, tableEnd - offset);
    if (!table) return { kind: 'unallocated', length: reach };
    const first = this.entry(table, cluster % l2Entries);
    const inCluster = offset % cs;
    if (first.kind === 'compressed') {
      if (first.length > 2 * cs) throw corrupt(this.filename, `qcow2 compressed cluster ${cluster}: ${first.length} bytes of compressed data (more than two clusters)`);
      return { kind: 'compressed', length: Math.min(max, cs - inCluster), host: first.host, stored: first.length, cluster };
    }
    if (extended) return this.subclusterRun(first, cluster, inCluster, Math.min(max, cs - inCluster));
    const external = this.dataFile !== this.file;
    // Standard L2 only here: the zero flag is bit 0, and a cluster without a host offset stores nothing
    // unless an external data file holds it (COPIED set).
    const kindOf = (zeroFlag: boolean, host: number, copied: boolean): 'data' | 'zero' | 'unallocated' => (zeroFlag ? 'zero' : host === 0 && !(copied && external) ? 'unallocated' : 'data');
    const kind = kindOf(first.zeroFlag, first.host, first.copied);
    if (kind === 'data') this.checkHost(first.host, cluster);
    let length = Math.min(reach, cs - inCluster);
    // Following clusters of the same table stored the same way (data: back to back) join the run.
    // Read from the raw words rather than decoded: this loop sees every cluster of a convert, twice.
    // The common case is settled by comparing the two words with the ones the run predicts (the first
    // entry's, its offset advanced by a cluster each step); only an entry that differs is decoded.
    const firstAt = (cluster % l2Entries) * 8;
    let wantHi = table.readUInt32BE(firstAt);
    let wantLo = table.readUInt32BE(firstAt + 4);
    for (let c = cluster + 1, at = (c % l2Entries) * 8; length < reach; c++, at += 8) {
      if (kind === 'zero' && first.host !== 0) break; // preallocated zeros keep their own offsets
      if (kind === 'data') {
        // The offset's low word is a multiple of 512 below 2^32: adding a cluster carries into the high word.
        wantLo += cs;
        if (wantLo >= 0x100000000) {
          wantLo -= 0x100000000;
          // Past bit 55 the offset would run into reserved bits: no prediction, every entry decoded.
          wantHi = (wantHi & 0x00ffffff) === 0x00ffffff ? -1 : wantHi + 1;
        }
      }
      const hi = table.readUInt32BE(at);
      const lo = table.readUInt32BE(at + 4);
      if (hi !== wantHi || lo !== wantLo) {
        if (hi & L2_COMPRESSED) break;
        const host = entryOffset(table, at);
        if (kindOf((lo & 1) !== 0, host, (hi & L2_COPIED) !== 0) !== kind) break;
        if (kind === 'data') {
          if (host !== first.host + (c - cluster) * cs) break;
          this.checkHost(host, c);
        }
        // Predict from this entry on (its flags may differ from the first's: COPIED, for one).
        wantHi = hi;
        wantLo = lo;
      }
      length = Math.min(reach, length + cs);
    }
    if (kind === 'data') return { kind, length, host: first.host + inCluster };
    if (kind === 'zero') return first.host !== 0 ? { kind, length, host: first.host + inCluster } : { kind, length };
    return { kind: 'unallocated', length };
  }

  private checkHost(host: number, cluster: number): void {
    if (host % this.clusterSize !== 0) throw corrupt(this.filename, `qcow2 L2 entry of cluster ${cluster}: data offset ${host} is not aligned to a cluster`);
    if (this.dataFile === this.file && host === 0) throw corrupt(this.filename, `qcow2 L2 entry of cluster ${cluster}: data at offset 0, over the header`);
  }

  /** Extended L2: the run of subclusters of one state from `inCluster`, as the two bitmaps say. */
  private subclusterRun(e: L2Entry & { kind: 'normal' }, cluster: number, inCluster: number, max: number): Segment {
    const sc = this.clusterSize / 32;
    const stateOf = (i: number): Segment['kind'] => {
      const a = (e.alloc >>> i) & 1;
      const z = (e.zero >>> i) & 1;
      if (a && z) throw corrupt(this.filename, `qcow2 extended L2 entry of cluster ${cluster}: subcluster ${i} is both allocated and zero`);
      return a ? 'data' : z ? 'zero' : 'unallocated';
    };
    const first = Math.floor(inCluster / sc);
    const kind = stateOf(first);
    if (kind === 'data') {
      if (e.host === 0 && this.dataFile === this.file) throw corrupt(this.filename, `qcow2 extended L2 entry of cluster ${cluster}: allocated subclusters without a host cluster`);
      this.checkHost(e.host || this.clusterSize, cluster);
    }
    let end = (first + 1) * sc;
    while (end < inCluster + max && end < this.clusterSize && stateOf(end / sc) === kind) end += sc;
    const length = Math.min(max, end - inCluster);
    if (kind === 'data') return { kind, length, host: e.host + inCluster };
    return { kind, length } as Segment;
  }

  /** A compressed cluster's bytes, decompressed (a few kept, for reads that take it in pieces). */
  private inflate(s: Segment & { kind: 'compressed' }): Promise<Buffer> {
    let p = this.inflated.get(s.host);
    if (!p) {
      const stored = Math.min(s.stored, Math.max(0, this.dataFile.size() - s.host));
      p = readExact(this.dataFile, s.host, stored, `qcow2 compressed cluster ${s.cluster}`).then((raw) =>
        decompressCluster(this.filename, this.layout.header.compressionType, raw, this.clusterSize, s.host));
      if (this.inflated.size >= 8) this.inflated.delete(this.inflated.keys().next().value as number);
      this.inflated.set(s.host, p);
      p.catch(() => this.inflated.delete(s.host));
    }
    return p;
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    const pending: Promise<unknown>[] = [];
    let run: { host: number; at: number; length: number } | null = null;
    const flushRun = () => {
      if (run) pending.push(awaitedLater(this.dataFile.readAt(b.subarray(run.at, run.at + run.length), run.host)));
      run = null;
    };
    for (let pos = 0; pos < b.length; ) {
      const s = await this.segment(offset + pos, b.length - pos);
      const n = s.length;
      if (s.kind === 'data') {
        const r = run as { host: number; at: number; length: number } | null;
        if (r && r.host + r.length === s.host && r.at + r.length === pos) r.length += n;
        else {
          flushRun();
          run = { host: s.host, at: pos, length: n };
        }
      } else {
        flushRun();
        if (s.kind === 'zero') b.fill(0, pos, pos + n);
        else if (s.kind === 'unallocated') pending.push(awaitedLater(this.readBacking(b.subarray(pos, pos + n), offset + pos)));
        else {
          const at = (offset + pos) % this.clusterSize;
          const target = b.subarray(pos, pos + n);
          pending.push(awaitedLater(this.inflate(s).then((c) => c.copy(target, 0, at, at + n))));
        }
      }
      pos += n;
    }
    flushRun();
    await Promise.all(pending);
  }

  /** Where this image stores nothing: the backing image's bytes, zeros past its end or without one. */
  private async readBacking(b: Buffer, offset: number): Promise<void> {
    const backing = await this.backingImage();
    const inside = backing ? Math.max(0, Math.min(b.length, backing.virtualSize - offset)) : 0;
    if (inside > 0) await (backing as DiskImage).read(b.subarray(0, inside), offset);
    b.fill(0, inside);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    const out: Extent[] = [];
    for (let pos = offset; pos < offset + length; ) {
      const s = await this.segment(pos, offset + length - pos);
      if (s.kind === 'unallocated' && this.hasBacking) {
        const backing = await this.backingImage();
        const inside = backing ? Math.max(0, Math.min(s.length, backing.virtualSize - pos)) : 0;
        if (inside > 0) out.push(...(await (backing as DiskImage).blockStatus(pos, inside)));
        if (inside < s.length) out.push({ offset: pos + inside, length: s.length - inside, state: 'zero' });
      } else {
        out.push({ offset: pos, length: s.length, state: s.kind === 'compressed' ? 'data' : s.kind });
      }
      pos += s.length;
    }
    return mergeExtents(out);
  }

  async mapping(offset: number, length: number): Promise<Mapping[]> {
    checkRange(this, offset, length);
    const out: Mapping[] = [];
    const backing = this.hasBacking ? await this.backingImage() : null;
    const file = this.dataFile !== this.file ? { filename: this.dataFile.path } : {};
    for (let pos = offset; pos < offset + length; ) {
      const s = await this.segment(pos, offset + length - pos);
      const here = { offset: pos, length: s.length };
      if (s.kind === 'data') out.push({ ...here, kind: 'data', fileOffset: s.host, ...file });
      else if (s.kind === 'compressed') out.push({ ...here, kind: 'data' });
      else if (s.kind === 'zero') out.push({ ...here, kind: 'zero', ...(s.host !== undefined ? { fileOffset: s.host, ...file } : {}) });
      else if (backing) {
        const inside = Math.max(0, Math.min(s.length, backing.virtualSize - pos));
        if (inside > 0) out.push({ offset: pos, length: inside, kind: 'backing' });
        if (inside < s.length) out.push({ offset: pos + inside, length: s.length - inside, kind: 'unallocated' });
      } else out.push({ ...here, kind: 'unallocated' });
      pos += s.length;
    }
    return out;
  }

  // ---- writing ----

  /** Why this image takes no writes, or null. */
  private writeRefusal(): string | null {
    const h = this.layout.header;
    if (this.file.mode !== 'rw') return 'opened read-only';
    if (h.incompatible & INCOMPAT_CORRUPT) return 'the qcow2 image is marked corrupt (vdisk check -r all, or qemu-img check -r all)';
    if (h.incompatible & INCOMPAT_DIRTY) return 'the qcow2 image is dirty (lazy refcounts left unwritten); repair it with qemu-img check -r all first';
    if (h.refcountOrder > 6) return 'unknown refcount width';
    return null;
  }

  /**
   * Runs table changes one at a time. One that fails leaves the tables in memory half changed: they
   * are never committed then, so the file keeps its last consistent state (new clusters leak at worst).
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const guarded = async () => {
      if (this.broken) throw new VdiskError('IO', `${this.filename}: an earlier write failed; the image takes no more writes in this session`);
      try {
        return await fn();
      } catch (err) {
        this.broken = true;
        throw err;
      }
    };
    const run = this.queue.then(guarded, guarded);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async startWriting(): Promise<RefcountStore> {
    if (this.writer) return this.writer;
    const refusal = this.writeRefusal();
    if (refusal) throw new VdiskError(this.file.mode !== 'rw' ? 'IO' : 'UNSUPPORTED', `${this.filename}: ${refusal}`);
    const h = this.layout.header;
    const table = await readRefcountTable(this.file, h.refcountTableOffset, h.refcountTableClusters, this.clusterSize);
    this.writer = new RefcountStore(this.file, table, h.refcountTableOffset, h.refcountTableClusters, this.clusterSize, h.refcountOrder);
    this.nextFree = roundUp(this.file.size(), this.clusterSize);
    return this.writer;
  }

  private allocCluster(): number {
    const at = this.nextFree;
    this.nextFree += this.clusterSize;
    return at;
  }

  /** The L2 table for guest cluster `cluster`, ready to change: a new one, or a private copy of a shared one. */
  private async writableL2(l1i: number): Promise<Buffer> {
    const dirty = this.dirtyL2.get(l1i);
    if (dirty) return dirty.table;
    const refs = this.writer as RefcountStore;
    const old = this.layout.l1[l1i];
    let entry: { table: Buffer; host: number; newHost: boolean };
    if (old === 0) {
      const host = this.allocCluster();
      await refs.add(host / this.clusterSize, 1);
      entry = { table: Buffer.alloc(this.clusterSize), host, newHost: true };
    } else if (this.layout.l1Copied[l1i]) {
      entry = { table: Buffer.from((await this.l2Table(l1i)) as Buffer), host: old, newHost: false };
    } else {
      // Shared with a snapshot: the copy is this image's own, the old table loses a reference.
      const host = this.allocCluster();
      await refs.add(host / this.clusterSize, 1);
      entry = { table: Buffer.from((await this.l2Table(l1i)) as Buffer), host, newHost: true };
      this.decrefs.push(old);
    }
    this.l2Cache.delete(old);
    this.dirtyL2.set(l1i, entry);
    return entry.table;
  }

  /** The guest cluster's current content (through the backing file, compressed data, zero flags). */
  private async currentCluster(cluster: number): Promise<Buffer> {
    const b = Buffer.alloc(this.clusterSize);
    const start = cluster * this.clusterSize;
    await this.read(b.subarray(0, Math.min(this.clusterSize, this.virtualSize - start)), start);
    return b;
  }

  /** Host clusters an entry holds, each losing one reference when the entry is replaced. */
  private dropEntry(e: L2Entry): void {
    const cs = this.clusterSize;
    if (e.kind === 'compressed') {
      for (let c = Math.floor(e.host / cs); c <= Math.floor((e.host + e.length - 1) / cs); c++) this.decrefs.push(c * cs);
    } else if (e.host !== 0) this.decrefs.push(e.host);
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    const src = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    // Tables change under the lock; the data goes to the file outside it, several writes at once
    // (handed out in an array: a promise returned as is would be waited for under the lock).
    const [written] = await this.exclusive(async () => {
      const refs = await this.startWriting();
      const cs = this.clusterSize;
      const { l2Entries, extended } = this.layout;
      const pieces: { host: number; data: Buffer }[] = [];
      for (let pos = 0; pos < src.length; ) {
        const off = offset + pos;
        const cluster = Math.floor(off / cs);
        const inCluster = off % cs;
        const n = Math.min(cs - inCluster, src.length - pos);
        const piece = src.subarray(pos, pos + n);
        const table = await this.writableL2(Math.floor(cluster / l2Entries));
        const index = cluster % l2Entries;
        const e = this.entry(table, index);
        const own = e.kind === 'normal' && e.copied && (e.host !== 0 || this.dataFile !== this.file);
        if (own) {
          this.checkHost(e.host, cluster);
          // A cluster whose first write is still on its way: this one must land after it.
          await this.landing.get(e.host);
        }
        if (own && !e.zeroFlag && (!extended || e.alloc === 0xffffffff)) {
          pieces.push({ host: e.host + inCluster, data: piece });
        } else {
          const whole = n === cs ? piece : await this.currentCluster(cluster);
          if (whole !== piece) piece.copy(whole, inCluster);
          let host: number;
          if (own) host = e.host;
          else if (this.dataFile !== this.file) {
            // An external data file holds each cluster at its guest offset and keeps no refcounts.
            host = cluster * cs;
          } else {
            host = this.allocCluster();
            await refs.add(host / cs, 1);
            this.dropEntry(e);
            this.pendingBytes += cs;
          }
          pieces.push({ host, data: whole });
          encodeNormal(table, index, extended, host, true);
        }
        pos += n;
      }
      const done = this.writePieces(pieces);
      this.inflight.add(done);
      // Tables already point at these clusters: if their data fails to land, nothing may be committed.
      done.catch(() => {
        this.broken = true;
      }).finally(() => this.inflight.delete(done));
      for (const p of pieces) {
        if (p.host % cs !== 0 || p.data.length < cs) continue;
        this.landing.set(p.host, done);
        done.catch(() => undefined).finally(() => this.landing.get(p.host) === done && this.landing.delete(p.host));
      }
      if (this.pendingBytes >= COMMIT_BYTES || this.dirtyL2.size * cs >= L2_CACHE_BYTES) await this.commitPending();
      return [done] as const;
    });
    await written;
  }

  /** Writes pieces, joining those back to back in the file into one write (one view when they are in memory too). */
  private async writePieces(pieces: { host: number; data: Buffer }[]): Promise<void> {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < pieces.length; ) {
      let j = i + 1;
      let end = pieces[i].host + pieces[i].data.length;
      let adjacent = true;
      while (j < pieces.length && pieces[j].host === end) {
        const a = pieces[j - 1].data;
        const b = pieces[j].data;
        adjacent &&= a.buffer === b.buffer && a.byteOffset + a.length === b.byteOffset;
        end += pieces[j++].data.length;
      }
      const first = pieces[i].data;
      const data = j === i + 1 ? first : adjacent ? Buffer.from(first.buffer, first.byteOffset, end - pieces[i].host) : Buffer.concat(pieces.slice(i, j).map((p) => p.data));
      writes.push(this.dataFile.writeAt(data, pieces[i].host));
      i = j;
    }
    await Promise.all(writes);
  }

  /**
   * Stores guest cluster `cluster` (unallocated so far) as `data`, compressed: packed after the
   * previous compressed cluster, each host cluster it touches counting one more reference.
   */
  async writeCompressed(cluster: number, data: Buffer): Promise<void> {
    if (this.dataFile !== this.file) throw unsupported(this.filename, 'a qcow2 image with an external data file cannot hold compressed clusters');
    await this.exclusive(async () => {
      const refs = await this.startWriting();
      const cs = this.clusterSize;
      const table = await this.writableL2(Math.floor(cluster / this.layout.l2Entries));
      const index = cluster % this.layout.l2Entries;
      this.dropEntry(this.entry(table, index));
      if (this.compressedTail === 0 || (this.compressedTail + data.length > this.compressedEnd && this.compressedEnd !== this.nextFree)) {
        this.compressedTail = this.allocCluster();
        this.compressedEnd = this.nextFree;
      }
      while (this.compressedTail + data.length > this.compressedEnd) this.compressedEnd = this.allocCluster() + cs;
      const host = this.compressedTail;
      for (let c = Math.floor(host / cs); c <= Math.floor((host + data.length - 1) / cs); c++) await refs.add(c, 1);
      await this.file.writeAt(data, host);
      this.compressedTail += data.length;
      if (this.compressedTail === this.compressedEnd) this.compressedTail = 0;
      encodeCompressed(table, index, this.layout.extended, this.layout.clusterBits, host, data.length);
      this.pendingBytes += data.length;
      if (this.pendingBytes >= COMMIT_BYTES || this.dirtyL2.size * cs >= L2_CACHE_BYTES) await this.commitPending();
    });
  }

  /**
   * Makes the writes so far reachable, in qcow2's safe order: data (already written) flushed, then
   * refcounts, then L2 tables, then L1 entries, then the references given up. A crash between any
   * two steps leaves at worst clusters with a refcount and no reference (leaks), never the reverse.
   */
  private async commitPending(): Promise<void> {
    const refs = this.writer;
    await Promise.all(this.inflight);
    if (this.broken) throw new VdiskError('IO', `${this.filename}: an earlier write failed; nothing more is committed in this session`);
    if (!refs || (this.dirtyL2.size === 0 && this.decrefs.length === 0 && !refs.pending)) return;
    const f = this.file;
    if (this.dataFile !== f) await this.dataFile.flush();
    await f.flush();
    await refs.place(() => this.allocCluster());
    const moved = await refs.writeOut();
    await f.flush();
    if (moved) for (let c = 0; c < moved.clusters; c++) this.decrefs.push(moved.offset + c * this.clusterSize);
    const l1Changes: number[] = [];
    await Promise.all([...this.dirtyL2].map(async ([i, d]) => {
      await f.writeAt(d.table, d.host);
      if (d.newHost) l1Changes.push(i);
    }));
    await f.flush();
    if (l1Changes.length) {
      for (const i of l1Changes.sort((a, b) => a - b)) {
        const d = this.dirtyL2.get(i) as { host: number };
        const e = Buffer.alloc(8);
        writeEntry(e, 0, d.host, 0x80000000);
        await f.writeAt(e, this.layout.header.l1TableOffset + i * 8);
        this.layout.l1[i] = d.host;
        this.layout.l1Copied[i] = 1;
      }
      await f.flush();
    }
    for (const [, d] of this.dirtyL2) {
      if (this.l2Cache.size >= this.l2CacheMax) this.l2Cache.delete(this.l2Cache.keys().next().value as number);
      this.l2Cache.set(d.host, d.table);
    }
    this.dirtyL2.clear();
    // Giving up references can itself need a refcount block (never in practice: the clusters had
    // counts), and a moved table frees the old one: a few rounds settle it.
    for (let round = 0; round < 4 && this.decrefs.length; round++) {
      for (const host of this.decrefs.splice(0)) await refs.add(host / this.clusterSize, -1);
      await refs.place(() => this.allocCluster());
      const again = await refs.writeOut();
      await f.flush();
      if (again) for (let c = 0; c < again.clusters; c++) this.decrefs.push(again.offset + c * this.clusterSize);
    }
    this.pendingBytes = 0;
  }

  async flush(): Promise<void> {
    await this.exclusive(async () => {
      await this.commitPending();
      if (this.writer) await this.file.flush();
    });
  }

  async close(): Promise<void> {
    try {
      if (this.writer && !this.broken) await this.flush();
    } finally {
      const backing = this.backing ? await this.backing.catch(() => null) : null;
      await backing?.close();
      if (this.dataFile !== this.file) await this.dataFile.close();
      await this.file.close();
    }
  }
}

export { AUTOCLEAR_DATA_FILE_RAW };
