import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { sh, vdisk } from './peers.js';

const MiB = 1024 * 1024;

/** Deterministic bytes (a xorshift stream), so fixtures are the same on every run. */
export function noise(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length + 4);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeUInt32LE(x >>> 0, i);
  }
  return b.subarray(0, length);
}

/**
 * The known raw disk the qcow2 peer tests start from: 8 MiB and 12 KiB (not a whole number of
 * 64 KiB clusters), random data, text that compresses, holes, a run of written zeros, an unaligned
 * piece and the last bytes.
 */
export function writeSourceRaw(dir: string, name = 'src.raw'): string {
  const size = 8 * MiB + 12 * 1024;
  const b = Buffer.alloc(size);
  noise(70000, 1).copy(b, 0);
  noise(5000, 2).copy(b, 200000);
  noise(2 * MiB, 3).copy(b, MiB);
  Buffer.from('the quick brown fox jumps over the lazy dog. '.repeat(12000)).copy(b, 4 * MiB);
  noise(300000, 4).copy(b, 5 * MiB + 123);
  noise(5000, 5).copy(b, size - 5000);
  const path = join(dir, name);
  writeFileSync(path, b);
  return path;
}

/** qemu-img convert of the source raw disk into a qcow2 image with these extra arguments. */
export function qemuQcow2(dir: string, src: string, name: string, args: string[] = []): string {
  const path = join(dir, `${name}.qcow2`);
  sh('qemu-img', ['convert', '-q', '-f', 'raw', '-O', 'qcow2', ...args, src, path]);
  return path;
}

export interface MapRun {
  start: number;
  length: number;
  depth: number;
  zero: boolean;
  data: boolean;
  offset?: number;
}

/**
 * A map reduced to the keys both tools share, adjacent runs merged as qemu-img merges them;
 * offsets kept only where `offsets` says (qemu-img shows them for data it stores plainly).
 */
export function mergedRuns(entries: Record<string, unknown>[], offsets: boolean): MapRun[] {
  const out: MapRun[] = [];
  for (const e of entries) {
    const r: MapRun = { start: e.start as number, length: e.length as number, depth: e.depth as number, zero: e.zero as boolean, data: e.data as boolean };
    if (offsets && e.data && typeof e.offset === 'number') r.offset = e.offset;
    const last = out[out.length - 1];
    if (last && last.start + last.length === r.start && last.depth === r.depth && last.zero === r.zero && last.data === r.data &&
        (last.offset === undefined) === (r.offset === undefined) && (last.offset === undefined || last.offset + last.length === r.offset)) {
      last.length += r.length;
    } else out.push(r);
  }
  return out;
}

export function qemuMap(image: string): MapRun[] {
  return mergedRuns(JSON.parse(sh('qemu-img', ['map', '--output', 'json', image])), true);
}

export function vdiskMap(image: string): MapRun[] {
  const r = vdisk(['map', '--output', 'json', image]);
  if (r.code !== 0) throw new Error(`vdisk map ${image}: ${r.stderr}`);
  return mergedRuns(JSON.parse(r.stdout), true);
}

export function qemuCheck(image: string): { code: number; json: Record<string, number> } {
  try {
    return { code: 0, json: JSON.parse(sh('qemu-img', ['check', '--output', 'json', image])) };
  } catch (err) {
    const e = err as { status: number; stdout: string };
    return { code: e.status, json: e.stdout ? JSON.parse(e.stdout) : {} };
  }
}
