import { VdiskError, corrupt, unsupported } from '../../errors.js';
import {
  COMPRESSION_DEFLATE, FLAG_COMPRESSED, GD_AT_END, MAX_GRAIN_SECTORS, MAX_GTES_PER_GT, SECTOR, SPARSE_MAGIC,
} from './constants.js';

/** The hosted sparse extent header (SparseExtentHeader, 512 bytes, little-endian), sizes in sectors. */
export interface SparseHeader {
  version: number;
  flags: number;
  capacity: bigint;
  grainSize: bigint;
  descriptorOffset: bigint;
  descriptorSize: bigint;
  numGTEsPerGT: number;
  rgdOffset: bigint;
  gdOffset: bigint;
  overHead: bigint;
  uncleanShutdown: number;
  compressAlgorithm: number;
}

export function parseSparseHeader(b: Buffer): SparseHeader {
  return {
    version: b.readUInt32LE(4),
    flags: b.readUInt32LE(8),
    capacity: b.readBigUInt64LE(12),
    grainSize: b.readBigUInt64LE(20),
    descriptorOffset: b.readBigUInt64LE(28),
    descriptorSize: b.readBigUInt64LE(36),
    numGTEsPerGT: b.readUInt32LE(44),
    rgdOffset: b.readBigUInt64LE(48),
    gdOffset: b.readBigUInt64LE(56),
    overHead: b.readBigUInt64LE(64),
    uncleanShutdown: b[72],
    compressAlgorithm: b.readUInt16LE(77),
  };
}

export function serializeSparseHeader(h: SparseHeader): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeUInt32LE(SPARSE_MAGIC, 0);
  b.writeUInt32LE(h.version, 4);
  b.writeUInt32LE(h.flags >>> 0, 8);
  b.writeBigUInt64LE(h.capacity, 12);
  b.writeBigUInt64LE(h.grainSize, 20);
  b.writeBigUInt64LE(h.descriptorOffset, 28);
  b.writeBigUInt64LE(h.descriptorSize, 36);
  b.writeUInt32LE(h.numGTEsPerGT, 44);
  b.writeBigUInt64LE(h.rgdOffset, 48);
  b.writeBigUInt64LE(h.gdOffset, 56);
  b.writeBigUInt64LE(h.overHead, 64);
  b[72] = h.uncleanShutdown;
  // The line-end characters let a reader tell a file damaged by a text-mode transfer.
  b.write('\n \r\n', 73, 'latin1');
  b.writeUInt16LE(h.compressAlgorithm, 77);
  return b;
}

/** The header's fields as numbers, checked: what the grain directory and tables are sized by. */
export interface SparseGeometry {
  capacitySectors: number;
  grainSectors: number;
  gtes: number;
  gdEntries: number;
  compressed: boolean;
}

export function checkSparseHeader(file: string, h: SparseHeader, fileSize: number): SparseGeometry {
  if (h.version < 1 || h.version > 3) throw unsupported(file, `sparse extent header version ${h.version} (vdisk reads 1 to 3)`);
  const grain = h.grainSize;
  if (grain < 1n || grain > BigInt(MAX_GRAIN_SECTORS) || (grain & (grain - 1n)) !== 0n) {
    throw corrupt(file, `sparse extent header: grain size of ${grain} sectors (a power of two up to ${MAX_GRAIN_SECTORS} expected)`);
  }
  if (h.numGTEsPerGT < 1 || h.numGTEsPerGT > MAX_GTES_PER_GT) {
    throw corrupt(file, `sparse extent header: ${h.numGTEsPerGT} entries per grain table (1 to ${MAX_GTES_PER_GT} expected)`);
  }
  if (h.capacity * BigInt(SECTOR) > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw corrupt(file, `sparse extent header: capacity of ${h.capacity} sectors is beyond any disk`);
  }
  const compressed = (h.flags & FLAG_COMPRESSED) !== 0;
  if (compressed && h.compressAlgorithm !== COMPRESSION_DEFLATE) {
    throw unsupported(file, `sparse extent header: compression algorithm ${h.compressAlgorithm} (vdisk reads deflate, 1)`);
  }
  const capacitySectors = Number(h.capacity);
  const grainSectors = Number(grain);
  const gtCoverage = grainSectors * h.numGTEsPerGT;
  const gdEntries = Math.ceil(capacitySectors / gtCoverage);
  if (h.gdOffset !== GD_AT_END) {
    const gdEnd = h.gdOffset * BigInt(SECTOR) + BigInt(gdEntries) * 4n;
    if (h.gdOffset === 0n && gdEntries > 0) throw corrupt(file, 'sparse extent header: no grain directory (gdOffset 0)');
    if (gdEnd > BigInt(fileSize)) {
      throw new VdiskError('TRUNCATED', `${file}: grain directory of ${gdEntries} entries at sector ${h.gdOffset} ends past the end of the file (${fileSize} bytes)`);
    }
  }
  return { capacitySectors, grainSectors, gtes: h.numGTEsPerGT, gdEntries, compressed };
}
