import { VdiskError, corrupt } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import type { CompactOptions, CompactResult, DiskImage, Extent } from '../image.js';
import { blockSegments, checkRange, closeWithParent, mergeExtents, type BlockSegment } from '../image.js';
import type { FormatDetails, Mapping, OpenContext } from '../driver.js';
import { Bat } from './bat.js';
import { DISK_DIFFERENCING, DISK_FIXED, SECTOR, UNALLOCATED } from './constants.js';
import { serializeFooter } from './footer.js';
import { readLayout, type VpcLayout } from './layout.js';
import { findParent, readLocators, type ParentLocation } from './locator.js';
import { vpcDetails } from './details.js';
import { resizeVpc } from './resize.js';
import { compactVpc } from './compact.js';
import { commitVpc, rebaseVpc } from './chain.js';

/** Sector bitmaps of differencing blocks kept in memory (512 bytes each for 2 MiB blocks). */
const BITMAP_CACHE = 1024;

/** Is sector `s`'s bit set? Bit 7 of byte 0 is the block's first sector. */
export function bitSet(bitmap: Uint8Array, s: number): boolean {
  return (bitmap[s >> 3] & (0x80 >> (s & 7))) !== 0;
}

type Segment = BlockSegment;

/**
 * A VHD (QEMU's "vpc"): fixed (the file is the disk, the footer after it), dynamic (a BAT of blocks,
 * each a sector bitmap then the data) or differencing (a dynamic disk whose bitmaps say which sectors
 * it holds; the parent holds the rest).
 */
export class VpcImage implements DiskImage {
  readonly format = 'vpc';
  readonly filename: string;
  readonly logicalSectorSize = SECTOR;
  layout: VpcLayout;
  bat: Bat | null;
  /** Where the next new block goes: where the trailing footer is now. */
  private footerAt: number;
  private writeChain: Promise<void> = Promise.resolve();
  private readonly bitmaps = new Map<number, Buffer>();
  private parent: Promise<DiskImage> | null = null;
  private locations: ParentLocation[] | null = null;

  private constructor(
    readonly file: PositionalFile,
    layout: VpcLayout,
    private readonly ctx: OpenContext | null,
  ) {
    this.filename = file.path;
    this.layout = layout;
    this.footerAt = layout.footerAt;
    this.bat = layout.header ? new Bat(file, layout.header.tableOffset, layout.entries) : null;
  }

  static async fromFile(file: PositionalFile, ctx: OpenContext | null = null): Promise<VpcImage> {
    const image = new VpcImage(file, await readLayout(file), ctx);
    if (file.mode === 'rw') await image.findAppendPoint();
    return image;
  }

  /**
   * Where the next new block goes: the trailing footer, or past a block beyond it (a crash between
   * the BAT entry and the footer of another writer), which must not be overwritten.
   */
  private async findAppendPoint(): Promise<void> {
    let end = this.layout.footerAt;
    // Only blocks that begin inside the file: a crashed writer wrote the block before its entry, and
    // an entry pointing past the file's end must not move new blocks out there (reads refuse it).
    const size = this.file.size();
    await this.bat?.forEachAllocated((i, sector) => {
      if (sector * SECTOR < size) end = Math.max(end, sector * SECTOR + this.layout.bitmapSize + this.layout.blockSize);
    });
    this.footerAt = Math.ceil(end / SECTOR) * SECTOR;
  }

  /** The file offset where the next block (or anything appended) goes. */
  get appendAt(): number {
    return this.footerAt;
  }

  /** Reads the structures again after a change made outside the write path (resize, compact, rebase). */
  async reload(): Promise<void> {
    await this.writeChain;
    this.layout = await readLayout(this.file);
    this.bat = this.layout.header ? new Bat(this.file, this.layout.header.tableOffset, this.layout.entries) : null;
    this.bitmaps.clear();
    this.locations = null;
    this.footerAt = this.layout.footerAt;
    if (this.file.mode === 'rw') await this.findAppendPoint();
  }

