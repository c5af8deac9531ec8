import { PositionalFile, readExact } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import {
  HEADER1_OFFSET, HEADER2_OFFSET, HEADER_SECTION_SIZE, HEADER_SIZE, LOG_SECTOR_SIZE, MiB, REGION_BAT, REGION_METADATA,
  REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, REGION_TABLE_SIZE, roundUp,
} from './constants.js';
import { parseFileIdentifier } from './file-identifier.js';
import { parseHeader, type VhdxHeader } from './header.js';
import { parseRegionTable } from './region-table.js';
import { readLayout, replayFileLimit, type HeaderChoice, type VhdxLayout } from './layout.js';
import { findActiveSequence } from './log.js';
import { BatTable } from './bat-table.js';
import {
  PAYLOAD_FULLY_PRESENT, PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_ZERO, SB_NOT_PRESENT, SB_PRESENT, STATE_NAMES, blockOfEntry,
  isBitmapEntry, type BatEntry,
} from './bat.js';
import { ZERO_GUID } from './guid.js';
import type { Finding } from '../../ops/check-report.js';
import { Bitmap } from '../../util/bitmap.js';

/** Findings listed one by one; past this many they are only counted ("and N more"). */
export const MAX_LISTED = 100;
/** Interior leaks remembered for moving blocks into; a repair fills at most this many per run anyway. */
const MAX_INTERIOR_LEAKS = 1024;

/** What a full read of the image found, and what repairs would need. */
export interface VhdxExamination {
  /** The first MAX_LISTED findings. */
  findings: Finding[];
  /** Every finding by severity, listed or not. */
  counts: Record<Finding['severity'], number>;
  /** More findings than were listed. */
  unlisted: number;
  /** The repairs that any finding, listed or not, asks for. */
  repairs: Set<NonNullable<Finding['repair']>>;
  fileSize: number;
  layout: VhdxLayout | null;
  choice: HeaderChoice | null;
  /** Index of the region-table copy that is good when the other is damaged. */
  goodRegionTable: 0 | 1 | null;
  /** BAT entries to rewrite, and how. */
  batFixes: BatFixes;
  /** Where unreferenced data ends the file: truncating here drops only leaked space. */
  truncateTo: number | null;
  totalBlocks: number;
  allocatedBlocks: number;
  imageEnd: number;
  /** The payload or bitmap block that lies furthest into the file: the one a repair moves into a hole. */
  lastBlock: { index: number; offset: number; size: number } | null;
  /** Unreferenced ranges holding data before the last referenced byte (truncation cannot reach them). */
  interiorLeaks: { start: number; end: number }[];
}

/** How a repair rewrites one BAT entry. */
export const BatFix = {
  /** NOT_PRESENT, offset 0: the entry's data is given up. */
  Clear: 1,
  /** Same state, offset 0 (a non-present entry carrying an offset). */
  DropOffset: 2,
  /** Same state and offset, reserved bits cleared. */
  DropReserved: 3,
  /** FULLY_PRESENT in a new zero block at the end of the file (a fixed image's missing block). */
  MapNew: 4,
} as const;
export type BatFix = (typeof BatFix)[keyof typeof BatFix];

/**
 * BAT entries a repair rewrites: one byte per entry, allocated on the first fix. A BAT of millions
 * of bad entries costs a few MiB here, where a Map of them outgrew the engine.
 */
export class BatFixes {
  private kinds: Uint8Array | null = null;
  size = 0;
  constructor(readonly entries: number) {}
  set(index: number, fix: BatFix): void {
    this.kinds ??= new Uint8Array(this.entries);
    if (this.kinds[index] === 0) this.size++;
    this.kinds[index] = fix;
  }
  get(index: number): BatFix | 0 {
    return (this.kinds?.[index] ?? 0) as BatFix | 0;
  }
  /** The fixed entries in BAT order. */
  *indices(): Generator<number> {
    const k = this.kinds;
    if (!k) return;
    for (let i = 0; i < k.length; i++) if (k[i] !== 0) yield i;
  }
}

class Collector {
  findings: Finding[] = [];
  unlisted = 0;
  counts = { corruption: 0, leak: 0, warning: 0 };
  repairs = new Set<NonNullable<Finding['repair']>>();
  /** True while findings are still listed one by one. */
  get listing(): boolean {
    return this.findings.length < MAX_LISTED;
  }
  add(f: Finding): void {
    this.note(f.severity, f.repair, () => f);
  }
  /** Counts a finding, and builds it only when it is still to be listed: millions may come. */
  note(severity: Finding['severity'], repair: Finding['repair'], make: () => Finding): Finding | null {
    this.counts[severity]++;
    if (repair) this.repairs.add(repair);
    if (this.findings.length >= MAX_LISTED) {
      this.unlisted++;
      return null;
    }
    const f = make();
    this.findings.push(f);
    return f;
  }
}

