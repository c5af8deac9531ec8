import type { ByteRange } from '../filesystem.js';
import { clusterOffset, type ExfatLayout } from './layout.js';
import type { ClusterStream } from './stream.js';

/**
 * The Allocation Bitmap (specification 7.1.5): bit n (least significant first within each byte) says
 * whether cluster n + 2 is in use. Its clear bits are the volume's free space. Read in bounded chunks and
 * yielded as merged byte ranges, so a volume of any size streams in constant memory.
 */

const CHUNK_BYTES = 1024 * 1024;

/**
 * The byte ranges of the volume no cluster in use covers, in order: the free clusters, then whatever lies
 * past the cluster heap up to `volumeSize` (the file system keeps nothing there).
 */
export async function* freeRanges(layout: ExfatLayout, bitmap: ClusterStream, volumeSize: number): AsyncGenerator<ByteRange> {
  // Clusters past the end of the volume are neither used nor free space: stop where they start (a boot
  // sector may claim a heap far larger than a truncated image).
  const inVolume = Math.ceil(Math.max(0, volumeSize - layout.heapOffset) / layout.clusterSize);
  const bits = Math.min(layout.clusterCount, inVolume);
  let runStart = -1; // cluster index (from 0) where the current free run began
  const buf = Buffer.alloc(Math.max(1, Math.min(CHUNK_BYTES, Math.ceil(bits / 8))));
  for (let byteBase = 0; byteBase * 8 < bits; byteBase += buf.length) {
    const n = Math.min(buf.length, Math.ceil(bits / 8) - byteBase);
    await bitmap.read(buf.subarray(0, n), byteBase);
    for (let i = 0; i < n; i++) {
      const b = buf[i];
      const base = (byteBase + i) * 8;
      // Whole bytes first: runs of 0x00 and 0xFF are the common case by far.
      if (b === 0x00 && base + 8 <= bits) {
        if (runStart < 0) runStart = base;
        continue;
      }
      if (b === 0xff) {
        if (runStart >= 0) {
          const r = range(layout, runStart, base, volumeSize);
          if (r) yield r;
          runStart = -1;
        }
        continue;
      }
      for (let bit = 0; bit < 8 && base + bit < bits; bit++) {
        const used = (b >> bit) & 1;
        if (!used && runStart < 0) runStart = base + bit;
        else if (used && runStart >= 0) {
          const r = range(layout, runStart, base + bit, volumeSize);
          if (r) yield r;
          runStart = -1;
        }
      }
    }
  }
  // The last free run and the space past the heap are one range when they touch.
  const heapEnd = clusterOffset(layout, layout.clusterCount + 2);
  const from = runStart >= 0 ? clusterOffset(layout, runStart + 2) : heapEnd;
  const to = Math.max(heapEnd, volumeSize);
  const r = clip(from, to, volumeSize);
  if (r) yield r;
}

/** Clusters [from, to) as counted from the heap's first cluster, as a byte range of the volume (null past its end). */
function range(layout: ExfatLayout, from: number, to: number, volumeSize: number): ByteRange | null {
  return clip(clusterOffset(layout, from + 2), clusterOffset(layout, to + 2), volumeSize);
}

/** [start, end) cut at the end of the volume: a heap the boot sector claims past it is not free space. */
function clip(start: number, end: number, volumeSize: number): ByteRange | null {
  const e = Math.min(end, volumeSize);
  return e > start ? { offset: start, length: e - start } : null;
}
