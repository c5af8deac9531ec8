import type { ByteSource, PositionalFile } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import type { CompactOptions, CompactResult } from '../image.js';
import { HEADER_SECTION_SIZE, MiB, roundUp } from './constants.js';
import { PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_ZERO, blockOfEntry, isBitmapEntry } from './bat.js';
import type { BatTable } from './bat-table.js';
import type { HeaderPair } from './header-pair.js';
import type { VhdxLayout } from './layout.js';
import { batSectorUpdates } from './bat-update.js';
import { LogSession, entryCapacity } from './log-writer.js';
import { moveBlocks, type BlockMove } from './block-move.js';
import { newGuid } from './guid.js';

/** A stored payload block: BAT entry `index`, the data at file offset `offset`. */
interface Stored {
  index: number;
  block: number;
  offset: number;
}

const PROBE = 4096;
const READ = 8 * MiB;

/**
 * Optimize-VHD for a dynamic VHDX: stored blocks that lie wholly in space the guest file systems do
 * not use become NOT_PRESENT, blocks that read as zeros become ZERO, then the remaining blocks move
 * down into the holes (moveBlocks: copy, flush, then the BAT through the log) and the file is cut
 * after the last one. Each step leaves every sector the file systems use reading the same; a crash
 * between them leaves leaked space, which the next compact or check -r gives back.
 */
export async function compactVhdx(
  file: PositionalFile,
  source: ByteSource,
  pair: HeaderPair | null,
  layout: VhdxLayout,
  bat: BatTable,
  o: CompactOptions,
): Promise<CompactResult> {
  const path = file.path;
  if (layout.params.hasParent) throw new VdiskError('UNSUPPORTED', `${path}: compacting a differencing image is not supported (its empty blocks are its parent's)`);
  if (layout.params.leaveBlocksAllocated) throw new VdiskError('UNSUPPORTED', `${path}: a fixed image keeps every block; convert it to a dynamic one instead`);
  if (!o.dryRun && !pair) throw new VdiskError('IO', `${path}: opened read-only`);
  const g = layout.geometry;
  const bs = layout.params.blockSize;
  const before = source.size();

  const stored: Stored[] = [];
  await bat.scan((i, e) => {
    if (isBitmapEntry(g, i) || e.state !== PAYLOAD_FULLY_PRESENT) return;
    stored.push({ index: i, block: blockOfEntry(g, i), offset: e.fileOffset });
  }, () => undefined);
  for (const s of stored) {
    if (s.offset < HEADER_SECTION_SIZE || s.offset + bs > before) throw new VdiskError('CORRUPT', `${path}: BAT entry ${s.index} points outside the file; run check -r all first`);
  }

  // Which blocks go: wholly in free space (no need to read them), else all zeros.
  const free = new FreeBlocks(o.discardable, bs);
  const drops = new Map<number, number>();
  let freeBlocks = 0;
  let zeroBlocks = 0;
  const buf = Buffer.alloc(Math.min(bs, READ));
  let done = 0;
  for (const s of [...stored].sort((a, b) => a.offset - b.offset)) {
    if (free.covers(s.block)) {
      drops.set(s.index, PAYLOAD_NOT_PRESENT);
      freeBlocks++;
    } else if (await allZeros(source, s.offset, bs, buf)) {
      drops.set(s.index, PAYLOAD_ZERO);
      zeroBlocks++;
    }
    o.onProgress?.(++done, stored.length * 2);
  }
  const kept = stored.filter((s) => !drops.has(s.index));
  const fixedRegions = occupiedStructures(layout);
  const batches = planMoves(fixedRegions, kept, bs);
  const moved = batches.reduce((n, b) => n + b.length, 0);
  const after = packedEnd(fixedRegions, kept, batches, bs);
  const result: CompactResult = {
    fileBytesBefore: before,
    fileBytesAfter: Math.min(before, after),
    blocksStored: stored.length,
    blocksFree: freeBlocks,
    blocksZero: zeroBlocks,
    blocksMoved: moved,
  };
  if (o.dryRun) return result;
  const writer = pair as HeaderPair;

  // Dropping changes what free space reads: a new DataWriteGuid, as for any change a reader may see.
  await writer.update({ fileWriteGuid: newGuid(), dataWriteGuid: newGuid() });
  if (drops.size > 0) {
    const ops = await batSectorUpdates(file, layout.bat.fileOffset, [...drops].map(([index, state]) => [index, { state, fileOffset: 0 }]));
    const capacity = entryCapacity(writer.header.logLength);
    const session = await LogSession.begin(file, writer);
    for (let i = 0; i < ops.length; i += capacity) await session.commit(ops.slice(i, i + capacity));
    await session.end();
  }
  let progressed = stored.length;
  for (const batch of batches) {
    await moveBlocks(file, writer, layout.bat.fileOffset, batch, bs);
    progressed += batch.length;
    o.onProgress?.(Math.min(progressed, stored.length * 2), stored.length * 2);
  }
  if (after < file.size()) await file.truncate(after);
  await file.flush();
  o.onProgress?.(stored.length * 2, stored.length * 2);
  return { ...result, fileBytesAfter: file.size() };
}

