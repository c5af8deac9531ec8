import type { PositionalFile } from '../../io/file.js';
import { readExact } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import {
  ITEM_VIRTUAL_DISK_SIZE, LOG_SECTOR_SIZE, MAX_VIRTUAL_SIZE, MiB, REGION_BAT, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, roundUp,
} from './constants.js';
import { PAYLOAD_FULLY_PRESENT, batGeometry, encodeBatEntry, isBitmapEntry, blockOfEntry } from './bat.js';
import type { HeaderPair } from './header-pair.js';
import { LogSession, entryCapacity } from './log-writer.js';
import type { LogOperation } from './log.js';
import { serializeRegionTable } from './region-table.js';
import { newGuid } from './guid.js';
import type { VhdxLayout } from './layout.js';

const COPY = 8 * MiB;

/**
 * Log operations that patch `bytes` into the file at `at`, as whole 4 KiB sectors read from the file.
 */
export async function patchSectors(file: PositionalFile, at: number, bytes: Buffer): Promise<LogOperation[]> {
  const first = Math.floor(at / LOG_SECTOR_SIZE) * LOG_SECTOR_SIZE;
  const end = roundUp(at + bytes.length, LOG_SECTOR_SIZE);
  const data = await readExact(file, first, end - first, 'metadata');
  bytes.copy(data, at - first);
  const ops: LogOperation[] = [];
  for (let s = 0; s < data.length; s += LOG_SECTOR_SIZE) ops.push({ kind: 'data', fileOffset: first + s, data: data.subarray(s, s + LOG_SECTOR_SIZE) });
  return ops;
}

/** The log operations that set the virtual disk size item to `size`. */
async function sizeItemOps(file: PositionalFile, layout: VhdxLayout, size: number): Promise<LogOperation[]> {
  const item = layout.metadataEntries.find((e) => e.itemId === ITEM_VIRTUAL_DISK_SIZE);
  if (!item) throw new VdiskError('CORRUPT', `${file.path}: metadata has no virtual disk size item`);
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(size));
  return patchSectors(file, layout.metadata.fileOffset + item.offset, b);
}

/**
 * Changes the virtual size of a dynamic or fixed VHDX, every metadata change through the log.
 *
 * Growing: the tail of the old last block (past the old end, where nothing promised zeros) is zeroed
 * first; the BAT entries the larger disk adds (payload and, every chunk ratio, sector-bitmap entries:
 * the index of a block does not depend on the disk's size) are cleared or, for a fixed image, mapped
 * to new space, and the size item changes last. When the BAT region is too small for them, a new one
 * is written at the end of the file (a copy of the old entries and the new ones), flushed, and then
 * one log entry switches both region tables and the size together: a crash leaves the old BAT and
 * size, or the new ones.
 *
 * Shrinking (the caller has checked that nothing past the new end holds data): the size changes
 * first, then the entries past the new end are cleared, so a crash in between leaves entries nobody
 * looks at, which a later grow clears before using.
 */
