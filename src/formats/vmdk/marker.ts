import { SECTOR } from './constants.js';

/** The 12 bytes in front of a compressed grain of a stream: its first virtual sector, and the compressed size. */
export const GRAIN_MARKER_SIZE = 12;

export interface GrainMarker {
  lba: bigint;
  size: number;
}

export function parseGrainMarker(b: Buffer): GrainMarker {
  return { lba: b.readBigUInt64LE(0), size: b.readUInt32LE(8) };
}

/** A compressed grain as it is stored: marker, deflate (zlib) data, zeros to the next sector. */
export function serializeGrain(lba: number, compressed: Uint8Array): Buffer {
  const total = Math.ceil((GRAIN_MARKER_SIZE + compressed.length) / SECTOR) * SECTOR;
  const b = Buffer.alloc(total);
  b.writeBigUInt64LE(BigInt(lba), 0);
  b.writeUInt32LE(compressed.length, 8);
  b.set(compressed, GRAIN_MARKER_SIZE);
  return b;
}

/**
 * A metadata marker: one sector saying what follows (grain table, directory, footer) and how many
 * sectors it takes; type EOS with no sectors ends the stream.
 */
export function serializeMetadataMarker(type: number, sectors: number): Buffer {
  const b = Buffer.alloc(SECTOR);
  b.writeBigUInt64LE(BigInt(sectors), 0);
  b.writeUInt32LE(0, 8);
  b.writeUInt32LE(type, 12);
  return b;
}

export function parseMetadataMarker(b: Buffer): { sectors: bigint; size: number; type: number } {
  return { sectors: b.readBigUInt64LE(0), size: b.readUInt32LE(8), type: b.readUInt32LE(12) };
}
