import { VdiskError } from '../errors.js';

const UNITS: Record<string, number> = { '': 1, k: 1024, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

/**
 * Parses `4096`, `64k`, `1.5G` (binary suffixes, optional trailing B) into a byte count. Fractions are
 * allowed only where they land on a whole byte.
 */
export function parseSize(text: string, what: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kKMGT]?)(?:i?B)?\s*$/.exec(text);
  if (!m) throw new VdiskError('USAGE', `${what}: '${text}' is not a size (a byte count, or a number with k, M, G or T)`);
  const [, num, unit] = m;
  const value = Number(num) * UNITS[unit];
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
