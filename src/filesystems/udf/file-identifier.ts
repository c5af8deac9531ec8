import { parseLongAd, type AllocationDescriptor } from './addresses.js';
import { tagProblem, TAG } from './tag.js';

/**
 * The file identifier descriptor (ECMA-167 4/14.4): one directory entry, with its characteristics
 * (hidden, directory, deleted, parent), the long_ad of the entry's ICB and its CS0 name; each is padded
 * to a multiple of four bytes.
 */
export const FID_HIDDEN = 1;
export const FID_DIRECTORY = 2;
export const FID_DELETED = 4;
export const FID_PARENT = 8;

export const FID_FIXED = 38;

export interface FileIdentifier {
  characteristics: number;
  icb: AllocationDescriptor;
  /** The CS0 name, compression id first; empty for the parent entry. */
  name: Buffer;
  /** Bytes the descriptor occupies, padding included. */
  size: number;
}

/** Bytes the FID at `at` occupies, or null when fewer than its fixed part are there. */
export function fidSize(b: Buffer, at: number): number | null {
  if (at + FID_FIXED > b.length) return null;
  return (FID_FIXED + b.readUInt16LE(at + 36) + b[at + 19] + 3) & ~3;
}

/** Parses the FID at `at` (the caller made sure fidSize bytes are there); a string says what is wrong. */
export function parseFileIdentifier(b: Buffer, at: number): FileIdentifier | string {
  const size = fidSize(b, at) as number;
  // The CRC covers the descriptor without its padding's last bytes (4/14.4: the tag's CRC length);
  // tagProblem checks whatever the tag counts, within this descriptor.
  const problem = tagProblem(b.subarray(at, at + size), 0, TAG.FILE_IDENTIFIER);
  if (problem) return problem;
  const implUse = b.readUInt16LE(at + 36);
  const nameLength = b[at + 19];
  const nameAt = at + FID_FIXED + implUse;
  return {
    characteristics: b[at + 18],
    icb: parseLongAd(b, at + 20),
    name: b.subarray(nameAt, nameAt + nameLength),
    size,
  };
}
