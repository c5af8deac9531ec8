import { bsdDescription } from './type-names.js';
import { hex } from './mbr.js';
import type { Partition, SectorReader } from './types.js';

export const BSD_MAGIC = 0x82564557;
/** Where labels sit inside their first sectors: i386 and amd64 at sector 1, others at 64 or 128 bytes. */
const LABEL_OFFSETS = [512, 64, 128];
const HEADER_SIZE = 148;
const MAX_PARTITIONS = 22; // what fits in a 512-byte sector after the header

export interface BsdLabel {
  offset: number;
  partitions: { slot: number; offset: number; size: number; fstype: number }[];
  npartitions: number;
}

export function parseBsdLabel(buf: Buffer): BsdLabel | null {
  for (const at of LABEL_OFFSETS) {
    if (at + HEADER_SIZE > buf.length) continue;
    if (buf.readUInt32LE(at) !== BSD_MAGIC || buf.readUInt32LE(at + 132) !== BSD_MAGIC) continue;
    const npartitions = buf.readUInt16LE(at + 138);
    const n = Math.min(npartitions, MAX_PARTITIONS, Math.floor((buf.length - at - HEADER_SIZE) / 16));
    // The checksum is the XOR of the 16-bit words of the label, partitions included.
    let sum = 0;
    const end = at + HEADER_SIZE + n * 16;
    for (let o = at; o < end; o += 2) sum ^= buf.readUInt16LE(o);
    if (sum !== 0) continue;
    const partitions = [];
    for (let i = 0; i < n; i++) {
      const o = at + HEADER_SIZE + i * 16;
      partitions.push({ slot: i, size: buf.readUInt32LE(o), offset: buf.readUInt32LE(o + 4), fstype: buf[o + 12] });
    }
    return { offset: at, partitions, npartitions };
  }
  return null;
}

/**
 * The partitions of a BSD label at `base` sectors (0 for a whole-disk label, the slice start inside
 * an MBR slice). The entry equal to the slice and unused entries are left out; the rest are listed as
 * partx lists them, with a warning for one that runs past the disk or its slice.
 */
export async function readBsd(
  disk: SectorReader,
  sector: number,
  slice: { start: number; sectors: number; index: number } | null,
  firstIndex: number,
): Promise<{ partitions: Partition[]; warnings: string[] } | null> {
  const base = slice ? slice.start : 0;
  const label = parseBsdLabel(await disk.read(base * sector, 1024));
  if (!label) return null;
  const warnings: string[] = [];
  if (label.npartitions > MAX_PARTITIONS) warnings.push(`BSD label claims ${label.npartitions} partitions; read ${MAX_PARTITIONS}`);
  const lo = base;
  const diskSectors = Math.floor(disk.size / sector);
  const hi = slice ? slice.start + slice.sectors : diskSectors;
  const partitions: Partition[] = [];
  let index = firstIndex;
  for (const p of label.partitions) {
    if (p.fstype === 0 || p.size === 0) continue;
    if (slice && p.offset === slice.start && p.size === slice.sectors) continue;
    // Offsets are absolute (FreeBSD before 2002, util-linux); one that does not lie inside its slice
    // that way is relative to the slice, as partx decides. Either way it is listed, as partx lists it.
    let start = p.offset;
    if (slice && (start < lo || start + p.size > hi)) start = slice.start + p.offset;
    const name = String.fromCharCode(97 + p.slot);
    if (start + p.size > diskSectors) warnings.push(`BSD partition ${name} (${start}+${p.size}) ends past the end of the disk (${diskSectors} sectors)`);
    else if (slice && start + p.size > hi) warnings.push(`BSD partition ${name} (${start}+${p.size}) ends past the end of its slice`);
    partitions.push({
      index: index++,
      start: start * sector,
      size: p.size * sector,
      type: hex(p.fstype),
      description: bsdDescription(p.fstype),
      name,
      ...(slice ? { scheme: 'bsd' as const, parent: slice.index } : {}),
    });
  }
  return { partitions, warnings };
}
