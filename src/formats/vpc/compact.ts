import { VdiskError } from '../../errors.js';
import { isZero } from '../../io/buffers.js';
import type { CompactOptions, CompactResult } from '../image.js';
import { DISK_FIXED, FOOTER_SIZE, HEADER_SIZE, MiB, SECTOR, UNALLOCATED, roundUp } from './constants.js';
import { copyWithin, endFileAt } from './relocate.js';
import type { VpcImage } from './vpc-image.js';

/** A stored block: BAT entry `index`, its bitmap and data at file offset `start`. */
interface Stored {
  index: number;
  start: number;
}

interface Move {
  index: number;
  from: number;
  to: number;
}

const READ = 4 * MiB;

/** The stored blocks, each checked to lie inside the file clear of the metadata (blockStart does). */
async function storedBlocks(img: VpcImage): Promise<Stored[]> {
  const indexes: number[] = [];
  await img.bat!.forEachAllocated((i) => void indexes.push(i));
  const out: Stored[] = [];
  for (const index of indexes) out.push({ index, start: await img.blockStart(index) });
  return out;
}

/** File ranges that never move: the footer copy, the header, the BAT's reserved room, locator data. */
export function structures(img: VpcImage): [number, number][] {
  const L = img.layout;
  const h = L.header!;
  const size = img.file.size();
  const out: [number, number][] = [[0, FOOTER_SIZE], [L.footer.dataOffset, L.footer.dataOffset + HEADER_SIZE]];
  out.push([h.tableOffset, roundUp(h.tableOffset + Math.min(h.maxTableEntries * 4, size), SECTOR)]);
  for (const l of h.locators) {
    if (l.code && l.dataLength > 0 && l.dataOffset >= 0) out.push([l.dataOffset, l.dataOffset + roundUp(Math.min(l.dataLength, size), SECTOR)]);
  }
  return out;
}

/**
 * Rounds of moves that pack the blocks down: in each, the blocks furthest in the file go, last
 * first, to the lowest gaps below them that were free when the round began. A block's old place
 * becomes free only after its BAT entry has moved, so only a later round fills it.
 */
function planPacking(fixed: [number, number][], blocks: Stored[], blockBytes: number): { rounds: Move[][]; end: number } {
  const at = new Map(blocks.map((b) => [b.index, b.start]));
  const rounds: Move[][] = [];
  // Each round moves at least one block down by a block or more: the file's blocks bound the rounds.
  for (let r = 0; r <= blocks.length; r++) {
    const used = fixed.concat([...at.values()].map((s) => [s, s + blockBytes] as [number, number])).sort((a, b) => a[0] - b[0]);
    const gaps: { from: number; to: number }[] = [];
    let reach = 0;
    for (const [s, e] of used) {
      if (s - reach >= blockBytes) gaps.push({ from: reach, to: s });
      reach = Math.max(reach, e);
    }
    const round: Move[] = [];
    let g = 0;
    const byEnd = [...at].sort((a, b) => b[1] - a[1]);
    for (const [index, from] of byEnd) {
      while (g < gaps.length && gaps[g].to - gaps[g].from < blockBytes) g++;
      if (g === gaps.length || gaps[g].from >= from) break;
      round.push({ index, from, to: gaps[g].from });
      gaps[g].from += blockBytes;
    }
    if (round.length === 0) break;
    for (const m of round) at.set(m.index, m.to);
    rounds.push(round);
  }
  let end = 0;
  for (const [, e] of fixed) end = Math.max(end, e);
  for (const s of at.values()) end = Math.max(end, s + blockBytes);
  return { rounds, end: roundUp(end, SECTOR) };
}

/**
 * Moves every stored block of a dynamic VHD down into the gaps below it and cuts the file after the
 * last one. Crash-safe by order, round by round: the copies into free gaps, flushed, then their BAT
 * entries (4 bytes each), flushed; then the footer at the new end, flushed, and the cut. Cut off
 * anywhere, each entry points at its old place or its copy, which hold the same bytes, and the file
 * ends in a valid footer. Returns the blocks moved.
 */
