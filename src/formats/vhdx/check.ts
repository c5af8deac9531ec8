import { PositionalFile, readExact } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import type { DriverCheckOptions } from '../driver.js';
import { LOG_SECTOR_SIZE, MiB, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, REGION_TABLE_SIZE, roundUp } from './constants.js';
import { readHeaders, replayFileLimit } from './layout.js';
import { findActiveSequence, type LogOperation } from './log.js';
import { HeaderPair } from './header-pair.js';
import { LogSession, entryCapacity, replayOnDisk } from './log-writer.js';
import { PAYLOAD_FULLY_PRESENT, encodeBatEntry } from './bat.js';
import { BatTable } from './bat-table.js';
import { moveBlocks } from './block-move.js';
import { ZERO_GUID, newGuid } from './guid.js';
import { BatFix, MAX_LISTED, examineVhdx, type VhdxExamination } from './examine.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';

const ENTRIES_PER_SECTOR = LOG_SECTOR_SIZE / 8;
const SECTORS_PER_PAGE = MiB / LOG_SECTOR_SIZE;

function report(file: string, format: string, ex: VhdxExamination | null): CheckReport {
  return {
    filename: file,
    format,
    'check-errors': 0,
    corruptions: ex?.counts.corruption ?? 0,
    leaks: ex?.counts.leak ?? 0,
    'corruptions-fixed': 0,
    'leaks-fixed': 0,
    ...(ex?.layout ? { 'image-end-offset': ex.imageEnd, 'total-blocks': ex.totalBlocks, 'allocated-blocks': ex.allocatedBlocks } : {}),
    findings: ex?.findings ?? [],
    ...(ex?.unlisted ? { 'unlisted-findings': ex.unlisted } : {}),
  };
}

/**
 * `check` of a VHDX: examine, and with a repair mode, fix what can be fixed (replaying a pending log
 * first, every metadata change through the log) and examine again; the report describes the image
 * after repair, with the original findings marked fixed where they are gone. A repair gets the file
 * open read-write with the exclusive lock, taken before the first examination and held to the last
 * write: a writer that slipped in between would have its not yet committed blocks taken for leaks.
 */
export async function checkVhdx(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  const repair = options.repair;
  const path = file.path;
  const format = 'vhdx';
  const writer = repair === 'none' ? null : file;
  const before = await examineVhdx(file, options.onProgress);
  const passes: VhdxExamination[] = [];
  {
    const first = report(path, format, before);
    if (!writer || (first.corruptions === 0 && first.leaks === 0)) return first;
    const fixable = [...before.repairs].some((r) => repair === 'all' || r === 'truncate' || r === 'move-block');
    if (!fixable) return first;

    // Every examination along the way: a repair step fixes what one finds and the next does not, and
    // a step can reveal problems the one before hid (a replayed log shows the file as it really is).
    passes.push(before);
    let ex = before;
    if (repair === 'all' && ex.repairs.has('replay-log')) {
      const choice = await readHeaders(writer);
      const limit = await replayFileLimit(writer, choice);
      const { plan } = await findActiveSequence(writer, choice.header.logOffset, choice.header.logLength, choice.header.logGuid, limit);
      if (plan) await replayOnDisk(writer, new HeaderPair(writer, choice.headers, choice.current), plan);
      ex = await examineVhdx(writer);
      passes.push(ex);
    }
    if (repair === 'all') {
      await repairStructures(writer, ex);
      ex = await examineVhdx(writer);
      passes.push(ex);
    }
    // Leaked space inside the file: fill each hole with the last block, so that the leak moves to the
    // end of the file where truncation gives it back.
    let changed = false;
    for (let round = 0; round < 1024 && ex.interiorLeaks.length > 0; round++) {
      if (!(await moveLastBlockInto(writer, ex))) break;
      ex = await examineVhdx(writer);
      changed = true;
    }
    if (ex.truncateTo !== null && ex.truncateTo < writer.size()) {
      await writer.truncate(ex.truncateTo);
      await writer.flush();
      changed = true;
    }
    if (changed) passes.push(await examineVhdx(writer));
  }
  const after = passes[passes.length - 1];
  const final = report(path, format, after);
  const merged = mergeFindings(passes);
  const unlisted = Math.max(...passes.map((p) => p.unlisted)) + Math.max(0, merged.length - MAX_LISTED);
  return { ...final, ...fixedCounts(passes), findings: merged.slice(0, MAX_LISTED), ...(unlisted ? { 'unlisted-findings': unlisted } : {}) };
}

