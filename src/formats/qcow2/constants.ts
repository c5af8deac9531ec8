/** QEMU's qcow2 (docs/interop/qcow2.txt): numbers every module shares. */

export const QCOW2_MAGIC = 0x514649fb; // "QFI\xfb"
export const V2_HEADER_LENGTH = 72;
export const V3_HEADER_LENGTH = 104;
/** What vdisk writes for version 3: the 104 bytes plus the compression type, padded to 8. */
export const V3_HEADER_LENGTH_WRITTEN = 112;

export const MIN_CLUSTER_BITS = 9;
export const MAX_CLUSTER_BITS = 21;
/** QEMU refuses L1 tables above 32 MiB and refcount tables above 8 MiB; so do we. */
export const MAX_L1_BYTES = 32 * 1024 * 1024;
export const MAX_REFTABLE_BYTES = 8 * 1024 * 1024;
export const MAX_SNAPSHOTS = 65536;
export const MAX_BACKING_NAME = 1023;

// Incompatible feature bits.
export const INCOMPAT_DIRTY = 1;
export const INCOMPAT_CORRUPT = 2;
export const INCOMPAT_DATA_FILE = 4;
export const INCOMPAT_COMPRESSION = 8;
export const INCOMPAT_EXTL2 = 16;
export const INCOMPAT_KNOWN = 0x1f;
// Compatible and autoclear feature bits.
export const COMPAT_LAZY_REFCOUNTS = 1;
export const AUTOCLEAR_BITMAPS = 1;
export const AUTOCLEAR_DATA_FILE_RAW = 2;

// Header extension types.
export const EXT_END = 0;
export const EXT_BACKING_FORMAT = 0xe2792aca;
export const EXT_FEATURE_TABLE = 0x6803f857;
export const EXT_BITMAPS = 0x23852875;
export const EXT_CRYPTO = 0x0537be77;
export const EXT_DATA_FILE = 0x44415441;

export const COMPRESSION_ZLIB = 0;
export const COMPRESSION_ZSTD = 1;

export const KiB = 1024;
export const MiB = 1024 * 1024;

export const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;

/** Bits 9-55 of a big-endian 64-bit table entry (L1 entries, standard L2 entries, refcount table entries). */
export function entryOffset(b: Buffer, at: number): number {
  return (b.readUInt32BE(at) & 0x00ffffff) * 0x100000000 + (b.readUInt32BE(at + 4) & 0xfffffe00);
}

/** Writes a 64-bit big-endian value from a safe integer and a flags word for the top 32 bits. */
export function writeEntry(b: Buffer, at: number, value: number, topFlags = 0): void {
  b.writeUInt32BE(((Math.floor(value / 0x100000000) | topFlags) >>> 0), at);
  b.writeUInt32BE(value % 0x100000000, at + 4);
}

/** A u64 field as a number, or null when above 2^53 (no real file or disk is that large). */
export function u64(b: Buffer, at: number): number | null {
  const hi = b.readUInt32BE(at);
  if (hi >= 0x200000) return null;
  return hi * 0x100000000 + b.readUInt32BE(at + 4);
}
