import { createRequire } from 'node:module';

/**
 * CRC-32C (VHDX) and CRC-32 (GPT). The native @node-rs/crc32 is used when it loads; a table-driven
 * JavaScript version stands in where it cannot (a single-file executable carries no native addons).
 * Both chain: pass the previous result to continue a checksum over more bytes.
 */
type Crc = (data: Uint8Array, initial?: number) => number;

function table(poly: number): Uint32Array {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
}

function jsCrc(poly: number): Crc {
  const t = table(poly);
  return (data, initial = 0) => {
    let c = ~initial >>> 0;
    for (let i = 0; i < data.length; i++) c = t[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    return ~c >>> 0;
  };
}

function loadNative(): { crc32c: Crc; crc32: Crc } | null {
  try {
    const req = createRequire(import.meta.url);
    const m = req('@node-rs/crc32') as { crc32c: Crc; crc32: Crc };
    return typeof m.crc32c === 'function' ? m : null;
  } catch {
    return null;
  }
}

const native = process.env.VDISK_PURE_JS_CRC ? null : loadNative();

export const crc32c: Crc = native ? (d, i) => native.crc32c(d, i) >>> 0 : jsCrc(0x82f63b78);
export const crc32: Crc = native ? (d, i) => native.crc32(d, i) >>> 0 : jsCrc(0xedb88320);
export const crcImplementation = native ? 'native' : 'javascript';
