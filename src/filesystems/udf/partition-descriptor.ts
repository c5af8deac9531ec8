import { parseRegid } from './addresses.js';

/**
 * The partition descriptor (ECMA-167 3/10.5): where a partition starts and how long it is, in logical
 * sectors, and in its contents use the partition header descriptor (4/14.3) with the short_ads of its
 * space bitmaps and tables.
 */
export interface SpaceAd {
  length: number;
  block: number;
}

export interface PartitionDescriptor {
  sequenceNumber: number;
  number: number;
  /** "+NSR02" or "+NSR03" for a UDF partition. */
  contents: string;
  /** ECMA-167 3/10.5.7: 1 read-only, 2 write-once, 3 rewritable, 4 overwritable. */
  accessType: number;
  start: number;
  length: number;
  unallocatedTable?: SpaceAd;
  unallocatedBitmap?: SpaceAd;
  freedTable?: SpaceAd;
  freedBitmap?: SpaceAd;
}

function spaceAd(b: Buffer, at: number): SpaceAd | undefined {
  const length = b.readUInt32LE(at) & 0x3fffffff;
  return length === 0 ? undefined : { length, block: b.readUInt32LE(at + 4) };
}

export function parsePartitionDescriptor(b: Buffer): PartitionDescriptor {
  const header = 56; // partition contents use: the partition header descriptor
  return {
    sequenceNumber: b.readUInt32LE(16),
    number: b.readUInt16LE(22),
    contents: parseRegid(b, 24).id,
    accessType: b.readUInt32LE(184),
    start: b.readUInt32LE(188),
    length: b.readUInt32LE(192),
    unallocatedTable: spaceAd(b, header),
    unallocatedBitmap: spaceAd(b, header + 8),
    freedTable: spaceAd(b, header + 24),
    freedBitmap: spaceAd(b, header + 32),
  };
}
