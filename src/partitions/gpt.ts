import { crc32 } from '@node-rs/crc32';
import { readGuid } from '../formats/vhdx/guid.js';
import { gptDescription } from './type-names.js';
import type { Partition, SectorReader } from './types.js';

const SIGNATURE = 'EFI PART';
const MAX_ENTRY_BYTES = 4 * 1024 * 1024;

export interface GptHeader {
  headerSize: number;
  myLba: number;
  alternateLba: number;
  firstUsable: number;
  lastUsable: number;
  diskGuid: string;
  entriesLba: number;
  entryCount: number;
  entrySize: number;
  entriesCrc: number;
}

export type GptHeaderParse = { ok: true; header: GptHeader } | { ok: false; reason: string };

/** Parses and validates a GPT header read at `lba` of a disk of `totalSectors` sectors. */
export function parseGptHeader(buf: Buffer, lba: number, totalSectors: number): GptHeaderParse {
  if (buf.toString('latin1', 0, 8) !== SIGNATURE) return { ok: false, reason: 'no EFI PART signature' };
  const headerSize = buf.readUInt32LE(12);
  if (headerSize < 92 || headerSize > buf.length) return { ok: false, reason: `header size ${headerSize} out of range` };
  const copy = Buffer.from(buf.subarray(0, headerSize));
  const stored = copy.readUInt32LE(16);
  copy.writeUInt32LE(0, 16);
  if ((crc32(copy) >>> 0) !== stored) return { ok: false, reason: 'header CRC mismatch' };
  const h: GptHeader = {
    headerSize,
    myLba: Number(buf.readBigUInt64LE(24)),
    alternateLba: Number(buf.readBigUInt64LE(32)),
    firstUsable: Number(buf.readBigUInt64LE(40)),
    lastUsable: Number(buf.readBigUInt64LE(48)),
    diskGuid: readGuid(buf, 56),
    entriesLba: Number(buf.readBigUInt64LE(72)),
    entryCount: buf.readUInt32LE(80),
    entrySize: buf.readUInt32LE(84),
    entriesCrc: buf.readUInt32LE(88),
  };
  if (h.myLba !== lba) return { ok: false, reason: `header says it is at LBA ${h.myLba}, found at ${lba}` };
  if (h.firstUsable > h.lastUsable || h.lastUsable >= totalSectors) {
    return { ok: false, reason: `usable range ${h.firstUsable}..${h.lastUsable} does not fit a disk of ${totalSectors} sectors` };
  }
  if (h.entrySize < 128 || h.entrySize % 8 !== 0) return { ok: false, reason: `entry size ${h.entrySize} invalid` };
  if (h.entryCount * h.entrySize > MAX_ENTRY_BYTES) return { ok: false, reason: `${h.entryCount} entries of ${h.entrySize} bytes is absurd` };
  const entrySectors = Math.ceil((h.entryCount * h.entrySize) / buf.length);
  if (h.entriesLba < 2 || h.entriesLba + entrySectors > totalSectors) {
    return { ok: false, reason: `entry array at LBA ${h.entriesLba} lies outside the disk` };
  }
  return { ok: true, header: h };
}

export type GptEntriesParse = { ok: true; partitions: Partition[]; warnings: string[] } | { ok: false; reason: string };

export async function readGptEntries(disk: SectorReader, sector: number, h: GptHeader): Promise<GptEntriesParse> {
  const bytes = h.entryCount * h.entrySize;
  const buf = await disk.read(h.entriesLba * sector, bytes);
  if ((crc32(buf) >>> 0) !== h.entriesCrc) return { ok: false, reason: 'partition entry array CRC mismatch' };
  const partitions: Partition[] = [];
  const warnings: string[] = [];
  for (let i = 0; i < h.entryCount; i++) {
    const o = i * h.entrySize;
    const type = readGuid(buf, o);
    if (type === '00000000-0000-0000-0000-000000000000') continue;
    const first = Number(buf.readBigUInt64LE(o + 32));
    const last = Number(buf.readBigUInt64LE(o + 40));
    if (last < first || last > h.lastUsable) {
      warnings.push(`GPT entry ${i + 1} (${first}..${last}) does not fit the usable area ${h.firstUsable}..${h.lastUsable}; skipped`);
      continue;
    }
    if (first < h.firstUsable) warnings.push(`GPT entry ${i + 1} starts at ${first}, before the first usable LBA ${h.firstUsable}`);
    const nameRaw = buf.subarray(o + 56, o + 56 + 72);
    let end = 0;
    while (end + 1 < nameRaw.length && (nameRaw[end] || nameRaw[end + 1])) end += 2;
    partitions.push({
      index: i + 1,
      start: first * sector,
      size: Math.max(0, last - first + 1) * sector,
      type,
      description: gptDescription(type),
      name: nameRaw.subarray(0, end).toString('utf16le'),
      uuid: readGuid(buf, o + 16),
      attributes: `0x${buf.readBigUInt64LE(o + 48).toString(16).padStart(16, '0')}`,
    });
  }
  return { ok: true, partitions, warnings };
}

export interface GptResult {
  diskGuid: string;
  partitions: Partition[];
  warnings: string[];
}

/**
 * The primary GPT at LBA 1, checked (header CRC, entry CRC, my-LBA, usable range); on any failure the
 * backup at the last LBA and its entries, with a warning, as sfdisk does. Null when neither is valid.
 */
export async function readGpt(disk: SectorReader, sector: number): Promise<GptResult | null> {
  const total = Math.floor(disk.size / sector);
  if (total < 3) return null;
  const primary = parseGptHeader(await disk.read(sector, sector), 1, total);
  const warnings: string[] = [];
  if (primary.ok) {
    const entries = await readGptEntries(disk, sector, primary.header);
    if (entries.ok) {
      if (primary.header.alternateLba !== total - 1) {
        warnings.push(`backup GPT header expected at LBA ${total - 1}, primary says ${primary.header.alternateLba}`);
      }
      return { diskGuid: primary.header.diskGuid, partitions: entries.partitions, warnings: [...warnings, ...entries.warnings] };
    }
    warnings.push(`primary GPT: ${entries.reason}`);
  } else {
    warnings.push(`primary GPT header: ${primary.reason}`);
  }
  const backupLbas = new Set([total - 1]);
  if (primary.ok && primary.header.alternateLba < total) backupLbas.add(primary.header.alternateLba);
  for (const lba of backupLbas) {
    const backup = parseGptHeader(await disk.read(lba * sector, sector), lba, total);
    if (!backup.ok) continue;
    const entries = await readGptEntries(disk, sector, backup.header);
    if (!entries.ok) {
      warnings.push(`backup GPT: ${entries.reason}`);
      continue;
    }
    warnings.push(`using the backup GPT at LBA ${lba}`);
    return { diskGuid: backup.header.diskGuid, partitions: entries.partitions, warnings: [...warnings, ...entries.warnings] };
  }
  return null;
}
