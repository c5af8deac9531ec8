import { VdiskError } from '../../errors.js';
import { readExact, type PositionalFile } from '../../io/file.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';
import type { DriverCheckOptions } from '../driver.js';
import { MAX_L1_BYTES, entryOffset, roundUp } from './constants.js';
import { decodeL2 } from './l2-entry.js';
import { readLayout, type Qcow2Layout } from './layout.js';
import { getRefcount, readRefcountTable, setRefcount } from './refcounts.js';
import { readSnapshots } from './snapshots.js';

const MAX_LISTED = 100;
/** Host clusters a check counts references for: 4 bytes each, so 128 MiB at most. */
const MAX_CLUSTERS = 32 * 1024 * 1024;

interface Examination {
  layout: Qcow2Layout;
  findings: Finding[];
  unlisted: number;
  corruptions: number;
  leaks: number;
  /** Clusters whose stored refcount is above the references found (leaks), with the right count. */
  fixes: Map<number, number>;
  /** Clusters referenced more often than their refcount says (corruptions -r all raises), with the right count. */
  raises: Map<number, number>;
  /** Active L1/L2 entries whose COPIED flag disagrees with the refcount (-r all sets it as the refcount says). */
  flagFixes: { at: number; set: boolean }[];
  imageEnd: number;
  totalClusters: number;
  allocatedClusters: number;
}

/**
 * `check` of a qcow2 image, as qemu-img check does it: every reference from the header, the L1 and
 * L2 tables (active and of each snapshot), the snapshot table and the refcount structures is
 * counted per host cluster and compared with the stored refcounts. A refcount above the references
 * is a leak, below them a corruption; so are tables and data pointing past the end of the file or
 * off a cluster boundary. `-r leaks` (and `-r all`) lowers leaked refcounts to the references.
 */
export async function checkQcow2(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  const before = await examine(file, options.onProgress);
  let after = before;
  let leaksFixed = 0;
  let corruptionsFixed = 0;
  const changes = new Map(before.fixes);
  if (options.repair === 'all') for (const [c, v] of before.raises) changes.set(c, v);
  if (options.repair !== 'none' && changes.size > 0) {
    await setRefcounts(file, before, changes);
    after = await examine(file);
  }
  // As qemu-img check -r all: the flags follow the refcounts as they are once those are repaired.
  const flagsFixed = options.repair === 'all' && after.flagFixes.length > 0;
  if (flagsFixed) {
    await setCopiedFlags(file, after.flagFixes);
    after = await examine(file);
  }
  if (after !== before) {
    leaksFixed = Math.max(0, before.leaks - after.leaks);
    corruptionsFixed = Math.max(0, before.corruptions - after.corruptions);
  }
  const fixedNow = (f: Finding) =>
    f.repair !== undefined && after !== before && (f.repair === 'set-copied' ? flagsFixed : changes.has(f.offset / before.layout.clusterSize));
  const findings = before.findings.map((f) => (fixedNow(f) ? { ...f, fixed: true } : f));
  return {
    filename: file.path,
    format: 'qcow2',
    'check-errors': 0,
    corruptions: after.corruptions,
    leaks: after.leaks,
    'corruptions-fixed': corruptionsFixed,
    'leaks-fixed': leaksFixed,
    'image-end-offset': after.imageEnd,
    'total-blocks': after.totalClusters,
    'allocated-blocks': after.allocatedClusters,
    findings,
    ...(before.unlisted ? { 'unlisted-findings': before.unlisted } : {}),
  };
}

