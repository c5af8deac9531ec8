import { dirname, isAbsolute, join } from 'node:path';
import { VdiskError } from '../../errors.js';
import { PositionalFile } from '../../io/file.js';
import { lockFor } from '../../io/lock.js';
import type { DriverCheckOptions } from '../driver.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';
import { FLAG_ZERO_GRAIN, GTE_ZERO, MAX_DESCRIPTOR, SECTOR, SPARSE_MAGIC } from './constants.js';
import { parseDescriptor } from './descriptor.js';
import type { GrainDirectory } from './grain-directory.js';
import { GRAIN_MARKER_SIZE } from './marker.js';
import { SparseExtent } from './sparse-extent.js';

const MAX_LISTED = 100;

/** What one look at the image found, with the repairs that are certain. */
interface Examination {
  findings: Finding[];
  unlisted: number;
  corruptions: number;
  leaks: number;
  total: number;
  allocated: number;
  extents: ExtentPlan[];
}

/** The repairs of one sparse extent file. */
interface ExtentPlan {
  file: PositionalFile;
  /** Grain tables to rewrite from their good copy. */
  tables: { at: number; data: Buffer }[];
  /** Directory entries to point at a table restored where the directory's layout puts it (written after the tables). */
  entries: { at: number; sector: number }[];
  /** Where the last structure or grain anything points at ends, when every table could be read. */
  end: number | null;
  leakBytes: number;
}

function finding(ex: Examination, f: Finding): void {
  if (f.severity === 'corruption') ex.corruptions++;
  else if (f.severity === 'leak') ex.leaks++;
  if (ex.findings.length < MAX_LISTED) ex.findings.push(f);
  else ex.unlisted++;
}

/**
 * `check` of a VMDK: every grain table of every sparse extent is read, and every entry must point at
 * a grain inside the file and past the metadata (what qemu-img checks), each table must agree with its
 * redundant copy, and the file must not run on past the last grain. QEMU's vmdk check only reports;
 * vdisk repairs what is certain: a grain table that disagrees with its copy is rewritten from the copy
 * whose every entry is valid (the primary when both are, as writers update it first); a directory
 * entry that is lost or points where no table belongs gets the other copy's table back where the
 * directory's own layout (every other entry's place) puts it; and space past the last grain is cut off. Tables are written and flushed before the cut, so a crash at any write
 * leaves the disk reading as before and the same repair still to do.
 */
export async function checkVmdk(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  const mode = options.repair === 'none' ? 'r' : 'rw';
  const files = await sparseFiles(file, mode);
  try {
    const before = await examine(files, options);
    if (options.repair === 'none') return report(file.path, before, { corruptions: 0, leaks: 0 });
    // One repair can make another certain (a table restored from a copy another bad entry overlapped):
    // a few rounds, each written in the same safe order, until one finds nothing to do.
    let changed = false;
    let current = before;
    for (let round = 0; round < 4 && (await applyPlans(current.extents, options.repair)); round++) {
      changed = true;
      current = await examine(files, options);
    }
    if (!changed) return report(file.path, before, { corruptions: 0, leaks: 0 });
    const after = await examine(files, { repair: 'none' });
    const left = new Set(after.findings.map((f) => `${f.structure}@${f.offset}`));
    const findings = before.findings.map((f) => {
      const gone = !left.has(`${f.structure}@${f.offset}`);
      return f.repair || gone ? { ...f, fixed: gone } : f;
    });
    const r = report(file.path, after, {
      corruptions: Math.max(0, before.corruptions - after.corruptions),
      leaks: Math.max(0, before.leaks - after.leaks),
    });
    return { ...r, findings: [...findings, ...after.findings.filter((f) => !before.findings.some((b) => b.structure === f.structure && b.offset === f.offset))].slice(0, MAX_LISTED) };
  } finally {
    for (const f of files.files) if (f !== file) await f.close();
  }
}

