import { stat } from 'node:fs/promises';
import { PositionalFile, readExact, type ByteSource, type OpenMode } from '../../io/file.js';
import { rangeIsZero, SPARSE_GRAIN } from '../../io/buffers.js';
import { lockFor } from '../../io/lock.js';
import { VdiskError, corrupt, unsupported } from '../../errors.js';
import type { CompactOptions, CompactResult, DiskImage, Extent, ExtentState, HostRange } from '../image.js';
import type { FormatDetails, Mapping } from '../driver.js';
import { MapClaims, vhdxMapping } from './mapping.js';
import { vhdxDetails } from './details.js';
import { mergeExtents } from '../image.js';
import { blockSegments, checkRange, closeWithParent, type BlockSegment } from '../image.js';
import { HEADER_SECTION_SIZE, LOG_SECTOR_SIZE, MiB, roundUp } from './constants.js';
import { ZERO_GUID, newGuid } from './guid.js';
import { findActiveSequence, type LogOperation, type ReplayPlan } from './log.js';
import { batSectorUpdates, batSectorsTouched } from './bat-update.js';
import { HeaderPair } from './header-pair.js';
import { entryCapacity, logTransaction, replayOnDisk } from './log-writer.js';
import { findParent, sameGuid } from './parent.js';
import { LogOverlay } from './log-overlay.js';
import { readHeaders, readLayout, replayFileLimit, validateLogFields, type VhdxLayout } from './layout.js';
import { BatTable } from './bat-table.js';
import { resizeVhdx } from './resize.js';
import { compactVhdx } from './compact.js';
import { commitChild, rebaseChild } from './chain.js';
import { awaitedLater } from '../../util/promises.js';
import {
  PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_UNMAPPED,
  PAYLOAD_UNMAPPED_V095, PAYLOAD_ZERO, SB_PRESENT, STATE_NAMES, bitmapEntryIndex, blockOfEntry, isBitmapEntry, payloadEntryIndex, type BatEntry,
} from './bat.js';

/** Memory for the bitmaps of blocks written sparsely in one session: 64 Mi pieces, 256 GiB. */
const FRESH_BUDGET = 8 * 1024 * 1024;

export type VhdxSubformat = 'dynamic' | 'fixed' | 'differencing';

/** Payload blocks first..first+count-1, all in BAT state `state`; stored ones from `fileOffset` on. */
export interface BlockRun {
  first: number;
  count: number;
  state: number;
  fileOffset: number;
}

export interface VhdxOpenOptions {
  mode?: OpenMode;
  /** Skip the image locks (qemu-img's -U): for this image and its parents. Look-only opens only. */
  forceShare?: boolean;
  /** Position in a differencing chain (internal). */
  depth?: number;
}

const MAX_CHAIN = 16;

/**
 * A VHDX image. Opened to look, a pending log is replayed in memory (the file is never touched) so
 * that every read shows the disk as it will be after replay.
 */
export class VhdxImage implements DiskImage {
  readonly format = 'vhdx' as const;
  readonly filename: string;
  readonly file: PositionalFile;
  /** The file as seen through the pending log, or the file itself. */
  readonly source: ByteSource;
  layout: VhdxLayout;
  readonly pendingLog: ReplayPlan | null;
  bat: BatTable;

  /** True when a read-write open found a pending log and replayed it on disk. */
  readonly replayedOnOpen: boolean;
  private readonly headerPair: HeaderPair | null;
  private session: Promise<void> | null = null;
  /** The parent of a differencing image, opened on first need. */
  private parent: Promise<DiskImage> | null = null;
  /** How deep this image sits in a chain, so a locator loop cannot recurse without end. */
  private depth = 0;
  /** Parents are opened without their shared lock too (-U). */
  forceShare = false;
  /** Opens the parent through the driver table (set by the driver); VhdxImage.open otherwise. */
  openBacking: ((path: string) => Promise<DiskImage>) | null = null;
  /** BAT changes made by writes and not yet committed through the log: entry index -> entry. */
  private readonly pendingBat = new Map<number, BatEntry>();
  private allocEnd = 0;
  /** Allocations under way: concurrent writes into one new block must share it, not allocate twice. */
  private readonly allocating = new Map<number, Promise<number>>();
  private growth: Promise<void> = Promise.resolve();
  /** Blocks allocated in this session, with a bit for each 4 KiB piece written since (see trackFresh). */
  private readonly fresh = new Map<number, Uint8Array>();
  private freshBytes = 0;
  /** Sector-bitmap sectors changed by writes into a child and not yet committed: file offset -> 4 KiB. */
  private readonly pendingBitmap = new Map<number, Buffer>();
  private childWrites: Promise<void> = Promise.resolve();