async function examine(file: PositionalFile, onProgress?: (done: number, total: number) => void): Promise<Examination> {
  const layout = await readLayout(file);
  const h = layout.header;
  const cs = layout.clusterSize;
  const fileClusters = Math.ceil(file.size() / cs);
  if (fileClusters > MAX_CLUSTERS) throw new VdiskError('UNSUPPORTED', `${file.path}: vdisk checks qcow2 files of up to ${MAX_CLUSTERS} clusters (this one has ${fileClusters})`);
  const refs = new Uint32Array(fileClusters);
  const ex: Examination = { layout, findings: [], unlisted: 0, corruptions: 0, leaks: 0, fixes: new Map(), raises: new Map(), flagFixes: [], imageEnd: 0, totalClusters: Math.ceil(h.size / cs), allocatedClusters: 0 };
  const find = (f: Finding) => {
    if (f.severity === 'corruption') ex.corruptions++;
    else if (f.severity === 'leak') ex.leaks++;
    if (ex.findings.length < MAX_LISTED) ex.findings.push(f);
    else ex.unlisted++;
  };
  /** Counts a reference to the clusters of [offset, offset+length); false when they lie past the file. */
  const ref = (offset: number, length: number, structure: string): boolean => {
    const first = Math.floor(offset / cs);
    const end = Math.ceil((offset + length) / cs);
    if (end > fileClusters) {
      find({ severity: 'corruption', structure, offset, message: `${structure} at ${offset} (${length} bytes) lies past the end of the file (${file.size()} bytes)` });
      return false;
    }
    for (let c = first; c < end; c++) refs[c]++;
    return true;
  };
  /**
   * OFLAG_COPIED of the active tables, checked against the refcounts afterwards: cluster -> the
   * entry's file offset, times two, plus the flag (one number per cluster, not an object).
   */
  const copied = new Map<number, number>();
  const flagged = (at: number, flag: boolean) => at * 2 + (flag ? 1 : 0);

  const walkL1 = async (l1Offset: number, l1Size: number, what: string, active: boolean) => {
    if (l1Size * 8 > MAX_L1_BYTES) {
      find({ severity: 'corruption', structure: what, offset: l1Offset, message: `${what} of ${l1Size} entries is above 32 MiB` });
      return;
    }
    if (l1Size === 0) return;
    if (l1Offset % cs !== 0) {
      find({ severity: 'corruption', structure: what, offset: l1Offset, message: `${what} at ${l1Offset} is not aligned to a cluster` });
      return;
    }
    if (!ref(l1Offset, l1Size * 8, what)) return;
    const l1 = await readExact(file, l1Offset, l1Size * 8, what);
    for (let i = 0; i < l1Size; i++) {
      onProgress?.(i, l1Size);
      const l2 = entryOffset(l1, i * 8);
      if (l2 === 0) continue;
      const where = l1Offset + i * 8;
      if (l2 % cs !== 0) {
        find({ severity: 'corruption', structure: what, offset: where, entry: i, message: `${what} entry ${i}: L2 table offset ${l2} is not aligned to a cluster` });
        continue;
      }
      if (!ref(l2, cs, `L2 table ${i}`)) continue;
      if (active) copied.set(l2 / cs, flagged(where, (l1[i * 8] & 0x80) !== 0));
      const table = await readExact(file, l2, cs, `qcow2 L2 table ${i}`);
      for (let j = 0; j < layout.l2Entries; j++) {
        const e = decodeL2(table, j, layout.extended, layout.clusterBits);
        const at = l2 + j * (layout.extended ? 16 : 8);
        if (e.kind === 'compressed') {
          if (active) ex.allocatedClusters++;
          if (e.length > 2 * cs) find({ severity: 'corruption', structure: 'L2 table', offset: at, entry: j, message: `compressed cluster of ${e.length} bytes (more than two clusters)` });
          else ref(e.host, e.length, 'compressed cluster');
          continue;
        }
        if (e.host === 0) continue;
        if (active) ex.allocatedClusters++;
        if (e.host % cs !== 0) {
          find({ severity: 'corruption', structure: 'L2 table', offset: at, entry: j, message: `L2 entry ${j} of table ${i}: data offset ${e.host} is not aligned to a cluster` });
          continue;
        }
        if (layout.ext.dataFile) continue; // the data lives in another file, counted by no refcount here
        if (ref(e.host, cs, 'data cluster') && active) copied.set(e.host / cs, flagged(at, e.copied));
      }
    }
  };

  ref(0, cs, 'header');
  const rt = await readRefcountTable(file, h.refcountTableOffset, h.refcountTableClusters, cs);
  ref(h.refcountTableOffset, h.refcountTableClusters * cs, 'refcount table');
  for (let i = 0; i < rt.length; i++) if (rt[i]) ref(rt[i], cs, `refcount block ${i}`);
  await walkL1(h.l1TableOffset, h.l1Size, 'L1 table', true);
  if (h.nbSnapshots > 0) {
    const { snapshots, end } = await readSnapshots(file, h.snapshotsOffset, h.nbSnapshots);
    ref(h.snapshotsOffset, end - h.snapshotsOffset, 'snapshot table');
    for (const s of snapshots) await walkL1(s.l1TableOffset, s.l1Size, `L1 table of snapshot ${s.id}`, false);
  }

  // The stored refcounts, a block at a time, against the references.
  const perBlock = (cs * 8) >> h.refcountOrder;
  const blocks = Math.max(rt.length, 0);
  let highest = -1;
  for (let b = 0; b * perBlock < fileClusters; b++) {
    const blockAt = b < blocks ? rt[b] : 0;
    const block = blockAt && blockAt + cs <= file.size() ? await readExact(file, blockAt, cs, `qcow2 refcount block ${b}`) : null;
    const last = Math.min(fileClusters, (b + 1) * perBlock);
    for (let c = b * perBlock; c < last; c++) {
      const stored = block ? getRefcount(block, c - b * perBlock, h.refcountOrder) : 0;
      const want = refs[c];
      if (stored > 0 || want > 0) highest = c;
      if (stored === want) continue;
      const offset = c * cs;
      if (stored < want) {
        find({ severity: 'corruption', structure: 'refcount block', offset, message: `cluster ${c} (at ${offset}): refcount ${stored}, referenced ${want} times`, ...(block ? { repair: 'set-refcount' as const } : {}) });
        if (block) ex.raises.set(c, want);
      } else {
        find({ severity: 'leak', structure: 'refcount block', offset, message: `cluster ${c} (at ${offset}): refcount ${stored}, referenced ${want} times (leaked)`, repair: 'set-refcount' });
        if (block) ex.fixes.set(c, want);
      }
    }
  }
  for (const [c, v] of copied) {
    const flag = v % 2 === 1;
    const b = Math.floor(c / perBlock);
    const blockAt = b < blocks ? rt[b] : 0;
    if (!blockAt || blockAt + cs > file.size()) continue;
    const block = await readExact(file, blockAt, cs, `qcow2 refcount block ${b}`);
    const stored = getRefcount(block, c % perBlock, h.refcountOrder);
    if ((stored === 1) !== flag) {
      find({ severity: 'corruption', structure: 'L2 table', offset: c * cs, message: `cluster ${c}: COPIED flag ${flag ? 'set' : 'clear'} with refcount ${stored}`, repair: 'set-copied' });
      ex.flagFixes.push({ at: Math.floor(v / 2), set: stored === 1 });
    }
  }
  ex.imageEnd = (highest + 1) * cs;
  return ex;
}

