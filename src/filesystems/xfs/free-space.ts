import type { ByteRange } from '../filesystem.js';
import { agflBlocks, parseAgf, parseBnoBlock } from './ag.js';

/** What the free-space walk needs from the reader. */
export interface FreeSource {
  readonly blockSize: number;
  readonly v5: boolean;
  readonly agCount: number;
  readonly agBlocks: number;
  readonly dblocks: number;
  /** Bytes at a volume offset (AG headers). */
  readSector(offset: number): Promise<Buffer>;
  /** One block of AG `agno`, from the metadata cache. */
  readAgBlock(agno: number, agbno: number): Promise<Buffer>;
  fail(what: string): Error;
  warn(what: string): void;
  readonly sectSize: number;
}

const NO_SIBLING = 0xffffffff;

/**
 * Free space from each AG's by-block-number btree (the bnobt): descend the leftmost pointers to the
 * leaves, then follow right siblings. Records must ascend without overlapping inside the AG, and no more
 * blocks can be visited than the AG holds, so a damaged tree ends. The free list's blocks count as free
 * too (xfs_db's freesp counts them; they hold nothing a copy needs). Runs touching across AGs are merged.
 */
export async function* freeRuns(src: FreeSource): AsyncGenerator<ByteRange> {
  const bs = src.blockSize;
  let pending: ByteRange | null = null;
  for (let agno = 0; agno < src.agCount; agno++) {
    const agStart = agno * src.agBlocks;
    const agLen = Math.min(src.agBlocks, src.dblocks - agStart);
    const where = `allocation group ${agno}`;
    const agf = parseAgf(await src.readSector(agStart * bs + src.sectSize), src.v5);
    if (typeof agf === 'string') throw src.fail(`${where}: AGF: ${agf}`);
    if (!agf.crcOk) src.warn(`${where}: AGF checksum mismatch`);
    if (agf.seqno !== agno || agf.length !== agLen) throw src.fail(`${where}: AGF says AG ${agf.seqno} of ${agf.length} blocks`);
    if (agf.bnoLevel < 1 || agf.bnoLevel > 8) throw src.fail(`${where}: free-space btree of ${agf.bnoLevel} levels`);
    // Each block at most once: empty leaves linked in a ring would otherwise loop without a record to betray them.
    const visited = new Set<number>();
    const read = async (agbno: number, level: number) => {
      if (agbno === 0 || agbno >= agLen) throw src.fail(`${where}: free-space btree block ${agbno} lies outside the AG`);
      if (visited.has(agbno)) throw src.fail(`${where}: free-space btree loops at block ${agbno}`);
      visited.add(agbno);
      const b = await src.readAgBlock(agno, agbno);
      const h = parseBnoBlock(b, src.v5);
      if (typeof h === 'string') throw src.fail(`${where}: free-space btree block ${agbno}: ${h}`);
      if (!h.crcOk) src.warn(`${where}: free-space btree block ${agbno}: checksum mismatch`);
      if (h.level !== level) throw src.fail(`${where}: free-space btree block ${agbno} at level ${h.level}, ${level} expected`);
      const max = Math.floor((bs - h.header) / 8);
      if (h.numrecs > max || (level > 0 && h.numrecs === 0)) throw src.fail(`${where}: free-space btree block ${agbno} holds ${h.numrecs} records`);
      return { b, h };
    };
    let agbno = agf.bnoRoot;
    for (let level = agf.bnoLevel - 1; level > 0; level--) {
      const { b, h } = await read(agbno, level);
      // Node pointers follow the keys at the block's maxrecs (keys of 8 bytes, pointers of 4).
      const maxrecs = Math.floor((bs - h.header) / 12);
      agbno = b.readUInt32BE(h.header + maxrecs * 8);
    }
    const agfl = agflBlocks(await src.readSector(agStart * bs + 3 * src.sectSize), src.v5, agf, (w) => src.warn(`${where}: ${w}`));
    if (typeof agfl === 'string') throw src.fail(`${where}: AGFL: ${agfl}`);
    let nextFl = 0;
    let end = 0;
    let total = 0;
    const runs: ByteRange[] = [];
    const add = (start: number, count: number) => {
      if (count === 0 || start < end || start + count > agLen) throw src.fail(`${where}: free extent of ${count} blocks at ${start} is out of order, overlaps another or lies outside the AG`);
      end = start + count;
      const range = { offset: (agStart + start) * bs, length: count * bs };
      if (pending && pending.offset + pending.length === range.offset) pending.length += range.length;
      else {
        if (pending) runs.push(pending);
        pending = range;
      }
    };
    for (;;) {
      const { b, h } = await read(agbno, 0);
      for (let i = 0; i < h.numrecs; i++) {
        const start = b.readUInt32BE(h.header + i * 8);
        const count = b.readUInt32BE(h.header + i * 8 + 4);
        while (nextFl < agfl.length && agfl[nextFl] < start) add(agfl[nextFl++], 1);
        add(start, count);
        total += count;
      }
      yield* runs;
      runs.length = 0;
      if (h.rightSibling === NO_SIBLING) break;
      agbno = h.rightSibling;
    }
    while (nextFl < agfl.length) add(agfl[nextFl++], 1);
    yield* runs;
    runs.length = 0;
    if (total !== agf.freeBlocks) src.warn(`${where}: the free-space btree holds ${total} free blocks, the AGF counts ${agf.freeBlocks}`);
  }
  if (pending) yield pending;
}
