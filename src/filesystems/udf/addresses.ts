/**
 * The small address structures descriptors embed: extent_ad (ECMA-167 3/7.1), lb_addr (4/7.1),
 * short_ad, long_ad and ext_ad (4/14.14), and the entity identifier regid (1/7.4).
 */

/** A run of logical sectors of the volume. */
export interface ExtentAd {
  length: number;
  location: number;
}

export function parseExtentAd(b: Buffer, at: number): ExtentAd {
  return { length: b.readUInt32LE(at), location: b.readUInt32LE(at + 4) };
}

/** A logical block in one partition, named by its index in the logical volume's partition maps. */
export interface LbAddr {
  block: number;
  partition: number;
}

/** The two top bits of an allocation descriptor's length (4/14.14.1.1). */
export const EXTENT_RECORDED = 0;
export const EXTENT_ALLOCATED = 1;
export const EXTENT_UNALLOCATED = 2;
export const EXTENT_CONTINUATION = 3;

export interface AllocationDescriptor {
  /** Bytes; 30 bits. */
  length: number;
  /** One of the EXTENT_* values. */
  kind: number;
  block: number;
  /** undefined for short_ad: the partition of the entry that holds it. */
  partition?: number;
}

export const SHORT_AD_SIZE = 8;
export const LONG_AD_SIZE = 16;
export const EXT_AD_SIZE = 20;

export function parseShortAd(b: Buffer, at: number): AllocationDescriptor {
  const len = b.readUInt32LE(at);
  return { length: len & 0x3fffffff, kind: len >>> 30, block: b.readUInt32LE(at + 4) };
}

export function parseLongAd(b: Buffer, at: number): AllocationDescriptor {
  const len = b.readUInt32LE(at);
  return { length: len & 0x3fffffff, kind: len >>> 30, block: b.readUInt32LE(at + 4), partition: b.readUInt16LE(at + 8) };
}

/** ext_ad: extent length, recorded length, information length, then the lb_addr; only the first and the address matter for reading. */
export function parseExtAd(b: Buffer, at: number): AllocationDescriptor {
  const len = b.readUInt32LE(at);
  return { length: len & 0x3fffffff, kind: len >>> 30, block: b.readUInt32LE(at + 12), partition: b.readUInt16LE(at + 16) };
}

/** An entity identifier: flags, a 23-byte identifier ("*OSTA UDF Compliant", "+NSR03"), an 8-byte suffix. */
export interface Regid {
  flags: number;
  id: string;
  suffix: Buffer;
}

export function parseRegid(b: Buffer, at: number): Regid {
  return {
    flags: b[at],
    id: b.toString('latin1', at + 1, at + 24).replace(/\0+$/u, ''),
    suffix: b.subarray(at + 24, at + 32),
  };
}

/** The UDF revision a domain or UDF identifier suffix names (UDF 2.60 2.1.5.3), as 0x0201. */
export function udfRevision(r: Regid): number {
  return r.suffix.readUInt16LE(0);
}
