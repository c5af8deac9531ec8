import type { DiskImage } from '../formats/image.js';
import { readGpt } from './gpt.js';
import { looksLikeVolumeBootRecord, parseMbrSector, plausibleEntries, readMbr } from './mbr.js';
import { readBsd } from './bsd.js';
import type { PartitionTable, SectorReader } from './types.js';

const BSD_SLICE_TYPES = new Set([0xa5, 0xa6, 0xa9]);

export function sectorReader(image: DiskImage): SectorReader {
  return {
    size: image.virtualSize,
    async read(offset: number, length: number): Promise<Buffer> {
      const buf = Buffer.alloc(length);
      const n = Math.max(0, Math.min(length, image.virtualSize - offset));
      if (n > 0) await image.read(buf.subarray(0, n), offset);
      return buf;
    },
    async readInto(buf: Uint8Array, offset: number): Promise<void> {
      const n = Math.max(0, Math.min(buf.length, image.virtualSize - offset));
      if (n > 0) await image.read(buf.subarray(0, n), offset);
      buf.fill(0, n);
    },
    ...(image.hostRange ? { hostRange: (offset: number, length: number) => image.hostRange?.(offset, length) ?? null } : {}),
  };
}

/**
 * Each scheme looks at the disk; the best answer wins: a valid GPT (primary or backup), else an MBR
 * (with its EBR chains and any BSD labels in its slices), else a whole-disk BSD label. Raw images are
 * probed for GPT with 512 and 4096-byte sectors; a VHDX states its own sector size, tried first.
 */
export async function readPartitionTable(image: DiskImage): Promise<PartitionTable> {
  const disk = sectorReader(image);
  const sizes = image.format === 'raw' ? [512, 4096] : [image.logicalSectorSize, image.logicalSectorSize === 512 ? 4096 : 512];
  const first = await disk.read(0, 512);
  const mbr = parseMbrSector(first);

  for (const sector of sizes) {
    const gpt = await readGpt(disk, sector);
    if (!gpt) continue;
    const warnings = [...gpt.warnings];
    const pmbr = mbr?.entries.find((e) => e.type === 0xee);
    if (!mbr || !pmbr) warnings.push('GPT without a protective MBR');
    else if (mbr.entries.some((e) => e.type !== 0 && e.type !== 0xee)) warnings.push('hybrid MBR: the MBR lists partitions besides the GPT protective one');
    else {
      // As sfdisk: a protective entry should reach the last sector (or say 0xFFFFFFFF on larger disks).
      const last = Math.min(Math.floor(image.virtualSize / sector) - 1, 0xffffffff);
      const covers = pmbr.lba + pmbr.sectors - 1;
      if (covers !== last && pmbr.sectors !== 0xffffffff) warnings.push(`GPT PMBR size mismatch (${covers} != ${last})`);
    }
    return { scheme: 'gpt', sectorSize: sector, id: gpt.diskGuid, partitions: gpt.partitions, warnings };
  }

  const sector = image.format === 'raw' ? 512 : image.logicalSectorSize;
  if (mbr && plausibleEntries(mbr) && !(looksLikeVolumeBootRecord(first) && mbr.entries.every((e) => e.type === 0))) {
    const r = await readMbr(disk, sector, mbr);
    const warnings = [...r.warnings];
    if (r.protective) warnings.push('protective MBR (0xEE) but no valid GPT, neither primary nor backup');
    const nested = [];
    let next = Math.max(4, ...r.partitions.map((p) => p.index)) + 1;
    for (const p of r.partitions) {
      if (!BSD_SLICE_TYPES.has(parseInt(p.type, 16))) continue;
      const bsd = await readBsd(disk, sector, { start: p.start / sector, sectors: p.size / sector, index: p.index }, next);
      if (!bsd) continue;
      nested.push(...bsd.partitions);
      warnings.push(...bsd.warnings);
      next += bsd.partitions.length;
    }
    return {
      scheme: 'mbr',
      sectorSize: sector,
      id: `0x${r.diskSignature.toString(16).padStart(8, '0')}`,
      partitions: [...r.partitions, ...nested],
      warnings,
    };
  }

  const bsd = await readBsd(disk, sector, null, 1);
  if (bsd) return { scheme: 'bsd', sectorSize: sector, partitions: bsd.partitions, warnings: bsd.warnings };
  return { scheme: null, sectorSize: sector, partitions: [], warnings: [] };
}
