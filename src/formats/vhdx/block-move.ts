import type { PositionalFile } from '../../io/file.js';
import { MiB } from './constants.js';
import type { HeaderPair } from './header-pair.js';
import { LogSession, entryCapacity } from './log-writer.js';
import { batSectorUpdates } from './bat-update.js';

/** One stored block to move: BAT entry `index` (keeping its `state`) from file offset `from` to `to`. */
export interface BlockMove {
  index: number;
  state: number;
  from: number;
  to: number;
}

const COPY = 8 * MiB;

/**
 * Moves stored blocks within the file, crash-safe by order: every block is copied to its new place
 * (space nothing maps: the caller's promise) and the copies flushed, then the BAT entries are pointed
 * at the copies through the log, as many 4 KiB BAT sectors per entry as the log holds. A crash before
 * an entry leaves the old mapping and the old copy intact; after it, the new one. A block's old place
 * is free only once its entry has moved, so a later call may fill it, not this one.
 */
export async function moveBlocks(file: PositionalFile, pair: HeaderPair, batOffset: number, moves: BlockMove[], blockSize: number): Promise<void> {
  if (moves.length === 0) return;
  const buf = Buffer.alloc(Math.min(blockSize, COPY));
  for (const m of moves) {
    for (let at = 0; at < blockSize; at += buf.length) {
      const n = await file.readAt(buf, m.from + at);
      await file.writeAt(n === buf.length ? buf : buf.subarray(0, n), m.to + at);
    }
  }
  await file.flush();
  const ops = await batSectorUpdates(file, batOffset, moves.map((m) => [m.index, { state: m.state, fileOffset: m.to }]));
  const capacity = entryCapacity(pair.header.logLength);
  const session = await LogSession.begin(file, pair);
  for (let i = 0; i < ops.length; i += capacity) await session.commit(ops.slice(i, i + capacity));
  await session.end();
}

