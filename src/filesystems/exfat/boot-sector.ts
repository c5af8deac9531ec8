/**
 * The exFAT Main (and Backup) Boot Sector and the boot region's checksum sector: Microsoft's "exFAT file
 * system specification", section 3.1 (Main Boot Sector), 3.3 and 3.4 (Main and Backup Boot Checksum).
 * The detector and the reader parse the sector with the same function; the reader adds the geometry
 * checks of 3.1.5-3.1.10 that detection does not need.
 */

export const FILE_SYSTEM_NAME = 'EXFAT   ';
/** The boot region is 12 sectors: boot sector, 8 extended boot sectors, OEM parameters, reserved, checksum (3.1). */
export const BOOT_REGION_SECTORS = 12;
/** VolumeFlags bits (3.1.13). */
export const VOLUME_FLAG_ACTIVE_FAT = 1;
export const VOLUME_FLAG_DIRTY = 2;
export const VOLUME_FLAG_MEDIA_FAILURE = 4;
/** ClusterCount may not exceed 2^32 - 11 (3.1.9): the top values of a FAT entry are markers. */
export const MAX_CLUSTER_COUNT = 0xfffffff5;

export interface BootSector {
  /** The volume's size in sectors; a bigint because the field is 64 bits and may claim more than any disk. */
  volumeLength: bigint;
  fatOffset: number;
  fatLength: number;
  clusterHeapOffset: number;
  clusterCount: number;
  rootCluster: number;
  serial: number;
  /** FileSystemRevision as major and minor (3.1.12). */
  revision: { major: number; minor: number };
  volumeFlags: number;
  bytesPerSectorShift: number;
  sectorsPerClusterShift: number;
  numberOfFats: number;
  percentInUse: number;
}

/**
 * The fields of a boot sector whose name reads "EXFAT   " and whose shifts are in range (3.1.14: a sector of
 * 512 to 4096 bytes; 3.1.15: a cluster of at most 32 MiB); null otherwise. Nothing else is checked here:
 * the detector reports what blkid reports, and the reader checks the geometry with `geometryProblem`.
 */
export function parseBootSector(b: Buffer): BootSector | null {
  if (b.length < 512 || b.toString('latin1', 3, 11) !== FILE_SYSTEM_NAME) return null;
  const bytesPerSectorShift = b[108];
  const sectorsPerClusterShift = b[109];
  if (bytesPerSectorShift < 9 || bytesPerSectorShift > 12 || sectorsPerClusterShift > 25 - bytesPerSectorShift) return null;
  return {
    volumeLength: b.readBigUInt64LE(72),
    fatOffset: b.readUInt32LE(80),
    fatLength: b.readUInt32LE(84),
    clusterHeapOffset: b.readUInt32LE(88),
    clusterCount: b.readUInt32LE(92),
    rootCluster: b.readUInt32LE(96),
    serial: b.readUInt32LE(100),
    revision: { major: b[105], minor: b[104] },
    volumeFlags: b.readUInt16LE(106),
    bytesPerSectorShift,
    sectorsPerClusterShift,
    numberOfFats: b[110],
    percentInUse: b[112],
  };
}

export function sectorSize(bs: BootSector): number {
  return 2 ** bs.bytesPerSectorShift;
}

export function clusterSize(bs: BootSector): number {
  return 2 ** (bs.bytesPerSectorShift + bs.sectorsPerClusterShift);
}

/**
 * What is wrong with the layout the boot sector describes, or null when it is consistent: the FATs lie
 * between the boot regions and the cluster heap, are long enough for every cluster, and the heap and the
 * root directory's first cluster lie inside the volume (3.1.5-3.1.10, 3.1.16).
 */
export function geometryProblem(bs: BootSector): string | null {
  const spc = 2 ** bs.sectorsPerClusterShift;
  if (bs.numberOfFats !== 1 && bs.numberOfFats !== 2) return `NumberOfFats ${bs.numberOfFats} is neither 1 nor 2`;
  // The main and backup boot regions take the first 24 sectors (3.1.6).
  if (bs.fatOffset < 2 * BOOT_REGION_SECTORS) return `FatOffset ${bs.fatOffset} lies inside the boot regions`;
  if (bs.clusterCount < 1 || bs.clusterCount > MAX_CLUSTER_COUNT) return `ClusterCount ${bs.clusterCount} is out of range`;
  // Each FAT holds an entry for every cluster plus the two reserved entries (3.1.7).
  const fatBytesNeeded = (bs.clusterCount + 2) * 4;
  if (bs.fatLength * sectorSize(bs) < fatBytesNeeded) return `FatLength ${bs.fatLength} sectors cannot hold ${bs.clusterCount + 2} FAT entries`;
  const fatsEnd = bs.fatOffset + bs.fatLength * bs.numberOfFats;
  if (bs.clusterHeapOffset < fatsEnd) return `ClusterHeapOffset ${bs.clusterHeapOffset} overlaps the FAT (which ends at sector ${fatsEnd})`;
  const heapEnd = BigInt(bs.clusterHeapOffset) + BigInt(bs.clusterCount) * BigInt(spc);
  if (heapEnd > bs.volumeLength) return `the cluster heap (ends at sector ${heapEnd}) runs past VolumeLength ${bs.volumeLength}`;
  if (bs.rootCluster < 2 || bs.rootCluster > bs.clusterCount + 1) return `FirstClusterOfRootDirectory ${bs.rootCluster} is not in the cluster heap`;
  return null;
}

/**
 * The boot checksum (3.4.1): a rotate-right-and-add over the first 11 sectors of the region, skipping
 * VolumeFlags (bytes 106-107) and PercentInUse (byte 112), which change without the checksum being
 * rewritten. `region` holds at least 11 sectors.
 */
export function bootChecksum(region: Buffer, sector: number): number {
  let sum = 0;
  const end = 11 * sector;
  for (let i = 0; i < end; i++) {
    if (i === 106 || i === 107 || i === 112) continue;
    sum = (((sum & 1) << 31) | (sum >>> 1)) + region[i];
    sum >>>= 0;
  }
  return sum;
}

/** Whether sector 11 of the region repeats the checksum of sectors 0-10 in every 4-byte word (3.4). */
export function bootChecksumMatches(region: Buffer, sector: number): boolean {
  if (region.length < BOOT_REGION_SECTORS * sector) return false;
  const sum = bootChecksum(region, sector);
  for (let o = 11 * sector; o < 12 * sector; o += 4) if (region.readUInt32LE(o) !== sum) return false;
  return true;
}
