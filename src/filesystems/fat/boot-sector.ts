import { dosSerial, type VolumeReader } from '../types.js';

/**
 * The boot sector's BIOS Parameter Block (Microsoft's FAT specification, "fatgen103", section 3), and
 * the layout of the volume that follows from it (section 3.5). Both the detector and the reader start
 * here, so that they agree on what a FAT volume is.
 */
export interface Bpb {
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  fatCount: number;
  /** Entries in the fixed root directory region (0 on FAT32). */
  rootEntries: number;
  totalSectors: number;
  /** Sectors per FAT. */
  fatSectors: number;
  media: number;
  /** FAT32 only: the root directory's first cluster. */
  rootCluster: number;
  /** BPB_FATSz16 is zero: the FAT32 extended BPB follows (section 3.3). */
  fat32: boolean;
  /** FAT32 BPB_ExtFlags: bit 7 set means only the FAT numbered in bits 0-3 is active (section 3.3). */
  extFlags: number;
  /** No BPB at all: a PC-DOS 1.x floppy whose geometry the media byte implies. */
  dos1: boolean;
}

/** Parses the BPB, or null when the sector does not hold a plausible one. */
export function parseBpb(b: Buffer): Bpb | null {
  if (!(b[0] === 0xeb || b[0] === 0xe9)) return null;
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13];
  const reservedSectors = b.readUInt16LE(14);
  const fatCount = b[16];
  const media = b[21];
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) return null;
  if (sectorsPerCluster === 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0) return null;
  if (reservedSectors === 0 || fatCount === 0 || fatCount > 4 || !(media === 0xf0 || media >= 0xf8)) return null;
  const fat16Size = b.readUInt16LE(22);
  const fat32 = fat16Size === 0;
  const fatSectors = fat32 ? b.readUInt32LE(36) : fat16Size;
  const totalSectors = b.readUInt16LE(19) || b.readUInt32LE(32);
  if (fatSectors === 0 || totalSectors === 0) return null;
  return {
    bytesPerSector,
    sectorsPerCluster,
    reservedSectors,
    fatCount,
    rootEntries: b.readUInt16LE(17),
    totalSectors,
    fatSectors,
    media,
    rootCluster: fat32 ? b.readUInt32LE(44) : 0,
    fat32,
    extFlags: fat32 ? b.readUInt16LE(40) : 0,
    dos1: false,
  };
}

/**
 * PC-DOS 1.x 5.25" floppies have no BPB: the FAT's first byte (sector 1) is the media byte, and the
 * geometry is the one DOS 2.0 later wrote into the BPBs of the same media (512-byte sectors, one
 * reserved sector, two FATs).
 */
const DOS1_FLOPPIES: Record<number, { sectors: number; sectorsPerCluster: number; rootEntries: number; fatSectors: number }> = {
  0xfe: { sectors: 320, sectorsPerCluster: 1, rootEntries: 64, fatSectors: 1 }, // 160 KiB, single-sided, 8 sectors a track
  0xfc: { sectors: 360, sectorsPerCluster: 1, rootEntries: 64, fatSectors: 2 }, // 180 KiB, single-sided, 9 sectors a track
  0xff: { sectors: 640, sectorsPerCluster: 2, rootEntries: 112, fatSectors: 1 }, // 320 KiB, double-sided, 8 sectors a track
  0xfd: { sectors: 720, sectorsPerCluster: 2, rootEntries: 112, fatSectors: 2 }, // 360 KiB, double-sided, 9 sectors a track
};

/** The implied BPB of a PC-DOS 1.x floppy: recognised by its exact size and the FAT's media byte then 0xFF 0xFF. */
export async function dos1Bpb(v: VolumeReader, boot: Buffer): Promise<Bpb | null> {
  if (!(boot[0] === 0xeb || boot[0] === 0xe9 || boot[0] === 0x00 || boot[0] === 0xf6)) return null;
  const fat = await v.read(512, 3);
  const g = DOS1_FLOPPIES[fat[0]];
  if (g === undefined || fat[1] !== 0xff || fat[2] !== 0xff || v.size !== g.sectors * 512) return null;
  return {
    bytesPerSector: 512,
    sectorsPerCluster: g.sectorsPerCluster,
    reservedSectors: 1,
    fatCount: 2,
    rootEntries: g.rootEntries,
    totalSectors: g.sectors,
    fatSectors: g.fatSectors,
    media: fat[0],
    rootCluster: 0,
    fat32: false,
    extFlags: 0,
    dos1: true,
  };
}

export type FatVersion = 'FAT12' | 'FAT16' | 'FAT32';