export async function packBlocks(img: VpcImage, onRound?: (moved: number) => void): Promise<number> {
  const file = img.file;
  const L = img.layout;
  const blockBytes = L.bitmapSize + L.blockSize;
  const plan = planPacking(structures(img), await storedBlocks(img), blockBytes);
  let moved = 0;
  for (const round of plan.rounds) {
    for (const m of round) await copyWithin(file, m.from, m.to, blockBytes);
    await file.flush();
    for (const m of round) await img.bat!.set(file, m.index, m.to / SECTOR);
    await file.flush();
    moved += round.length;
    onRound?.(moved);
  }
  if (plan.end < img.appendAt || file.size() > plan.end + FOOTER_SIZE) await endFileAt(file, L.footer, plan.end);
  return moved;
}

/** Whether a virtual-disk range lies wholly in the union of `ranges`: blocks per merged run. */
function coveredBlocks(ranges: readonly { offset: number; length: number }[], bs: number, virtualSize: number): Set<number> {
  const out = new Set<number>();
  const sorted = ranges.filter((r) => r.length > 0).map((r) => [r.offset, r.offset + r.length]).sort((a, b) => a[0] - b[0]);
  let k = 0;
  while (k < sorted.length) {
    let [s, e] = sorted[k++];
    while (k < sorted.length && sorted[k][0] <= e) e = Math.max(e, sorted[k++][1]);
    // A partial last block ends at the disk's end.
    for (let b = Math.ceil(s / bs); b * bs < virtualSize && Math.min((b + 1) * bs, virtualSize) <= e; b++) out.add(b);
  }
  return out;
}

/** Whether the `length` data bytes at `at` are all zeros: a first small piece (where most blocks fail), then large ones. */
async function zeroData(img: VpcImage, at: number, length: number, buf: Buffer): Promise<boolean> {
  for (let o = 0; o < length; ) {
    const piece = buf.subarray(0, Math.min(o === 0 ? 4096 : buf.length, length - o));
    await img.file.readAt(piece, at + o);
    if (!isZero(piece)) return false;
    o += piece.length;
  }
  return true;
}

/**
 * Optimize-VHD for a dynamic VHD: blocks lying wholly in `discardable` space, and blocks whose data
 * reads as zeros, lose their BAT entry (4-byte writes, flushed: a dropped block reads as zeros, which
 * is what it held or what nobody needs); then packBlocks moves the rest down and cuts the file.
 */
export async function compactVpc(img: VpcImage, o: CompactOptions): Promise<CompactResult> {
  const path = img.filename;
  if (img.diskType === DISK_FIXED) throw new VdiskError('UNSUPPORTED', `${path}: a fixed VHD keeps every block; convert it to a dynamic one instead`);
  if (img.isDifferencing) throw new VdiskError('UNSUPPORTED', `${path}: compacting a differencing VHD is not supported (its empty blocks are its parent's)`);
  const file = img.file;
  const L = img.layout;
  const bs = L.blockSize;
  const before = file.size();
  const stored = (await storedBlocks(img)).sort((a, b) => a.start - b.start);
  const free = coveredBlocks(o.discardable, bs, img.virtualSize);
  const drops: number[] = [];
  let blocksFree = 0;
  let blocksZero = 0;
  const buf = Buffer.alloc(Math.min(bs, READ));
  const total = stored.length * 2;
  let done = 0;
  for (const s of stored) {
    if (free.has(s.index)) {
      drops.push(s.index);
      blocksFree++;
    } else if (await zeroData(img, s.start + L.bitmapSize, Math.min(bs, img.virtualSize - s.index * bs), buf)) {
      drops.push(s.index);
      blocksZero++;
    }
    o.onProgress?.(++done, total);
  }
  const dropped = new Set(drops);
  const kept = stored.filter((s) => !dropped.has(s.index));
  const plan = planPacking(structures(img), kept, L.bitmapSize + bs);
  const result: CompactResult = {
    fileBytesBefore: before,
    fileBytesAfter: Math.min(before, plan.end + FOOTER_SIZE),
    blocksStored: stored.length,
    blocksFree,
    blocksZero,
    blocksMoved: plan.rounds.reduce((n, r) => n + r.length, 0),
  };
  if (o.dryRun) return result;
  for (const index of drops) await img.bat!.set(file, index, UNALLOCATED);
  await file.flush();
  const moved = await packBlocks(img, (n) => o.onProgress?.(Math.min(total, stored.length + n), total));
  o.onProgress?.(total, total);
  return { ...result, blocksMoved: moved, fileBytesAfter: file.size() };
}
