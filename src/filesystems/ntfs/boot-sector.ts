/**
 * The NTFS boot sector ($Boot, sector 0 of the volume): the BIOS parameter block and the NTFS extension
 * that locate $MFT and size its records. Layout: the Linux-NTFS project's "NTFS Documentation"
 * (Russon & Fledel), section "$Boot", and MS-FSCC's NTFS notes.
 */

export interface BootSector {
  bytesPerSector: number;
  clusterSize: number;
  /** Sectors in the volume as the boot sector counts them (the backup boot sector lies just past them). */
  totalSectors: number;
  totalClusters: number;
  mftLcn: number;
  mftMirrLcn: number;
  /** Bytes per MFT record (clusters_per_mft_record, or 2^-n when that byte is negative). */
  recordSize: number;
  /** Bytes per index block ($INDEX_ALLOCATION), encoded like the record size. */
  indexBlockSize: number;
  /** The 64-bit volume serial number, as blkid prints it: 16 upper-case hex digits. */
  serial: string;
}

/**
 * The size a "clusters per record" byte gives: a positive value counts clusters, a negative one n means
 * 2^-n bytes (used when a record is smaller than a cluster).
 */
function recordBytes(raw: number, cluster: number): number {
  return raw < 0 ? 2 ** -raw : raw * cluster;
}

/** The boot sector's fields, or why these 512 bytes are not an NTFS boot sector. */
export function parseBootSector(b: Buffer): BootSector | string {
  if (b.length < 512) return 'boot sector truncated';
  if (b.toString('latin1', 3, 11) !== 'NTFS    ') return 'no NTFS signature';
  const bytesPerSector = b.readUInt16LE(11);
  if (![256, 512, 1024, 2048, 4096].includes(bytesPerSector)) return `bytes per sector ${bytesPerSector} is not a power of two from 256 to 4096`;
  // Values above 0x80 are negative powers of two (clusters beyond 128 sectors, as Windows 10 writes them).
  const spcRaw = b[13];
  const spc = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
  if (spc === 0 || (spc & (spc - 1)) !== 0) return `sectors per cluster byte 0x${spcRaw.toString(16)} is not a power of two`;
  const clusterSize = bytesPerSector * spc;
  if (clusterSize > 2 * 1024 * 1024) return `cluster size ${clusterSize} exceeds 2 MiB`;
  const recordSize = recordBytes(b.readInt8(64), clusterSize);
  if (recordSize < 256 || recordSize > 65536 || (recordSize & (recordSize - 1)) !== 0) return `MFT record size ${recordSize} is not a power of two from 256 to 65536`;
  const indexBlockSize = recordBytes(b.readInt8(68), clusterSize);
  const totalSectors = Number(b.readBigUInt64LE(40));
  const mftLcn = Number(b.readBigUInt64LE(48));
  const mftMirrLcn = Number(b.readBigUInt64LE(56));
  return {
    bytesPerSector,
    clusterSize,
    totalSectors,
    totalClusters: Math.floor(totalSectors / spc),
    mftLcn,
    mftMirrLcn,
    recordSize,
    indexBlockSize,
    serial: b.readBigUInt64LE(72).toString(16).toUpperCase().padStart(16, '0'),
  };
}