/** Where everything is, in bytes from the volume's start. */
export interface FatLayout {
  version: FatVersion;
  bits: 12 | 16 | 32;
  sectorSize: number;
  clusterSize: number;
  /** The FAT this reader follows (the active one on FAT32 with mirroring off, else the first). */
  fatOffset: number;
  fatBytes: number;
  /** FAT12/16: the fixed root directory region. */
  rootOffset: number;
  rootBytes: number;
  /** FAT32: the root directory's first cluster. */
  rootCluster: number;
  dataOffset: number;
  /** Data clusters, numbered 2 .. clusterCount + 1. */
  clusterCount: number;
  /** Bytes the BPB says the file system spans. */
  totalBytes: number;
  /** What the layout had to correct, for the reader's warnings. */
  notes: string[];
}

/** FAT entries at or above these mark a bad cluster (the value) or the end of a chain (above it). */
export const BAD_CLUSTER: Record<12 | 16 | 32, number> = { 12: 0xff7, 16: 0xfff7, 32: 0x0ffffff7 };

/**
 * The layout the BPB implies, or null when its regions do not fit (no data region). The FAT type
 * follows the cluster count, except that a zero BPB_FATSz16 means FAT32 (section 3.5; Linux and blkid
 * decide the same way).
 */
export function fatLayout(bpb: Bpb): FatLayout | null {
  const bps = bpb.bytesPerSector;
  const rootDirSectors = Math.ceil((bpb.rootEntries * 32) / bps);
  const dataStart = bpb.reservedSectors + bpb.fatCount * bpb.fatSectors + rootDirSectors;
  if (dataStart >= bpb.totalSectors) return null;
  let clusterCount = Math.floor((bpb.totalSectors - dataStart) / bpb.sectorsPerCluster);
  const version: FatVersion = bpb.fat32 ? 'FAT32' : clusterCount < 4085 ? 'FAT12' : 'FAT16';
  const bits = version === 'FAT32' ? 32 : version === 'FAT16' ? 16 : 12;
  const notes: string[] = [];
  // Cluster numbers stop below the bad-cluster mark, and the FAT must have an entry for each.
  const fatBytes = bpb.fatSectors * bps;
  const fatEntries = Math.floor((fatBytes * 8) / bits);
  const limit = Math.min(BAD_CLUSTER[bits] - 2, fatEntries - 2);
  if (clusterCount > limit) {
    notes.push(`${version} has ${clusterCount} clusters but its FAT can address only ${Math.max(0, limit)}; reading those`);
    clusterCount = Math.max(0, limit);
  }
  let activeFat = 0;
  // Section 3.3: with bit 7 of BPB_ExtFlags set, mirroring is off and bits 0-3 name the one active FAT.
  if (bpb.fat32 && bpb.extFlags & 0x80 && (bpb.extFlags & 0x0f) < bpb.fatCount) activeFat = bpb.extFlags & 0x0f;
  return {
    version,
    bits,
    sectorSize: bps,
    clusterSize: bpb.sectorsPerCluster * bps,
    fatOffset: (bpb.reservedSectors + activeFat * bpb.fatSectors) * bps,
    fatBytes,
    rootOffset: (bpb.reservedSectors + bpb.fatCount * bpb.fatSectors) * bps,
    rootBytes: bpb.fat32 ? 0 : bpb.rootEntries * 32,
    rootCluster: bpb.rootCluster,
    dataOffset: dataStart * bps,
    clusterCount,
    totalBytes: bpb.totalSectors * bps,
    notes,
  };
}

/** The BPB of the volume (or the implied one of a PC-DOS 1.x floppy), or null when it has none. */
export async function readBpb(v: VolumeReader): Promise<{ bpb: Bpb; boot: Buffer } | null> {
  const boot = await v.read(0, 512);
  const bpb = parseBpb(boot) ?? (await dos1Bpb(v, boot));
  return bpb ? { bpb, boot } : null;
}

/**
 * The boot sector's dirty flag: bit 0 of the byte after BS_DrvNum (BS_Reserved1, offset 37, or 65 on
 * FAT32), which Windows NT and Linux set while the volume is mounted.
 */
export function bootDirty(boot: Buffer, bpb: Bpb): boolean {
  return !bpb.dos1 && (boot[bpb.fat32 ? 65 : 37] & 0x01) !== 0;
}

/** The volume serial (BS_VolID) as blkid shows it, present when the extended boot signature 0x29 is (section 3.2, 3.3). */
export function volumeSerial(boot: Buffer, bpb: Bpb): string | undefined {
  if (bpb.dos1) return undefined;
  const sigAt = bpb.fat32 ? 66 : 38;
  return boot[sigAt] === 0x29 ? dosSerial(boot, sigAt + 1) : undefined;
}
