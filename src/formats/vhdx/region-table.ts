import { MAX_TABLE_ENTRIES, REGION_TABLE_SIZE } from './constants.js';
import { readGuid, writeGuid } from './guid.js';
import { checksumMatches, sealChecksum } from './checksum.js';

export const REGION_SIGNATURE = 0x69676572; // 'regi'
const ENTRY_SIZE = 32;
const ENTRIES_OFFSET = 16;

export interface RegionEntry {
  guid: string;
  fileOffset: number;
  length: number;
  required: boolean;
}

export type RegionTableParse = { ok: true; entries: RegionEntry[] } | { ok: false; reason: string };

export function parseRegionTable(buf: Buffer): RegionTableParse {
  if (buf.length < REGION_TABLE_SIZE) return { ok: false, reason: 'short read' };
  if (buf.readUInt32LE(0) !== REGION_SIGNATURE) return { ok: false, reason: 'bad signature' };
  if (!checksumMatches(buf.subarray(0, REGION_TABLE_SIZE), 4)) return { ok: false, reason: 'checksum mismatch' };
  const count = buf.readUInt32LE(8);
  if (count > MAX_TABLE_ENTRIES) return { ok: false, reason: `entry count ${count} exceeds ${MAX_TABLE_ENTRIES}` };
  const entries: RegionEntry[] = [];
  for (let i = 0; i < count; i++) {
    const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
    const offset = buf.readBigUInt64LE(o + 16);
    entries.push({
      guid: readGuid(buf, o),
      // Offsets past 2^53 cannot be exact numbers, but they are far past any file and fail range checks.
      fileOffset: Number(offset),
      length: buf.readUInt32LE(o + 24),
      required: (buf.readUInt32LE(o + 28) & 1) === 1,
    });
  }
  return { ok: true, entries };
}

export function serializeRegionTable(entries: RegionEntry[]): Buffer {
  const buf = Buffer.alloc(REGION_TABLE_SIZE);
  buf.writeUInt32LE(REGION_SIGNATURE, 0);
  buf.writeUInt32LE(entries.length, 8);
  entries.forEach((e, i) => {
    const o = ENTRIES_OFFSET + i * ENTRY_SIZE;
    writeGuid(buf, o, e.guid);
    buf.writeBigUInt64LE(BigInt(e.fileOffset), o + 16);
    buf.writeUInt32LE(e.length, o + 24);
    buf.writeUInt32LE(e.required ? 1 : 0, o + 28);
  });
  sealChecksum(buf, 4);
  return buf;
}
