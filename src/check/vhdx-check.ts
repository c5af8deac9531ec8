import { PositionalFile, readExact } from '../io/file.js';
import { VdiskError } from '../errors.js';
import {
  HEADER1_OFFSET, HEADER2_OFFSET, HEADER_SECTION_SIZE, HEADER_SIZE, LOG_SECTOR_SIZE, MiB, REGION_BAT, REGION_METADATA,
  REGION_TABLE1_OFFSET, REGION_TABLE2_OFFSET, REGION_TABLE_SIZE, roundUp,
} from '../formats/vhdx/constants.js';
import { parseFileIdentifier } from '../formats/vhdx/file-identifier.js';
import { parseHeader, type VhdxHeader } from '../formats/vhdx/header.js';
import { parseRegionTable } from '../formats/vhdx/region-table.js';
import { readLayout, type HeaderChoice, type VhdxLayout } from '../formats/vhdx/layout.js';
import { findActiveSequence } from '../formats/vhdx/log.js';
import { BatTable } from '../formats/vhdx/bat-table.js';
import {
  PAYLOAD_FULLY_PRESENT, PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT, PAYLOAD_ZERO, SB_NOT_PRESENT, SB_PRESENT, STATE_NAMES,
  blockOfEntry, isBitmapEntry,
} from '../formats/vhdx/bat.js';
import { ZERO_GUID } from '../formats/vhdx/guid.js';
import type { Finding } from './report.js';

const MAX_LISTED = 1000;

/** What a full read of the image found, and what repairs would need. */
export interface VhdxExamination {
  findings: Finding[];
  /** More findings than were listed (the count is still right). */
  unlisted: number;
  fileSize: number;
  layout: VhdxLayout | null;
  choice: HeaderChoice | null;
  /** Index of the region-table copy that is good when the other is damaged. */
  goodRegionTable: 0 | 1 | null;
  /** BAT entries to rewrite: index -> new raw state and file offset. */
  batFixes: Map<number, { state: number; fileOffset: number }>;
  /** Where unreferenced data ends the file: truncating here drops only leaked space. */
  truncateTo: number | null;
  totalBlocks: number;
  allocatedBlocks: number;
  imageEnd: number;
  /** Payload and bitmap blocks in file order: where each BAT entry's space is. */
  blocks: { index: number; offset: number; size: number }[];
  /** Unreferenced ranges holding data before the last referenced byte (truncation cannot reach them). */
  interiorLeaks: { start: number; end: number }[];
}

