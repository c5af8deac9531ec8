import { crc32c } from '../../util/crc.js';
import { checksumWithField } from './checksum.js';
import type { ByteSource } from '../../io/file.js';
import { LOG_SECTOR_SIZE, MiB } from './constants.js';
import { readGuid, writeGuid } from './guid.js';
import { VdiskError } from '../../errors.js';

export const ENTRY_SIGNATURE = 0x65676f6c; // 'loge'
export const ZERO_SIGNATURE = 0x6f72657a; // 'zero'
export const DESC_SIGNATURE = 0x63736564; // 'desc'
export const DATA_SIGNATURE = 0x61746164; // 'data'
const ENTRY_HEADER_SIZE = 64;
const DESCRIPTOR_SIZE = 32;

export interface LogEntryHeader {
  checksum: number;
  entryLength: number;
  tail: number;
  sequenceNumber: bigint;
  descriptorCount: number;
  logGuid: string;
  flushedFileOffset: number;
  lastFileOffset: number;
}

export type LogOperation =
  | { kind: 'data'; fileOffset: number; data: Buffer }
  | { kind: 'zero'; fileOffset: number; length: number };

export interface LogEntry {
  /** Offset of the entry inside the log. */
  position: number;
  header: LogEntryHeader;
  operations: LogOperation[];
}

/** What a replay has to do: the entries of the active sequence, tail to head, in order. */
export interface ReplayPlan {
  entries: LogEntry[];
  head: LogEntry;
  /** Set when the head's tail pointer is not in the run and the run's first entry was used instead. */
  warning?: string;
}

/** What a search of the log found: the sequence to replay, and entries of this log that are invalid. */
export interface LogSearch {
  plan: ReplayPlan | null;
  /** Entries carrying the active log GUID that fail validation (torn writes): log offsets and why. */
  rejected: { position: number; reason: string }[];
}

/** Number of 4 KiB sectors that hold the entry header and `count` descriptors. */
export function descriptorSectors(count: number): number {
  return Math.ceil((count + 2) / 128);
}

export function parseEntryHeader(buf: Buffer): LogEntryHeader | null {
  if (buf.readUInt32LE(0) !== ENTRY_SIGNATURE) return null;
  return {
    checksum: buf.readUInt32LE(4),
    entryLength: buf.readUInt32LE(8),
    tail: buf.readUInt32LE(12),
    sequenceNumber: buf.readBigUInt64LE(16),
    descriptorCount: buf.readUInt32LE(24),
    logGuid: readGuid(buf, 32),
    flushedFileOffset: Number(buf.readBigUInt64LE(48)),
    lastFileOffset: Number(buf.readBigUInt64LE(56)),
  };
}

interface LogArea {
  source: ByteSource;
  offset: number;
  length: number;
  guid: string;
  /** Bytes entry validation may still read; overlapping bogus entry headers must not cost n^2 reads. */
  budget: number;
  rejected: { position: number; reason: string }[];
}

/** Reads `length` bytes of the circular log starting at log position `pos`, wrapping at the end. */
async function readCircular(area: LogArea, pos: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const at = (pos + done) % area.length;
    const n = Math.min(length - done, area.length - at);
    await area.source.readAt(buf.subarray(done, done + n), area.offset + at);
    done += n;
  }
  return buf;
}

/**
 * Validates the entry at `pos` as the format requires (signature, length, GUID, checksum, every
 * descriptor's and data sector's sequence number) and decodes its operations; null when invalid.
 * `limit` bounds the file offsets descriptors may touch, so a hostile entry cannot extend the file
 * without bound.
 */
async function readEntry(area: LogArea, pos: number, first: Buffer, limit: number): Promise<LogEntry | null> {
  const h = parseEntryHeader(first);
  if (!h || h.logGuid !== area.guid) return null; // other GUIDs: leftovers of earlier sessions
  const entry = await validateEntry(area, pos, h, limit);
  if (typeof entry === 'string') {
    area.rejected.push({ position: pos, reason: entry });
    return null;
  }
  return entry;
}

