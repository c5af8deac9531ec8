import { dirname, isAbsolute, join } from 'node:path';
import { VdiskError } from '../../errors.js';
import { PositionalFile } from '../../io/file.js';
import { lockFor } from '../../io/lock.js';
import type { DriverCheckOptions } from '../driver.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';
import { FLAG_ZERO_GRAIN, GTE_ZERO, MAX_DESCRIPTOR, SECTOR, SPARSE_MAGIC } from './constants.js';
import { parseDescriptor } from './descriptor.js';
import { GRAIN_MARKER_SIZE } from './marker.js';
import { SparseExtent } from './sparse-extent.js';

const MAX_LISTED = 100;

/**
 * `check` of a VMDK, as qemu-img checks one: every grain table of every sparse extent is read, and
 * every entry must point at a grain inside the file and past the metadata. vdisk repairs nothing here.
 */
export async function checkVmdk(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  const findings: Finding[] = [];
  let count = 0;
  const report = (f: Finding) => {
    count++;
    if (findings.length < MAX_LISTED) findings.push(f);
  };
  const files = await sparseFiles(file, report);
  let total = 0;
  let allocated = 0;
  for (const f of files) {
    try {
      const e = await SparseExtent.open(f);
      total += Math.ceil(e.geo.capacitySectors / e.geo.grainSectors);
      allocated += await checkExtent(e, report, options);
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      report({ severity: 'corruption', structure: 'sparse extent header', offset: 0, message: err.message });
    } finally {
      if (f !== file) await f.close();
    }
  }
  return {
    filename: file.path,
    format: 'vmdk',
    'check-errors': 0,
    corruptions: count,
    leaks: 0,
    'corruptions-fixed': 0,
    'leaks-fixed': 0,
    'total-blocks': total,
    'allocated-blocks': allocated,
    findings,
    ...(count > findings.length ? { 'unlisted-findings': count - findings.length } : {}),
  };
}

/** The sparse files to walk: the file itself, or the SPARSE extents its descriptor lists. */
async function sparseFiles(file: PositionalFile, report: (f: Finding) => void): Promise<PositionalFile[]> {
  const head = Buffer.alloc(4);
  await file.readAt(head, 0);
  if (head.readUInt32LE(0) === SPARSE_MAGIC) return [file];
  if (file.size() > MAX_DESCRIPTOR) throw new VdiskError('CORRUPT', `${file.path}: not a VMDK: no sparse extent header, and too long for a descriptor file`);
  const text = Buffer.alloc(file.size());
  await file.readAt(text, 0);
  const out: PositionalFile[] = [];
  for (const line of parseDescriptor(file.path, text.toString('latin1')).extents) {
    if (line.type !== 'SPARSE') continue;
    const path = isAbsolute(line.file) ? line.file : join(dirname(file.path), line.file);
    try {
      out.push(await PositionalFile.open(path, 'r', { lock: lockFor('r', false) }));
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      report({ severity: 'corruption', structure: 'extent', offset: 0, message: err.message });
    }
  }
  return out;
}

/** Walks one extent's tables; returns how many grains it stores. */
async function checkExtent(e: SparseExtent, report: (f: Finding) => void, options: DriverCheckOptions): Promise<number> {
  const { gd } = e;
  const size = e.file.size();
  const firstGrain = Number(e.header.overHead) * SECTOR;
  const need = e.compressed ? GRAIN_MARKER_SIZE : e.grainBytes;
  let allocated = 0;
  for (let t = 0; t < gd.entries; t++) {
    options.onProgress?.(t, gd.entries);
    let table: Uint32Array | null;
    try {
      table = await gd.table(t);
    } catch (err) {
      if (!(err instanceof VdiskError)) throw err;
      report({ severity: 'corruption', structure: 'grain directory', offset: gd.gdSector * SECTOR + t * 4, entry: t, message: err.message });
      continue;
    }
    if (!table) continue;
    const tableAt = (await gd.tableSector(t)) * SECTOR;
    for (let i = 0; i < table.length; i++) {
      const entry = table[i];
      if (entry === 0 || (entry === GTE_ZERO && (e.header.flags & FLAG_ZERO_GRAIN) !== 0)) continue;
      allocated++;
      const grain = t * gd.gtes + i;
      const at = entry * SECTOR;
      if (at + need > size) {
        report({ severity: 'corruption', structure: 'grain table', offset: tableAt + i * 4, entry: grain, message: `${e.filename}: grain ${grain} is stored at sector ${entry}, past the end of the file (${size} bytes)` });
      } else if (at < firstGrain) {
        report({ severity: 'corruption', structure: 'grain table', offset: tableAt + i * 4, entry: grain, message: `${e.filename}: grain ${grain} is stored at sector ${entry}, inside the metadata (grains start at sector ${e.header.overHead})` });
      }
    }
  }
  options.onProgress?.(gd.entries, gd.entries);
  return allocated;
}