/** Reads a block's first 4 KiB, and only when that is zeros the rest, a piece at a time. */
async function allZeros(source: ByteSource, at: number, size: number, buf: Buffer): Promise<boolean> {
  const probe = buf.subarray(0, Math.min(PROBE, size));
  await source.readAt(probe, at);
  if (!isZero(probe)) return false;
  for (let o = probe.length; o < size; o += buf.length) {
    const piece = buf.subarray(0, Math.min(buf.length, size - o));
    await source.readAt(piece, at + o);
    if (!isZero(piece)) return false;
  }
  return true;
}

const ZEROS = Buffer.alloc(64 * 1024);
function isZero(b: Buffer): boolean {
  for (let o = 0; o < b.length; o += ZEROS.length) {
    const n = Math.min(ZEROS.length, b.length - o);
    if (!b.subarray(o, o + n).equals(ZEROS.subarray(0, n))) return false;
  }
  return true;
}

/** The payload blocks lying wholly inside the discardable ranges (sorted, of the virtual disk). */
class FreeBlocks {
  private readonly blocks = new Set<number>();

  constructor(ranges: readonly { offset: number; length: number }[], bs: number) {
    // Adjacent ranges (one per group or cluster run) together may cover a block neither covers alone.
    let start = -1;
    let end = -1;
    const flush = () => {
      for (let b = Math.ceil(start / bs); (b + 1) * bs <= end; b++) this.blocks.add(b);
    };
    for (const r of [...ranges].sort((a, b) => a.offset - b.offset)) {
      if (r.offset <= end) end = Math.max(end, r.offset + r.length);
      else {
        if (end > start) flush();
        start = r.offset;
        end = r.offset + r.length;
      }
    }
    if (end > start) flush();
  }

  covers(block: number): boolean {
    return this.blocks.has(block);
  }
}

/** File ranges that never move: the header section, the log and every region. */
function occupiedStructures(layout: VhdxLayout): [number, number][] {
  const out: [number, number][] = [[0, HEADER_SECTION_SIZE]];
  const h = layout.header;
  if (h.logLength > 0) out.push([h.logOffset, h.logOffset + h.logLength]);
  for (const r of layout.regions) out.push([r.fileOffset, r.fileOffset + r.length]);
  return out;
}

/**
 * Batches of moves that pack the kept blocks down: the block furthest in the file goes to the lowest
 * MiB-aligned hole below it, while there is one. A batch uses only holes free when it starts; the
 * places its blocks leave are free for the next batch, once the log has moved their entries.
 */
export function planMoves(fixed: [number, number][], kept: Stored[], bs: number): BlockMove[][] {
  const at = new Map(kept.map((s) => [s.index, s.offset]));
  const batches: BlockMove[][] = [];
  for (let round = 0; round < 10_000; round++) {
    const used = fixed.concat([...at.values()].map((o) => [o, o + bs] as [number, number])).sort((a, b) => a[0] - b[0]);
    const holes: [number, number][] = [];
    let end = 0;
    for (const [s, e] of used) {
      const start = roundUp(end, MiB);
      if (s - start >= bs) holes.push([start, s]);
      end = Math.max(end, e);
    }
    const batch: BlockMove[] = [];
    let h = 0;
    for (const [index, offset] of [...at].sort((a, b) => b[1] - a[1])) {
      while (h < holes.length && holes[h][1] - holes[h][0] < bs) h++;
      if (h >= holes.length || holes[h][0] >= offset) break;
      batch.push({ index, state: PAYLOAD_FULLY_PRESENT, from: offset, to: holes[h][0] });
      holes[h][0] += bs;
    }
    if (batch.length === 0) break;
    for (const m of batch) at.set(m.index, m.to);
    batches.push(batch);
  }
  return batches;
}

/** The file's end once the moves are done: after the last structure or block. */
function packedEnd(fixed: [number, number][], kept: Stored[], batches: BlockMove[][], bs: number): number {
  const at = new Map(kept.map((s) => [s.index, s.offset]));
  for (const b of batches) for (const m of b) at.set(m.index, m.to);
  let end = 0;
  for (const [, e] of fixed) end = Math.max(end, e);
  for (const o of at.values()) end = Math.max(end, o + bs);
  return end;
}
