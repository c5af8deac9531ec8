import { VdiskError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, b: 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5, e: 1024 ** 6 };

/**
 * Parses sizes as qemu-img does: `4096`, `0x1000`, `64k`, `1.5G`, `10g` (binary suffixes in either case,
 * `b` for bytes, an optional `iB`/`B` after a unit) into a byte count. Fractions are allowed only where
 * they land on a whole byte; hexadecimal takes no fraction.
 */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(0[xX][0-9a-fA-F]+|\d+(?:\.\d+)?)\s*(?:([kKmMgGtTpPeE])(?:i?[bB])?|([bB]))?\s*$/.exec(text);
  if (!m) throw new VdiskError('USAGE', `${what}: '${text}' is not a size (a byte count, 0x hex, or a number with k, M, G, T, P or E)`);
  const [, num, unit] = m;
  const value = (/^0x/i.test(num) ? parseInt(num, 16) : Number(num)) * UNITS[(unit ?? '').toLowerCase()];
  if (!Number.isSafeInteger(value)) {
    throw new VdiskError('USAGE', `${what}: '${text}' is not a whole number of bytes`);
  }
  return value;
}

/** `1.5 GiB` style, as qemu-img prints sizes. */
export function formatSize(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
  let v = bytes;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${bytes} B`;
  const s = v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
  return `${s.includes('.') ? s.replace(/\.?0+$/, '') : s} ${units[i]}`;
}
