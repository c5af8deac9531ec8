import { PositionalFile } from '../io/file.js';
import { lockFor } from '../io/lock.js';
import { VdiskError } from '../errors.js';
import type { ImageFormat } from '../formats/image.js';
import { probeFormat } from '../formats/open.js';
import { LOG_SECTOR_SIZE, MiB, REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, REGION_TABLE_SIZE, roundUp } from '../formats/vhdx/constants.js';
import { readHeaders } from '../formats/vhdx/layout.js';
import { findActiveSequence, type LogOperation } from '../formats/vhdx/log.js';
import { HeaderPair } from '../formats/vhdx/header-pair.js';
import { entryCapacity, logTransaction, replayOnDisk } from '../formats/vhdx/log-writer.js';
import { PAYLOAD_FULLY_PRESENT, PAYLOAD_ZERO, isBitmapEntry } from '../formats/vhdx/bat.js';
import { batSectorUpdates } from '../formats/vhdx/bat-update.js';
import { BatTable } from '../formats/vhdx/bat-table.js';
import { ZERO_GUID, newGuid } from '../formats/vhdx/guid.js';
import { examineVhdx, type VhdxExamination } from './vhdx-check.js';
import type { CheckReport, Finding } from './report.js';

export type RepairMode = 'none' | 'leaks' | 'all';

export interface CheckOptions {
  format?: ImageFormat;
  repair?: RepairMode;
  /** BAT entries examined so far, of all (the first examination). */
  onProgress?: (done: number, total: number) => void;
  /** Look without the shared lock (-U); refused with a repair mode. */
  forceShare?: boolean;
}

const count = (fs: Finding[], sev: Finding['severity']) => fs.filter((f) => f.severity === sev).length;

function report(file: string, format: string, ex: VhdxExamination | null): CheckReport {
  const all = ex?.findings ?? [];
  const extra = ex?.unlisted ?? 0;
  return {
    filename: file,
    format,
    'check-errors': 0,
    corruptions: count(all, 'corruption') + extra,
    leaks: count(all, 'leak'),
    'corruptions-fixed': 0,
    'leaks-fixed': 0,
    ...(ex?.layout ? { 'image-end-offset': ex.imageEnd, 'total-blocks': ex.totalBlocks, 'allocated-blocks': ex.allocatedBlocks } : {}),
    findings: all,
  };
}

/**
 * `check`: examine, and with a repair mode, fix what can be fixed (replaying a pending log first,
 * every metadata change through the log) and examine again; the report describes the image after
 * repair, with the original findings marked fixed where they are gone.
 */
export async function checkImage(path: string, options: CheckOptions = {}): Promise<CheckReport> {
  const repair = options.repair ?? 'none';
  // A repair holds the exclusive lock from before the first examination to its last write: a writer
  // that slipped in between would have its not yet committed blocks taken for leaks and cut off.
  const writer = repair === 'none' ? null : await PositionalFile.open(path, 'rw', { lock: lockFor('rw', options.forceShare) });
  try {
    let file = writer ?? (await PositionalFile.open(path, 'r', { lock: lockFor('r', options.forceShare) }));
    let format: ImageFormat;
    let before: VhdxExamination;
    try {
      format = options.format ?? (await probeFormat(file));
      if (format === 'raw') return report(path, 'raw', null); // a raw image has no structure to be inconsistent
      before = await examineVhdx(file, options.onProgress);
    } finally {
      if (!writer) await file.close();
    }
    const first = report(path, format, before);
    if (!writer || (first.corruptions === 0 && first.leaks === 0)) return first;
    const fixable = before.findings.some((f) => f.repair && (repair === 'all' || f.repair === 'truncate' || f.repair === 'move-block'));
    if (!fixable) return first;

    file = writer;
    let ex = before;
    if (repair === 'all' && ex.findings.some((f) => f.repair === 'replay-log')) {
      const choice = await readHeaders(file);
      const { plan } = await findActiveSequence(file, choice.header.logOffset, choice.header.logLength, choice.header.logGuid, Math.max(file.size(), 2 ** 47));
      if (plan) await replayOnDisk(file, new HeaderPair(file, choice.headers, choice.current), plan);
      ex = await examineVhdx(file);
    }
    if (repair === 'all') {
      await repairStructures(file, ex);
      ex = await examineVhdx(file);
    }
    // Leaked space inside the file: fill each hole with the last block, so that the leak moves to the
    // end of the file where truncation gives it back.
    for (let round = 0; round < 1024 && ex.interiorLeaks.length > 0; round++) {
      if (!(await moveLastBlockInto(file, ex))) break;
      ex = await examineVhdx(file);
    }
    if (ex.truncateTo !== null && ex.truncateTo < file.size()) {
      await file.truncate(ex.truncateTo);
      await file.flush();
    }
    const after = await examineVhdx(file);
    return repaired(path, format, first, before, after);
  } finally {
    await writer?.close();
  }
}

