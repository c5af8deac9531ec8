/** VDI's fixed values (VirtualBox's VDICore.h; the same ones QEMU's block/vdi.c uses). */
export const KiB = 1024;
export const MiB = 1024 * KiB;

export const VDI_SIGNATURE = 0xbeda107f;
/** Version 1.1, the only one written since VirtualBox 1.x: major in the high half, minor in the low. */
export const VDI_VERSION_1_1 = 0x00010001;
/** The pre-header and the version 1.1 header together fill the first sector. */
export const HEADER_SECTOR = 512;
export const SECTOR_SIZE = 512;

export const TYPE_DYNAMIC = 1;
export const TYPE_STATIC = 2;
export const TYPE_UNDO = 3;
export const TYPE_DIFF = 4;

/** A block map entry for a block never written: it reads as zeros. */
export const ENTRY_UNALLOCATED = 0xffffffff;
/** A block map entry for a block discarded: it reads as zeros too. */
export const ENTRY_ZERO = 0xfffffffe;
export const isStored = (entry: number): boolean => entry < ENTRY_ZERO;

/** QEMU's bound on blocks (a block map of 4 GiB), so that a map index times 4 fits in 32 bits. */
export const MAX_BLOCKS = 0x3fffffff;
export const DEFAULT_BLOCK_SIZE = MiB;
export const MIN_BLOCK_SIZE = SECTOR_SIZE;
export const MAX_BLOCK_SIZE = 256 * MiB;
/** The largest disk VDI can describe with 1 MiB blocks (QEMU's VDI_DISK_SIZE_MAX). */
export const MAX_DISK_SIZE = MAX_BLOCKS * MiB;

/** What the pre-header of a new image says: VirtualBox's current text (older ones said Sun or innotek). */
export const VDI_TEXT = '<<< Oracle VM VirtualBox Disk Image >>>\n';

export const isPowerOfTwo = (n: number): boolean => Number.isSafeInteger(n) && n > 0 && (n & (n - 1)) === 0;
export const roundUp = (n: number, to: number): number => Math.ceil(n / to) * to;