/** Makes the planned repairs: tables, then the directory entries naming restored ones, then the cut. Returns whether anything was written. */
async function applyPlans(plans: ExtentPlan[], repair: DriverCheckOptions['repair']): Promise<boolean> {
  let changed = false;
  for (const plan of plans) {
    if (repair === 'all' && plan.tables.length) {
      for (const t of plan.tables) await plan.file.writeAt(t.data, t.at);
      await plan.file.flush();
      // A restored table is durable before a directory entry names it.
      if (plan.entries.length) {
        const b = Buffer.alloc(4);
        for (const en of plan.entries) {
          b.writeUInt32LE(en.sector, 0);
          await plan.file.writeAt(b, en.at);
        }
        await plan.file.flush();
      }
      changed = true;
    }
    // The end counts every grain a table will name after the rewrites: the cut is safe.
    if (plan.end !== null && plan.leakBytes > 0) {
      await plan.file.truncate(plan.end);
      await plan.file.flush();
      changed = true;
    }
  }
  return changed;
}

function report(path: string, ex: Examination, fixed: { corruptions: number; leaks: number }): CheckReport {
  return {
    filename: path,
    format: 'vmdk',
    'check-errors': 0,
    corruptions: ex.corruptions,
    leaks: ex.leaks,
    'corruptions-fixed': fixed.corruptions,
    'leaks-fixed': fixed.leaks,
    'total-blocks': ex.total,
    'allocated-blocks': ex.allocated,
    findings: ex.findings,
    ...(ex.unlisted ? { 'unlisted-findings': ex.unlisted } : {}),
  };
}

async function examine(sparse: { files: PositionalFile[]; problems: Finding[] }, options: DriverCheckOptions): Promise<Examination> {
  const ex: Examination = { findings: [], unlisted: 0, corruptions: 0, leaks: 0, total: 0, allocated: 0, extents: [] };
  for (const p of sparse.problems) finding(ex, p);
  for (const f of sparse.files) {
    try {
      const e = await SparseExtent.open(f);
      ex.total += Math.ceil(e.geo.capacitySectors / e.geo.grainSectors);
      ex.extents.push(await checkExtent(e, ex, options));
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      finding(ex, { severity: 'corruption', structure: 'sparse extent header', offset: 0, message: err.message });
    }
  }
  return ex;
}

/** The sparse files to walk: the file itself, or the SPARSE extents its descriptor lists. */
async function sparseFiles(file: PositionalFile, mode: 'r' | 'rw'): Promise<{ files: PositionalFile[]; problems: Finding[] }> {
  const head = Buffer.alloc(4);
  await file.readAt(head, 0);
  if (head.readUInt32LE(0) === SPARSE_MAGIC) return { files: [file], problems: [] };
  if (file.size() > MAX_DESCRIPTOR) throw new VdiskError('CORRUPT', `${file.path}: not a VMDK: no sparse extent header, and too long for a descriptor file`);
  const text = Buffer.alloc(file.size());
  await file.readAt(text, 0);
  const files: PositionalFile[] = [];
  const problems: Finding[] = [];
  try {
    for (const line of parseDescriptor(file.path, text.toString('latin1')).extents) {
      if (line.type !== 'SPARSE') continue;
      const path = isAbsolute(line.file) ? line.file : join(dirname(file.path), line.file);
      try {
        files.push(await PositionalFile.open(path, mode, { lock: lockFor(mode, false) }));
      } catch (err) {
        if (!(err instanceof VdiskError)) throw err;
        problems.push({ severity: 'corruption', structure: 'extent', offset: 0, message: err.message });
      }
    }
  } catch (err) {
    for (const f of files) await f.close();
    throw err;
  }
  return { files, problems };
}

type TableLook = { sector: number; table: Uint32Array | null; error: string | null };

/** Grain table `t` of a directory: its sector and entries, or why they cannot be read. */
async function lookAt(gd: GrainDirectory, t: number): Promise<TableLook> {
  let sector = 0;
  try {
    sector = await gd.tableSector(t);
    return { sector, table: await gd.table(t), error: null };
  } catch (err) {
    if (!(err instanceof VdiskError)) throw err;
    return { sector, table: null, error: err.message };
  }
}

