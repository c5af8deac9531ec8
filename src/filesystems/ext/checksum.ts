import { crc32c, crc32cRange, crc32cU32 } from '../../util/crc.js';

/**
 * ext4's metadata checksums are crc32c without the final inversion, chained from a seed (the kernel's
 * ext4_chksum; Documentation/filesystems/ext4/checksums.rst). Our crc32c inverts on entry and exit, so
 * inverting around it gives the raw register the format stores.
 */
export function extCrc(seed: number, data: Uint8Array): number {
  return ~crc32c(data, ~seed >>> 0) >>> 0;
}

/** extCrc over `data[start..end)`, without a view per piece (an inode's checksum skips two fields). */
export function extCrcRange(seed: number, data: Uint8Array, start: number, end: number): number {
  return ~crc32cRange(data, start, end, ~seed >>> 0) >>> 0;
}

/** extCrc over a 32-bit number's four little-endian bytes, without a buffer (twice per inode). */
export function extCrcU32(seed: number, n: number): number {
  return ~crc32cU32(n, ~seed >>> 0) >>> 0;
}

export function le32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n >>> 0, 0);
  return b;
}

export function le64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeUInt32LE(n % 2 ** 32, 0);
  b.writeUInt32LE(Math.floor(n / 2 ** 32), 4);
  return b;
}

const CRC16_TABLE = (() => {
  const t = new Uint16Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0xa001 : c >>> 1;
    t[i] = c;
  }
  return t;
})();

/** CRC-16 (poly 0x8005 reflected, the kernel's crc16), as gdt_csum group descriptors use it. */
export function crc16(seed: number, data: Uint8Array): number {
  let c = seed & 0xffff;
  for (let i = 0; i < data.length; i++) c = (CRC16_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8)) & 0xffff;
  return c;
}
