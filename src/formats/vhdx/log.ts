import { crc32c } from '../../util/crc.js';
import type { ByteSource } from '../../io/file.js';
import { LOG_SECTOR_SIZE, MiB } from './constants.js';
import { readGuid, writeGuid } from './guid.js';
import { VdiskError } from '../../errors.js';
import { openBulkReader, type BulkReader } from './log-source.js';

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

/** A change the writer puts in a log entry: 4 KiB of data, or a run of zeros. */
export type LogOperation =
  | { kind: 'data'; fileOffset: number; data: Buffer }
  | { kind: 'zero'; fileOffset: number; length: number };

/**
 * A change found in the log. A data sector stays where it is in the log (`sector` and its
 * `descriptor`, as log positions) and is read when applied: a log may hold gigabytes of them.
 */
export type LoggedOperation =
  | { kind: 'logged'; fileOffset: number; descriptor: number; sector: number }
  | { kind: 'zero'; fileOffset: number; length: number };

export interface LogEntry {
  /** Offset of the entry inside the log. */
  position: number;
  header: LogEntryHeader;
  operations: LoggedOperation[];
}

/** The log area of a file: where its entries' data sectors are read from. */
export interface LogRegion {
  source: ByteSource;
  offset: number;
  length: number;
}

/** What a replay has to do: the entries of the active sequence, tail to head, in order. */
export interface ReplayPlan {
  log: LogRegion;
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

/**
 * Operations a search keeps for all the valid entries of a log together. Each costs a small record,
 * never its data; a log of 4 GiB of data sectors holds at most a million. More is refused.
 */
export const MAX_LOG_OPERATIONS = 1 << 20;

/** Entries are read and checksummed this much at a time, however long they claim to be. */
const CHUNK = MiB;

interface LogArea extends LogRegion {
  /** Where the scan's large reads go (see log-source.ts). */
  bulk: BulkReader;
  guid: string;
  /** Bytes entry validation may still read; overlapping bogus entry headers must not cost n^2 reads. */
  budget: number;
  /** Operations the valid entries may still hold. */
  operationsLeft: number;
  /** File offsets descriptors may touch: the largest file this image can need. */
  fileLimit: number;
  rejected: { position: number; reason: string }[];
}

/** Reads `length` bytes of the circular log starting at log position `pos`, wrapping at the end. */
async function readCircular(area: LogRegion | LogArea, pos: number, length: number, into?: Buffer): Promise<Buffer> {
  const buf = into ? into.subarray(0, length) : Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const at = (pos + done) % area.length;
    const n = Math.min(length - done, area.length - at);
    const part = buf.subarray(done, done + n);
    if ('bulk' in area) await area.bulk.read(part, area.offset + at);
    else await area.source.readAt(part, area.offset + at);
    done += n;
  }
  return buf;
}

/** The 4 KiB a logged data descriptor writes: leading bytes, the data sector's 4084, trailing bytes. */
export async function loggedData(log: LogRegion, op: { descriptor: number; sector: number }): Promise<Buffer> {
  const desc = await readCircular(log, op.descriptor, DESCRIPTOR_SIZE);
  const sector = await readCircular(log, op.sector, LOG_SECTOR_SIZE);
  const data = Buffer.alloc(LOG_SECTOR_SIZE);
  desc.copy(data, 0, 8, 16); // leading bytes
  sector.copy(data, 8, 8, 4092);
  desc.copy(data, 4092, 4, 8); // trailing bytes
  return data;
}

/**
 * Validates the entry at `pos` as the format requires (signature, length, GUID, checksum, every
 * descriptor's and data sector's sequence number) and decodes its operations; null when invalid.
 */
async function readEntry(area: LogArea, pos: number, first: Buffer): Promise<LogEntry | null> {
  const h = parseEntryHeader(first);
  if (!h || h.logGuid !== area.guid) return null; // other GUIDs: leftovers of earlier sessions
  const entry = await validateEntry(area, pos, h);
  if (typeof entry === 'string') {
    area.rejected.push({ position: pos, reason: entry });
    return null;
  }
  return entry;
}

/**
 * The decoded entry, or why it is invalid. The entry is read a chunk at a time: its checksum runs
 * over the chunks, descriptors are decoded as their sectors pass, and data sectors are checked and
 * remembered by position. A checksum that matches makes the entry a deliberate write: a descriptor
 * reaching past the largest file the image can need is then refused, not skipped as torn.
 */
