import type { PositionalFile } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import { LOG_SECTOR_SIZE, MiB } from './constants.js';
import { ZERO_GUID, newGuid } from './guid.js';
import type { HeaderPair } from './header-pair.js';
import {
  descriptorSectors, loggedData, replayedFileSize, serializeLogEntry, type LogOperation, type LogRegion, type LoggedOperation,
  type ReplayPlan,
} from './log.js';

/** How many 4 KiB data descriptors fit in one entry of a log of `logLength` bytes (one sector kept free). */
export function entryCapacity(logLength: number): number {
  const sectors = logLength / LOG_SECTOR_SIZE - 1;
  let n = sectors;
  while (n > 0 && n + descriptorSectors(n) > sectors) n--;
  return n;
}

/**
 * Makes metadata changes crash-safe: each transaction is one log entry under a fresh log GUID, written
 * and flushed before the same bytes are applied in place and flushed, after which the log is emptied.
 * A crash before the entry is complete leaves the old metadata; after it, replay finishes the job.
 * Callers flush payload data first, so nothing the entry makes reachable can be missing.
 */
export async function logTransaction(file: PositionalFile, headers: HeaderPair, ops: LogOperation[]): Promise<void> {
  if (ops.length === 0) return;
  const session = await LogSession.begin(file, headers);
  await session.commit(ops);
  await session.end();
}

/**
 * Several transactions under one log GUID, for changes too large for one entry (a repair rewriting
 * thousands of BAT sectors): each entry is written at the start of the log with the next sequence
 * number and its tail at itself, flushed, applied and flushed before the next overwrites it. A crash
 * leaves at most one valid entry, whose replay repeats the last step; the header is written twice
 * per session instead of four times per entry.
 */
export class LogSession {
  private sequence = 1n;

  private constructor(
    private readonly file: PositionalFile,
    private readonly headers: HeaderPair,
    private readonly logGuid: string,
  ) {}

  static async begin(file: PositionalFile, headers: HeaderPair): Promise<LogSession> {
    const logGuid = newGuid();
    await headers.update({ logGuid });
    return new LogSession(file, headers, logGuid);
  }

  async commit(ops: LogOperation[]): Promise<void> {
    if (ops.length === 0) return;
    const h = this.headers.header;
    const capacity = entryCapacity(h.logLength);
    if (ops.length > capacity) {
      throw new VdiskError('IO', `${this.file.path}: ${ops.length} sectors do not fit one entry of the ${h.logLength}-byte log`);
    }
    const size = this.file.size();
    const entry = serializeLogEntry({
      sequenceNumber: this.sequence++,
      tail: 0,
      logGuid: this.logGuid,
      flushedFileOffset: size,
      lastFileOffset: size,
      operations: ops,
    });
    await this.file.writeAt(entry, h.logOffset);
    await this.file.flush();
    await applyOperations(this.file, ops);
    await this.file.flush();
  }

  async end(): Promise<void> {
    await this.headers.update({ logGuid: ZERO_GUID });
  }
}

async function applyOperations(file: PositionalFile, ops: LogOperation[]): Promise<void> {
  for (let i = 0; i < ops.length; ) {
    const op = ops[i];
    if (op.kind === 'zero') {
      await zeroRange(file, op.fileOffset, op.length);
      i++;
      continue;
    }
    // Sectors that follow each other in the file (a run of BAT sectors) go in one write.
    let j = i + 1;
    while (j < ops.length && j - i < 256) {
      const next = ops[j];
      if (next.kind !== 'data' || next.fileOffset !== op.fileOffset + (j - i) * LOG_SECTOR_SIZE) break;
      j++;
    }
    const run = ops.slice(i, j) as Extract<LogOperation, { kind: 'data' }>[];
    await file.writeAt(run.length === 1 ? op.data : Buffer.concat(run.map((o) => o.data)), op.fileOffset);
    i = j;
  }
}

/**
 * Writes zeros over [offset, offset+length) of the file as it is now, a MiB at a time. Bytes past
 * its end are zeros already, or become zeros when the replay extends the file.
 */
async function zeroRange(file: PositionalFile, offset: number, length: number): Promise<void> {
  const end = Math.min(offset + length, file.size());
  const zeros = Buffer.alloc(Math.min(MiB, Math.max(0, end - offset)));
  for (let at = offset; at < end; at += zeros.length) await file.writeAt(zeros.subarray(0, Math.min(zeros.length, end - at)), at);
}

/** Applies one entry found in the log, reading each data sector from the log as it goes. */
async function applyLogged(file: PositionalFile, log: LogRegion, ops: LoggedOperation[]): Promise<void> {
  for (const op of ops) {
    if (op.kind === 'logged') await file.writeAt(await loggedData(log, op), op.fileOffset);
    else await zeroRange(file, op.fileOffset, op.length);
  }
}

/**
 * Replays a pending log on disk, as the format describes: refuse a truncated file, apply every entry
 * of the active sequence from tail to head, extend the file to the head's last file offset, flush,
 * and mark the log empty.
 */
export async function replayOnDisk(file: PositionalFile, headers: HeaderPair, plan: ReplayPlan): Promise<void> {
  if (plan.head.header.flushedFileOffset > file.size()) {
    throw new VdiskError(
      'CORRUPT',
      `${file.path}: pending log says ${plan.head.header.flushedFileOffset} bytes were flushed but the file has ${file.size()}: the file was truncated and the log cannot be replayed`,
    );
  }
  // A new file write GUID before the first write of this session, keeping the log GUID until replayed.
  await headers.update({ fileWriteGuid: newGuid() });
  for (const entry of plan.entries) await applyLogged(file, plan.log, entry.operations);
  const size = replayedFileSize(plan, file.size());
  if (size > file.size()) await file.truncate(size);
  await file.flush();
  await headers.update({ logGuid: ZERO_GUID });
}
