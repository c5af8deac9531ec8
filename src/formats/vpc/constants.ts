/** VHD 1.0 constants (Microsoft's "Virtual Hard Disk Image Format Specification", October 2006). */
export const SECTOR = 512;
export const FOOTER_SIZE = 512;
export const HEADER_SIZE = 1024;
export const KiB = 1024;
export const MiB = 1024 * 1024;

export const DISK_FIXED = 2;
export const DISK_DYNAMIC = 3;
export const DISK_DIFFERENCING = 4;
export const DISK_TYPE_NAMES: Record<number, string> = { [DISK_FIXED]: 'fixed', [DISK_DYNAMIC]: 'dynamic', [DISK_DIFFERENCING]: 'differencing' };

/** A BAT entry of a block stored nowhere. */
export const UNALLOCATED = 0xffffffff;
/** The footer's data offset of a fixed disk (no dynamic header). */
export const NO_DATA_OFFSET = 0xffffffffffffffffn;

/** Seconds from the Unix epoch to the VHD one (2000-01-01 00:00:00 UTC). */
export const VHD_EPOCH = 946684800;

/** CHS geometry limits (QEMU's block/vpc.c: VHD_CHS_MAX_*, VHD_MAX_GEOMETRY, VHD_MAX_SECTORS). */
export const CHS_MAX_C = 65535;
export const CHS_MAX_H = 16;
export const CHS_MAX_S = 255;
export const MAX_GEOMETRY = CHS_MAX_C * CHS_MAX_H * CHS_MAX_S;
/** The largest disk the format is meant for: 2040 GiB (QEMU refuses larger ones too). */
export const MAX_SECTORS = 0xff000000;
export const MAX_SIZE = MAX_SECTORS * SECTOR;

export const DEFAULT_BLOCK_SIZE = 2 * MiB;

export function roundUp(n: number, to: number): number {
  return Math.ceil(n / to) * to;
}

/** The VHD checksum: the one's complement of the byte sum, the checksum field counted as zero. */
export function vhdChecksum(buf: Uint8Array, checksumOffset: number): number {
  let sum = 0;
  for (let i = 0; i < buf.length; i++) {
    if (i >= checksumOffset && i < checksumOffset + 4) continue;
    sum += buf[i];
  }
  return ~sum >>> 0;
}

/** Bytes of the sector bitmap that precedes each block: one bit a sector, padded to whole sectors. */
export function bitmapSizeOf(blockSize: number): number {
  return roundUp(Math.ceil(blockSize / SECTOR / 8), SECTOR);
}