  /** Closes the parent opened for reads (a commit opens it read-write; a rebase replaces it). */
  async dropParent(): Promise<void> {
    const parent = this.parent;
    this.parent = null;
    if (parent) await parent.then((p) => p.close(), () => undefined);
  }

  /** Changes the virtual size (see resizeVpc); a differencing VHD has its parent's size and is refused. */
  async resize(newSize: number): Promise<void> {
    this.requireWritable();
    await this.flush();
    await resizeVpc(this, newSize);
    await this.reload();
  }

  /** See DiskImage.compact and compactVpc. */
  async compact(options: CompactOptions): Promise<CompactResult> {
    if (!options.dryRun) this.requireWritable();
    await this.flush();
    const result = await compactVpc(this, options);
    if (!options.dryRun) await this.reload();
    return result;
  }

  /** See DiskImage.commit and commitVpc. */
  async commit(options: { keepChild?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<{ parent: string; bytes: number }> {
    this.requireWritable();
    await this.flush();
    const r = await commitVpc(this, options.keepChild ?? false, options.onProgress);
    await this.reload();
    return r;
  }

  /** See DiskImage.rebase and rebaseVpc. */
  async rebase(newParent: DiskImage, newParentPath: string, options: { unsafe?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<void> {
    this.requireWritable();
    await this.flush();
    await rebaseVpc(this, newParent, newParentPath, options.unsafe ?? false, options.onProgress);
    await this.dropParent();
    await this.reload();
  }

  private requireWritable(): void {
    if (this.file.mode !== 'rw') throw new VdiskError('IO', `${this.filename}: opened read-only`);
  }

  /** The parent's path as the locators name it on this host (for commit). */
  async parentPath(): Promise<string> {
    const header = this.layout.header;
    if (!this.isDifferencing || !header) throw new VdiskError('USAGE', `${this.filename}: not a differencing VHD; there is no parent`);
    return findParent(this.filename, header, await this.parentLocations());
  }

  get virtualSize(): number {
    return this.layout.virtualSize;
  }

  get diskType(): number {
    return this.layout.footer.diskType;
  }

  get isDifferencing(): boolean {
    return this.diskType === DISK_DIFFERENCING;
  }

  get blockSize(): number {
    return this.layout.blockSize;
  }

  get preferredChunk(): number {
    return this.layout.blockSize || 2 * 1024 * 1024;
  }

  private segments(offset: number, length: number): Generator<Segment> {
    return blockSegments(offset, length, this.blockSize);
  }

  /** The file offset of block `block` (its bitmap), or -1 when stored nowhere; checked before use. */
  async blockStart(block: number): Promise<number> {
    const sector = await (this.bat as Bat).get(block);
    if (sector === UNALLOCATED) return -1;
    const start = sector * SECTOR;
    const L = this.layout;
    if (start < L.metadataEnd) {
      throw corrupt(this.filename, `BAT entry ${block} puts its block at offset ${start}, inside the header and BAT (which end at ${L.metadataEnd})`);
    }
    const used = Math.min(L.blockSize, L.virtualSize - block * L.blockSize);
    if (start + L.bitmapSize + used > this.file.size()) {
      throw new VdiskError('TRUNCATED', `${this.filename}: BAT entry ${block} puts its block at bytes ${start}..${start + L.bitmapSize + used}, past the end of the file (${this.file.size()} bytes)`);
    }
    return start;
  }

  private async bitmap(block: number, start: number): Promise<Buffer> {
    let b = this.bitmaps.get(block);
    if (!b) {
      b = Buffer.alloc(this.layout.bitmapSize);
      await this.file.readAt(b, start);
      if (this.bitmaps.size >= BITMAP_CACHE) this.bitmaps.delete(this.bitmaps.keys().next().value as number);
      this.bitmaps.set(block, b);
    }
    return b;
  }

  /**
   * Runs of sectors under [inBlock, inBlock+n) of one bitmap state: `here` when this file holds them.
   * Offsets are relative to the block; the first and last runs may begin or end inside a sector.
   */
  private sectorRuns(bitmap: Uint8Array, inBlock: number, n: number): { from: number; to: number; here: boolean }[] {
    const runs: { from: number; to: number; here: boolean }[] = [];
    const end = inBlock + n;
    for (let pos = inBlock; pos < end; ) {
      const here = bitSet(bitmap, Math.floor(pos / SECTOR));
      let s = Math.floor(pos / SECTOR) + 1;
      while (s * SECTOR < end && bitSet(bitmap, s) === here) s++;
      const to = Math.min(end, s * SECTOR);
      runs.push({ from: pos, to, here });
      pos = to;
    }
    return runs;
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    if (buf.length === 0) return;
    if (this.diskType === DISK_FIXED) {
      await this.file.readAt(buf, offset);
      return;
    }
    await Promise.all([...this.segments(offset, buf.length)].map((s) => this.readSegment(buf.subarray(s.done, s.done + s.n), s)));
  }

  private async readSegment(dst: Uint8Array, s: Segment): Promise<void> {
    const start = await this.blockStart(s.block);
    const pos = s.block * this.blockSize + s.inBlock;
    if (start < 0) {
      if (this.isDifferencing) await this.readParent(dst, pos);
      else dst.fill(0);
      return;
    }
    const data = start + this.layout.bitmapSize;
    if (!this.isDifferencing) {
      await this.file.readAt(dst, data + s.inBlock);
      return;
    }
    const bitmap = await this.bitmap(s.block, start);
    await Promise.all(this.sectorRuns(bitmap, s.inBlock, s.n).map((r) => {
      const part = dst.subarray(r.from - s.inBlock, r.to - s.inBlock);
      return r.here ? this.file.readAt(part, data + r.from) : this.readParent(part, pos - s.inBlock + r.from);
    }));
  }

  /** Reads the parent at `pos`; a parent shorter than the child reads as zeros past its end. */
  private async readParent(dst: Uint8Array, pos: number): Promise<void> {
    const parent = await this.openParent();
    const inside = Math.max(0, Math.min(dst.length, parent.virtualSize - pos));
    if (inside > 0) await parent.read(dst.subarray(0, inside), pos);
    dst.fill(0, inside);
  }

  /** The parent's locations as the locators store them (read once). */
  async parentLocations(): Promise<ParentLocation[]> {
    this.locations ??= this.layout.header ? await readLocators(this.file, this.layout.header) : [];
    return this.locations;
  }

  /** The parent, found through the locators and opened through the driver table, its UUID checked. */
  openParent(): Promise<DiskImage> {
    this.parent ??= (async () => {
      const header = this.layout.header;
      if (!this.isDifferencing || !header) throw corrupt(this.filename, 'not a differencing VHD');
      if (!this.ctx) throw new VdiskError('UNSUPPORTED', `${this.filename}: a differencing VHD opened without the driver table cannot open its parent`);
      const path = findParent(this.filename, header, await this.parentLocations());
      const parent = await this.ctx.openBacking(path);
      const problem = this.parentProblem(parent, path);
      if (problem) {
        await parent.close();
        throw corrupt(this.filename, problem);
      }
      return parent;
    })();
    return this.parent;
  }

  /** Why `parent` is not this child's parent (a VHD of another UUID), or null. */
  parentProblem(parent: DiskImage, path: string): string | null {
    const header = this.layout.header;
    if (header && parent instanceof VpcImage && parent.layout.footer.uuid !== header.parentUuid) {
      return `parent ${path} has UUID ${parent.layout.footer.uuid}, but this differencing image was made from ${header.parentUuid}`;
    }
    return null;
  }

  async backingImage(): Promise<DiskImage | null> {
    return this.isDifferencing ? this.openParent() : null;
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    if (length === 0) return [];
    if (this.diskType === DISK_FIXED) return [{ offset, length, state: 'data' }];
    const out: Extent[] = [];
    // A run of blocks this file does not store, asked of the parent in one call when it ends.
    let absent: { at: number; n: number } | null = null;
    const flushAbsent = async () => {
      if (!absent) return;
      const { at, n } = absent;
      absent = null;
      if (!this.isDifferencing) {
        out.push({ offset: at, length: n, state: 'unallocated' });
        return;
      }
      const parent = await this.openParent();
      const inside = Math.max(0, Math.min(n, parent.virtualSize - at));
      if (inside > 0) out.push(...(await parent.blockStatus(at, inside)));
      if (inside < n) out.push({ offset: at + inside, length: n - inside, state: 'unallocated' });
    };
    for (const s of this.segments(offset, length)) {
      const at = offset + s.done;
      if ((await this.blockStart(s.block)) < 0) {
        if (absent) (absent as { n: number }).n += s.n;
        else absent = { at, n: s.n };
        continue;
      }
      await flushAbsent();
      out.push({ offset: at, length: s.n, state: 'data' });
      // Merged as the list grows, so that it stays short.
      if (out.length > 4096) out.splice(0, out.length, ...mergeExtents(out));
    }
    await flushAbsent();
    return mergeExtents(out);
  }

  async mapping(offset: number, length: number): Promise<Mapping[]> {
    checkRange(this, offset, length);
    if (length === 0) return [];
    if (this.diskType === DISK_FIXED) return [{ offset, length, kind: 'data', fileOffset: offset }];
    const out: Mapping[] = [];
    const absent = this.isDifferencing ? 'backing' : 'unallocated';
    for (const s of this.segments(offset, length)) {
      const at = offset + s.done;
      const start = await this.blockStart(s.block);
      if (start < 0) {
        out.push({ offset: at, length: s.n, kind: absent });
        continue;
      }
      const data = start + this.layout.bitmapSize;
      if (!this.isDifferencing) {
        out.push({ offset: at, length: s.n, kind: 'data', fileOffset: data + s.inBlock });
        continue;
      }
      for (const r of this.sectorRuns(await this.bitmap(s.block, start), s.inBlock, s.n)) {
        const piece = { offset: at + r.from - s.inBlock, length: r.to - r.from };
        out.push(r.here ? { ...piece, kind: 'data', fileOffset: data + r.from } : { ...piece, kind: 'backing' });
      }
    }
    return out;
  }

  describe(): Promise<FormatDetails> {
    return vpcDetails(this);
  }

  /** Blocks with a BAT entry (dynamic and differencing disks). */
  async allocatedBlocks(): Promise<number> {
    let n = 0;
    await this.bat?.forEachAllocated(() => void n++);
    return n;
  }

  async write(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    if (this.file.mode !== 'rw') throw new VdiskError('IO', `${this.filename}: opened read-only`);
    if (buf.length === 0) return;
    if (this.diskType === DISK_FIXED) {
      await this.file.writeAt(buf, offset);
      return;
    }
    // One write at a time: two writes into one new block must not both allocate it, and a partial
    // sector's read-modify-write must not interleave with another write of that sector.
    const run = this.writeChain.then(() => this.writeLocked(buf, offset));
    this.writeChain = run.catch(() => undefined);
    return run;
  }

  private async writeLocked(buf: Uint8Array, offset: number): Promise<void> {
    const first = Math.floor(offset / SECTOR) * SECTOR;
    const end = Math.ceil((offset + buf.length) / SECTOR) * SECTOR;
    let data = buf;
    if (first !== offset || end !== offset + buf.length) {
      // VHD stores whole sectors (and a differencing bitmap marks whole ones): complete the first and
      // last sectors with what they hold now, the parent's bytes included.
      const whole = Buffer.alloc(end - first);
      await this.read(whole.subarray(0, SECTOR), first);
      if (end - SECTOR > first) await this.read(whole.subarray(whole.length - SECTOR), end - SECTOR);
      whole.set(buf, offset - first);
      data = whole;
    }
    for (const s of this.segments(first, data.length)) await this.writeSegment(data.subarray(s.done, s.done + s.n), s);
  }

  private async writeSegment(data: Uint8Array, s: Segment): Promise<void> {
    const start = await this.blockStart(s.block);
    if (start < 0) {
      await this.allocate(data, s);
      return;
    }
    const at = start + this.layout.bitmapSize;
    if (!this.isDifferencing) {
      await this.file.writeAt(data, at + s.inBlock);
      return;
    }
    const bitmap = await this.bitmap(s.block, start);
    const from = s.inBlock / SECTOR;
    const to = (s.inBlock + s.n) / SECTOR;
    let missing = false;
    for (let k = from; k < to && !missing; k++) missing = !bitSet(bitmap, k);
    await this.file.writeAt(data, at + s.inBlock);
    if (!missing) return;
    // The data is durable before the bitmap points readers at it: cut off between the two, the sectors
    // still read from the parent (their old content).
    await this.file.flush();
    const updated = Buffer.from(bitmap);
    for (let k = from; k < to; k++) updated[k >> 3] |= 0x80 >> (k & 7);
    const lo = Math.floor(from / 8 / SECTOR) * SECTOR;
    const hi = Math.ceil(Math.ceil(to / 8) / SECTOR) * SECTOR;
    await this.file.writeAt(updated.subarray(lo, hi), start + lo);
    updated.copy(bitmap);
  }

  /**
   * Adds block `s.block` at the end of the file holding `data`. The order makes every cut-off point
   * leave an image that opens and reads each sector old or new:
   *  1. the footer is written where the file will end (after the new block) and flushed: the old
   *     footer is still where it was and the new one is valid at the end, the block space between is
   *     a hole nobody references (a leak check reports);
   *  2. the block's bitmap (over the old footer) and data, then a flush: still referenced by nothing;
   *  3. the BAT entry (4 bytes, inside one sector), then a flush: the block is reachable, complete.
   * A dynamic disk's footer copy at offset 0 never changes. QEMU writes the bitmap before the footer
   * and is left for a moment without a trailing footer; this order never is.
   */
  private async allocate(data: Uint8Array, s: Segment): Promise<void> {
    const L = this.layout;
    const start = this.footerAt;
    const end = start + L.bitmapSize + L.blockSize;
    if (end / SECTOR > UNALLOCATED) throw new VdiskError('UNSUPPORTED', `${this.filename}: the file would grow past what a VHD BAT can address (2 TiB)`);
    const footer = serializeFooter(L.footer);
    await this.file.writeAt(footer, end);
    await this.file.flush();
    const bitmap = Buffer.alloc(L.bitmapSize);
    if (this.isDifferencing) {
      for (let k = s.inBlock / SECTOR; k < (s.inBlock + s.n) / SECTOR; k++) bitmap[k >> 3] |= 0x80 >> (k & 7);
    } else {
      // A dynamic block holds every sector (QEMU and Hyper-V set every bit too).
      bitmap.fill(0xff);
    }
    await this.file.writeAt(bitmap, start);
    await this.file.writeAt(data, start + L.bitmapSize + s.inBlock);
    await this.file.flush();
    await (this.bat as Bat).set(this.file, s.block, start / SECTOR);
    await this.file.flush();
    this.footerAt = end;
    if (this.isDifferencing) {
      if (this.bitmaps.size >= BITMAP_CACHE) this.bitmaps.delete(this.bitmaps.keys().next().value as number);
      this.bitmaps.set(s.block, bitmap);
    }
  }

  async flush(): Promise<void> {
    if (this.file.mode !== 'rw') return;
    await this.writeChain;
    await this.file.flush();
  }

  close(): Promise<void> {
    return closeWithParent(() => this.flush(), this.file, () => {
      const parent = this.parent;
      this.parent = null;
      return parent;
    });
  }
}