class Collector {
  findings: Finding[] = [];
  unlisted = 0;
  counts = { corruption: 0, leak: 0, warning: 0 };
  add(f: Finding): void {
    this.counts[f.severity]++;
    if (this.findings.length < MAX_LISTED) this.findings.push(f);
    else this.unlisted++;
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
    unlisted: 0,
    fileSize: file.size(),
    layout: null,
    choice: null,
    goodRegionTable: null,
    batFixes: new Map(),
    truncateTo: null,
    totalBlocks: 0,
    allocatedBlocks: 0,
    imageEnd: file.size(),
    blocks: [],
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
      const search = await findActiveSequence(file, h.logOffset, h.logLength, h.logGuid, Math.max(file.size(), 2 ** 47));
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

  // BAT.
  const bat = new BatTable(file, layout.bat.fileOffset, g.totalEntries);
  const starts: number[] = [];
  const indices: number[] = [];
  let allocated = 0;
  ex.totalBlocks = g.dataBlocks;
  const zeroRun = (first: number, count: number) => {
    // NOT_PRESENT with offset 0 is right everywhere except in a fixed image.
    if (!fixed) return;
    for (let i = first; i < first + count; i++) {
      if (isBitmapEntry(g, i)) continue;
      c.add({ severity: 'corruption', structure: 'BAT', offset: layout.bat.fileOffset + i * 8, entry: i, message: `fixed image, but block ${blockOfEntry(g, i)} is NOT_PRESENT`, repair: 'map-block' });
    }
  };
  await bat.scan((i, e) => {
    const at = layout.bat.fileOffset + i * 8;
    const bitmap = isBitmapEntry(g, i);
    const where = { structure: 'BAT', offset: at, entry: i };
    const clear = () => ex.batFixes.set(i, { state: PAYLOAD_NOT_PRESENT, fileOffset: 0 });
    if (e.reserved !== 0) {
      c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} has reserved bits set (0x${e.reserved.toString(16)})`, repair: 'clear-bat-entry' });
      if (!ex.batFixes.has(i)) ex.batFixes.set(i, { state: e.state, fileOffset: e.fileOffset });
    }
    const present = bitmap ? e.state === SB_PRESENT : e.state === PAYLOAD_FULLY_PRESENT || e.state === PAYLOAD_PARTIALLY_PRESENT;
    const validStates = bitmap ? [SB_NOT_PRESENT, SB_PRESENT] : hasParent ? [0, 1, 2, 3, 5, 6, 7] : [0, 1, 2, 3, 5, 6];
    if (!validStates.includes(e.state)) {
      c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} (${bitmap ? 'sector bitmap' : `block ${blockOfEntry(g, i)}`}) has invalid state ${e.state} (${STATE_NAMES[e.state] ?? '?'}); clearing it loses that block's data`, repair: 'clear-bat-entry' });
      clear();
      return;
    }
    if (bitmap && e.state === SB_PRESENT && !hasParent) {
      c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} is a PRESENT sector bitmap in an image without a parent`, repair: 'clear-bat-entry' });
      clear();
      return;
    }
    if (!present) {
      if (e.fileOffset !== 0) {
        c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} is ${STATE_NAMES[e.state]} but carries file offset ${e.fileOffset} (Hyper-V refuses that)`, repair: 'clear-bat-entry' });
        ex.batFixes.set(i, { state: e.state, fileOffset: 0 });
      }
      // ZERO is allowed: QEMU makes fixed images with every block ZERO (its block_state_zero default).
      if (fixed && !bitmap && e.state !== PAYLOAD_ZERO) {
        c.add({ ...where, severity: 'corruption', message: `fixed image, but block ${blockOfEntry(g, i)} is ${STATE_NAMES[e.state]}`, repair: 'map-block' });
      }
      return;
    }
    const size = bitmap ? MiB : bs;
    if (e.fileOffset < HEADER_SECTION_SIZE || e.fileOffset + size > file.size()) {
      c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} points to ${e.fileOffset}..${e.fileOffset + size}, ${e.fileOffset < HEADER_SECTION_SIZE ? 'inside the header section' : `past the end of the file (${file.size()} bytes)`}; clearing it loses that block's data`, repair: 'clear-bat-entry' });
      clear();
      return;
    }
    for (const s of structures) {
      if (e.fileOffset < s.end && s.start < e.fileOffset + size) {
        c.add({ ...where, severity: 'corruption', message: `BAT entry ${i} points to ${e.fileOffset}, overlapping the ${s.what}; clearing it loses that block's data`, repair: 'clear-bat-entry' });
        clear();
        return;
      }
    }
    if (!bitmap) allocated++;
    starts.push(e.fileOffset);
    indices.push(i);
  }, zeroRun, onProgress);

  // Two entries sharing file space: sort by offset and compare neighbours.
  const order = starts.map((_, k) => k).sort((a, b) => starts[a] - starts[b] || indices[a] - indices[b]);
  const sizeOf = (i: number) => (isBitmapEntry(g, i) ? MiB : bs);
  let prevEnd = -1;
  let prevIndex = -1;
  const used: { start: number; end: number }[] = [];
  for (const k of order) {
    const start = starts[k];
    const i = indices[k];
    if (start < prevEnd) {
      c.add({ severity: 'corruption', structure: 'BAT', offset: layout.bat.fileOffset + i * 8, entry: i, message: `BAT entries ${prevIndex} and ${i} share file space at ${start}; clearing entry ${i} loses its view of that data`, repair: 'clear-bat-entry' });
      ex.batFixes.set(i, { state: PAYLOAD_NOT_PRESENT, fileOffset: 0 });
      if (!isBitmapEntry(g, i)) allocated--;
      continue;
    }
    prevEnd = start + sizeOf(i);
    prevIndex = i;
    used.push({ start, end: prevEnd });
    ex.blocks.push({ index: i, offset: start, size: sizeOf(i) });
  }
  ex.allocatedBlocks = allocated;

  // Leaks: unreferenced space holding data. Zero slack (QEMU keeps 5 MiB after the BAT) is free space.
  const all = [...structures, ...used].sort((a, b) => a.start - b.start);
  let end = 0;
  const gaps: { start: number; end: number }[] = [];
  for (const r of all) {
    // Only bytes the file has can leak: a structure claimed past the end leaves no gap to scan.
    if (r.start > end && end < file.size()) gaps.push({ start: end, end: Math.min(r.start, file.size()) });
    end = Math.max(end, r.end);
  }
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
    else ex.interiorLeaks.push(gap);
  }
  if (firstTailLeak !== null) ex.truncateTo = roundUp(firstTailLeak, MiB);
  return done();
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
