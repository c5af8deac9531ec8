import { MiB, SECTORS_PER_CHUNK } from './constants.js';

export const PAYLOAD_NOT_PRESENT = 0;
export const PAYLOAD_UNDEFINED = 1;
export const PAYLOAD_ZERO = 2;
export const PAYLOAD_UNMAPPED = 3;
export const PAYLOAD_UNMAPPED_V095 = 5;
export const PAYLOAD_FULLY_PRESENT = 6;
export const PAYLOAD_PARTIALLY_PRESENT = 7;
export const SB_NOT_PRESENT = 0;
export const SB_PRESENT = 6;

export const STATE_NAMES: Record<number, string> = {
  0: 'NOT_PRESENT',
  1: 'UNDEFINED',
  2: 'ZERO',
  3: 'UNMAPPED',
  4: 'invalid state 4',
  5: 'UNMAPPED (draft 0.95)',
  6: 'FULLY_PRESENT',
  7: 'PARTIALLY_PRESENT',
};

/** One decoded BAT entry. The file offset is in bytes; entries whose MiB count exceeds 2^33 saturate. */
export interface BatEntry {
  state: number;
  reserved: number;
  fileOffset: number;
}

export function decodeBatEntry(buf: Uint8Array, byteOffset: number): BatEntry {
  const dv = new DataView(buf.buffer, buf.byteOffset + byteOffset, 8);
  const lo = dv.getUint32(0, true);
  const hi = dv.getUint32(4, true);
  const mib = (lo >>> 20) + hi * 4096;
  return { state: lo & 7, reserved: (lo >>> 3) & 0x1ffff, fileOffset: mib * MiB };
}

export function encodeBatEntry(buf: Uint8Array, byteOffset: number, state: number, fileOffset: number): void {
  if (fileOffset % MiB !== 0) throw new Error(`BAT file offset ${fileOffset} is not MiB aligned`);
  const mib = fileOffset / MiB;
  const dv = new DataView(buf.buffer, buf.byteOffset + byteOffset, 8);
  dv.setUint32(0, ((mib % 4096) << 20 | (state & 7)) >>> 0, true);
  dv.setUint32(4, Math.floor(mib / 4096), true);
}

/** The numbers that follow from block size, sector size and virtual size (the BAT geometry). */
export interface BatGeometry {
  blockSize: number;
  logicalSectorSize: number;
  virtualSize: number;
  hasParent: boolean;
  chunkRatio: number;
  dataBlocks: number;
  bitmapBlocks: number;
  totalEntries: number;
}

export function batGeometry(
  blockSize: number,
  logicalSectorSize: number,
  virtualSize: number,
  hasParent: boolean,
): BatGeometry {
  const chunkRatio = (SECTORS_PER_CHUNK * logicalSectorSize) / blockSize;
  const dataBlocks = Math.ceil(virtualSize / blockSize);
  const bitmapBlocks = Math.ceil(dataBlocks / chunkRatio);
  const totalEntries = hasParent
    ? bitmapBlocks * (chunkRatio + 1)
    : dataBlocks === 0
      ? 0
      : dataBlocks + Math.floor((dataBlocks - 1) / chunkRatio);
  return { blockSize, logicalSectorSize, virtualSize, hasParent, chunkRatio, dataBlocks, bitmapBlocks, totalEntries };
}

/** BAT index of payload block `block`: payload entries are interleaved with one sector-bitmap entry per chunk. */
export function payloadEntryIndex(g: BatGeometry, block: number): number {
  return block + Math.floor(block / g.chunkRatio);
}

export function bitmapEntryIndex(g: BatGeometry, chunk: number): number {
  return chunk * (g.chunkRatio + 1) + g.chunkRatio;
}

/** True when BAT index `i` holds a sector-bitmap entry rather than a payload entry. */
export function isBitmapEntry(g: BatGeometry, i: number): boolean {
  return i % (g.chunkRatio + 1) === g.chunkRatio;
}

/** The payload block that BAT index `i` maps (meaningless for sector-bitmap entries). */
export function blockOfEntry(g: BatGeometry, i: number): number {
  return i - Math.floor(i / (g.chunkRatio + 1));
}
