import { readExact, type ByteSource } from '../../io/file.js';
import { LOG_SECTOR_SIZE } from './constants.js';
import { encodeBatEntry } from './bat.js';
import type { LogOperation } from './log.js';

const ENTRIES_PER_SECTOR = LOG_SECTOR_SIZE / 8;

/** 4 KiB BAT sectors the entries in `changes` fall in. */
export function batSectorsTouched(indices: Iterable<number>): number {
  const sectors = new Set<number>();
  for (const i of indices) sectors.add(Math.floor(i / ENTRIES_PER_SECTOR));
  return sectors.size;
}

/**
 * Log operations that rewrite BAT entries: each touched 4 KiB sector is read, patched and logged
 * whole, in file order, as the log writes only whole sectors.
 */
export async function batSectorUpdates(
  source: ByteSource,
  batOffset: number,
  changes: Iterable<[number, { state: number; fileOffset: number }]>,
): Promise<LogOperation[]> {
  const bySector = new Map<number, [number, { state: number; fileOffset: number }][]>();
  for (const [index, e] of changes) {
    const sector = Math.floor(index / ENTRIES_PER_SECTOR);
    bySector.set(sector, [...(bySector.get(sector) ?? []), [index, e]]);
  }
  const ops: LogOperation[] = [];
  for (const sector of [...bySector.keys()].sort((a, b) => a - b)) {
    const fileOffset = batOffset + sector * LOG_SECTOR_SIZE;
    const data = await readExact(source, fileOffset, LOG_SECTOR_SIZE, 'BAT');
    for (const [index, e] of bySector.get(sector) ?? []) {
      encodeBatEntry(data, (index % ENTRIES_PER_SECTOR) * 8, e.state, e.fileOffset);
    }
    ops.push({ kind: 'data', fileOffset, data });
  }
  return ops;
}
