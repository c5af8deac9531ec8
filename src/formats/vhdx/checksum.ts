import { crc32c } from '../../util/crc.js';

/** CRC-32C of `buf` with the 4-byte checksum field at `fieldOffset` taken as zero. */
export function checksumWithField(buf: Buffer, fieldOffset: number): number {
  const before = crc32c(buf.subarray(0, fieldOffset));
  const zeros = crc32c(Buffer.alloc(4), before);
  return crc32c(buf.subarray(fieldOffset + 4), zeros) >>> 0;
}

/** Writes the checksum into its field. */
export function sealChecksum(buf: Buffer, fieldOffset: number): void {
  buf.writeUInt32LE(0, fieldOffset);
  buf.writeUInt32LE(crc32c(buf) >>> 0, fieldOffset);
}

export function checksumMatches(buf: Buffer, fieldOffset: number): boolean {
  return checksumWithField(buf, fieldOffset) === buf.readUInt32LE(fieldOffset);
}
