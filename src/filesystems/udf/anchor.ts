import { parseExtentAd, type ExtentAd } from './addresses.js';
import { parseTag, tagProblem, TAG } from './tag.js';

/**
 * The anchor volume descriptor pointer (ECMA-167 3/10.2): at logical sector 256 and at the last sector
 * or 256 before it (UDF 2.60 2.2.3); it points to the main and reserve volume descriptor sequences.
 */
export interface Anchor {
  main: ExtentAd;
  reserve: ExtentAd;
}

/** Parses an anchor; with `sector`, null unless its tag is valid there (checksum, CRC, location). */
export function parseAnchor(b: Buffer, sector?: number): Anchor | null {
  if (sector !== undefined && tagProblem(b, 0, TAG.ANCHOR, sector) !== null) return null;
  if (sector === undefined && parseTag(b).id !== TAG.ANCHOR) return null;
  return { main: parseExtentAd(b, 16), reserve: parseExtentAd(b, 24) };
}