/** The decoded entry, or why it is invalid. */
async function validateEntry(area: LogArea, pos: number, h: LogEntryHeader, limit: number): Promise<LogEntry | string> {
  if (h.entryLength === 0 || h.entryLength % LOG_SECTOR_SIZE !== 0 || h.entryLength > area.length) return `entry length ${h.entryLength} invalid`;
  if (h.sequenceNumber === 0n) return 'sequence number 0';
  if (h.tail % LOG_SECTOR_SIZE !== 0 || h.tail >= area.length) return `tail ${h.tail} invalid`;
  const descSectors = descriptorSectors(h.descriptorCount);
  if (descSectors * LOG_SECTOR_SIZE > h.entryLength) return `${h.descriptorCount} descriptors do not fit the entry`;
  area.budget -= h.entryLength;
  if (area.budget < 0) {
    throw new VdiskError('CORRUPT', `${area.source.path}: log holds too many overlapping entry headers to search`);
  }
  const entry = await readCircular(area, pos, h.entryLength);
  if (checksumWithField(entry, 4) !== h.checksum) return 'checksum mismatch';

  const seqLo = Number(h.sequenceNumber & 0xffffffffn);
  const seqHi = Number(h.sequenceNumber >> 32n);
  const operations: LogOperation[] = [];
  let dataSector = descSectors;
  for (let i = 0; i < h.descriptorCount; i++) {
    const d = ENTRY_HEADER_SIZE + i * DESCRIPTOR_SIZE;
    const sig = entry.readUInt32LE(d);
    const fileOffset = Number(entry.readBigUInt64LE(d + 16));
    if (entry.readBigUInt64LE(d + 24) !== h.sequenceNumber) return `descriptor ${i} has another sequence number`;
    if (fileOffset % LOG_SECTOR_SIZE !== 0) return `descriptor ${i} file offset ${fileOffset} not 4 KiB aligned`;
    if (sig === ZERO_SIGNATURE) {
      const length = Number(entry.readBigUInt64LE(d + 8));
      if (length % LOG_SECTOR_SIZE !== 0 || fileOffset + length > limit) return `zero descriptor ${i} out of range`;
      operations.push({ kind: 'zero', fileOffset, length });
    } else if (sig === DESC_SIGNATURE) {
      if (fileOffset + LOG_SECTOR_SIZE > limit) return `descriptor ${i} out of range`;
      const s = dataSector * LOG_SECTOR_SIZE;
      if (s + LOG_SECTOR_SIZE > h.entryLength) return `data sector of descriptor ${i} outside the entry`;
      if (entry.readUInt32LE(s) !== DATA_SIGNATURE) return `data sector of descriptor ${i} has no signature`;
      if (entry.readUInt32LE(s + 4) !== seqHi || entry.readUInt32LE(s + 4092) !== seqLo) return `data sector of descriptor ${i} has another sequence number`;
      const data = Buffer.alloc(LOG_SECTOR_SIZE);
      entry.copy(data, 0, d + 8, d + 16); // leading bytes
      entry.copy(data, 8, s + 8, s + 4092);
      entry.copy(data, 4092, d + 4, d + 8); // trailing bytes
      operations.push({ kind: 'data', fileOffset, data });
      dataSector++;
    } else {
      return `descriptor ${i} has no signature`;
    }
  }
  return { position: pos, header: h, operations };
}

/**
 * Finds the active sequence of the log at `offset`/`length` whose entries carry `guid`. Every 4 KiB
 * sector is tried as an entry start, as the format asks, so entries left by earlier sessions or torn
 * writes are recognised and passed over. The plan is null when nothing is to be replayed.
 */