/**
 * Sets refcounts to the references found (leaks lowered; with -r all, too-low counts raised), one
 * refcount block at a time, then flushes.
 */
async function setRefcounts(file: PositionalFile, ex: Examination, changes: Map<number, number>): Promise<void> {
  const h = ex.layout.header;
  const cs = ex.layout.clusterSize;
  const rt = await readRefcountTable(file, h.refcountTableOffset, h.refcountTableClusters, cs);
  const perBlock = (cs * 8) >> h.refcountOrder;
  const byBlock = new Map<number, [number, number][]>();
  for (const [c, v] of changes) {
    const b = Math.floor(c / perBlock);
    if (!byBlock.has(b)) byBlock.set(b, []);
    (byBlock.get(b) as [number, number][]).push([c, v]);
  }
  for (const [b, fixes] of byBlock) {
    const block = await readExact(file, rt[b], cs, `qcow2 refcount block ${b}`);
    for (const [c, v] of fixes) setRefcount(block, c % perBlock, h.refcountOrder, v);
    await file.writeAt(block, rt[b]);
  }
  await file.flush();
}

/**
 * Sets or clears OFLAG_COPIED (the top bit of an L1 or L2 entry) as the refcount says, then flushes.
 * Each change is one byte of one entry, so a crash leaves every entry either way; a flag cleared on
 * a shared cluster is what keeps writers from changing it in place.
 */
async function setCopiedFlags(file: PositionalFile, fixes: { at: number; set: boolean }[]): Promise<void> {
  for (const { at, set } of fixes) {
    const b = await readExact(file, at, 1, 'qcow2 table entry');
    b[0] = set ? b[0] | 0x80 : b[0] & 0x7f;
    await file.writeAt(b, at);
  }
  await file.flush();
}

export { roundUp };
