import type { PositionalFile } from '../../io/file.js';
import { VdiskError } from '../../errors.js';
import { LOG_SECTOR_SIZE, MiB } from './constants.js';
import { ZERO_GUID, newGuid } from './guid.js';
import type { HeaderPair } from './header-pair.js';
import { descriptorSectors, replayedFileSize, serializeLogEntry, type LogOperation, type ReplayPlan } from './log.js';

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
  const h = headers.header;
  const capacity = entryCapacity(h.logLength);
  if (ops.length > capacity) {
    throw new VdiskError('IO', `${file.path}: ${ops.length} sectors do not fit one entry of the ${h.logLength}-byte log`);
  }
  const logGuid = newGuid();
  await headers.update({ logGuid });
  const size = file.size();
  const entry = serializeLogEntry({
    sequenceNumber: 1n,
    tail: 0,
    logGuid,
    flushedFileOffset: size,
    lastFileOffset: size,
    operations: ops,
  });
  await file.writeAt(entry, h.logOffset);
  await file.flush();
  await applyOperations(file, ops);
  await file.flush();
  await headers.update({ logGuid: ZERO_GUID });
}

async function applyOperations(file: PositionalFile, ops: LogOperation[]): Promise<void> {
  const zeros = Buffer.alloc(MiB);
  for (const op of ops) {
    if (op.kind === 'data') {
      await file.writeAt(op.data, op.fileOffset);
    } else {
      for (let at = 0; at < op.length; at += zeros.length) {
        await file.writeAt(zeros.subarray(0, Math.min(zeros.length, op.length - at)), op.fileOffset + at);
      }
    }
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
  for (const entry of plan.entries) await applyOperations(file, entry.operations);
  const size = replayedFileSize(plan, file.size());
  if (size > file.size()) await file.truncate(size);
  await file.flush();
  await headers.update({ logGuid: ZERO_GUID });
}
