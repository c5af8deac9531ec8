export const KiB = 1024;
export const MiB = 1024 * KiB;
export const GiB = 1024 * MiB;
export const TiB = 1024 * GiB;

export const FILE_SIGNATURE = 'vhdxfile';
export const HEADER_SECTION_SIZE = MiB;
export const HEADER1_OFFSET = 64 * KiB;
export const HEADER2_OFFSET = 128 * KiB;
export const HEADER_SIZE = 4 * KiB;
export const REGION_TABLE1_OFFSET = 192 * KiB;
export const REGION_TABLE2_OFFSET = 256 * KiB;
export const REGION_TABLE_SIZE = 64 * KiB;
export const METADATA_TABLE_SIZE = 64 * KiB;
export const LOG_SECTOR_SIZE = 4 * KiB;
export const MAX_TABLE_ENTRIES = 2047;
/** A metadata item's length is at most 1 MiB (MS-VHDX 2.6.1.2). */
export const MAX_METADATA_ITEM = MiB;

export const MIN_BLOCK_SIZE = MiB;
export const MAX_BLOCK_SIZE = 256 * MiB;
export const MAX_VIRTUAL_SIZE = 64 * TiB;
/** 2^23 sectors: the span of one sector-bitmap block, which fixes the chunk ratio. */
export const SECTORS_PER_CHUNK = 2 ** 23;

export const REGION_BAT = '2dc27766-f623-4200-9d64-115e9bfd4a08';
export const REGION_METADATA = '8b7ca206-4790-4b9a-b8fe-575f050f886e';

export const ITEM_FILE_PARAMETERS = 'caa16737-fa36-4d43-b3b6-33f0aa44e76b';
export const ITEM_VIRTUAL_DISK_SIZE = '2fa54224-cd1b-4876-b211-5dbed83bf4b8';
export const ITEM_PAGE83 = 'beca12ab-b2e6-4523-93ef-c309e000c746';
export const ITEM_LOGICAL_SECTOR_SIZE = '8141bf1d-a96f-4709-ba47-f233a8faab5f';
export const ITEM_PHYSICAL_SECTOR_SIZE = 'cda348c7-445d-4471-9cc9-e9885251c556';
export const ITEM_PARENT_LOCATOR = 'a8d35f2d-b30b-454d-abf7-d3d84834ab0c';
export const PARENT_LOCATOR_VHDX = 'b04aefb7-d19e-4a81-b789-25b8e9445913';

export function isPowerOfTwo(n: number): boolean {
  // Math.log2 is exact on powers of two, and unlike `n & (n - 1)` it works past 2^31.
  return Number.isInteger(n) && n > 0 && Number.isInteger(Math.log2(n));
}

export function roundUp(n: number, multiple: number): number {
  return Math.ceil(n / multiple) * multiple;
}
