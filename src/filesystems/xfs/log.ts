import type { VolumeReader } from '../types.js';

/**
 * Whether the internal log is clean (xfs_log_recover.c, much simplified): every 512-byte block of the
 * log carries the cycle of its last write; the head is where the cycle drops. The last record before it
 * is an unmount record (one operation flagged XLOG_UNMOUNT_TRANS) when the file system was unmounted
 * cleanly; anything else holds changes the kernel would replay at mount. We only warn: the image is
 * read as last written.
 */
const BB = 512;
const HEADER_MAGIC = 0xfeedbabe;
const UNMOUNT_TRANS = 0x20;
const VERSION_2 = 2;
const HEADER_CYCLE_SIZE = 32 * 1024;
/** How far back from the head a record header is looked for: the largest log record (256 KiB) and its headers. */
const SEARCH_BBS = 2 * 1024;

export const DIRTY_LOG = 'the log was not replayed; recent changes may be missing';

interface LogGeometry {
  readonly blockSize: number;
  readonly sb: { logStart: number; logBlocks: number };
  fsbOffset(fsb: number, count?: number): number;
}

/** A warning about the log, or null when it is clean (or on another device, which we cannot see). */
export async function logState(g: LogGeometry, volume: VolumeReader): Promise<string | null> {
  if (g.sb.logStart === 0) return null;
  let start: number;
  try {
    start = g.fsbOffset(g.sb.logStart, g.sb.logBlocks);
  } catch {
    return `log of ${g.sb.logBlocks} blocks at block ${g.sb.logStart} lies outside the file system: its state is unknown`;
  }
  const bbs = (g.sb.logBlocks * g.blockSize) / BB;
  if (bbs < 2) return 'log too short to hold a record: its state is unknown';
  const word = async (bb: number, at = 0) => (await volume.read(start + bb * BB + at, 4)).readUInt32BE(0);
  const cycle = async (bb: number) => {
    const w = await word(bb);
    return w === HEADER_MAGIC ? word(bb, 4) : w;
  };
  const first = await cycle(0);
  // A log never written since mkfs zeroed it has nothing to replay.
  if (first === 0) return null;
  let head: number;
  if ((await cycle(bbs - 1)) === first) head = bbs;
  else {
    // The first block of an older cycle: blocks before it were written in this pass, after it in the last.
    let lo = 0;
    let hi = bbs - 1;
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      if ((await cycle(mid)) === first) lo = mid;
      else hi = mid;
    }
    head = hi;
  }
  for (let i = 1; i <= Math.min(SEARCH_BBS, bbs); i++) {
    const bb = (head - i + bbs) % bbs;
    if ((await word(bb)) !== HEADER_MAGIC) continue;
    const h = await volume.read(start + bb * BB, BB);
    const size = h.readUInt32BE(320);
    const hblks = h.readUInt32BE(8) & VERSION_2 && size > HEADER_CYCLE_SIZE ? Math.ceil(size / HEADER_CYCLE_SIZE) : 1;
    if (h.readUInt32BE(40) !== 1) return DIRTY_LOG;
    const op = await volume.read(start + ((bb + hblks) % bbs) * BB, 12);
    return op[9] & UNMOUNT_TRANS ? null : DIRTY_LOG;
  }
  return DIRTY_LOG;
}
