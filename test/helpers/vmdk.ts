import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sh, tempDir, vdisk } from './peers.js';

const MiB = 1024 * 1024;

/** Varied bytes (not all one value, not compressible to nothing) seeded by `seed`. */
export function varied(length: number, seed: number): Buffer {
  const b = Buffer.alloc(Math.ceil(length / 4) * 4);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    b.writeUInt32LE(x & 0x0f0f0f0f, i); // half the bits: compresses some, never to nothing
  }
  return b.subarray(0, length);
}

/** Data at these [offset, length] places of a raw disk of `size`; holes elsewhere. */
export function rawPieces(size: number): [number, number][] {
  return [[0, 64 * 1024], [MiB - 4096, 12 * 1024], [3 * MiB + 512, 700 * 1024], [5 * MiB, 2 * MiB], [size - 1000, 1000]];
}

/** A sparse raw disk with varied data at `rawPieces` (and one all-zero written piece, stored as data by raw). */
export function makeVariedRaw(path: string, size: number): void {
  const fd = openSync(path, 'w');
  ftruncateSync(fd, size);
  rawPieces(size).forEach(([at, len], i) => writeSync(fd, varied(len, i + 1), 0, len, at));
  closeSync(fd);
}

/** A temporary directory holding a varied raw disk of `size` (see makeVariedRaw). */
export function variedFixture(t: { after: (fn: () => void) => void }, size: number, name = 'src.raw'): { dir: string; raw: string } {
  const dir = tempDir(t);
  const raw = join(dir, name);
  makeVariedRaw(raw, size);
  return { dir, raw };
}

export function qemuVmdk(raw: string, out: string, options: string[]): void {
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', ...(options.length ? ['-o', options.join(',')] : []), raw, out]);
}

/** `vdisk read` of `image` equals `qemu-img convert -O raw` of it, byte for byte. */
export function assertReadsAsQemu(dir: string, image: string, what: string): void {
  const ours = join(dir, 'ours.raw');
  const theirs = join(dir, 'theirs.raw');
  const r = vdisk(['read', image, ours]);
  assert.equal(r.code, 0, `${what}: ${r.stderr}`);
  sh('qemu-img', ['convert', '-O', 'raw', image, theirs]);
  assert.ok(readFileSync(ours).equals(readFileSync(theirs)), `${what}: vdisk read differs from qemu-img convert -O raw`);
}

interface MapRow { start: number; length: number; data: boolean; zero: boolean; present?: boolean; depth?: number; offset?: number }

/** Byte-level view of a map: for each 512-byte sector, "data"/"zero"/"hole" (bounded: small images only). */
export function sectorsOfMap(rows: MapRow[], size: number, flat = false): string[] {
  const out: string[] = new Array(size / 512).fill('?');
  for (const r of rows) {
    for (let s = r.start / 512; s < (r.start + r.length) / 512; s++) {
      out[s] = flat ? (r.data ? 'data' : 'nodata') : r.data ? `data${r.depth ?? 0}` : r.present === false ? 'hole' : 'zero';
    }
  }
  return out;
}

export function mapsOf(image: string): { ours: MapRow[]; theirs: MapRow[] } {
  const r = vdisk(['map', '--output', 'json', image]);
  assert.equal(r.code, 0, r.stderr);
  return { ours: JSON.parse(r.stdout) as MapRow[], theirs: JSON.parse(sh('qemu-img', ['map', '--output', 'json', image])) as MapRow[] };
}