/**
 * Reads every structure of a VHDX the way a careful reader would, without stopping at the first
 * problem, and records each finding with the structure, entry and file offset it concerns.
 */
export async function examineVhdx(file: PositionalFile, onProgress?: (done: number, total: number) => void): Promise<VhdxExamination> {
  const c = new Collector();
  const ex: VhdxExamination = {
    findings: c.findings,
    counts: c.counts,
    unlisted: 0,
    repairs: c.repairs,
    fileSize: file.size(),
    layout: null,
    choice: null,
    goodRegionTable: null,
    batFixes: new BatFixes(0),
    truncateTo: null,
    totalBlocks: 0,
    allocatedBlocks: 0,
    imageEnd: file.size(),
    lastBlock: null,
    interiorLeaks: [],
  };
  const done = () => {
    ex.unlisted = c.unlisted;
    return ex;
  };
  if (file.size() < HEADER_SECTION_SIZE) {
    c.add({ severity: 'corruption', structure: 'file', offset: 0, message: `file is ${file.size()} bytes, shorter than the 1 MiB header section` });
    return done();
  }
  const ident = parseFileIdentifier(await readExact(file, 0, 520, 'file identifier'));
  if (!ident) c.add({ severity: 'corruption', structure: 'file identifier', offset: 0, message: 'no vhdxfile signature' });

  // Headers.
  const slots = [HEADER1_OFFSET, HEADER2_OFFSET];
  const parsed = await Promise.all(slots.map(async (o) => parseHeader(await readExact(file, o, HEADER_SIZE, 'header'))));
  const headers: [VhdxHeader | null, VhdxHeader | null] = [null, null];
  parsed.forEach((p, i) => {
    if (p.ok) headers[i] = p.header;
    else c.add({ severity: 'corruption', structure: `header ${i + 1}`, offset: slots[i], message: `header ${i + 1} is damaged: ${p.reason}`, repair: 'rewrite-header' });
  });
  if (!headers[0] && !headers[1]) return done();
  const current: 0 | 1 = headers[0] && headers[1] ? (headers[1].sequenceNumber > headers[0].sequenceNumber ? 1 : 0) : headers[0] ? 0 : 1;
  if (headers[0] && headers[1] && headers[0].sequenceNumber === headers[1].sequenceNumber) {
    c.add({ severity: 'warning', structure: 'headers', offset: HEADER1_OFFSET, message: 'both headers have the same sequence number; header 1 taken as current' });
  }
  const h = headers[current] as VhdxHeader;
  ex.choice = { headers, problems: [null, null], current, header: h };
  const hOff = slots[current];
  let logUsable = true;
  if (h.logVersion !== 0) {
    c.add({ severity: 'corruption', structure: `header ${current + 1}`, offset: hOff + 64, message: `log version ${h.logVersion} is not 0` });
    logUsable = false;
  }
  if (h.logLength % MiB !== 0 || (h.logLength > 0 && (h.logOffset < HEADER_SECTION_SIZE || h.logOffset % MiB !== 0))) {
    c.add({ severity: 'corruption', structure: `header ${current + 1}`, offset: hOff + 68, message: `log (offset ${h.logOffset}, length ${h.logLength}) is not 1 MiB aligned past the header section` });
    logUsable = false;
  } else if (h.logOffset + h.logLength > file.size()) {
    c.add({ severity: 'corruption', structure: `header ${current + 1}`, offset: hOff + 72, message: `log (offset ${h.logOffset}, length ${h.logLength}) extends past the end of the file (${file.size()} bytes)` });
    logUsable = false;
  }

  // Log.
  if (logUsable && h.logGuid !== ZERO_GUID && h.logLength > 0) {
    let plan = null;
    try {
      const search = await findActiveSequence(file, h.logOffset, h.logLength, h.logGuid, await replayFileLimit(file, ex.choice));
      plan = search.plan;
      for (const r of search.rejected) {
        // A torn entry is harmless (it is never replayed) but says a writer was cut off mid-entry.
        c.add({ severity: 'warning', structure: 'log', offset: h.logOffset + r.position, message: `log entry at log offset ${r.position} carries this log's GUID but is invalid (${r.reason}); it is ignored` });
      }
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      c.add({ severity: 'corruption', structure: 'log', offset: h.logOffset, message: err.message.replace(`${file.path}: `, '') });
    }
    if (plan) {
      const head = plan.head.header;
      if (head.flushedFileOffset > file.size()) {
        c.add({ severity: 'corruption', structure: 'log', offset: h.logOffset + plan.head.position, message: `pending log says ${head.flushedFileOffset} bytes were flushed but the file has ${file.size()}: the file was truncated; the log cannot be replayed` });
      } else {
        c.add({ severity: 'corruption', structure: 'log', offset: h.logOffset + plan.entries[0].position, message: `pending log: ${plan.entries.length} entr${plan.entries.length === 1 ? 'y' : 'ies'} (sequence ${plan.entries[0].header.sequenceNumber}..${head.sequenceNumber}) not yet replayed`, repair: 'replay-log' });
      }
      if (plan.warning) c.add({ severity: 'warning', structure: 'log', offset: h.logOffset, message: plan.warning });
      // Everything below describes the file as it is; after replay it may differ. Stop here: the
      // repair replays first and checks again.
      return done();
    }
  }

  // Region tables: each copy, and whether they agree.
  const rts = [REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET];
  const raw = await Promise.all(rts.map((o) => readExact(file, o, REGION_TABLE_SIZE, 'region table')));
  const tables = raw.map((b) => parseRegionTable(b));
  tables.forEach((t, i) => {
    if (!t.ok) c.add({ severity: 'corruption', structure: `region table ${i + 1}`, offset: rts[i], message: `region table ${i + 1} is damaged: ${t.reason}`, repair: 'rewrite-region-table' });
  });
  if (tables[0].ok !== tables[1].ok) ex.goodRegionTable = tables[0].ok ? 0 : 1;
  if (tables[0].ok && tables[1].ok && !raw[0].equals(raw[1])) {
    c.add({ severity: 'corruption', structure: 'region table 2', offset: rts[1], message: 'the two region table copies differ; region table 1 is used', repair: 'rewrite-region-table' });
    ex.goodRegionTable = 0;
  }
  const table = tables[0].ok ? tables[0] : tables[1].ok ? tables[1] : null;
  if (!table || !table.ok) return done();
  const tableOffset = tables[0].ok ? rts[0] : rts[1];
  table.entries.forEach((r, i) => {
    const known = r.guid === REGION_BAT || r.guid === REGION_METADATA;
    if (known && !r.required) {
      c.add({ severity: 'warning', structure: 'region table', offset: tableOffset + 16 + i * 32, entry: i, message: `${r.guid === REGION_BAT ? 'BAT' : 'metadata'} region is not marked Required (VirtualBox refuses such files)` });
    }
  });

  // Metadata and the rest of the header section, by the strict reader: its first refusal is the finding.
  let layout: VhdxLayout;
  try {
    layout = await readLayout(file, ex.choice);
  } catch (err) {
    if (!(err instanceof VdiskError)) throw err;
    c.add({ severity: 'corruption', structure: 'metadata', offset: 0, message: err.message.replace(`${file.path}: `, '') });
    return done();
  }
  ex.layout = layout;
  const g = layout.geometry;
  const fixed = layout.params.leaveBlocksAllocated;
  const hasParent = layout.params.hasParent;
  const bs = layout.params.blockSize;

  // Occupied ranges of the file, to find overlaps and leaks.
  const structures: { start: number; end: number; what: string }[] = [
    { start: 0, end: HEADER_SECTION_SIZE, what: 'header section' },
    { start: layout.bat.fileOffset, end: layout.bat.fileOffset + layout.bat.length, what: 'BAT region' },
    { start: layout.metadata.fileOffset, end: layout.metadata.fileOffset + layout.metadata.length, what: 'metadata region' },
  ];
  if (logUsable && h.logLength > 0) structures.push({ start: h.logOffset, end: h.logOffset + h.logLength, what: 'log' });

  // BAT, in one pass with state compact whatever its size: fixes one byte per entry, the file space
  // the entries claim one bit per MiB of the file.
  const bat = new BatTable(file, layout.bat.fileOffset, g.totalEntries);
  const fixes = new BatFixes(g.totalEntries);
  ex.batFixes = fixes;
  const claimed = new Bitmap(Math.ceil(file.size() / MiB));
  /** Listed sharing findings still to name the entry they share with, by the MiB they collide at. */
  const unnamed = new Map<number, { finding: Finding; index: number }[]>();
  let allocated = 0;
  ex.totalBlocks = g.dataBlocks;
  const batAt = (i: number) => layout.bat.fileOffset + i * 8;
  // Messages are built only while findings are still listed (c.listing): millions may be counted.
  const bad = (i: number, message: string, repair: NonNullable<Finding['repair']>) =>
    c.note('corruption', repair, () => ({ severity: 'corruption', structure: 'BAT', offset: batAt(i), entry: i, message, repair }));
  const zeroRun = (first: number, count: number) => {
    // NOT_PRESENT with offset 0 is right everywhere except in a fixed image.
    if (!fixed) return;
    for (let i = first; i < first + count; i++) {
      if (isBitmapEntry(g, i)) continue;
      fixes.set(i, BatFix.MapNew);
      bad(i, c.listing ? `fixed image, but block ${blockOfEntry(g, i)} is NOT_PRESENT` : '', 'map-block');
    }
  };
  await bat.scan((i, e) => {
    const bitmap = isBitmapEntry(g, i);
    if (e.reserved !== 0) {
      bad(i, c.listing ? `BAT entry ${i} has reserved bits set (0x${e.reserved.toString(16)})` : '', 'clear-bat-entry');
      fixes.set(i, BatFix.DropReserved);
    }
    const where = placement(g, layout, structures, file.size(), i, e, c.listing);
    if (typeof where === 'string') {
      bad(i, c.listing ? `BAT entry ${i} ${where}; clearing it loses that block's data` : '', 'clear-bat-entry');
      fixes.set(i, BatFix.Clear);
      return;
    }
    if (where === null) {
      if (e.fileOffset !== 0) {
        bad(i, c.listing ? `BAT entry ${i} is ${STATE_NAMES[e.state]} but carries file offset ${e.fileOffset} (Hyper-V refuses that)` : '', 'clear-bat-entry');
        fixes.set(i, BatFix.DropOffset);
      }
      // ZERO is allowed: QEMU makes fixed images with every block ZERO (its block_state_zero default).
      if (fixed && !bitmap && e.state !== PAYLOAD_ZERO) {
        bad(i, c.listing ? `fixed image, but block ${blockOfEntry(g, i)} is ${STATE_NAMES[e.state]}` : '', 'map-block');
        if (!fixes.get(i)) fixes.set(i, BatFix.MapNew);
      }
      return;
    }
    // Two entries sharing file space: the later one (in BAT order) gives way.
    const first = where.start / MiB;
    const miBs = where.size / MiB;
    const taken = claimed.firstSet(first, first + miBs);
    if (taken >= 0) {
      const f = bad(i, c.listing ? `BAT entries ${i} and ? share file space at ${where.start}; clearing entry ${i} loses its view of that data` : '', 'clear-bat-entry');
      if (f) unnamed.set(taken, [...(unnamed.get(taken) ?? []), { finding: f, index: i }]);
      fixes.set(i, BatFix.Clear);
      return;
    }
    claimed.setRange(first, first + miBs);
    if (!bitmap) allocated++;
    if (!ex.lastBlock || where.start > ex.lastBlock.offset) ex.lastBlock = { index: i, offset: where.start, size: where.size };
  }, zeroRun, onProgress);
  ex.allocatedBlocks = allocated;
  if (unnamed.size > 0) await nameSharers(bat, g, layout, structures, file.size(), unnamed);

  // Leaks: unreferenced space holding data. Zero slack (QEMU keeps 5 MiB after the BAT) is free space.
  const sorted = [...structures].sort((a, b) => a.start - b.start);
  let end = 0;
  const gaps: { start: number; end: number }[] = [];
  const visit = (r: { start: number; end: number }) => {
    // Only bytes the file has can leak: a structure claimed past the end leaves no gap to scan.
    if (r.start > end && end < file.size()) gaps.push({ start: end, end: Math.min(r.start, file.size()) });
    end = Math.max(end, r.end);
  };
  let k = 0;
  for (const run of claimed.runs()) {
    const r = { start: run.start * MiB, end: run.end * MiB };
    while (k < sorted.length && sorted[k].start <= r.start) visit(sorted[k++]);
    visit(r);
  }
  while (k < sorted.length) visit(sorted[k++]);
  ex.imageEnd = end;
  if (file.size() > end) gaps.push({ start: end, end: file.size() });
  let firstTailLeak: number | null = null;
  for (const gap of gaps) {
    const dataAt = await firstNonZero(file, gap.start, gap.end);
    if (dataAt === null) continue;
    const tail = gap.end === file.size() && gap.start >= end;
    c.add({
      severity: 'leak',
      structure: 'file',
      offset: gap.start,
      message: `${gap.end - gap.start} bytes at ${gap.start}..${gap.end} hold data that nothing references${tail ? '' : ' (inside the file: -r moves the last block into it)'}`,
      repair: tail ? 'truncate' : 'move-block',
    });
    if (tail) firstTailLeak = gap.start;
    else if (ex.interiorLeaks.length < MAX_INTERIOR_LEAKS) ex.interiorLeaks.push(gap);
  }
  if (firstTailLeak !== null) ex.truncateTo = roundUp(firstTailLeak, MiB);
  return done();
}

