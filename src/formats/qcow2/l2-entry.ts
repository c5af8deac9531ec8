import { entryOffset } from './constants.js';

/**
 * One L2 entry (qcow2.txt "Cluster mapping"): 8 bytes, or 16 with extended L2 (the second half
 * holding 32 subclusters' zero bits, high word, and allocation bits, low word).
 */
export type L2Entry =
  | { kind: 'normal'; host: number; copied: boolean; zeroFlag: boolean; reserved: boolean; alloc: number; zero: number }
  | { kind: 'compressed'; host: number; length: number };

export const L2_COMPRESSED = 0x40000000;
export const L2_COPIED = 0x80000000;

export function decodeL2(b: Buffer, index: number, extended: boolean, clusterBits: number): L2Entry {
  const at = index * (extended ? 16 : 8);
  const hi = b.readUInt32BE(at);
  if (hi & L2_COMPRESSED) {
    // Bits 0..x-1 the host offset, x..61 the count of further 512-byte sectors; x = 62 - (cluster_bits - 8).
    const v = (BigInt(hi & 0x3fffffff) << 32n) | BigInt(b.readUInt32BE(at + 4));
    const x = BigInt(62 - (clusterBits - 8));
    const host = Number(v & ((1n << x) - 1n));
    const sectors = Number(v >> x);
    return { kind: 'compressed', host, length: (sectors + 1) * 512 - (host % 512) };
  }
  const lo = b.readUInt32BE(at + 4);
  return {
    kind: 'normal',
    host: entryOffset(b, at),
    copied: (hi & L2_COPIED) !== 0,
    zeroFlag: !extended && (lo & 1) !== 0,
    // Bits 1-8 and 56-61 are reserved; bit 0 too with extended L2.
    reserved: (lo & (extended ? 0x1ff : 0x1fe)) !== 0 || (hi & 0x3f000000) !== 0,
    alloc: extended ? b.readUInt32BE(at + 12) : 0,
    zero: extended ? b.readUInt32BE(at + 8) : 0,
  };
}

export function encodeNormal(b: Buffer, index: number, extended: boolean, host: number, copied: boolean, alloc = 0xffffffff, zero = 0): void {
  const at = index * (extended ? 16 : 8);
  b.writeUInt32BE(((Math.floor(host / 0x100000000) | (copied ? L2_COPIED : 0)) >>> 0), at);
  b.writeUInt32BE(host % 0x100000000, at + 4);
  if (extended) {
    b.writeUInt32BE(zero >>> 0, at + 8);
    b.writeUInt32BE(alloc >>> 0, at + 12);
  }
}

/** A compressed cluster's descriptor: `length` bytes of compressed data at byte `host`. */
export function encodeCompressed(b: Buffer, index: number, extended: boolean, clusterBits: number, host: number, length: number): void {
  const at = index * (extended ? 16 : 8);
  const sectors = Math.floor((host + length - 1) / 512) - Math.floor(host / 512);
  const x = BigInt(62 - (clusterBits - 8));
  const v = (1n << 62n) | (BigInt(sectors) << x) | BigInt(host);
  b.writeUInt32BE(Number(v >> 32n), at);
  b.writeUInt32BE(Number(v & 0xffffffffn), at + 4);
  if (extended) b.fill(0, at + 8, at + 16);
}
