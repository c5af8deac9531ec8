import { parseShortAd, SHORT_AD_SIZE, type AllocationDescriptor } from './addresses.js';
import { tagProblem, TAG } from './tag.js';

/**
 * The partition's free space: a space bitmap descriptor (ECMA-167 4/14.12), a bit per block of the
 * partition, set when the block is free, least significant bit first, after a 24-byte header; or an
 * unallocated space entry (4/14.11), an ICB tag then short_ads of the free extents.
 */
export const BITMAP_HEADER = 24;

export interface SpaceBitmap {
  bits: number;
  bytes: number;
}

/** `b` holds the descriptor's first block: a CRC over a bitmap longer than that is not checked (it is streamed, never held). */
export function parseSpaceBitmap(b: Buffer, location: number): SpaceBitmap | string {
  const problem = tagProblem(b, 0, TAG.SPACE_BITMAP, location, true);
  if (problem) return problem;
  return { bits: b.readUInt32LE(16), bytes: b.readUInt32LE(20) };
}

/** The free extents an unallocated space entry lists in its block; continuation extents are reported as such for the caller. */
export function parseUnallocatedSpaceEntry(b: Buffer, location: number): AllocationDescriptor[] | string {
  const problem = tagProblem(b, 0, TAG.UNALLOCATED_SPACE_ENTRY, location);
  if (problem) return problem;
  const len = b.readUInt32LE(36);
  if (40 + len > b.length) return `unallocated space entry lists ${len} bytes of descriptors`;
  if ((b.readUInt16LE(34) & 7) !== 0) return 'unallocated space entry with other than short allocation descriptors';
  const out: AllocationDescriptor[] = [];
  for (let at = 40; at + SHORT_AD_SIZE <= 40 + len; at += SHORT_AD_SIZE) {
    const ad = parseShortAd(b, at);
    if (ad.length === 0) break;
    out.push(ad);
  }
  return out;
}
