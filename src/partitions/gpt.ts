import { crc32 } from '../util/crc.js';
import { readGuid, writeGuid } from '../formats/vhdx/guid.js';
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

/**
 * What sfdisk says of the backup when the primary is good: a backup not at the end of the device (a
 * disk grown since), or one that is missing or damaged there.
 */
async function backupWarnings(disk: SectorReader, sector: number, primary: GptHeader, total: number): Promise<string[]> {
  const alt = primary.alternateLba;
  const out: string[] = [];
  if (alt !== total - 1) out.push(`the backup GPT table is not on the end of the device (primary says LBA ${alt}, the last is ${total - 1})`);
  if (alt >= total) return [...out, `the backup GPT header (LBA ${alt}) lies past the end of the disk; the primary is used`];
  const backup = parseGptHeader(await disk.read(alt * sector, sector), alt, total);
  const entries = backup.ok ? await readGptEntries(disk, sector, backup.header) : null;
  if (!backup.ok || !entries?.ok) {
    const why = !backup.ok ? `header: ${backup.reason}` : `entries: ${(entries as { reason: string }).reason}`;
    out.push(`the backup GPT table is corrupt (${why}), but the primary appears OK, so that will be used`);
  }
  return out;
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
      warnings.push(...(await backupWarnings(disk, sector, primary.header, total)));
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

export interface NewGptPartition {
  firstLba: number;
  lastLba: number;
  type: string;
  uuid: string;
  name?: string;
  attributes?: bigint;
}

/**
 * A whole GPT for a disk of `totalSectors`: the protective MBR, primary header and 128-entry array
 * at the start; the backup array and header at the end. Returns the bytes and where they go.
 */
export function serializeGpt(
  totalSectors: number,
  sector: number,
  diskGuid: string,
  parts: NewGptPartition[],
  entryCount = 128,
): { offset: number; data: Buffer }[] {
  const ENTRIES = entryCount;
  if (parts.length > ENTRIES) throw new RangeError(`${parts.length} partitions do not fit ${ENTRIES} GPT entries`);
  const ENTRY_SIZE = 128;
  const arraySectors = Math.ceil((ENTRIES * ENTRY_SIZE) / sector);
  const entries = Buffer.alloc(arraySectors * sector);
  parts.forEach((p, i) => {
    const o = i * ENTRY_SIZE;
    writeGuid(entries, o, p.type);
    writeGuid(entries, o + 16, p.uuid);
    entries.writeBigUInt64LE(BigInt(p.firstLba), o + 32);
    entries.writeBigUInt64LE(BigInt(p.lastLba), o + 40);
    entries.writeBigUInt64LE(p.attributes ?? 0n, o + 48);
    Buffer.from((p.name ?? '').slice(0, 36), 'utf16le').copy(entries, o + 56);
  });
  const entriesCrc = crc32(entries.subarray(0, ENTRIES * ENTRY_SIZE)) >>> 0;
  const firstUsable = 2 + arraySectors;
  const lastUsable = totalSectors - 2 - arraySectors;
  const header = (my: number, alternate: number, entriesLba: number) => {
    const h = Buffer.alloc(sector);
    h.write(SIGNATURE, 0, 'latin1');
    h.writeUInt32LE(0x00010000, 8);
    h.writeUInt32LE(92, 12);
    h.writeBigUInt64LE(BigInt(my), 24);
    h.writeBigUInt64LE(BigInt(alternate), 32);
    h.writeBigUInt64LE(BigInt(firstUsable), 40);
    h.writeBigUInt64LE(BigInt(lastUsable), 48);
    writeGuid(h, 56, diskGuid);
    h.writeBigUInt64LE(BigInt(entriesLba), 72);
    h.writeUInt32LE(ENTRIES, 80);
    h.writeUInt32LE(ENTRY_SIZE, 84);
    h.writeUInt32LE(entriesCrc, 88);
    h.writeUInt32LE(crc32(h.subarray(0, 92)) >>> 0, 16);
    return h;
  };
  const mbr = Buffer.alloc(sector);
  mbr[446 + 4] = 0xee;
  mbr.writeUInt32LE(1, 446 + 8);
  mbr.writeUInt32LE(Math.min(totalSectors - 1, 0xffffffff), 446 + 12);
  mbr[510] = 0x55;
  mbr[511] = 0xaa;
  const last = totalSectors - 1;
  return [
    { offset: 0, data: Buffer.concat([mbr, header(1, last, 2), entries]) },
    { offset: (last - arraySectors) * sector, data: Buffer.concat([entries, header(last, 1, last - arraySectors)]) },
  ];
}
