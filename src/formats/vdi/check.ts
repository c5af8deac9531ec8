import { VdiskError } from '../../errors.js';
import { readExact, type PositionalFile } from '../../io/file.js';
import { Bitmap } from '../../util/bitmap.js';
import type { DriverCheckOptions } from '../driver.js';
import type { CheckReport, Finding } from '../../ops/check-report.js';
import { HEADER_SECTOR, isStored } from './constants.js';
import { parseVdiHeader, validateVdiHeader } from './header.js';
import { BlockMap } from './block-map.js';

const MAX_LISTED = 100;

/**
 * `check` of a VDI, as QEMU checks one: entries pointing past the image's blocks, two entries sharing
 * a slot, and a header count of allocated blocks that the map does not have are corruptions; vdisk
 * also counts an entry whose block lies past the end of the file. QEMU repairs nothing in a VDI, and
 * neither does vdisk yet. The map is streamed; the slots seen take one bit each.
 */
export async function checkVdi(file: PositionalFile, options: DriverCheckOptions): Promise<CheckReport> {
  if (options.repair !== 'none') throw new VdiskError('UNSUPPORTED', `${file.path}: vdisk cannot repair VDI images (check without -r lists the problems)`);
  const header = parseVdiHeader(await readExact(file, 0, HEADER_SECTOR, 'VDI header'));
  const g = validateVdiHeader(file.path, header, file.size());
  const findings: Finding[] = [];
  let corruptions = 0;
  const found = (f: Omit<Finding, 'severity' | 'structure'>) => {
    corruptions++;
    if (findings.length < MAX_LISTED) findings.push({ severity: 'corruption', structure: 'block map', ...f });
  };
  const map = new BlockMap(file, g.offsetBmap, g.blocks);
  const owner = new Bitmap(g.blocks);
  let allocated = 0;
  let end = g.offsetData;
  const step = 1024 * 1024;
  for (let from = 0; from < g.blocks; from += step) {
    const to = Math.min(g.blocks, from + step);
    await map.walk(from, to, (block, e) => {
      if (!isStored(e)) return;
      const at = g.offsetBmap + block * 4;
      if (e >= g.blocks) {
        found({ offset: at, entry: block, message: `block ${block} points to slot ${e}, past the image's ${g.blocks} blocks` });
        return;
      }
      allocated++;
      if (owner.has(e)) found({ offset: at, entry: block, message: `block ${block} uses slot ${e}, which another block uses too` });
      owner.setRange(e, e + 1);
      const slotEnd = g.offsetData + (e + 1) * g.blockSize;
      if (slotEnd > file.size()) found({ offset: at, entry: block, message: `block ${block} is stored at bytes ${slotEnd - g.blockSize}..${slotEnd}, past the end of the file (${file.size()} bytes)` });
      end = Math.max(end, slotEnd);
    });
    options.onProgress?.(to, g.blocks);
  }
  if (allocated !== header.blocksAllocated) {
    corruptions++;
    findings.push({ severity: 'corruption', structure: 'header', offset: 0x184, message: `the header counts ${header.blocksAllocated} allocated blocks, the block map has ${allocated}` });
  }
  return {
    filename: file.path,
    format: 'vdi',
    'check-errors': 0,
    corruptions,
    leaks: 0,
    'corruptions-fixed': 0,
    'leaks-fixed': 0,
    'image-end-offset': end,
    'total-blocks': g.blocks,
    'allocated-blocks': allocated,
    findings,
    ...(corruptions > findings.length ? { 'unlisted-findings': corruptions - findings.length } : {}),
  };
}
