import { join } from 'node:path';
import { sh } from './peers.js';

export interface QemuImageSpec {
  name: string;
  size: string;
  options?: string[];
  /** qemu-io commands run on the new image, e.g. `write -P 0xab 0 64k`. */
  io?: string[];
}

/** A VHDX written by QEMU itself: the independent writer our reader is judged against. */
export function makeQemuVhdx(dir: string, spec: QemuImageSpec): string {
  const path = join(dir, `${spec.name}.vhdx`);
  const opts = spec.options?.length ? ['-o', spec.options.join(',')] : [];
  sh('qemu-img', ['create', '-q', '-f', 'vhdx', ...opts, path, spec.size]);
  if (spec.io?.length) sh('qemu-io', ['-f', 'vhdx', ...spec.io.flatMap((c) => ['-c', c]), path]);
  return path;
}

export function qemuConvertToRaw(image: string, out: string, format = 'vhdx'): void {
  sh('qemu-img', ['convert', '-f', format, '-O', 'raw', image, out]);
}

export function qemuInfo(image: string): Record<string, unknown> {
  return JSON.parse(sh('qemu-img', ['info', '--output', 'json', image])) as Record<string, unknown>;
}

/** vhdiinfo's fields as a map (`Media size` -> `100 MiB (104857600 bytes)`). */
export function vhdiInfo(image: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of sh('vhdiinfo', [image]).split('\n')) {
    const m = /^\s*([^:]+?)\s*:\s*(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].trim();
  }
  return out;
}

/** Scattered qemu-io writes for an image of `size` bytes with blocks of `block` bytes. */
export function scatteredWrites(size: number, block: number): string[] {
  const cmds = [
    'write -P 0x11 0 64k',
    `write -P 0x22 ${block - 4096} 8k`, // crosses the first block boundary
    `write -P 0x33 ${Math.floor(size / 2 / 512) * 512 + 512} 3k`,
    `write -P 0x44 ${size - 512} 512`, // the very last sector
  ];
  if (size > 3 * block) cmds.push(`write -P 0x55 ${2 * block + 512} ${block}`); // spans two blocks, unaligned
  return cmds;
}