/**
 * What the repair fixed, counted as qemu-img counts it: each step (log replay, structure rewrite,
 * block moves and truncation) fixed the corruptions and leaks one examination found and the next
 * does not. A leak that only the replayed log revealed, then truncated, is a leak fixed; a replayed
 * log is a corruption fixed (QEMU's vhdx check counts its replay the same way).
 */
function fixedCounts(passes: VhdxExamination[]): Pick<CheckReport, 'corruptions-fixed' | 'leaks-fixed'> {
  let corruptions = 0;
  let leaks = 0;
  for (let k = 1; k < passes.length; k++) {
    corruptions += Math.max(0, passes[k - 1].counts.corruption - passes[k].counts.corruption);
    leaks += Math.max(0, passes[k - 1].counts.leak - passes[k].counts.leak);
  }
  return { 'corruptions-fixed': corruptions, 'leaks-fixed': leaks };
}

/** The listed findings of every pass, each once, marked fixed when the last pass no longer has it. */
function mergeFindings(passes: VhdxExamination[]): Finding[] {
  const key = (f: Finding) => `${f.structure}@${f.offset}`;
  const remaining = new Set(passes[passes.length - 1].findings.map(key));
  const out = new Map<string, Finding>();
  for (const ex of passes) {
    for (const f of ex.findings) {
      if (out.has(key(f))) continue;
      out.set(key(f), f.repair && ex !== passes[passes.length - 1] ? { ...f, fixed: !remaining.has(key(f)) } : f);
    }
  }
  return [...out.values()];
}

/**
 * Copies the block that ends the file into the first interior hole big enough for it, then points
 * its BAT entry there through the log. The copy is flushed before the entry changes, so a crash
 * leaves either mapping intact. Returns false when no block can move.
 */
async function moveLastBlockInto(file: PositionalFile, ex: VhdxExamination): Promise<boolean> {
  const layout = ex.layout;
  const last = ex.lastBlock;
  if (!layout || !last) return false;
  const hole = ex.interiorLeaks.find((g) => roundUp(g.start, MiB) + last.size <= g.end && g.start < last.offset);
  if (!hole) return false;
  const to = roundUp(hole.start, MiB);
  const choice = await readHeaders(file);
  const pair = new HeaderPair(file, choice.headers, choice.current);
  await pair.update({ fileWriteGuid: newGuid() });
  const current = await new BatTable(file, layout.bat.fileOffset, layout.geometry.totalEntries).entry(last.index);
  await moveBlocks(file, pair, layout.bat.fileOffset, [{ index: last.index, state: current.state, from: last.offset, to }], last.size);
  return true;
}