export async function resizeVhdx(file: PositionalFile, pair: HeaderPair, layout: VhdxLayout, newSize: number): Promise<void> {
  const path = file.path;
  const lss = layout.logicalSectorSize;
  if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize > MAX_VIRTUAL_SIZE) {
    throw new VdiskError('USAGE', `${path}: a VHDX holds 1 sector to 64 TiB, not ${newSize} bytes`);
  }
  if (newSize % lss !== 0) throw new VdiskError('USAGE', `${path}: size ${newSize} is not a multiple of the ${lss}-byte logical sector`);
  const oldSize = layout.virtualSize;
  if (newSize === oldSize) return;
  const bs = layout.params.blockSize;
  const g0 = layout.geometry;
  const g1 = batGeometry(bs, lss, newSize, false);
  const capacity = entryCapacity(pair.header.logLength);
  if (capacity < 40) throw new VdiskError('UNSUPPORTED', `${path}: the log is too small to carry a resize`);
  await pair.update({ fileWriteGuid: newGuid(), dataWriteGuid: newGuid() });
  const bat = layout.bat;

  if (newSize < oldSize) {
    const session = await LogSession.begin(file, pair);
    await session.commit(await sizeItemOps(file, layout, newSize));
    const clear = await entryRangeOps(file, bat.fileOffset, g1.totalEntries, g0.totalEntries, () => null);
    for (let i = 0; i < clear.length; i += capacity) await session.commit(clear.slice(i, i + capacity));
    await session.end();
    return;
  }

  // Growing. The old last block's bytes past the old end become part of the disk: make them zeros.
  const lastBlock = Math.floor((oldSize - 1) / bs);
  if (oldSize % bs !== 0) {
    const index = lastBlock + Math.floor(lastBlock / g0.chunkRatio);
    const e = Buffer.alloc(8);
    await file.readAt(e, bat.fileOffset + index * 8);
    const state = e.readUInt32LE(0) & 7;
    if (state === PAYLOAD_FULLY_PRESENT) {
      const at = ((e.readUInt32LE(0) >>> 20) + e.readUInt32LE(4) * 4096) * MiB;
      const from = oldSize - lastBlock * bs;
      const zeros = Buffer.alloc(Math.min(COPY, bs - from));
      for (let o = from; o < bs; o += zeros.length) await file.writeAt(zeros.subarray(0, Math.min(zeros.length, bs - o)), at + o);
    }
  }
  // A fixed image stays fixed: its new blocks get space at the end, holes reading as zeros.
  const fixed = layout.params.leaveBlocksAllocated;
  let end = roundUp(file.size(), MiB);
  const relocate = g1.totalEntries * 8 > bat.length;
  const newBatAt = relocate ? end : bat.fileOffset;
  const newBatLength = relocate ? roundUp(g1.totalEntries * 8, MiB) : bat.length;
  if (relocate) end += newBatLength;
  const newBlocksAt = end;
  if (fixed) end += (g1.dataBlocks - g0.dataBlocks) * bs;
  const mapNew = (i: number): number | null => {
    if (!fixed || isBitmapEntry(g1, i)) return null;
    return newBlocksAt + (blockOfEntry(g1, i) - g0.dataBlocks) * bs;
  };
  if (end > file.size()) await file.truncate(end);

  const session = await LogSession.begin(file, pair);
  if (!relocate) {
    const ops = await entryRangeOps(file, bat.fileOffset, g0.totalEntries, g1.totalEntries, mapNew);
    await file.flush();
    for (let i = 0; i < ops.length; i += capacity) await session.commit(ops.slice(i, i + capacity));
    await session.commit(await sizeItemOps(file, layout, newSize));
    await session.end();
    return;
  }
  // The new BAT: the old entries, then the new ones, written where nothing reads them yet.
  const buf = Buffer.alloc(COPY);
  for (let at = 0; at < g0.totalEntries * 8; at += COPY) {
    const n = Math.min(COPY, g0.totalEntries * 8 - at);
    await file.readAt(buf.subarray(0, n), bat.fileOffset + at);
    await file.writeAt(buf.subarray(0, n), newBatAt + at);
  }
  if (fixed) {
    const per = COPY / 8;
    for (let first = g0.totalEntries; first < g1.totalEntries; first += per) {
      const n = Math.min(per, g1.totalEntries - first);
      const chunk = Buffer.alloc(n * 8);
      for (let k = 0; k < n; k++) {
        const to = mapNew(first + k);
        if (to !== null) encodeBatEntry(chunk, k * 8, PAYLOAD_FULLY_PRESENT, to);
      }
      await file.writeAt(chunk, newBatAt + first * 8);
    }
  }
  await file.flush();
  const table = serializeRegionTable(layout.regions.map((r) => (r.guid === REGION_BAT ? { ...r, fileOffset: newBatAt, length: newBatLength } : r)));
  const ops: LogOperation[] = [];
  for (const base of [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET]) {
    for (let o = 0; o < table.length; o += LOG_SECTOR_SIZE) ops.push({ kind: 'data', fileOffset: base + o, data: table.subarray(o, o + LOG_SECTOR_SIZE) });
  }
  await session.commit(ops.concat(await sizeItemOps(file, layout, newSize)));
  await session.end();
  // The old BAT is space nothing maps now: zeros, so that check sees free space rather than a leak.
  const zeros = Buffer.alloc(Math.min(COPY, bat.length));
  for (let at = 0; at < bat.length; at += zeros.length) await file.writeAt(zeros.subarray(0, Math.min(zeros.length, bat.length - at)), bat.fileOffset + at);
  await file.flush();
}

/**
 * Log operations giving BAT entries [from, to) the value `value(i)` (a FULLY_PRESENT offset) or
 * NOT_PRESENT (null): only the 4 KiB sectors whose bytes change, a MiB of the table read at a time.
 */
async function entryRangeOps(file: PositionalFile, batAt: number, from: number, to: number, value: (i: number) => number | null): Promise<LogOperation[]> {
  const ops: LogOperation[] = [];
  const per = LOG_SECTOR_SIZE / 8;
  for (let s = Math.floor(from / per); s * per < to; s++) {
    const at = batAt + s * LOG_SECTOR_SIZE;
    const data = await readExact(file, at, LOG_SECTOR_SIZE, 'BAT');
    const before = Buffer.from(data);
    for (let i = Math.max(from, s * per); i < Math.min(to, (s + 1) * per); i++) {
      const v = value(i);
      if (v === null) data.fill(0, (i - s * per) * 8, (i - s * per + 1) * 8);
      else encodeBatEntry(data, (i - s * per) * 8, PAYLOAD_FULLY_PRESENT, v);
    }
    if (!data.equals(before)) ops.push({ kind: 'data', fileOffset: at, data });
  }
  return ops;
}
