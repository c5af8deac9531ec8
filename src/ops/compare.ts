import type { DiskImage } from '../formats/image.js';
import { allocIoBuffer, isZero } from '../io/buffers.js';

export interface CompareOptions {
  /** Sizes must match (qemu-img compare -s). */
  strict?: boolean;
  onProgress?: (done: number, total: number) => void;
}

export interface CompareResult {
  identical: boolean;
  /** The virtual sizes differ (with `strict`, that alone makes the images different). */
  sizeMismatch: boolean;
  /** The first 512-byte sector that differs, as qemu-img reports it. */
  mismatchAt?: number;
}

const CHUNK = 2 * 1024 * 1024;
const WINDOW = 1024 ** 3;
const SECTOR = 512;

/**
 * Compares the virtual disks of two images as qemu-img compare does: the common part byte for byte,
 * and the rest of the larger one must read as zeros. Ranges that both maps say read as zeros are not
 * read at all, so two sparse 64 TiB images compare by their block tables.
 */
export async function compareImages(a: DiskImage, b: DiskImage, options: CompareOptions = {}): Promise<CompareResult> {
  const sizeMismatch = a.virtualSize !== b.virtualSize;
  if (sizeMismatch && options.strict) return { identical: false, sizeMismatch };
  const common = Math.min(a.virtualSize, b.virtualSize);
  const total = Math.max(a.virtualSize, b.virtualSize);
  const bufA = allocIoBuffer(CHUNK);
  const bufB = allocIoBuffer(CHUNK);
  const progress = (done: number) => options.onProgress?.(done, total);

  for (let w = 0; w < common; w += WINDOW) {
    const end = Math.min(common, w + WINDOW);
    const [ea, eb] = await Promise.all([a.blockStatus(w, end - w), b.blockStatus(w, end - w)]);
    for (const [start, stop] of rangesWithData(w, end, ea, eb)) {
      for (let at = start; at < stop; at += CHUNK) {
        const n = Math.min(CHUNK, stop - at);
        const pa = bufA.subarray(0, n);
        const pb = bufB.subarray(0, n);
        await Promise.all([a.read(pa, at), b.read(pb, at)]);
        if (!pa.equals(pb)) return { identical: false, sizeMismatch, mismatchAt: at + firstSectorWhere(pa, (i) => pa[i] !== pb[i]) };
        progress(at + n);
      }
    }
    progress(end);
  }

  const larger = a.virtualSize > b.virtualSize ? a : b;
  for (let w = common; w < total; w += WINDOW) {
    const end = Math.min(total, w + WINDOW);
    const extents = await larger.blockStatus(w, end - w);
    for (const e of extents) {
      if (e.state !== 'data') continue;
      for (let at = e.offset; at < e.offset + e.length; at += CHUNK) {
        const n = Math.min(CHUNK, e.offset + e.length - at);
        const p = bufA.subarray(0, n);
        await larger.read(p, at);
        if (!isZero(p)) return { identical: false, sizeMismatch, mismatchAt: at + firstSectorWhere(p, (i) => p[i] !== 0) };
      }
    }
    progress(end);
  }
  return { identical: true, sizeMismatch };
}

/** [start, stop) pieces of the window where either image holds data; both reading as zeros is skipped. */
function rangesWithData(w: number, end: number, ea: { offset: number; length: number; state: string }[], eb: typeof ea): [number, number][] {
  const out: [number, number][] = [];
  let i = 0;
  let j = 0;
  for (let at = w; at < end; ) {
    while (ea[i].offset + ea[i].length <= at) i++;
    while (eb[j].offset + eb[j].length <= at) j++;
    const stop = Math.min(ea[i].offset + ea[i].length, eb[j].offset + eb[j].length);
    if (ea[i].state === 'data' || eb[j].state === 'data') {
      const last = out[out.length - 1];
      if (last && last[1] === at) last[1] = stop;
      else out.push([at, stop]);
    }
    at = stop;
  }
  return out;
}

/** Offset (within buf) of the 512-byte sector holding the first byte for which `differs` is true. */
function firstSectorWhere(buf: Uint8Array, differs: (i: number) => boolean): number {
  for (let s = 0; s < buf.length; s += SECTOR) {
    for (let i = s; i < Math.min(buf.length, s + SECTOR); i++) if (differs(i)) return s;
  }
  return 0;
}