export async function findActiveSequence(
  source: ByteSource,
  offset: number,
  length: number,
  guid: string,
  fileOffsetLimit: number,
): Promise<LogSearch> {
  const area: LogArea = { source, offset, length, guid, budget: Math.max(256 * MiB, 8 * length), rejected: [] };
  const valid = new Map<number, LogEntry>();
  const WINDOW = MiB;
  for (let w = 0; w < length; w += WINDOW) {
    const win = Buffer.alloc(Math.min(WINDOW, length - w));
    await source.readAt(win, offset + w);
    for (let s = 0; s < win.length; s += LOG_SECTOR_SIZE) {
      if (win.readUInt32LE(s) !== ENTRY_SIGNATURE) continue;
      const entry = await readEntry(area, w + s, win.subarray(s, s + ENTRY_HEADER_SIZE), fileOffsetLimit);
      if (entry) valid.set(w + s, entry);
    }
  }
  if (valid.size === 0) return { plan: null, rejected: area.rejected };

  let head: LogEntry | undefined;
  for (const e of valid.values()) {
    if (!head || e.header.sequenceNumber > head.header.sequenceNumber) head = e;
  }
  if (!head) return { plan: null, rejected: area.rejected };

  // Walk back from the head through entries that end where the next begins with consecutive numbers.
  const byEnd = new Map<number, LogEntry>();
  for (const e of valid.values()) byEnd.set((e.position + e.header.entryLength) % length, e);
  const run: LogEntry[] = [head];
  const seen = new Set<number>([head.position]);
  let tailFound = head.position === head.header.tail;
  while (!tailFound) {
    const cur = run[0];
    const prev = byEnd.get(cur.position);
    if (!prev || seen.has(prev.position) || prev.header.sequenceNumber !== cur.header.sequenceNumber - 1n) break;
    run.unshift(prev);
    seen.add(prev.position);
    tailFound = prev.position === head.header.tail;
  }
  const plan: ReplayPlan = { entries: run, head };
  if (!tailFound) {
    plan.warning = `log tail at offset ${head.header.tail} is not a valid entry of the active sequence; replaying from offset ${run[0].position}`;
  }
  return { plan, rejected: area.rejected };
}

/** The file size a replay must leave: the head's last file offset, rounded up to 1 MiB. */
export function replayedFileSize(plan: ReplayPlan, currentSize: number): number {
  const last = Math.ceil(plan.head.header.lastFileOffset / MiB) * MiB;
  return Math.max(currentSize, last);
}

export interface NewLogEntry {
  sequenceNumber: bigint;
  tail: number;
  logGuid: string;
  flushedFileOffset: number;
  lastFileOffset: number;
  operations: LogOperation[];
}

/** Serializes one log entry: header, descriptors padded to 4 KiB, one data sector per data descriptor. */
export function serializeLogEntry(e: NewLogEntry): Buffer {
  const dataOps = e.operations.filter((o) => o.kind === 'data').length;
  const descSectors = descriptorSectors(e.operations.length);
  const length = (descSectors + dataOps) * LOG_SECTOR_SIZE;
  const buf = Buffer.alloc(length);
  buf.writeUInt32LE(ENTRY_SIGNATURE, 0);
  buf.writeUInt32LE(length, 8);
  buf.writeUInt32LE(e.tail, 12);
  buf.writeBigUInt64LE(e.sequenceNumber, 16);
  buf.writeUInt32LE(e.operations.length, 24);
  writeGuid(buf, 32, e.logGuid);
  buf.writeBigUInt64LE(BigInt(e.flushedFileOffset), 48);
  buf.writeBigUInt64LE(BigInt(e.lastFileOffset), 56);
  const seqLo = Number(e.sequenceNumber & 0xffffffffn);
  const seqHi = Number(e.sequenceNumber >> 32n);
  let dataSector = descSectors;
  e.operations.forEach((op, i) => {
    const d = ENTRY_HEADER_SIZE + i * DESCRIPTOR_SIZE;
    buf.writeBigUInt64LE(BigInt(op.fileOffset), d + 16);
    buf.writeBigUInt64LE(e.sequenceNumber, d + 24);
    if (op.kind === 'zero') {
      buf.writeUInt32LE(ZERO_SIGNATURE, d);
      buf.writeBigUInt64LE(BigInt(op.length), d + 8);
    } else {
      buf.writeUInt32LE(DESC_SIGNATURE, d);
      op.data.copy(buf, d + 4, 4092, 4096); // trailing bytes
      op.data.copy(buf, d + 8, 0, 8); // leading bytes
      const s = dataSector * LOG_SECTOR_SIZE;
      buf.writeUInt32LE(DATA_SIGNATURE, s);
      buf.writeUInt32LE(seqHi, s + 4);
      op.data.copy(buf, s + 8, 8, 4092);
      buf.writeUInt32LE(seqLo, s + 4092);
      dataSector++;
    }
  });
  buf.writeUInt32LE(crc32c(buf) >>> 0, 4);
  return buf;
}
