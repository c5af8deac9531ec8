import type { VolumeReader } from '../types.js';

/**
 * The jbd2 journal (Documentation/filesystems/ext4/journal.rst), big-endian: a superblock in journal
 * block 0, then a circular log of transactions from s_start: descriptor blocks (tags naming the file
 * system blocks whose new contents follow), revoke blocks, and a commit block ending each transaction.
 * Replaying means: for every committed transaction in order, the logged copies replace the blocks they
 * name, except copies revoked by the same or a later transaction. We do it in memory, as a block
 * overlay, and never write the image.
 */
const JBD2_MAGIC = 0xc03b3998;
const DESCRIPTOR = 1;
const COMMIT = 2;
const SUPERBLOCK_V1 = 3;
const SUPERBLOCK_V2 = 4;
const REVOKE = 5;
const INCOMPAT_REVOKE = 0x1;
const INCOMPAT_64BIT = 0x2;
const INCOMPAT_CSUM_V2 = 0x8;
const INCOMPAT_CSUM_V3 = 0x10;
const TAG_ESCAPE = 0x1;
const TAG_SAME_UUID = 0x2;
const TAG_LAST = 0x8;

/** Where the replayed copy of a file-system block lies (a byte offset in the volume) and whether it was escaped. */
export interface LoggedBlock {
  at: number;
  escaped: boolean;
}

export interface Replay {
  blocks: Map<number, LoggedBlock>;
  transactions: number;
}

/**
 * Walks the log. `physical(j)` gives the volume byte offset of journal block j; `limit` bounds the
 * journal's length in blocks (its inode's size). Throws an Error describing what is malformed.
 */
export async function replayJournal(volume: VolumeReader, blockSize: number, limit: number, physical: (j: number) => Promise<number>): Promise<Replay> {
  const read = async (j: number) => volume.read(await physical(j), blockSize);
  const sb = await read(0);
  if (sb.readUInt32BE(0) !== JBD2_MAGIC) throw new Error('no jbd2 magic in the journal superblock');
  const type = sb.readUInt32BE(4);
  if (type !== SUPERBLOCK_V1 && type !== SUPERBLOCK_V2) throw new Error(`journal superblock of type ${type}`);
  if (sb.readUInt32BE(0xc) !== blockSize) throw new Error(`journal block size ${sb.readUInt32BE(0xc)} differs from the file system's`);
  const maxlen = sb.readUInt32BE(0x10);
  const first = sb.readUInt32BE(0x14);
  let seq = sb.readUInt32BE(0x18);
  let block = sb.readUInt32BE(0x1c);
  const blocks = new Map<number, LoggedBlock>();
  if (block === 0) return { blocks, transactions: 0 };
  if (maxlen > limit || first === 0 || first >= maxlen || block < first || block >= maxlen) {
    throw new Error(`journal geometry (length ${maxlen}, first ${first}, start ${block}) does not fit its ${limit} blocks`);
  }
  const incompat = type === SUPERBLOCK_V2 ? sb.readUInt32BE(0x28) : 0;
  const is64 = (incompat & INCOMPAT_64BIT) !== 0;
  const csum3 = (incompat & INCOMPAT_CSUM_V3) !== 0;
  const csum2 = (incompat & INCOMPAT_CSUM_V2) !== 0;
  // journal_tag_bytes(): tag3 is 16 bytes; the old tag 12, +2 with csum v2, -4 without 64bit.
  const tagBytes = csum3 ? 16 : 12 + (csum2 ? 2 : 0) - (is64 ? 0 : 4);
  const tail = csum2 || csum3 ? 4 : 0;
  const next = (b: number) => (b + 1 >= maxlen ? first : b + 1);
  let transactions = 0;
  // Every step consumes a log block; a log cannot be longer than the journal.
  let steps = 0;
  const step = () => {
    if (++steps > maxlen) throw new Error('the log runs round the whole journal without ending');
  };
  for (;;) {
    const pending: [number, LoggedBlock][] = [];
    const revoked: number[] = [];
    for (;;) {
      step();
      const buf = await read(block);
      if (buf.readUInt32BE(0) !== JBD2_MAGIC || buf.readUInt32BE(8) !== seq) return { blocks, transactions };
      const kind = buf.readUInt32BE(4);
      if (kind === DESCRIPTOR) {
        let at = 12;
        for (;;) {
          if (at + tagBytes > blockSize - tail) break;
          const lo = buf.readUInt32BE(at);
          const flags = csum3 ? buf.readUInt32BE(at + 4) : buf.readUInt16BE(at + 6);
          const hi = is64 ? buf.readUInt32BE(at + 8) : 0;
          at += tagBytes;
          if (!(flags & TAG_SAME_UUID)) at += 16;
          step();
          block = next(block);
          pending.push([hi * 2 ** 32 + lo, { at: await physical(block), escaped: (flags & TAG_ESCAPE) !== 0 }]);
          if (flags & TAG_LAST) break;
        }
        block = next(block);
      } else if (kind === REVOKE) {
        if (!(incompat & INCOMPAT_REVOKE) && type === SUPERBLOCK_V2) throw new Error('revoke block in a journal without the revoke feature');
        const used = Math.min(buf.readUInt32BE(12), blockSize - tail);
        const width = is64 ? 8 : 4;
        for (let at = 16; at + width <= used; at += width) {
          revoked.push(is64 ? buf.readUInt32BE(at) * 2 ** 32 + buf.readUInt32BE(at + 4) : buf.readUInt32BE(at));
        }
        block = next(block);
      } else if (kind === COMMIT) {
        // A revoke cancels copies logged in its own transaction and earlier ones (jbd2's revoke rule).
        for (const [b, logged] of pending) blocks.set(b, logged);
        for (const b of revoked) blocks.delete(b);
        transactions++;
        seq = (seq + 1) >>> 0;
        block = next(block);
        break;
      } else {
        return { blocks, transactions };
      }
    }
  }
}

/** The volume as it will be once the journal is replayed: logged copies read in place of their blocks. */
export function replayedVolume(volume: VolumeReader, blockSize: number, replay: Replay): VolumeReader {
  return {
    size: volume.size,
    async read(offset, length) {
      const out = await volume.read(offset, length);
      const firstBlock = Math.floor(offset / blockSize);
      const lastBlock = Math.floor((offset + length - 1) / blockSize);
      // Look the range up block by block only when it is small next to the overlay; else walk the overlay.
      const patch = async (b: number, logged: LoggedBlock) => {
        const copy = Buffer.from(await volume.read(logged.at, blockSize));
        // An escaped block began with the jbd2 magic, zeroed in the log so it would not look like a header.
        if (logged.escaped) copy.writeUInt32BE(JBD2_MAGIC, 0);
        const from = Math.max(offset, b * blockSize);
        const to = Math.min(offset + length, (b + 1) * blockSize);
        copy.copy(out, from - offset, from - b * blockSize, to - b * blockSize);
      };
      if (lastBlock - firstBlock + 1 <= replay.blocks.size) {
        for (let b = firstBlock; b <= lastBlock; b++) {
          const logged = replay.blocks.get(b);
          if (logged) await patch(b, logged);
        }
      } else {
        for (const [b, logged] of replay.blocks) if (b >= firstBlock && b <= lastBlock) await patch(b, logged);
      }
      return out;
    },
  };
}
