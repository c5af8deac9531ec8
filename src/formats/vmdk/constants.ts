export const SECTOR = 512;
export const KiB = 1024;
export const MiB = 1024 * KiB;

/** "KDMV" read as a little-endian u32: a hosted sparse extent. */
export const SPARSE_MAGIC = 0x564d444b;
/** "COWD": an ESX Server sparse (COW) extent, which vdisk does not read. */
export const COWD_MAGIC = 0x44574f43;
export const DESCRIPTOR_SIGNATURE = '# Disk DescriptorFile';

export const FLAG_NL_DETECT = 1 << 0;
export const FLAG_REDUNDANT_GT = 1 << 1;
/** Grain table entry 1 means "this grain reads as zeros" (VMware's zeroed-grain GTE). */
export const FLAG_ZERO_GRAIN = 1 << 2;
export const FLAG_COMPRESSED = 1 << 16;
export const FLAG_MARKERS = 1 << 17;

export const COMPRESSION_DEFLATE = 1;
/** gdOffset of a stream whose grain directory comes after its grains: the footer holds the real one. */
export const GD_AT_END = 0xffffffffffffffffn;

export const MARKER_EOS = 0;
export const MARKER_GT = 1;
export const MARKER_GD = 2;
export const MARKER_FOOTER = 3;

export const GTE_ZERO = 1;
/** Entries per grain table: VMware and QEMU use 512 and QEMU refuses more. */
export const MAX_GTES_PER_GT = 512;
/** The largest grain vdisk reads (QEMU's bound too is a fixed number of sectors): 2 MiB, so a grain buffer stays small. */
export const MAX_GRAIN_SECTORS = 4096;
/** A text descriptor (separate or embedded) longer than this is not one. */
export const MAX_DESCRIPTOR = MiB;
/** Extent lines a descriptor may list (a 2 TiB twoGbMaxExtent disk has 1024). */
export const MAX_EXTENTS = 8192;

export const DEFAULT_GRAIN_SECTORS = 128;
export const DESCRIPTOR_SECTORS = 20;