function tableBytes(table: Uint32Array): Buffer {
  const b = Buffer.alloc(table.length * 4);
  table.forEach((v, i) => b.writeUInt32LE(v, i * 4));
  return b;
}

function sameTable(a: Uint32Array, b: Uint32Array): boolean {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

interface TableLayout {
  /** Whether a table may be written at `sector`: inside the metadata (past the header, before the first grain), clear of the descriptor and both directories, and overlapping no table either directory names but the one there (`self`). */
  placeOk(sector: number, self?: boolean): boolean;
  /** Where directory `dir` (0 primary, 1 redundant) puts table `t` by its layout, or 0 when its entries do not say it for certain. */
  expected(dir: number, t: number): number;
}

/**
 * Where tables are and may go. The table sectors are gathered once, sorted, so each placement
 * question is a binary search. A directory's layout is certain when most of its tables sit one after
 * another right after it (as QEMU, VMware and vdisk lay them out) and none sits elsewhere more often.
 */
async function tableLayout(e: SparseExtent): Promise<TableLayout> {
  const { gd, rgd, header } = e;
  const len = gd.gtes * 4;
  const dirs = [gd, ...(rgd ? [rgd] : [])];
  const starts = new Float64Array(dirs.length * gd.entries);
  const bases: number[] = [];
  let n = 0;
  for (const d of dirs) {
    const base = d.gdSector + Math.ceil((d.entries * 4) / SECTOR);
    let fits = 0;
    let misfits = 0;
    for (let t = await d.firstTable(0, d.entries); t < d.entries; t = await d.firstTable(t + 1, d.entries)) {
      try {
        const s = await d.tableSector(t);
        if (s === 0) continue;
        starts[n++] = s * SECTOR;
        if (s === base + (t * len) / SECTOR) fits++;
        else misfits++;
      } catch (err) {
        if (!(err instanceof VdiskError)) throw err;
      }
    }
    bases.push(len % SECTOR === 0 && fits > misfits ? base : 0);
  }
  const sorted = starts.subarray(0, n).sort();
  const fixed: [number, number][] = [[0, SECTOR], ...dirs.map((d): [number, number] => [d.gdSector * SECTOR, d.gdSector * SECTOR + d.entries * 4])];
  if (header.descriptorOffset > 0n) fixed.push([Number(header.descriptorOffset) * SECTOR, Number(header.descriptorOffset + header.descriptorSize) * SECTOR]);
  const firstGrain = Number(header.overHead) * SECTOR;
  return {
    placeOk(sector, self = true) {
      const at = sector * SECTOR;
      if (sector === 0 || at + len > firstGrain) return false;
      if (fixed.some(([a, b]) => at < b && a < at + len)) return false;
      // Tables overlapping this one start in (at - len, at + len).
      let lo = 0;
      let hi = sorted.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (sorted[mid] <= at - len) lo = mid + 1;
        else hi = mid;
      }
      let near = 0;
      for (let i = lo; i < sorted.length && sorted[i] < at + len; i++) near++;
      return near === (self ? 1 : 0);
    },
    expected: (dir, t) => (bases[dir] ? bases[dir] + (t * len) / SECTOR : 0),
  };
}

