import { createRequire } from 'node:module';

/**
 * CRC-32C (VHDX) and CRC-32 (GPT). The native @node-rs/crc32 is used for large buffers when it loads;
 * a table-driven JavaScript version does the rest, and everything where the addon cannot load (a
 * single-file executable carries no native addons).
 * Both chain: pass the previous result to continue a checksum over more bytes.
 */
type Crc = (data: Uint8Array, initial?: number) => number;

/**
 * Eight tables for slicing-by-8: t[0] is the classic byte table, t[k][i] the CRC of byte i followed by
 * k zero bytes, so eight input bytes fold into the register with eight lookups and no per-byte shift
 * chain (about 3-4x the byte-at-a-time loop on the 256-byte inodes and 4 KiB blocks checked per entry).
 */
function tables(poly: number): Uint32Array[] {
  const t = [new Uint32Array(256)];
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    t[0][i] = c >>> 0;
  }
  for (let k = 1; k < 8; k++) {
    t.push(new Uint32Array(256));
    for (let i = 0; i < 256; i++) t[k][i] = (t[0][t[k - 1][i] & 0xff] ^ (t[k - 1][i] >>> 8)) >>> 0;
  }
  return t;
}

/** The table-driven CRC over `data[start..end)`, and over the four little-endian bytes of a 32-bit word. */
interface JsCrc {
  range(data: Uint8Array, initial: number, start: number, end: number): number;
  word(n: number, initial: number): number;
}

function jsCrc(poly: number): JsCrc {
  const [t0, t1, t2, t3, t4, t5, t6, t7] = tables(poly);
  const range = (data: Uint8Array, initial: number, start: number, end: number): number => {
    let c = ~initial;
    let i = start;
    for (const stop = end - 7; i < stop; i += 8) {
      const a = c ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
      c =
        t7[a & 0xff] ^ t6[(a >>> 8) & 0xff] ^ t5[(a >>> 16) & 0xff] ^ t4[a >>> 24] ^
        t3[data[i + 4]] ^ t2[data[i + 5]] ^ t1[data[i + 6]] ^ t0[data[i + 7]];
    }
    for (; i < end; i++) c = t0[(c ^ data[i]) & 0xff] ^ (c >>> 8);
    return ~c >>> 0;
  };
  const word = (n: number, initial: number): number => {
    const a = ~initial ^ n;
    return ~(t3[a & 0xff] ^ t2[(a >>> 8) & 0xff] ^ t1[(a >>> 16) & 0xff] ^ t0[a >>> 24]) >>> 0;
  };
  return { range, word };
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

/**
 * Small buffers (headers, region tables, GPT entries, log sectors) take the JavaScript tables: loading
 * the native addon costs every start 5 ms, more than checksumming all of `info`'s structures by
 * table. It is loaded on the first large buffer (a long log entry, a replay), where it pays.
 */
const NATIVE_FROM = 256 * 1024;
const PURE_JS = Boolean(process.env.VDISK_PURE_JS_CRC);
let native: { crc32c: Crc; crc32: Crc } | null | undefined = PURE_JS ? null : undefined;
const jsCrc32c = jsCrc(0x82f63b78);
const jsCrc32 = jsCrc(0xedb88320);

function nativeFor(data: Uint8Array): { crc32c: Crc; crc32: Crc } | null {
  if (data.length < NATIVE_FROM) return null;
  if (native === undefined) native = loadNative();
  return native;
}

export const crc32c: Crc = (d, i = 0) => {
  const n = nativeFor(d);
  return n ? n.crc32c(d, i) >>> 0 : jsCrc32c.range(d, i, 0, d.length);
};
export const crc32: Crc = (d, i = 0) => {
  const n = nativeFor(d);
  return n ? n.crc32(d, i) >>> 0 : jsCrc32.range(d, i, 0, d.length);
};

/**
 * crc32c of `data[start..end)`, chained from `initial`: the same as `crc32c(data.subarray(start, end),
 * initial)` without the view (a checksum summed around a field, per inode, made several views each).
 */
export function crc32cRange(data: Uint8Array, start: number, end: number, initial = 0): number {
  if (end - start >= NATIVE_FROM) return crc32c(data.subarray(start, end), initial);
  return jsCrc32c.range(data, initial, start, end);
}

/** crc32c of a 32-bit number's four little-endian bytes, chained from `initial` (ext4 seeds inode numbers in). */
export function crc32cU32(n: number, initial = 0): number {
  return jsCrc32c.word(n >>> 0, initial);
}

/** 'javascript' when the native addon is never used (VDISK_PURE_JS_CRC, or it does not load). */
export function crcImplementation(): 'javascript' | 'native for large buffers' {
  if (native === undefined) native = PURE_JS ? null : loadNative();
  return native ? 'native for large buffers' : 'javascript';
}
