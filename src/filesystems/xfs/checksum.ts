import { crc32cRange } from '../../util/crc.js';

/**
 * XFS metadata checksums (xfs_cksum.h): crc32c over the whole structure with its own 4-byte crc field
 * counted as zeros, stored little-endian. The field is skipped rather than zeroed in a copy, so a cached
 * block is never written to. `start`/`end`: the structure's bounds within `buf` (an inode in a block).
 */
export function xfsCrcOk(buf: Buffer, crcOffset: number, start = 0, end = buf.length): boolean {
  let c = crc32cRange(buf, start, start + crcOffset, 0);
  c = crc32cRange(ZEROS, 0, 4, c);
  c = crc32cRange(buf, start + crcOffset + 4, end, c);
  return c >>> 0 === buf.readUInt32LE(start + crcOffset);
}

const ZEROS = Buffer.alloc(4);