/** Walks one extent's tables (and their redundant copies); returns what a repair would do. */
async function checkExtent(e: SparseExtent, ex: Examination, options: DriverCheckOptions): Promise<ExtentPlan> {
  const { gd, rgd, header } = e;
  const size = e.file.size();
  const firstGrain = Number(header.overHead) * SECTOR;
  const need = e.compressed ? GRAIN_MARKER_SIZE : e.grainBytes;
  const zeroGrain = (header.flags & FLAG_ZERO_GRAIN) !== 0;
  const tableBytesLen = gd.gtes * 4;
  const plan: ExtentPlan = { file: e.file, tables: [], entries: [], end: null, leakBytes: 0 };
  // Everything the file must keep: the header, the descriptor, both directories, tables and grains.
  let end = Math.max(SECTOR, firstGrain, gd.gdSector * SECTOR + gd.entries * 4);
  if (rgd) end = Math.max(end, rgd.gdSector * SECTOR + rgd.entries * 4);
  if (header.descriptorOffset > 0n) end = Math.max(end, Number(header.descriptorOffset + header.descriptorSize) * SECTOR);
  let endKnown = !e.compressed;
  const bad = (v: number) => v !== 0 && !(v === GTE_ZERO && zeroGrain) && (v * SECTOR < firstGrain || v * SECTOR + need > size);
  const countEnds = (table: Uint32Array) => {
    for (const v of table) if (v !== 0 && !(v === GTE_ZERO && zeroGrain) && !bad(v)) end = Math.max(end, v * SECTOR + need);
  };

  const layout = await tableLayout(e);
  const placeOk = (sector: number) => layout.placeOk(sector);

  // Only entries where either directory names a table: a huge, empty disk costs a scan of its directories.
  const next = async (from: number) => Math.min(await gd.firstTable(from, gd.entries), rgd ? await rgd.firstTable(from, gd.entries) : gd.entries);
  for (let t = await next(0); t < gd.entries; t = await next(t + 1)) {
    options.onProgress?.(t, gd.entries);
    const primary = await lookAt(gd, t);
    const copy = rgd ? await lookAt(rgd, t) : null;
    // A table sits where it belongs: where its directory's layout says when that is certain; else in
    // a free place in the metadata, or past it (where other writers may put tables).
    const placed = (dir: number, l: TableLook) => {
      if (l.error || l.sector === 0) return false;
      const want = layout.expected(dir, t);
      if (want !== 0) return want === l.sector && placeOk(l.sector);
      return l.sector * SECTOR + tableBytesLen > firstGrain || placeOk(l.sector);
    };
    const valid = (dir: number, l: TableLook | null) => !!l?.table && placed(dir, l) && !l.table.some(bad);
    // A directory entry that names no table where one belongs (lost, past the end, into other
    // structures), while the other directory's table is valid: that table goes back where this
    // directory's layout puts it, in a place nothing uses, then the entry names it.
    const restoreAt = (dir: number, l: TableLook, other: TableLook | null) => {
      if (!other || placed(dir, l) || !valid(1 - dir, other) || !(l.error || l.sector !== 0 || other.sector !== 0)) return 0;
      const to = layout.expected(dir, t);
      return to !== 0 && to !== l.sector && layout.placeOk(to, false) ? to : 0;
    };
    const restorePrimary = copy ? restoreAt(0, primary, copy) : 0;
    const restoreCopy = copy ? restoreAt(1, copy, primary) : 0;
    for (const [dir, look, other, to] of [[gd, primary, copy, restorePrimary], [rgd, copy, primary, restoreCopy]] as const) {
      if (!dir || !look) continue;
      const what = dir === gd ? 'grain directory' : 'redundant grain directory';
      const lost = !look.error && look.sector === 0 && other !== null && other.sector !== 0;
      if (!look.error && !lost && !to) continue;
      const why = look.error ?? (lost ? `${e.filename}: ${what} entry ${t} names no grain table, while its copy does` : `${e.filename}: ${what} entry ${t} names sector ${look.sector}, where no grain table belongs`);
      const f: Finding = { severity: 'corruption', structure: what, offset: dir.gdSector * SECTOR + t * 4, entry: t, message: why };
      if (to) {
        f.message += `; its copy's table is valid and goes back to sector ${to}`;
        f.repair = 'rewrite-grain-directory';
        plan.tables.push({ at: to * SECTOR, data: tableBytes(other!.table!) });
        plan.entries.push({ at: dir.gdSector * SECTOR + t * 4, sector: to });
      }
      finding(ex, f);
    }
    const table = primary.table;
    const restoring = (restorePrimary || restoreCopy) !== 0 && options.repair === 'all';
    // A table a restoring directory entry stops naming need not be kept.
    if (table && !(restoring && restorePrimary)) end = Math.max(end, primary.sector * SECTOR + tableBytesLen);
    if (copy?.table && !(restoring && restoreCopy)) end = Math.max(end, copy.sector * SECTOR + tableBytesLen);
    // Grains only an unreadable table could name might lie anywhere: no cut is certain then, unless
    // that table is about to be replaced by its copy.
    if ((primary.error || copy?.error) && !restoring) endKnown = false;
    const differs = !restorePrimary && !restoreCopy && table && copy?.table && !sameTable(table, copy.table);
    // A copy is rewritten only where a table belongs: a directory entry that points elsewhere (into
    // the descriptor, another table, the grains) would have the repair overwrite what lies there.
    const primaryOk = valid(0, primary);
    const copyOk = differs ? valid(1, copy) : false;
    // Rewritten in place only inside the metadata: a table among the grains could be a grain.
    const fixable = differs && (primaryOk ? placed(1, copy!) && placeOk(copy!.sector) : copyOk && placed(0, primary) && placeOk(primary.sector));
    if (fixable) plan.tables.push({ at: (primaryOk ? copy!.sector : primary.sector) * SECTOR, data: tableBytes(primaryOk ? table : copy!.table!) });
    // The tail must keep every grain a table will name: once a rewrite is made, only the good copy's;
    // without it (-r leaks, or nothing certain), those of both copies.
    if (restoring) countEnds(restorePrimary ? copy!.table! : table!);
    else if (fixable && options.repair === 'all') countEnds(primaryOk ? table : copy!.table!);
    else {
      if (table) countEnds(table);
      if (copy?.table) countEnds(copy.table);
    }
    if (differs && primaryOk) {
      finding(ex, { severity: 'corruption', structure: 'redundant grain table', offset: copy!.sector * SECTOR, entry: t, message: `${e.filename}: the redundant copy of grain table ${t} disagrees with the valid primary`, ...(fixable ? { repair: 'rewrite-grain-table' as const } : {}) });
    } else if (differs && !fixable) {
      finding(ex, { severity: 'corruption', structure: 'redundant grain table', offset: copy!.sector * SECTOR, entry: t, message: `${e.filename}: grain table ${t} and its redundant copy disagree, and neither can be rewritten from the other` });
    }
    if (!table) continue;
    // The primary is what readers follow: each bad entry counts, as qemu-img check counts them.
    for (let i = 0; i < table.length; i++) {
      const entry = table[i];
      if (entry === 0 || (entry === GTE_ZERO && zeroGrain)) continue;
      ex.allocated++;
      if (!bad(entry)) continue;
      const grain = t * gd.gtes + i;
      const where = entry * SECTOR + need > size
        ? `past the end of the file (${size} bytes)`
        : `inside the metadata (grains start at sector ${header.overHead})`;
      const f: Finding = { severity: 'corruption', structure: 'grain table', offset: primary.sector * SECTOR + i * 4, entry: grain, message: `${e.filename}: grain ${grain} is stored at sector ${entry}, ${where}` };
      if (fixable || restorePrimary) {
        f.message += '; the redundant copy of its table is valid';
        f.repair = fixable ? 'rewrite-grain-table' : 'rewrite-grain-directory';
      }
      finding(ex, f);
    }
  }
  options.onProgress?.(gd.entries, gd.entries);
  if (endKnown) {
    plan.end = Math.ceil(end / SECTOR) * SECTOR;
    if (size > plan.end) {
      plan.leakBytes = size - plan.end;
      const grains = Math.ceil(plan.leakBytes / e.grainBytes);
      finding(ex, { severity: 'leak', structure: 'grains', offset: plan.end, message: `${e.filename}: ${plan.leakBytes} bytes (${grains} grains) at ${plan.end}, after the last grain, belong to no grain table`, repair: 'truncate' });
      // Each leaked grain counts, as qemu-img counts leaked clusters.
      ex.leaks += grains - 1;
    }
  }
  return plan;
}
