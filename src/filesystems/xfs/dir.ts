import type { FileType } from '../filesystem.js';

/**
 * Version 2 directories (xfs_da_format.h). Small ones are "shortform", packed in the inode's data fork;
 * larger ones keep their entries in data blocks (block, leaf and node formats alike) in the first 32 GiB
 * of the directory's address space, followed by hash-index and free-space blocks this reader skips.
 */
export interface RawEntry {
  /** Decoded as UTF-8 straight from the block (no copy of the bytes per entry). */
  name: string;
  ino: number;
  type: FileType | null;
}

const FTYPES: (FileType | null)[] = [null, 'file', 'directory', 'char', 'block', 'fifo', 'socket', 'symlink'];

function ftype(v: number): FileType | null {
  if (v >= FTYPES.length) throw new Error(`file type ${v}`);
  return FTYPES[v];
}

/**
 * A shortform directory: count, i8count (inode numbers are 8 bytes wide when nonzero), the parent, then
 * entries of namelen, a 2-byte offset, the name, the ftype byte (with ftype) and the inode number.
 */
export function parseShortform(fork: Buffer, size: number, withFtype: boolean, out: RawEntry[]): void {
  if (size < 6 || size > fork.length) throw new Error(`shortform size ${size} does not fit the ${fork.length}-byte fork`);
  const b = fork.subarray(0, size);
  const count = b[0];
  const wide = b[1] !== 0;
  const inoLen = wide ? 8 : 4;
  const readIno = (at: number) => (wide ? Number(b.readBigUInt64BE(at)) : b.readUInt32BE(at));
  let at = 2 + inoLen;
  if (at > b.length) throw new Error('shortform header overruns the fork');
  for (let i = 0; i < count; i++) {
    if (at + 3 > b.length) throw new Error(`shortform entry ${i} overruns the fork`);
    const namelen = b[at];
    if (namelen === 0) throw new Error(`shortform entry ${i} has an empty name`);
    const nameAt = at + 3;
    const after = nameAt + namelen + (withFtype ? 1 : 0);
    if (after + inoLen > b.length) throw new Error(`shortform entry ${i} overruns the fork`);
    out.push({ name: b.toString('utf8', nameAt, nameAt + namelen), type: withFtype ? ftype(b[nameAt + namelen]) : null, ino: readIno(after) });
    at = after + inoLen;
  }
}

export const DATA_MAGIC = { BLOCK: 0x58443242, BLOCK3: 0x58444233, DATA: 0x58443244, DATA3: 0x58444433 } as const;
export const DIR3_CRC_OFFSET = 4;

/**
 * The entries of one directory data block (block format 'XD2B'/'XDB3' or data block 'XD2D'/'XDD3'):
 * after the header, entries (8-byte inode number, namelen, name, ftype, padding, 2-byte tag) and unused
 * runs (0xffff, length, ..., tag), each a multiple of 8 bytes; a block-format block ends in its leaf
 * array and tail instead. `.` and `..` are left out.
 */
export function parseDataBlock(b: Buffer, v5: boolean, withFtype: boolean, out: RawEntry[]): void {
  const magic = b.readUInt32BE(0);
  const isBlock = magic === (v5 ? DATA_MAGIC.BLOCK3 : DATA_MAGIC.BLOCK);
  if (!isBlock && magic !== (v5 ? DATA_MAGIC.DATA3 : DATA_MAGIC.DATA)) throw new Error(`bad magic 0x${magic.toString(16)}`);
  let end = b.length;
  if (isBlock) {
    // xfs_dir2_block_tail: leaf count and stale count, the leaf entries (8 bytes each) before it.
    const count = b.readUInt32BE(b.length - 8);
    end = b.length - 8 - count * 8;
  }
  let at = v5 ? 64 : 16;
  if (end < at) throw new Error(`block-format leaf of ${b.readUInt32BE(b.length - 8)} entries leaves no room for data`);
  while (at < end) {
    if (at + 8 > end) throw new Error(`entry at ${at} overruns the data area`);
    if (b.readUInt16BE(at) === 0xffff) {
      const length = b.readUInt16BE(at + 2);
      if (length < 8 || length % 8 !== 0 || at + length > end) throw new Error(`unused run of ${length} bytes at ${at}`);
      at += length;
      continue;
    }
    const namelen = b[at + 8];
    const len = Math.ceil((8 + 1 + namelen + (withFtype ? 1 : 0) + 2) / 8) * 8;
    if (namelen === 0 || at + len > end) throw new Error(`entry at ${at} with a ${namelen}-byte name overruns the data area`);
    if (b.readUInt16BE(at + len - 2) !== at) throw new Error(`entry at ${at} is tagged ${b.readUInt16BE(at + len - 2)}`);
    const n = at + 9;
    const dots = (namelen === 1 && b[n] === 0x2e) || (namelen === 2 && b[n] === 0x2e && b[n + 1] === 0x2e);
    if (!dots) out.push({ name: b.toString('utf8', n, n + namelen), ino: b.readUInt32BE(at) * 2 ** 32 + b.readUInt32BE(at + 4), type: withFtype ? ftype(b[n + namelen]) : null });
    at += len;
  }
}
