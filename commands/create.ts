import { VdiskError } from '../src/errors.js';
import { createRaw, createVhdx, type VhdxCreateOptions } from '../src/formats/vhdx/create.js';
import { parseSize } from '../src/util/size.js';
import { formatOption } from './common.js';
import { version } from './version.js';

export interface CreateOptions {
  format?: string;
  options?: string[];
  quiet?: boolean;
}

const VHDX_OPTIONS: Record<string, string> = {
  subformat: 'dynamic or fixed (default dynamic)',
  block_size: 'payload block size, a power of two from 1M to 256M (default by size, as QEMU chooses)',
  log_size: 'log size, a multiple of 1M (default 1M)',
  logical_sector_size: '512 or 4096 (default 512)',
  physical_sector_size: '512 or 4096 (default 512, or 4096 with 4096-byte logical sectors)',
  block_state_zero: 'on: unallocated blocks are marked ZERO; off: NOT_PRESENT (default off)',
};

function parseOnOff(key: string, v: string): boolean {
  if (v === 'on' || v === 'true' || v === 'yes') return true;
  if (v === 'off' || v === 'false' || v === 'no') return false;
  throw new VdiskError('USAGE', `-o ${key}: expected on or off, not '${v}'`);
}

/** Turns `-o key=value,key=value` (repeatable) into create options, refusing unknown keys. */
export function parseVhdxOptions(list: string[]): Omit<VhdxCreateOptions, 'size'> {
  const o: Omit<VhdxCreateOptions, 'size'> = {};
  for (const pair of list.flatMap((s) => s.split(',')).filter((s) => s !== '')) {
    const eq = pair.indexOf('=');
    const key = eq < 0 ? pair : pair.slice(0, eq);
    const value = eq < 0 ? '' : pair.slice(eq + 1);
    if (!(key in VHDX_OPTIONS)) {
      throw new VdiskError('USAGE', `-o ${key}: unknown option for vhdx (${Object.keys(VHDX_OPTIONS).join(', ')})`);
    }
    if (eq < 0 || value === '') throw new VdiskError('USAGE', `-o ${key}: needs a value (${key}=...)`);
    switch (key) {
      case 'subformat':
        if (value !== 'dynamic' && value !== 'fixed') {
          throw new VdiskError('USAGE', `-o subformat: expected dynamic or fixed, not '${value}'`);
        }
        o.subformat = value;
        break;
      case 'block_size':
        o.blockSize = parseSize(value, '-o block_size');
        break;
      case 'log_size':
        o.logSize = parseSize(value, '-o log_size');
        break;
      case 'logical_sector_size':
        o.logicalSectorSize = parseSize(value, '-o logical_sector_size');
        break;
      case 'physical_sector_size':
        o.physicalSectorSize = parseSize(value, '-o physical_sector_size');
        break;
      case 'block_state_zero':
        o.blockStateZero = parseOnOff(key, value);
        break;
    }
  }
  return o;
}

/** `-o help` (create and convert): lists the format's options and tells the caller to stop there. */
export function printedOptionsHelp(format: 'raw' | 'vhdx', list: string[]): boolean {
  if (!list.some((s) => s.split(',').includes('help'))) return false;
  if (format === 'raw') process.stdout.write('raw images take no options\n');
  else for (const [k, v] of Object.entries(VHDX_OPTIONS)) process.stdout.write(`  ${k.padEnd(22)} ${v}\n`);
  return true;
}

/**
 * The options of a new image (create, convert): VHDX's parsed from `-o`, stamped with our creator;
 * null for raw, which refuses any `-o`.
 */
export function newImageOptions(format: 'raw' | 'vhdx', list: string[]): Omit<VhdxCreateOptions, 'size'> | null {
  if (format === 'vhdx') return { ...parseVhdxOptions(list), creator: `vdisk v${version()}` };
  if (list.length) throw new VdiskError('USAGE', `-o ${list.join(',')}: raw images take no options`);
  return null;
}

export async function runCreate(path: string | undefined, sizeText: string | undefined, opts: CreateOptions): Promise<number> {
  // As with qemu-img's habit of naming raw images .img: the name chooses raw unless -f says otherwise.
  const format = formatOption(opts.format) ?? (path && /\.(img|raw)$/i.test(path) ? 'raw' : 'vhdx');
  const list = opts.options ?? [];
  if (printedOptionsHelp(format, list)) return 0;
  if (!path) throw new VdiskError('USAGE', 'missing required argument IMAGE');
  if (!sizeText) throw new VdiskError('USAGE', 'missing required argument SIZE');
  const size = parseSize(sizeText, 'SIZE');
  const vhdx = newImageOptions(format, list);
  if (vhdx) await createVhdx(path, { ...vhdx, size });
  else await createRaw(path, size);
  if (!opts.quiet) process.stdout.write(`Formatting '${path}', fmt=${format} size=${size}\n`);
  return 0;
}
