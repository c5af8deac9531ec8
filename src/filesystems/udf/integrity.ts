import { parseExtentAd, type ExtentAd } from './addresses.js';

/**
 * The logical volume integrity descriptor (ECMA-167 3/10.10, UDF 2.60 2.2.6): open or closed, the next
 * integrity extent, per-partition free and total block counts, and in its implementation use the file
 * and directory counts and the UDF revisions the volume needs.
 */
export interface Integrity {
  /** 0: open (being written, or the writer stopped before closing), 1: closed. */
  type: number;
  next: ExtentAd;
  /** Free blocks per partition (0xFFFFFFFF: not kept). */
  free: number[];
  size: number[];
  files?: number;
  directories?: number;
  minReadRevision?: number;
}

export function parseIntegrity(b: Buffer): Integrity | string {
  const n = b.readUInt32LE(72);
  const implUseLength = b.readUInt32LE(76);
  if (n > 64 || 80 + 8 * n > b.length) return `integrity descriptor counts ${n} partitions`;
  const free = Array.from({ length: n }, (_, i) => b.readUInt32LE(80 + 4 * i));
  const size = Array.from({ length: n }, (_, i) => b.readUInt32LE(80 + 4 * n + 4 * i));
  const iu = 80 + 8 * n;
  const out: Integrity = { type: b.readUInt32LE(28), next: parseExtentAd(b, 32), free, size };
  if (implUseLength >= 46 && iu + 46 <= b.length) {
    out.files = b.readUInt32LE(iu + 32);
    out.directories = b.readUInt32LE(iu + 36);
    out.minReadRevision = b.readUInt16LE(iu + 40);
  }
  return out;
}