function repaired(path: string, format: ImageFormat, first: CheckReport, before: VhdxExamination, after: VhdxExamination): CheckReport {
  const final = report(path, format, after);
  const remaining = new Set(after.findings.map((f) => `${f.structure}@${f.offset}`));
  const findings: Finding[] = before.findings.map((f) =>
    f.repair ? { ...f, fixed: !remaining.has(`${f.structure}@${f.offset}`) } : f,
  );
  for (const f of after.findings) {
    if (!before.findings.some((b) => b.structure === f.structure && b.offset === f.offset)) findings.push(f);
  }
  return {
    ...final,
    'corruptions-fixed': Math.max(0, first.corruptions - final.corruptions),
    'leaks-fixed': Math.max(0, first.leaks - final.leaks),
    findings,
  };
}

/**
 * Copies the block that ends the file into the first interior hole big enough for it, then points
 * its BAT entry there through the log. The copy is flushed before the entry changes, so a crash
 * leaves either mapping intact. Returns false when no block can move.
 */
async function moveLastBlockInto(file: PositionalFile, ex: VhdxExamination): Promise<boolean> {
  const layout = ex.layout;
  if (!layout || ex.blocks.length === 0) return false;
  const last = ex.blocks[ex.blocks.length - 1];
  const hole = ex.interiorLeaks.find((g) => roundUp(g.start, MiB) + last.size <= g.end && g.start < last.offset);
  if (!hole) return false;
  const to = roundUp(hole.start, MiB);
  const buf = Buffer.alloc(Math.min(last.size, 8 * MiB));
  for (let at = 0; at < last.size; at += buf.length) {
    await file.readAt(buf, last.offset + at);
    await file.writeAt(buf, to + at);
  }
  await file.flush();
  const choice = await readHeaders(file);
  const pair = new HeaderPair(file, choice.headers, choice.current);
  await pair.update({ fileWriteGuid: newGuid() });
  const current = await new BatTable(file, layout.bat.fileOffset, layout.geometry.totalEntries).entry(last.index);
  const ops = await batSectorUpdates(file, layout.bat.fileOffset, [[last.index, { state: current.state, fileOffset: to }]]);
  await logTransaction(file, pair, ops);
  return true;
}

async function repairStructures(file: PositionalFile, ex: VhdxExamination): Promise<void> {
  if (!ex.choice) return;
  const needs = (r: Finding['repair']) => ex.findings.some((f) => f.repair === r);
  const work = needs('rewrite-header') || needs('rewrite-region-table') || ex.batFixes.size > 0 || needs('map-block');
  if (!work) return;
  const choice = await readHeaders(file);
  const pair = new HeaderPair(file, choice.headers, choice.current);
  // Writing both slots also rewrites a damaged copy from the good one.
  await pair.update({ fileWriteGuid: newGuid(), dataWriteGuid: newGuid(), logGuid: ZERO_GUID });

  const ops: LogOperation[] = [];
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
  if (layout) {
    const fixes = new Map(ex.batFixes);
    if (needs('map-block')) {
      // A fixed image must map every block: give unmapped ones fresh zero blocks at the end.
      const g = layout.geometry;
      const bat = new BatTable(file, layout.bat.fileOffset, g.totalEntries);
      let end = roundUp(file.size(), MiB);
      const missing: number[] = [];
      await bat.scan((i, e) => {
        if (!isBitmapEntry(g, i) && e.state !== PAYLOAD_FULLY_PRESENT && e.state !== PAYLOAD_ZERO && !fixes.has(i)) missing.push(i);
      });
      for (const i of missing) {
        fixes.set(i, { state: PAYLOAD_FULLY_PRESENT, fileOffset: end });
        end += layout.params.blockSize;
      }
      if (end > file.size()) {
        await file.truncate(end);
        await file.flush();
      }
    }
    ops.push(...(await batSectorUpdates(file, layout.bat.fileOffset, fixes)));
  }
  const capacity = entryCapacity(pair.header.logLength);
  if (capacity <= 0 && ops.length > 0) throw new VdiskError('CORRUPT', `${file.path}: the log is too small to carry repairs`);
  for (let i = 0; i < ops.length; i += capacity) await logTransaction(file, pair, ops.slice(i, i + capacity));
}
