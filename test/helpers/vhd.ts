import { closeSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { sh } from './peers.js';

export const MiB = 1024 * 1024;

/** A sparse raw disk of `size` bytes with random data in `extents` ([offset, length]) and holes between. */
export function variedRaw(path: string, size: number, extents: [number, number][]): Buffer {
  const model = Buffer.alloc(size);
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  for (const [at, n] of extents) {
    const data = randomBytes(n);
    data.copy(model, at);
    writeSync(fd, data, 0, n, at);
  }
  closeSync(fd);
  return model;
}

/** The usual test disk: data crossing block edges, a hole of whole blocks, the last sector. */
export function standardRaw(dir: string, name = 'src.raw'): { path: string; model: Buffer } {
  const path = join(dir, name);
  const size = 13 * MiB + 3 * 512;
  const model = variedRaw(path, size, [[0, 70_000], [2 * MiB - 1000, 5000], [5 * MiB + 512, MiB + 777], [size - 1536, 1536]]);
  return { path, model };
}

/** What qemu-img reads from a VHD, as raw bytes. */
export function qemuRead(dir: string, image: string): Buffer {
  const out = join(dir, `qemu-read-${Math.random().toString(36).slice(2)}.raw`);
  sh('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', image, out]);
  return readFileSync(out);
}

/** vhdiinfo's fields as a map. */
export { vhdiInfo as vhdiFields } from './qemu.js';

/** The byte count vhdiinfo's "Media size" shows. */
export function vhdiSize(fields: Record<string, string>): number {
  return Number(/\((\d+) bytes\)/.exec(fields['Media size'] ?? '')?.[1] ?? -1);
}