async function validateEntry(area: LogArea, pos: number, h: LogEntryHeader): Promise<LogEntry | string> {
  if (h.entryLength === 0 || h.entryLength % LOG_SECTOR_SIZE !== 0 || h.entryLength > area.length) return `entry length ${h.entryLength} invalid`;
  if (h.sequenceNumber === 0n) return 'sequence number 0';
  if (h.tail % LOG_SECTOR_SIZE !== 0 || h.tail >= area.length) return `tail ${h.tail} invalid`;
  const descSectors = descriptorSectors(h.descriptorCount);
  if (descSectors * LOG_SECTOR_SIZE > h.entryLength) return `${h.descriptorCount} descriptors do not fit the entry`;
  area.budget -= h.entryLength;
  if (area.budget < 0) {
    throw new VdiskError('CORRUPT', `${area.source.path}: log holds too many overlapping entry headers to search`);
  }

  const seqLo = Number(h.sequenceNumber & 0xffffffffn);
  const seqHi = Number(h.sequenceNumber >> 32n);
  const operations: LoggedOperation[] = [];
  const dataOps: Extract<LoggedOperation, { kind: 'logged' }>[] = [];
  let problem: string | null = null; // the first format fault; reported only if the checksum holds
  let outOfRange: string | null = null;
  let crc = 0;
  let dataSeen = 0;
  if (h.descriptorCount > area.operationsLeft) {
    problem = `${h.descriptorCount} descriptors: more than the ${MAX_LOG_OPERATIONS} operations vdisk replays from one log`;
  }
  if (h.lastFileOffset > area.fileLimit) {
    outOfRange = `last file offset ${h.lastFileOffset} is past the largest file this image can need (${area.fileLimit} bytes)`;
  }
  const scratch = Buffer.allocUnsafe(Math.min(CHUNK, h.entryLength));
  for (let done = 0; done < h.entryLength; done += CHUNK) {
    const chunk = await readCircular(area, pos + done, Math.min(CHUNK, h.entryLength - done), scratch);
    if (done === 0) chunk.writeUInt32LE(0, 4); // the checksum covers the entry with its own field zeroed
    crc = crc32c(chunk, crc);
    if (problem) continue;
    for (let s = 0; s < chunk.length && !problem; s += LOG_SECTOR_SIZE) {
      const sectorIndex = (done + s) / LOG_SECTOR_SIZE;
      if (sectorIndex < descSectors) {
        // Descriptors: 126 after the 64-byte header in the first sector, 128 in each further one.
        const firstDesc = sectorIndex === 0 ? 0 : 126 + (sectorIndex - 1) * 128;
        const lastDesc = Math.min(h.descriptorCount, sectorIndex === 0 ? 126 : firstDesc + 128);
        for (let i = firstDesc; i < lastDesc; i++) {
          const d = s + (sectorIndex === 0 ? ENTRY_HEADER_SIZE : 0) + (i - firstDesc) * DESCRIPTOR_SIZE;
          const sig = chunk.readUInt32LE(d);
          const fileOffset = Number(chunk.readBigUInt64LE(d + 16));
          if (chunk.readBigUInt64LE(d + 24) !== h.sequenceNumber) { problem = `descriptor ${i} has another sequence number`; break; }
          if (fileOffset % LOG_SECTOR_SIZE !== 0) { problem = `descriptor ${i} file offset ${fileOffset} not 4 KiB aligned`; break; }
          if (sig === ZERO_SIGNATURE) {
            const length = Number(chunk.readBigUInt64LE(d + 8));
            if (length % LOG_SECTOR_SIZE !== 0) { problem = `zero descriptor ${i} length ${length} not 4 KiB aligned`; break; }
            if (fileOffset + length > area.fileLimit) {
              outOfRange ??= `zero descriptor ${i} clears ${length} bytes at ${fileOffset}, past the largest file this image can need (${area.fileLimit} bytes)`;
            } else if (intoLog(area, fileOffset, length)) {
              outOfRange ??= `zero descriptor ${i} clears the log itself (${length} bytes at ${fileOffset})`;
            }
            operations.push({ kind: 'zero', fileOffset, length });
          } else if (sig === DESC_SIGNATURE) {
            if (fileOffset + LOG_SECTOR_SIZE > area.fileLimit) {
              outOfRange ??= `data descriptor ${i} writes at ${fileOffset}, past the largest file this image can need (${area.fileLimit} bytes)`;
            } else if (intoLog(area, fileOffset, LOG_SECTOR_SIZE)) {
              outOfRange ??= `data descriptor ${i} writes into the log itself (at ${fileOffset})`;
            }
            const op = { kind: 'logged' as const, fileOffset, descriptor: (pos + done + d) % area.length, sector: 0 };
            operations.push(op);
            dataOps.push(op);
          } else {
            problem = `descriptor ${i} has no signature`;
            break;
          }
        }
      } else if (dataSeen < dataOps.length) {
        if (chunk.readUInt32LE(s) !== DATA_SIGNATURE) { problem = `data sector of descriptor ${dataSeen} has no signature`; break; }
        if (chunk.readUInt32LE(s + 4) !== seqHi || chunk.readUInt32LE(s + 4092) !== seqLo) { problem = `data sector of data descriptor ${dataSeen} has another sequence number`; break; }
        dataOps[dataSeen++].sector = (pos + done + s) % area.length;
      }
    }
  }
  if ((crc >>> 0) !== h.checksum) return 'checksum mismatch';
  if (problem) return problem;
  if (dataSeen < dataOps.length) return `data sector of data descriptor ${dataSeen} outside the entry`;
  if (outOfRange) throw new VdiskError('CORRUPT', `${area.source.path}: log entry at log offset ${pos}: ${outOfRange}`);
  area.operationsLeft -= operations.length;
  return { position: pos, header: h, operations };
}

