import { crc32c } from '../../util/crc.js';

/**
 * XFS metadata checksums (xfs_cksum.h): crc32c over the whole structure with its own 4-byte crc field
 * counted as zeros, stored little-endian. The field is skipped rather than zeroed in a copy, so a cached
 * block is never written to.
 */
export function xfsCrcOk(buf: Buffer, crcOffset: number): boolean {
  let c = crc32c(buf.subarray(0, crcOffset), 0);
  c = crc32c(ZEROS, c);
  c = crc32c(buf.subarray(crcOffset + 4), c);
  return c >>> 0 === buf.readUInt32LE(crcOffset);
}

const ZEROS = Buffer.alloc(4);
