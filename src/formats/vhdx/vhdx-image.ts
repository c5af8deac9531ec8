import { stat } from 'node:fs/promises';
import { PositionalFile, type ByteSource, type OpenMode } from '../../io/file.js';
import { VdiskError, corrupt, unsupported } from '../../errors.js';
import type { DiskImage, Extent, ExtentState } from '../image.js';
import { mergeExtents } from '../image.js';
import { checkRange } from '../raw.js';
import { HEADER_SECTION_SIZE } from './constants.js';
import { ZERO_GUID } from './guid.js';
import { findActiveSequence, type ReplayPlan } from './log.js';
import { LogOverlay } from './log-overlay.js';
import { readHeaders, readLayout, validateLogFields, type VhdxLayout } from './layout.js';
import { BatTable } from './bat-table.js';
import {
  PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_UNDEFINED, PAYLOAD_UNMAPPED,
  PAYLOAD_UNMAPPED_V095, PAYLOAD_ZERO, STATE_NAMES, payloadEntryIndex, type BatEntry,
} from './bat.js';

export type VhdxSubformat = 'dynamic' | 'fixed' | 'differencing';

export interface VhdxOpenOptions {
  mode?: OpenMode;
}

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
  readonly layout: VhdxLayout;
  readonly pendingLog: ReplayPlan | null;
  readonly bat: BatTable;

  private constructor(file: PositionalFile, source: ByteSource, layout: VhdxLayout, pendingLog: ReplayPlan | null) {
    this.file = file;
    this.filename = file.path;
    this.source = source;
    this.layout = layout;
    this.pendingLog = pendingLog;
    this.bat = new BatTable(source, layout.bat.fileOffset, layout.geometry.totalEntries);
  }

  static async open(path: string, options: VhdxOpenOptions = {}): Promise<VhdxImage> {
    const mode = options.mode ?? 'r';
    if (mode !== 'r') throw new VdiskError('UNSUPPORTED', `${path}: opening a VHDX image for writing is not available yet`);
    const file = await PositionalFile.open(path, 'r');
    try {
      return await VhdxImage.fromFile(file);
    } catch (err) {
      await file.close();
      throw err;
    }
  }

  static async fromFile(file: PositionalFile): Promise<VhdxImage> {
    const choice = await readHeaders(file);
    validateLogFields(file.path, choice.header, file.size());
    let plan: ReplayPlan | null = null;
    let source: ByteSource = file;
    if (choice.header.logGuid !== ZERO_GUID) {
      // Descriptors may touch the file up to a little past its end (the entry says how far); bound it by
      // the largest file a 64 TiB disk can need so a hostile entry cannot grow the overlay without limit.
      const limit = Math.max(file.size(), 2 ** 47);
      plan = await findActiveSequence(file, choice.header.logOffset, choice.header.logLength, choice.header.logGuid, limit);
      if (plan) {
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
    return new VhdxImage(file, source, layout, plan);
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
    const e = await this.bat.entry(index);
    if (e.state === PAYLOAD_FULLY_PRESENT || e.state === PAYLOAD_PARTIALLY_PRESENT) {
      if (e.fileOffset < HEADER_SECTION_SIZE) {
        throw corrupt(this.filename, `BAT entry ${index} (block ${block}) points into the header section (offset ${e.fileOffset})`);
      }
      if (e.fileOffset + this.blockSize > this.source.size()) {
        throw new VdiskError(
          'TRUNCATED',
          `${this.filename}: BAT entry ${index} (block ${block}) points to offset ${e.fileOffset}, past the end of the file (${this.source.size()} bytes)`,
        );
      }
    }
    return e;
  }

  private stateOf(e: BatEntry, index: number): ExtentState {
    switch (e.state) {
      case PAYLOAD_FULLY_PRESENT:
        return 'data';
      case PAYLOAD_NOT_PRESENT:
        return this.layout.params.hasParent ? 'unallocated' : 'unallocated';
      case PAYLOAD_UNDEFINED:
      case PAYLOAD_ZERO:
      case PAYLOAD_UNMAPPED:
      case PAYLOAD_UNMAPPED_V095:
        return 'zero';
      case PAYLOAD_PARTIALLY_PRESENT:
        if (this.layout.params.hasParent) {
          throw unsupported(this.filename, 'reading a differencing image needs its parent, which is not supported yet');
        }
        throw corrupt(this.filename, `BAT entry ${index} is PARTIALLY_PRESENT in an image without a parent`);
      default:
        throw corrupt(this.filename, `BAT entry ${index} has invalid state ${e.state} (${STATE_NAMES[e.state]})`);
    }
  }

  async read(buf: Uint8Array, offset: number): Promise<void> {
    checkRange(this, offset, buf.length);
    if (this.layout.params.hasParent) {
      throw unsupported(this.filename, 'reading a differencing image needs its parent, which is not supported yet');
    }
    const bs = this.blockSize;
    const pending: Promise<number>[] = [];
    let done = 0;
    while (done < buf.length) {
      const pos = offset + done;
      const block = Math.floor(pos / bs);
      const inBlock = pos - block * bs;
      const n = Math.min(bs - inBlock, buf.length - done);
      const e = await this.blockEntry(block);
      const part = buf.subarray(done, done + n);
      if (this.stateOf(e, payloadEntryIndex(this.layout.geometry, block)) === 'data') {
        pending.push(this.source.readAt(part, e.fileOffset + inBlock));
      } else {
        part.fill(0);
      }
      done += n;
    }
    await Promise.all(pending);
  }

  async blockStatus(offset: number, length: number): Promise<Extent[]> {
    checkRange(this, offset, length);
    const bs = this.blockSize;
    const out: Extent[] = [];
    let pos = offset;
    const end = offset + length;
    while (pos < end) {
      const block = Math.floor(pos / bs);
      const n = Math.min((block + 1) * bs, end) - pos;
      const e = await this.blockEntry(block);
      out.push({ offset: pos, length: n, state: this.stateOf(e, payloadEntryIndex(this.layout.geometry, block)) });
      pos += n;
    }
    return mergeExtents(out);
  }

  /** Counts payload blocks by state, streaming the BAT. */
  async blockCounts(): Promise<Record<string, number>> {
    const g = this.layout.geometry;
    const counts: Record<string, number> = {};
    await this.bat.scan((i, e) => {
      if (i % (g.chunkRatio + 1) === g.chunkRatio) return; // sector-bitmap entry
      const name = STATE_NAMES[e.state];
      counts[name] = (counts[name] ?? 0) + 1;
    });
    return counts;
  }

  async allocatedFileBytes(): Promise<number> {
    const st = await stat(this.filename);
    return st.blocks * 512;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
