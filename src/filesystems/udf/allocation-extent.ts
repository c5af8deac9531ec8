import { tagProblem, TAG } from './tag.js';

/**
 * The allocation extent descriptor (ECMA-167 4/14.5): where a list of allocation descriptors goes on
 * when an entry's own space is full; the descriptors follow its 24 bytes.
 */
export interface AllocationExtent {
  adOffset: number;
  adLength: number;
}

export function parseAllocationExtent(b: Buffer, location: number): AllocationExtent | string {
  // The tag's location is the block in the partition; CRC over what the tag counts.
  const problem = tagProblem(b, 0, TAG.ALLOCATION_EXTENT, location);
  if (problem) return problem;
  const adLength = b.readUInt32LE(20);
  if (24 + adLength > b.length) return `allocation descriptors (${adLength} bytes) overrun the block`;
  return { adOffset: 24, adLength };
}
