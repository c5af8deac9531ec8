import { closeSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { sh } from './peers.js';

export const MiB = 1024 * 1024;

/** Header fields of a VDI (offsets in the first sector), for tests that damage or inspect them. */
export const VDI = {
  signature: 0x40, version: 0x44, imageType: 0x4c, offsetBmap: 0x154, offsetData: 0x158, sectorSize: 0x168,
  diskSize: 0x170, blockSize: 0x178, blockExtra: 0x17c, blocksInImage: 0x180, blocksAllocated: 0x184,
  uuidLink: 0x1a8, uuidParent: 0x1b8,
} as const;

export interface QemuVdiSpec {
  name: string;
  size: string;
  static?: boolean;
  /** qemu-io commands run on the new image, e.g. `write -P 0xab 0 64k`. */
  io?: string[];
}

/** A VDI written by QEMU itself: the independent writer our reader is judged against. */
export function makeQemuVdi(dir: string, spec: QemuVdiSpec): string {
  const path = join(dir, `${spec.name}.vdi`);
  sh('qemu-img', ['create', '-q', '-f', 'vdi', ...(spec.static ? ['-o', 'static=on'] : []), path, spec.size]);
  if (spec.io?.length) sh('qemu-io', ['-f', 'vdi', ...spec.io.flatMap((c) => ['-c', c]), path]);
  return path;
}

/**
 * A raw disk of `size` bytes with data and holes: random data at the start, a run of a repeated
 * byte across a MiB boundary, zeros written as data in the middle, random data at the very end.
 */
export function makeKnownRaw(dir: string, name: string, size: number): string {
  const path = join(dir, name);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, randomBytes(3 * MiB + 1234), 0, 3 * MiB + 1234, 0);
    writeSync(fd, Buffer.alloc(200_000, 0x5a), 0, 200_000, 7 * MiB - 100_000);
    writeSync(fd, Buffer.alloc(2 * MiB), 0, 2 * MiB, 10 * MiB);
    writeSync(fd, randomBytes(4096), 0, 4096, size - 4096);
  } finally {
    closeSync(fd);
  }
  return path;
}

export function header(path: string): Buffer {
  return readFileSync(path).subarray(0, 512);
}

/** `qemu-img map --output json`, as objects. */
export function qemuMap(image: string, format = 'vdi'): Record<string, unknown>[] {
  return JSON.parse(sh('qemu-img', ['map', '-f', format, '--output', 'json', image])) as Record<string, unknown>[];
}