  private constructor(
    file: PositionalFile,
    source: ByteSource,
    layout: VhdxLayout,
    pendingLog: ReplayPlan | null,
    headerPair: HeaderPair | null,
    replayedOnOpen: boolean,
  ) {
    this.file = file;
    this.filename = file.path;
    this.source = source;
    this.layout = layout;
    this.pendingLog = pendingLog;
    this.headerPair = headerPair;
    this.replayedOnOpen = replayedOnOpen;
    this.bat = new BatTable(source, layout.bat.fileOffset, layout.geometry.totalEntries);
  }

  static async open(path: string, options: VhdxOpenOptions = {}): Promise<VhdxImage> {
    const mode = options.mode ?? 'r';
    const file = await PositionalFile.open(path, mode, { lock: lockFor(mode, options.forceShare) });
    try {
      const image = await VhdxImage.fromFile(file);
      image.depth = options.depth ?? 0;
      image.forceShare = options.forceShare ?? false;
      return image;
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  /**
   * Opened read-only, a pending log is laid over the file in memory; opened read-write, it is
   * replayed on disk first, as the format requires before anything else is written.
   */
  static async fromFile(file: PositionalFile): Promise<VhdxImage> {
    let choice = await readHeaders(file);
    validateLogFields(file.path, choice.header, file.size());
    let plan: ReplayPlan | null = null;
    let source: ByteSource = file;
    let replayed = false;
    const pair = file.mode === 'rw' ? new HeaderPair(file, choice.headers, choice.current) : null;
    if (choice.header.logGuid !== ZERO_GUID) {
      // Descriptors may touch the file up to a little past its end (the entry says how far); bound it by
      // the largest file this image can need, so that a hostile entry cannot make a replay write
      // terabytes or extend the file without limit.
      const limit = await replayFileLimit(file, choice);
      plan = (await findActiveSequence(file, choice.header.logOffset, choice.header.logLength, choice.header.logGuid, limit)).plan;
      if (plan && pair) {
        await replayOnDisk(file, pair, plan);
        choice = { ...choice, headers: pair.headers, current: pair.current, header: pair.header };
        plan = null;
        replayed = true;
      } else if (plan) {
        if (plan.head.header.flushedFileOffset > file.size()) {
          throw corrupt(
            file.path,
            `pending log says ${plan.head.header.flushedFileOffset} bytes were flushed but the file has ${file.size()}: the file was truncated and the log cannot be replayed`,
          );
        }
        source = new LogOverlay(file, plan);
      }
    }
    const layout = await readLayout(source, choice);
    if (plan?.warning) layout.warnings.push(plan.warning);
    return new VhdxImage(file, source, layout, plan, pair, replayed);
  }

  get virtualSize(): number {
    return this.layout.virtualSize;
  }

  get logicalSectorSize(): number {
    return this.layout.logicalSectorSize;
  }

  get blockSize(): number {
    return this.layout.params.blockSize;
  }

  get preferredChunk(): number {
    return Math.min(this.layout.params.blockSize, 8 * 1024 * 1024);
  }

  get subformat(): VhdxSubformat {
    if (this.layout.params.hasParent) return 'differencing';
    return this.layout.params.leaveBlocksAllocated ? 'fixed' : 'dynamic';
  }

  /** The BAT entry of payload block `block`, checked before anything is read through it. */
  async blockEntry(block: number): Promise<BatEntry> {
    const index = payloadEntryIndex(this.layout.geometry, block);
    const e = this.pendingBat.get(index) ?? (await this.bat.entry(index));
    if (e.state === PAYLOAD_FULLY_PRESENT || e.state === PAYLOAD_PARTIALLY_PRESENT) {
      if (e.fileOffset < HEADER_SECTION_SIZE) {
        throw corrupt(this.filename, `BAT entry ${index} (block ${block}) points into the header section (offset ${e.fileOffset})`);
      }
      if (e.fileOffset + this.blockSize > this.source.size()) {
        throw new VdiskError(
          'TRUNCATED',
          `${this.filename}: BAT entry ${index} (block ${block}) points to bytes ${e.fileOffset}..${e.fileOffset + this.blockSize}, past the end of the file (${this.source.size()} bytes)`,
        );
      }
    }
    return e;
  }

  /**
   * What payload block `block` in BAT state `state` holds, as this image alone says (a differencing
   * image's NOT_PRESENT defers to the parent); refuses invalid states.
   */
  stateOf(state: number, block: number): ExtentState {
    const index = payloadEntryIndex(this.layout.geometry, block);
    switch (state) {
      case PAYLOAD_FULLY_PRESENT:
        return 'data';
      case PAYLOAD_NOT_PRESENT:
        return 'unallocated';
      case PAYLOAD_UNDEFINED:
      case PAYLOAD_ZERO:
      case PAYLOAD_UNMAPPED:
      case PAYLOAD_UNMAPPED_V095:
        return 'zero';
      case PAYLOAD_PARTIALLY_PRESENT:
        if (this.layout.params.hasParent) return 'data';
        throw corrupt(this.filename, `BAT entry ${index} is PARTIALLY_PRESENT in an image without a parent`);
      default:
        throw corrupt(this.filename, `BAT entry ${index} has invalid state ${state} (${STATE_NAMES[state]})`);
    }
  }

  /** The pieces of [offset, offset+length) that fall in one block each. */
  private segments(offset: number, length: number): Generator<BlockSegment> {
    return blockSegments(offset, length, this.blockSize);
  }

  /** Reads sector-bitmap bytes at file offset `at`, as the bitmap sectors changed in this session say. */
  private async readBitmap(bits: Buffer, at: number): Promise<void> {
    await this.source.readAt(bits, at);
    if (this.pendingBitmap.size === 0) return;
    const first = Math.floor(at / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE;
    for (let s = first; s < at + bits.length; s += LOG_SECTOR_SIZE) {
      const sector = this.pendingBitmap.get(s);
      if (!sector) continue;
      const from = Math.max(s, at);
      const to = Math.min(s + LOG_SECTOR_SIZE, at + bits.length);
      sector.copy(bits, from - at, from - s, to - s);
    }
  }

  /**
   * The parent named by the locator, checked to be the image the child was made from (its
   * DataWriteGuid must equal parent_linkage) and of the same size.
   */
  openParent(): Promise<DiskImage> {
    this.parent ??= (async () => {
      const locator = this.layout.parentLocator;
      if (!locator) throw corrupt(this.filename, 'differencing image without a parent locator');
      if (this.depth >= MAX_CHAIN) throw corrupt(this.filename, `differencing chain deeper than ${MAX_CHAIN} images (a loop?)`);
      const path = findParent(this.filename, locator);
      // A parent is only read, by writers of the child too: a shared lock keeps writers out of it.
      const opened = this.openBacking
        ? await this.openBacking(path)
        : await VhdxImage.open(path, { depth: this.depth + 1, forceShare: this.forceShare });
      if (!(opened instanceof VhdxImage)) {
        await opened.close();
        throw corrupt(this.filename, `parent ${path} is not a VHDX image`);
      }
      const parent = opened;
      const problem = this.parentProblem(parent, path);
      if (problem) {
        await parent.close();
        throw corrupt(this.filename, problem);
      }
      return parent;
    })();
    return this.parent;
  }

  /**
   * Why `parent` is not this child's parent, or null: its DataWriteGuid must be parent_linkage (or
   * parent_linkage2, which a commit sets while it changes the parent) and its size this image's.
   */
  parentProblem(parent: VhdxImage, path: string): string | null {
    const entries = this.layout.parentLocator?.entries ?? {};
    const guid = parent.layout.header.dataWriteGuid;
    const linked = [entries.parent_linkage, entries.parent_linkage2].filter((l) => l !== undefined);
    if (linked.length > 0 && !linked.some((l) => sameGuid(l, guid))) {
      return `parent ${path} has changed since this image was made (parent_linkage ${entries.parent_linkage}, parent DataWriteGuid {${guid}})`;
    }
    if (parent.virtualSize !== this.virtualSize) return `parent ${path} is ${parent.virtualSize} bytes, this image ${this.virtualSize}`;
    return null;
  }

  /** The parent file the locator names (resolved on this host), for commit and rebase. */
  parentPath(): string {
    const locator = this.layout.parentLocator;
    if (!locator) throw new VdiskError('USAGE', `${this.filename}: not a differencing image (it has no parent)`);
    return findParent(this.filename, locator);
  }

  /** Reads through `parent` (opened by the caller, read-write for a commit) instead of opening one. */
  useParent(parent: VhdxImage): void {
    const problem = this.parentProblem(parent, parent.filename);
    if (problem) throw corrupt(this.filename, problem);
    this.parent = Promise.resolve(parent);
  }

  /** The DataWriteGuid the next write session gives this image (a commit announces it to the child first). */
  nextDataWriteGuid: string | null = null;

  /** The header pair, for changes made by the chain operations (null when opened read-only). */
  get writer(): HeaderPair | null {
    return this.headerPair;
  }

  async backingImage(): Promise<DiskImage | null> {
    return this.layout.params.hasParent ? this.openParent() : null;
  }

  describe(): Promise<FormatDetails> {
    return vhdxDetails(this);
  }

  private readonly mapClaims = new MapClaims();

  mapping(offset: number, length: number): Promise<Mapping[]> {
    checkRange(this, offset, length);
    return vhdxMapping(this, offset, length, this.mapClaims.at(this, offset, length));
  }

  /** Reads part of a PARTIALLY_PRESENT block: sector by sector from here or the parent, per the bitmap. */
  private async readPartial(part: Uint8Array, block: number, inBlock: number, e: BatEntry, pos: number): Promise<void> {
    const parent = await this.openParent();
    for (const run of await this.sectorRuns(block, inBlock, part.length)) {
      const piece = part.subarray(run.from, run.to);
      if (run.here) await this.source.readAt(piece, e.fileOffset + inBlock + run.from);
      else await parent.read(piece, pos + run.from);
    }
  }

  /**
   * Which bytes of [inBlock, inBlock+length) of a PARTIALLY_PRESENT block this file holds (`here`) and
   * which come from the parent, by the chunk's sector bitmap, as runs relative to inBlock. Without a
   * sector bitmap block every sector comes from the parent.
   */
  async sectorRuns(block: number, inBlock: number, length: number): Promise<{ from: number; to: number; here: boolean }[]> {
    const g = this.layout.geometry;
    const lss = this.layout.logicalSectorSize;
    const chunk = Math.floor(block / g.chunkRatio);
    const sbIndex = bitmapEntryIndex(g, chunk);
    const sb = this.pendingBat.get(sbIndex) ?? (await this.bat.entry(sbIndex));
    if (sb.state !== SB_PRESENT) return [{ from: 0, to: length, here: false }];
    if (sb.fileOffset < HEADER_SECTION_SIZE || sb.fileOffset + MiB > this.source.size()) {
      throw corrupt(this.filename, `sector bitmap of chunk ${chunk} points to ${sb.fileOffset}, outside the file`);
    }
    // Bit j of the chunk's bitmap stands for logical sector j of the chunk.
    const base = (block % g.chunkRatio) * (this.blockSize / lss);
    const s0 = Math.floor(inBlock / lss);
    const s1 = Math.floor((inBlock + length - 1) / lss);
    const firstByte = (base + s0) >> 3;
    const bits = Buffer.alloc(((base + s1) >> 3) - firstByte + 1);
    await this.readBitmap(bits, sb.fileOffset + firstByte);
    const mine = (s: number) => (bits[((base + s) >> 3) - firstByte] >> ((base + s) & 7)) & 1;
    const runs: { from: number; to: number; here: boolean }[] = [];
    for (let s = s0; s <= s1; ) {
      const here = mine(s);
      let t = s;
      while (t + 1 <= s1 && mine(t + 1) === here) t++;
      // Sectors s..t come from one place; clipped to the requested bytes.
      runs.push({ from: Math.max(inBlock, s * lss) - inBlock, to: Math.min(inBlock + length, (t + 1) * lss) - inBlock, here: here === 1 });
      s = t + 1;
    }
    return runs;
  }

  /**
   * Where a range lies in the file, when it lies in one stored block (FULLY_PRESENT) whose BAT page is
   * already read. Never while a log is replayed in memory (its entries may rewrite data the file still
   * holds the old way) or during a write session; a block whose entry is out of bounds is left to
   * `read`, which words the error.
   */
  hostRange(offset: number, length: number): HostRange | null {
    if (this.source !== this.file || this.pendingBat.size > 0 || this.allocating.size > 0) return null;
    if (offset < 0 || length <= 0 || offset + length > this.virtualSize) return null;
    const bs = this.blockSize;
    const block = Math.floor(offset / bs);
    if (Math.floor((offset + length - 1) / bs) !== block) return null;
    const e = this.bat.entryNow(payloadEntryIndex(this.layout.geometry, block));
    if (!e || e.state !== PAYLOAD_FULLY_PRESENT || e.fileOffset < HEADER_SECTION_SIZE || e.fileOffset + bs > this.file.size()) return null;
    return { fd: this.file.fd, position: e.fileOffset + (offset - block * bs) };
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    const hasParent = this.layout.params.hasParent;
    const pending: Promise<unknown>[] = [];
    for (const { block, inBlock, done, n } of this.segments(offset, buf.length)) {
      const e = await this.blockEntry(block);
      const part = buf.subarray(done, done + n);
      if (hasParent && e.state === PAYLOAD_NOT_PRESENT) {
        pending.push(awaitedLater(this.openParent().then((p) => p.read(part, offset + done))));
      } else if (hasParent && e.state === PAYLOAD_PARTIALLY_PRESENT) {
        pending.push(awaitedLater(this.readPartial(part, block, inBlock, e, offset + done)));
      } else if (this.stateOf(e.state, block) === 'data') {
        pending.push(awaitedLater(this.source.readAt(part, e.fileOffset + inBlock)));
      } else {
        part.fill(0);
      }
    }
    await Promise.all(pending);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    if (length === 0) return [];
    const out: Extent[] = [];
    for (const run of await this.blockRuns(offset, length)) {
      const at = Math.max(offset, run.first * this.blockSize);
      const n = Math.min(offset + length, (run.first + run.count) * this.blockSize) - at;
      if (this.layout.params.hasParent && run.state === PAYLOAD_NOT_PRESENT) {
        out.push(...(await (await this.openParent()).blockStatus(at, n))); // what the parent holds there
      } else {
        out.push({ offset: at, length: n, state: this.stateOf(run.state, run.first) });
      }
    }
    return mergeExtents(out);
  }

  /**
   * The payload blocks under [offset, offset+length) as runs of one BAT state; a run of stored blocks
   * (FULLY_PRESENT) also lies back to back in the file from `fileOffset`, and a PARTIALLY_PRESENT run
   * is one block. Read by a walk of the BAT's entries with runs of empty entries taken whole, so that
   * a 64 TiB map costs a look at its block table, not a million awaits; during a write session
   * (allocations not yet in the BAT) block by block, through the pending entries.
   */
  async blockRuns(offset: number, length: number): Promise<BlockRun[]> {
    const g = this.layout.geometry;
    const bs = this.blockSize;
    const b0 = Math.floor(offset / bs);
    const b1 = Math.min(g.dataBlocks, Math.ceil((offset + length) / bs));
    const runs: BlockRun[] = [];
    const add = (first: number, count: number, state: number, fileOffset: number) => {
      const lo = Math.max(first, b0);
      const hi = Math.min(first + count, b1);
      if (hi <= lo) return;
      const at = fileOffset + (lo - first) * bs;
      const last = runs[runs.length - 1];
      const joins =
        last && last.first + last.count === lo && last.state === state && state !== PAYLOAD_PARTIALLY_PRESENT &&
        (state !== PAYLOAD_FULLY_PRESENT || last.fileOffset + last.count * bs === at);
      if (joins) last.count += hi - lo;
      else runs.push({ first: lo, count: hi - lo, state, fileOffset: at });
    };
    if (this.pendingBat.size > 0 || this.allocating.size > 0) {
      for (let b = b0; b < b1; b++) {
        const alloc = this.allocating.get(payloadEntryIndex(g, b));
        const e = alloc ? { state: PAYLOAD_FULLY_PRESENT, fileOffset: await alloc } : await this.blockEntry(b);
        add(b, 1, e.state, e.fileOffset);
      }
      return runs;
    }
    await this.bat.scan(
      (i, e) => {
        if (!isBitmapEntry(g, i)) add(blockOfEntry(g, i), 1, e.state, e.fileOffset);
      },
      (first, count) => add(blockOfEntry(g, first), blockOfEntry(g, first + count) - blockOfEntry(g, first), PAYLOAD_NOT_PRESENT, 0),
      undefined,
      { from: payloadEntryIndex(g, b0), to: payloadEntryIndex(g, b1 - 1) + 1 },
    );
    return runs;
  }

  /** Counts payload blocks by state, streaming the BAT. */
  async blockCounts(): Promise<Record<string, number>> {
    const g = this.layout.geometry;
    const counts: Record<string, number> = {};
    // Payload entries below BAT index n; with a parent the last chunk is padded past the last block.
    const payloadBefore = (n: number) => Math.min(g.dataBlocks, blockOfEntry(g, n));
    await this.bat.scan(
      (i, e) => {
        if (isBitmapEntry(g, i) || blockOfEntry(g, i) >= g.dataBlocks) return; // bitmap entry, or padding
        const name = STATE_NAMES[e.state];
        counts[name] = (counts[name] ?? 0) + 1;
      },
      (first, count) => {
        const blocks = payloadBefore(first + count) - payloadBefore(first);
        if (blocks > 0) counts.NOT_PRESENT = (counts.NOT_PRESENT ?? 0) + blocks;
      },
    );
    return counts;
  }

  async allocatedFileBytes(): Promise<number> {
    const st = await stat(this.filename);
    return st.blocks * 512;
  }

  /**
   * Writes at a virtual offset. Present blocks are written in place; others get a new block at the
   * 1 MiB-aligned end of the file (zeros around the data). The BAT entries that make new blocks
   * reachable are committed through the log by flush() or close(), after the data is durable, and
   * earlier when one log entry's worth has accumulated.
   */
  async write(buf: Uint8Array, offset: number): Promise<void> {
    if (!this.headerPair) throw new VdiskError('IO', `${this.filename}: opened read-only`);
    checkRange(this, offset, buf.length);
    await this.beginSession();
    if (this.layout.params.hasParent) {
      // One at a time: a child's write reads sectors and bitmaps that a concurrent one may be changing.
      const next = this.childWrites.then(() => this.writeChild(buf, offset));
      this.childWrites = next.catch(() => undefined);
      await next;
      if (batSectorsTouched(this.pendingBat.keys()) + this.pendingBitmap.size >= entryCapacity(this.layout.header.logLength)) await this.commitPending();
      return;
    }
    const g = this.layout.geometry;
    const writes: Promise<void>[] = [];
    for (const { block, inBlock, done, n } of this.segments(offset, buf.length)) {
      const index = payloadEntryIndex(g, block);
      const part = buf.subarray(done, done + n);
      // Decide only after the last await: another write may have allocated this block meanwhile.
      const committed = this.pendingBat.has(index) || this.allocating.has(index) ? null : await this.blockEntry(block);
      const e = this.pendingBat.get(index) ?? (this.allocating.has(index) ? null : committed);
      if (e && this.stateOf(e.state, block) === 'data') {
        writes.push(awaitedLater(this.writeInBlock(index, part, e.fileOffset, inBlock)));
      } else {
        let alloc = this.allocating.get(index);
        if (!alloc) {
          alloc = this.allocateBlock().then((at) => {
            this.pendingBat.set(index, { state: PAYLOAD_FULLY_PRESENT, reserved: 0, fileOffset: at });
            this.allocating.delete(index);
            return at;
          });
          this.allocating.set(index, alloc);
          this.trackFresh(index);
        }
        writes.push(awaitedLater(alloc.then((at) => this.writeInBlock(index, part, at, inBlock))));
      }
    }
    await Promise.all(writes);
    if (batSectorsTouched(this.pendingBat.keys()) >= entryCapacity(this.layout.header.logLength)) await this.commitPending();
  }

  /**
   * A write into a differencing image. The parent is never touched: a block the child does not hold
   * gets a new block, PARTIALLY_PRESENT, whose sector-bitmap bits say which sectors are the child's
   * (a block written whole is FULLY_PRESENT at once). A write that starts or ends inside a logical
   * sector is widened to whole sectors with what the chain holds there, since a bit covers a sector.
   * Data lands first; the bits and BAT entries that make it visible are committed through the log.
   */
  private async writeChild(buf: Uint8Array, offset: number): Promise<void> {
    const lss = this.logicalSectorSize;
    const a0 = Math.floor(offset / lss) * lss;
    const a1 = Math.ceil((offset + buf.length) / lss) * lss;
    let data = buf;
    if (a0 !== offset || a1 !== offset + buf.length) {
      const wide = Buffer.alloc(a1 - a0);
      await this.read(wide.subarray(0, lss), a0);
      await this.read(wide.subarray(wide.length - lss), a1 - lss);
      wide.set(buf, offset - a0);
      data = wide;
    }
    const g = this.layout.geometry;
    for (const { block, inBlock, done, n } of this.segments(a0, data.length)) {
      const index = payloadEntryIndex(g, block);
      const part = data.subarray(done, done + n);
      const e = await this.blockEntry(block);
      if (e.state === PAYLOAD_FULLY_PRESENT) {
        await this.writeInBlock(index, part, e.fileOffset, inBlock);
      } else if (e.state === PAYLOAD_PARTIALLY_PRESENT) {
        await this.writeInBlock(index, part, e.fileOffset, inBlock);
        await this.markSectors(block, inBlock, n);
      } else {
        // NOT_PRESENT defers to the parent, sector by sector; ZERO and the like read as zeros, which
        // a new block's holes already are.
        const whole = inBlock === 0 && n === this.blockSize;
        const partial = e.state === PAYLOAD_NOT_PRESENT && !whole;
        const at = await this.allocateBlock();
        this.pendingBat.set(index, { state: partial ? PAYLOAD_PARTIALLY_PRESENT : PAYLOAD_FULLY_PRESENT, reserved: 0, fileOffset: at });
        this.trackFresh(index);
        await this.writeInBlock(index, part, at, inBlock);
        // Bits another writer left for a block it then dropped must not claim the new block's holes.
        if (partial) await this.markSectors(block, inBlock, n, true);
      }
    }
  }

  /** Sets the bitmap bits of sectors [inBlock, inBlock+n) of `block`, making the chunk's bitmap block first if needed. */
  private async markSectors(block: number, inBlock: number, n: number, clearBlock = false): Promise<void> {
    const g = this.layout.geometry;
    const lss = this.logicalSectorSize;
    const sbIndex = bitmapEntryIndex(g, Math.floor(block / g.chunkRatio));
    let sb = this.pendingBat.get(sbIndex) ?? (await this.bat.entry(sbIndex));
    if (sb.state !== SB_PRESENT) {
      sb = { state: SB_PRESENT, reserved: 0, fileOffset: await this.allocate(MiB) };
      this.pendingBat.set(sbIndex, sb);
    }
    const base = (block % g.chunkRatio) * (this.blockSize / lss);
    if (clearBlock) await this.setBits(sb.fileOffset, base, base + this.blockSize / lss, false);
    await this.setBits(sb.fileOffset, base + inBlock / lss, base + (inBlock + n) / lss, true);
  }

  /** Sets (or clears) bits [first, last) of the bitmap block at `sbAt`, in the session's pending sectors. */
  private async setBits(sbAt: number, first: number, last: number, value: boolean): Promise<void> {
    const bitsPerSector = LOG_SECTOR_SIZE * 8;
    const sb = { fileOffset: sbAt };
    for (let bit = first; bit < last; ) {
      const sectorAt = sb.fileOffset + Math.floor(bit / bitsPerSector) * LOG_SECTOR_SIZE;
      let sector = this.pendingBitmap.get(sectorAt);
      if (!sector) {
        sector = await readExact(this.source, sectorAt, LOG_SECTOR_SIZE, 'sector bitmap');
        this.pendingBitmap.set(sectorAt, sector);
      }
      const end = Math.min(last, (Math.floor(bit / bitsPerSector) + 1) * bitsPerSector);
      for (; bit < end; bit++) {
        const b = bit % bitsPerSector;
        if ((b & 7) === 0 && bit + 8 <= end) {
          sector[b >> 3] = value ? 0xff : 0;
          bit += 7;
        } else if (value) sector[b >> 3] |= 1 << (b & 7);
        else sector[b >> 3] &= ~(1 << (b & 7));
      }
    }
  }

  /**
   * Starts tracking a block this session allocated: it is holes, which read as zeros, so zeros written
   * into 4 KiB pieces nothing has written yet may stay holes (qemu-img's sparse output, for every
   * writer: convert, write, a library user). One bit per piece, within a memory budget; blocks past
   * it are written in full.
   */
  private trackFresh(index: number): void {
    const bytes = Math.ceil(this.blockSize / SPARSE_GRAIN / 8);
    if (this.freshBytes + bytes > FRESH_BUDGET) return;
    this.fresh.set(index, new Uint8Array(bytes));
    this.freshBytes += bytes;
  }

  /** Writes `part` at `inBlock` of the block stored at `at`, leaving zeros out where they are holes still. */
  private async writeInBlock(index: number, part: Uint8Array, at: number, inBlock: number): Promise<void> {
    const written = this.fresh.get(index);
    if (!written) return this.file.writeAt(part, at + inBlock);
    const runs: [number, number][] = [];
    for (let p = 0; p < part.length; ) {
      const grain = Math.floor((inBlock + p) / SPARSE_GRAIN);
      const end = Math.min(part.length, (grain + 1) * SPARSE_GRAIN - inBlock);
      const bit = 1 << (grain & 7);
      if (written[grain >> 3] & bit || !rangeIsZero(part, p, end)) {
        written[grain >> 3] |= bit;
        const last = runs[runs.length - 1];
        if (last && last[1] === p) last[1] = end;
        else runs.push([p, end]);
      }
      p = end;
    }
    await Promise.all(runs.map(([a, b]) => this.file.writeAt(part.subarray(a, b), at + inBlock + a)));
  }

  /** Commits pending metadata through the log and makes everything written so far durable. */
  async flush(): Promise<void> {
    if (!this.headerPair) return;
    await this.commitPending();
    await this.file.flush();
  }

  /** Once per session, however many writes arrive together: concurrent starts would reuse offsets. */
  private beginSession(): Promise<void> {
    this.session ??= (async () => {
      const pair = this.headerPair as HeaderPair;
      // New FileWriteGuid before the first write of the session, new DataWriteGuid before the first
      // change a reader could see: both are about to happen.
      await pair.update({ fileWriteGuid: newGuid(), dataWriteGuid: this.nextDataWriteGuid ?? newGuid() });
      this.layout.header = pair.header;
      this.allocEnd = roundUp(this.file.size(), MiB);
    })();
    return this.session;
  }

  private allocateBlock(): Promise<number> {
    return this.allocate(this.blockSize);
  }

  /** `size` bytes of new space at the MiB-aligned end of the file (a payload or sector-bitmap block). */
  private async allocate(size: number): Promise<number> {
    const at = Math.max(this.allocEnd, roundUp(this.file.size(), MiB));
    this.allocEnd = at + size;
    // The whole block exists at once, as holes: unwritten parts read as zeros. Growth is serialized:
    // two ftruncate calls in flight could land in either order and shrink the file under a block.
    this.growth = this.growth.then(async () => {
      if (this.allocEnd > this.file.size()) await this.file.truncate(this.allocEnd);
    });
    await this.growth;
    return at;
  }

  private async commitPending(): Promise<void> {
    const pair = this.headerPair;
    if (!pair || (this.pendingBat.size === 0 && this.pendingBitmap.size === 0)) return;
    await this.file.flush(); // payload first: the log must never make unwritten data reachable
    // Bitmap sectors first: set bits of a block not yet PARTIALLY_PRESENT are not looked at, and a
    // block PARTIALLY_PRESENT before its bits reads its sectors from the parent (old content).
    const bitmapOps: LogOperation[] = [...this.pendingBitmap].sort((a, b) => a[0] - b[0]).map(([fileOffset, data]) => ({ kind: 'data', fileOffset, data }));
    const ops = bitmapOps.concat(await batSectorUpdates(this.file, this.layout.bat.fileOffset, this.pendingBat));
    const capacity = entryCapacity(pair.header.logLength);
    for (let i = 0; i < ops.length; i += capacity) await logTransaction(this.file, pair, ops.slice(i, i + capacity));
    this.layout.header = pair.header;
    this.pendingBat.clear();
    this.pendingBitmap.clear();
    this.bat.invalidate();
  }

  /**
   * Changes the virtual size (see resizeVhdx), after committing pending writes; the image reads at
   * its new size afterwards. A differencing image has its parent's size and is refused.
   */
  async resize(newSize: number): Promise<void> {
    if (!this.headerPair) throw new VdiskError('IO', `${this.filename}: opened read-only`);
    if (this.layout.params.hasParent) throw unsupported(this.filename, 'resizing a differencing image (it has its parent\'s size; resize the parent and make a new child)');
    await this.flush();
    await resizeVhdx(this.file, this.headerPair, this.layout, newSize);
    await this.reload();
  }

  /** See DiskImage.commit and commitChild: the parent is opened read-write here, for the merge only. */
  async commit(options: { keepChild?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<{ parent: string; bytes: number }> {
    if (!this.headerPair) throw new VdiskError('IO', `${this.filename}: opened read-only`);
    if (!this.layout.params.hasParent) throw new VdiskError('USAGE', `${this.filename}: not a differencing image; there is no parent to commit into`);
    await this.flush();
    await this.dropParent();
    const path = this.parentPath();
    const parent = await VhdxImage.open(path, { mode: 'rw', depth: this.depth + 1 });
    try {
      const bytes = await commitChild(this, parent, options.keepChild ?? false, options.onProgress);
      return { parent: path, bytes };
    } finally {
      this.parent = null;
      await parent.close();
    }
  }

  /** See DiskImage.rebase and rebaseChild. */
  async rebase(newParent: DiskImage, newParentPath: string, options: { unsafe?: boolean; onProgress?: (done: number, total: number) => void } = {}): Promise<void> {
    if (!this.headerPair) throw new VdiskError('IO', `${this.filename}: opened read-only`);
    if (!this.layout.params.hasParent) throw new VdiskError('USAGE', `${this.filename}: not a differencing image; vdisk cannot give a VHDX a parent it was made without`);
    await this.flush();
    await rebaseChild(this, newParent, newParentPath, options.unsafe ?? false, options.onProgress);
  }

  /** Closes the parent opened for reads (its shared lock would keep a read-write open out). */
  private async dropParent(): Promise<void> {
    const parent = this.parent;
    this.parent = null;
    if (parent) await parent.then((p) => p.close(), () => undefined);
  }

  /** See DiskImage.compact and compactVhdx; pending writes are committed first. */
  async compact(options: CompactOptions): Promise<CompactResult> {
    await this.flush();
    const result = await compactVhdx(this.file, this.source, this.headerPair, this.layout, this.bat, options);
    if (!options.dryRun) await this.reload();
    return result;
  }

  /** Reads the structures again after a change made outside the write path (resize, compact). */
  async reload(): Promise<void> {
    const pair = this.headerPair as HeaderPair;
    this.layout = await readLayout(this.file, { headers: pair.headers, problems: [null, null], current: pair.current, header: pair.header });
    this.bat = new BatTable(this.file, this.layout.bat.fileOffset, this.layout.geometry.totalEntries);
    this.allocEnd = 0;
  }

  close(): Promise<void> {
    return closeWithParent(() => this.flush(), this.file, () => {
      const parent = this.parent;
      this.parent = null;
      return parent;
    });
  }
}