type Structure = { start: number; end: number; what: string };

/** Valid BAT states as bit masks (bit n: state n): sector bitmaps, payload, payload with a parent. */
const BITMAP_STATES = (1 << SB_NOT_PRESENT) | (1 << SB_PRESENT);
const PAYLOAD_STATES = 0b1101111; // 0, 1, 2, 3, 5 (UNMAPPED in draft 0.95), 6
const DIFFERENCING_STATES = PAYLOAD_STATES | (1 << PAYLOAD_PARTIALLY_PRESENT);

/**
 * Where BAT entry `i` puts its block: null when the entry is not present (nothing stored), a reason
 * when its state or placement is invalid, else the file range it claims.
 */
function placement(
  g: VhdxLayout['geometry'],
  layout: VhdxLayout,
  structures: Structure[],
  fileSize: number,
  i: number,
  e: BatEntry,
  explain = true,
): { start: number; size: number } | string | null {
  const bitmap = isBitmapEntry(g, i);
  const hasParent = layout.params.hasParent;
  const validStates = bitmap ? BITMAP_STATES : hasParent ? DIFFERENCING_STATES : PAYLOAD_STATES;
  if (((validStates >> e.state) & 1) === 0) {
    return explain ? `(${bitmap ? 'sector bitmap' : `block ${blockOfEntry(g, i)}`}) has invalid state ${e.state} (${STATE_NAMES[e.state] ?? '?'})` : 'invalid';
  }
  if (bitmap && e.state === SB_PRESENT && !hasParent) return 'is a PRESENT sector bitmap in an image without a parent';
  const present = bitmap ? e.state === SB_PRESENT : e.state === PAYLOAD_FULLY_PRESENT || e.state === PAYLOAD_PARTIALLY_PRESENT;
  if (!present) return null;
  const size = bitmap ? MiB : layout.params.blockSize;
  if (e.fileOffset < HEADER_SECTION_SIZE || e.fileOffset + size > fileSize) {
    return explain ? `points to ${e.fileOffset}..${e.fileOffset + size}, ${e.fileOffset < HEADER_SECTION_SIZE ? 'inside the header section' : `past the end of the file (${fileSize} bytes)`}` : 'invalid';
  }
  for (const s of structures) {
    if (e.fileOffset < s.end && s.start < e.fileOffset + size) return explain ? `points to ${e.fileOffset}, overlapping the ${s.what}` : 'invalid';
  }
  return { start: e.fileOffset, size };
}