/**
 * True when [fileOffset, fileOffset+length) overlaps the log: a replay reads each data sector from
 * the log as it applies it, so an entry that rewrote the log would change what it replays. No writer
 * logs changes to the log itself.
 */
function intoLog(area: LogArea, fileOffset: number, length: number): boolean {
  return fileOffset < area.offset + area.length && area.offset < fileOffset + length;
}

/**
 * Finds the active sequence of the log at `offset`/`length` whose entries carry `guid`. Every 4 KiB
 * sector is tried as an entry start, as the format asks, so entries left by earlier sessions or torn
 * writes are recognised and passed over. The plan is null when nothing is to be replayed.
 * `fileLimit` is the largest file the image can need (see `largestFileNeeded`): descriptors that
 * reach past it are refused.
 */
export async function findActiveSequence(
  source: ByteSource,
  offset: number,
  length: number,
  guid: string,
  fileLimit: number,
): Promise<LogSearch> {
  // Two full reads of the log, or 256 MiB, whichever is more: enough for any log a writer left.
  const bulk = await openBulkReader(source, length);
  try {
    return await search({
      source, offset, length, bulk, guid, budget: Math.max(256 * MiB, 2 * length), operationsLeft: MAX_LOG_OPERATIONS, fileLimit, rejected: [],
    });
  } finally {
    await bulk.close();
  }
}

async function search(area: LogArea): Promise<LogSearch> {
  const { source, offset, length } = area;
  const valid = new Map<number, LogEntry>();
  const WINDOW = MiB;
  const win = Buffer.alloc(Math.min(WINDOW, length));
  for (let w = 0; w < length; ) {
    const view = win.subarray(0, Math.min(WINDOW, length - w));
    await area.bulk.read(view, offset + w);
    let next = w + view.length;
    for (let s = 0; s < view.length; s += LOG_SECTOR_SIZE) {
      if (view.readUInt32LE(s) !== ENTRY_SIGNATURE) continue;
      const entry = await readEntry(area, w + s, Buffer.from(view.subarray(s, s + ENTRY_HEADER_SIZE)));
      if (!entry) continue;
      valid.set(w + s, entry);
      // No entry starts inside a valid one (its sectors are descriptors and data), as QEMU's search
      // also assumes: go on after its end, so that a long entry is not read twice.
      next = Math.min(length, w + s + entry.header.entryLength);
      break;
    }
    w = next;
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
  const plan: ReplayPlan = { log: { source, offset, length }, entries: run, head };
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