async function repairStructures(file: PositionalFile, ex: VhdxExamination): Promise<void> {
  if (!ex.choice) return;
  const needs = (r: NonNullable<Finding['repair']>) => ex.repairs.has(r);
  const work = needs('rewrite-header') || needs('rewrite-region-table') || ex.batFixes.size > 0;
  if (!work) return;
  const choice = await readHeaders(file);
  const pair = new HeaderPair(file, choice.headers, choice.current);
  // Writing both slots also rewrites a damaged copy from the good one.
  await pair.update({ fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: ZERO_GUID });
  const capacity = entryCapacity(pair.header.logLength);
  if (capacity <= 0) throw new VdiskError('CORRUPT', `${file.path}: the log is too small to carry repairs`);

  let ops: LogOperation[] = [];
  const session = await LogSession.begin(file, pair);
  /** Logs the gathered operations a full entry at a time; with `all`, the rest too. */
  const commit = async (all: boolean) => {
    while (ops.length >= capacity || (all && ops.length > 0)) {
      await session.commit(ops.slice(0, capacity));
      ops = ops.slice(capacity);
    }
  };
  if (ex.goodRegionTable !== null) {
    const good = ex.goodRegionTable === 0 ? REGION_TABLE1_OFFSET : REGION_TABLE2_OFFSET;
    const bad = ex.goodRegionTable === 0 ? REGION_TABLE2_OFFSET : REGION_TABLE1_OFFSET;
    const table = Buffer.alloc(REGION_TABLE_SIZE);
    await file.readAt(table, good);
    for (let o = 0; o < REGION_TABLE_SIZE; o += LOG_SECTOR_SIZE) {
      ops.push({ kind: 'data', fileOffset: bad + o, data: Buffer.from(table.subarray(o, o + LOG_SECTOR_SIZE)) });
    }
  }
  const layout = ex.layout;
  if (layout && ex.batFixes.size > 0) {
    // A fixed image must map every block: unmapped ones get fresh zero blocks at the end, made
    // before any entry points at them.
    let end = roundUp(file.size(), MiB);
    let newBlocks = 0;
    for (const i of ex.batFixes.indices()) if (ex.batFixes.get(i) === BatFix.MapNew) newBlocks++;
    if (newBlocks > 0) {
      await file.truncate(end + newBlocks * layout.params.blockSize);
      await file.flush();
    }
    // The BAT is rewritten a 4 KiB sector at a time, as many sectors per log entry as the log holds:
    // a BAT of millions of fixes never sits in memory at once.
    let sector = -1;
    let data: Buffer | null = null;
    // Read a MiB of the BAT at a time: one read per 4 KiB sector costs more than the rest together.
    let page: Buffer | null = null;
    let pageIndex = -1;
    for (const i of ex.batFixes.indices()) {
      const s = Math.floor(i / ENTRIES_PER_SECTOR);
      if (s !== sector) {
        if (data) ops.push({ kind: 'data', fileOffset: layout.bat.fileOffset + sector * LOG_SECTOR_SIZE, data });
        await commit(false);
        sector = s;
        const p = Math.floor(s / SECTORS_PER_PAGE);
        if (p !== pageIndex) {
          pageIndex = p;
          const length = Math.min(MiB, layout.bat.length - p * MiB);
          page = await readExact(file, layout.bat.fileOffset + p * MiB, length, 'BAT');
        }
        const from = (s % SECTORS_PER_PAGE) * LOG_SECTOR_SIZE;
        data = Buffer.from((page as Buffer).subarray(from, from + LOG_SECTOR_SIZE));
      }
      // Bits 0-2 state, 3-19 reserved, 20-63 the offset in MiB (../shared/docs/vhdx-format.md, BAT).
      const at = (i % ENTRIES_PER_SECTOR) * 8;
      const buf = data as Buffer;
      const fix = ex.batFixes.get(i);
      if (fix === BatFix.Clear) buf.fill(0, at, at + 8);
      else if (fix === BatFix.DropOffset) buf.writeUInt32LE(buf.readUInt32LE(at) & 7, at), buf.writeUInt32LE(0, at + 4);
      else if (fix === BatFix.DropReserved) buf.writeUInt32LE((buf.readUInt32LE(at) & 0xfff00007) >>> 0, at);
      else if (fix === BatFix.MapNew) {
        encodeBatEntry(buf, at, PAYLOAD_FULLY_PRESENT, end);
        end += layout.params.blockSize;
      }
    }
    if (data) ops.push({ kind: 'data', fileOffset: layout.bat.fileOffset + sector * LOG_SECTOR_SIZE, data });
  }
  await commit(true);
  await session.end();
}