/**
 * Names, in the listed sharing findings, the entry each shares with: the first entry in BAT order
 * whose valid block covers the MiB they collided at. A second pass, taken only when sharing was found.
 */
async function nameSharers(
  bat: BatTable,
  g: VhdxLayout['geometry'],
  layout: VhdxLayout,
  structures: Structure[],
  fileSize: number,
  unnamed: Map<number, { finding: Finding; index: number }[]>,
): Promise<void> {
  await bat.scan((i, e) => {
    const where = placement(g, layout, structures, fileSize, i, e, false);
    if (!where || typeof where === 'string') return;
    for (let m = where.start / MiB; m < (where.start + where.size) / MiB && unnamed.size > 0; m++) {
      const waiting = unnamed.get(m);
      if (!waiting) continue;
      // The first entry in BAT order over this MiB is the one every later claimant collided with.
      for (const w of waiting) w.finding.message = w.finding.message.replace(`BAT entries ${w.index} and ? `, `BAT entries ${i} and ${w.index} `);
      unnamed.delete(m);
    }
  });
}

/** Offset of the first non-zero byte in [start, end), or null: leaked data is what holds anything. */
async function firstNonZero(file: PositionalFile, start: number, end: number): Promise<number | null> {
  end = Math.min(end, file.size());
  const buf = Buffer.alloc(Math.min(4 * MiB, Math.max(0, end - start)));
  const zeros = Buffer.alloc(LOG_SECTOR_SIZE);
  for (let at = start; at < end; at += buf.length) {
    const n = Math.min(buf.length, end - at);
    const view = buf.subarray(0, n);
    await file.readAt(view, at);
    for (let i = 0; i < n; i += LOG_SECTOR_SIZE) {
      const piece = view.subarray(i, Math.min(n, i + LOG_SECTOR_SIZE));
      if (!piece.equals(zeros.subarray(0, piece.length))) return at + i;
    }
  }
  return null;
}
