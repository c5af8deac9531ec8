import { mbrDescription } from './type-names.js';
import type { Partition, SectorReader } from './types.js';

export const EXTENDED_TYPES = new Set([0x05, 0x0f, 0x85]);
const MAX_LOGICAL = 128;

export interface MbrEntry {
  bootIndicator: number;
  type: number;
  /** In sectors. */
  lba: number;
  sectors: number;
}

export interface MbrSector {
  diskSignature: number;
  entries: MbrEntry[];
}

/** The partition entries and disk signature of a sector that ends in 0x55 0xAA; null without it. */
export function parseMbrSector(buf: Buffer): MbrSector | null {
  if (buf.length < 512 || buf[510] !== 0x55 || buf[511] !== 0xaa) return null;
  const entries: MbrEntry[] = [];
  for (let i = 0; i < 4; i++) {
    const o = 446 + i * 16;
    entries.push({ bootIndicator: buf[o], type: buf[o + 4], lba: buf.readUInt32LE(o + 8), sectors: buf.readUInt32LE(o + 12) });
  }
  return { diskSignature: buf.readUInt32LE(440), entries };
}

export function serializeMbrEntry(buf: Buffer, slot: number, e: MbrEntry): void {
  const o = 446 + slot * 16;
  buf[o] = e.bootIndicator;
  buf[o + 4] = e.type;
  buf.writeUInt32LE(e.lba, o + 8);
  buf.writeUInt32LE(e.sectors, o + 12);
}

/**
 * True when the four entries could be a partition table: boot flags 0 or 0x80, no entry starting at
 * sector 0. A FAT or NTFS boot sector also ends in 0x55AA, and its code lands in this area.
 */
export function plausibleEntries(m: MbrSector): boolean {
  return m.entries.every((e) => (e.bootIndicator === 0 || e.bootIndicator === 0x80) && (e.type === 0 || e.lba > 0 || e.sectors === 0));
}

/** Looks like a DOS boot sector of a file system (a BPB), not a partition table. */
export function looksLikeVolumeBootRecord(buf: Buffer): boolean {
  const jump = buf[0] === 0xeb || buf[0] === 0xe9;
  // exFAT zeroes the old BPB fields; NTFS and exFAT both name themselves in the OEM field.
  if (jump && /^(EXFAT   |NTFS    )$/.test(buf.toString('latin1', 3, 11))) return true;
  const bps = buf.readUInt16LE(11);
  const fsName = buf.toString('latin1', 54, 62) + buf.toString('latin1', 82, 90) + buf.toString('latin1', 3, 11);
  return jump && [512, 1024, 2048, 4096].includes(bps) && /FAT|NTFS|EXFAT|MSDOS|MSWIN|mkfs/i.test(fsName);
}

export interface MbrResult {
  diskSignature: number;
  partitions: Partition[];
  warnings: string[];
  protective: boolean;
  /** Entries other than the 0xEE one next to it: a hybrid MBR. */
  hybrid: boolean;
}

/**
 * Primary entries, then each extended partition's EBR chain with logicals numbered from 5 as sfdisk
 * does. The chain walk stops, with a warning and keeping what was valid, at a loop, a link that goes
 * backwards or outside the extended partition, or an absurd length.
 */
export async function readMbr(disk: SectorReader, sector: number, first: MbrSector): Promise<MbrResult> {
  const warnings: string[] = [];
  const partitions: Partition[] = [];
  const totalSectors = Math.floor(disk.size / sector);
  const protective = first.entries.some((e) => e.type === 0xee);
  const hybrid = protective && first.entries.some((e) => e.type !== 0 && e.type !== 0xee);
  first.entries.forEach((e, i) => {
    if (e.type === 0 || e.sectors === 0) return;
    if (e.lba + e.sectors > totalSectors && e.type !== 0xee) {
      warnings.push(`partition ${i + 1} ends at sector ${e.lba + e.sectors}, past the end of the disk (${totalSectors} sectors)`);
    }
    partitions.push({
      index: i + 1,
      start: e.lba * sector,
      size: e.sectors * sector,
      type: hex(e.type),
      description: mbrDescription(e.type),
      bootable: e.bootIndicator === 0x80,
    });
  });

  let next = 5;
  for (const ext of first.entries.filter((e) => EXTENDED_TYPES.has(e.type) && e.sectors > 0)) {
    const extStart = ext.lba;
    const extEnd = ext.lba + ext.sectors;
    const seen = new Set<number>();
    let ebr = extStart;
    // How far the current EBR's area reaches: the whole extended partition for the first, then the
    // size its link gives.
    let areaSectors = ext.sectors;
    for (let hops = 0; ; hops++) {
      if (hops >= MAX_LOGICAL) {
        warnings.push(`extended partition chain longer than ${MAX_LOGICAL} links; stopped`);
        break;
      }
      if (seen.has(ebr)) {
        warnings.push(`extended partition chain loops back to sector ${ebr}; stopped`);
        break;
      }
      seen.add(ebr);
      if (ebr >= totalSectors) {
        warnings.push(`extended partition link to sector ${ebr} is past the end of the disk; stopped`);
        break;
      }
      const m = parseMbrSector(await disk.read(ebr * sector, 512));
      if (!m) {
        if (hops > 0) warnings.push(`EBR at sector ${ebr} has no 0x55AA signature; chain stopped`);
        break;
      }
      // Every data entry of an EBR is a logical partition, in slot order, as the kernel and partx read
      // them (DOS and early Windows wrote EBRs with two); entries 3 and 4 must also lie inside the area
      // the EBR describes, or they are taken for junk.
      m.entries.forEach((e, slot) => {
        if (e.type === 0 || e.sectors === 0 || EXTENDED_TYPES.has(e.type)) return;
        const start = ebr + e.lba;
        const inside = start >= extStart && start + e.sectors <= extEnd;
        if (slot >= 2 && (!inside || e.lba + e.sectors > areaSectors)) {
          warnings.push(`EBR at sector ${ebr}: entry ${slot + 1} lies outside the area it describes; skipped`);
          return;
        }
        if (!inside) warnings.push(`logical partition ${next} (EBR at sector ${ebr}) lies outside the extended partition`);
        partitions.push({
          index: next++,
          start: start * sector,
          size: e.sectors * sector,
          type: hex(e.type),
          description: mbrDescription(e.type),
          bootable: e.bootIndicator === 0x80,
        });
      });
      // The first link entry, in whichever slot, leads on; other extended entries are junk.
      const link = m.entries.find((e) => EXTENDED_TYPES.has(e.type) && e.sectors > 0);
      if (!link) break;
      if (link.lba === 0) {
        // The kernel and partx end the chain here without a word; it can only be a damaged link.
        warnings.push(`EBR at sector ${ebr} loops back to the first EBR; chain stopped`);
        break;
      }
      const target = extStart + link.lba;
      if (target <= ebr) {
        warnings.push(`EBR at sector ${ebr} links backwards to sector ${target}; chain stopped`);
        break;
      }
      if (target >= extEnd) {
        warnings.push(`EBR at sector ${ebr} links outside the extended partition (sector ${target}); chain stopped`);
        break;
      }
      areaSectors = link.sectors;
      ebr = target;
    }
  }
  return { diskSignature: first.diskSignature, partitions, warnings, protective, hybrid };
}

export function hex(type: number): string {
  return `0x${type.toString(16).padStart(2, '0')}`;
}
