import type { DiskImage } from '../formats/image.js';

/**
 * One run of the virtual disk, as `qemu-img map --output json` describes it: `depth` is the image of a
 * chain that decides the content (0: this one, 1: its parent, ...), `present` whether that image
 * has it (false: nobody does, it reads as zeros), `zero` whether it reads as zeros, `data` whether
 * bytes are stored for it, and then at `offset` in `filename`.
 */
export interface MapExtent {
  start: number;
  length: number;
  depth: number;
  present: boolean;
  zero: boolean;
  data: boolean;
  offset?: number;
  filename: string;
}

/**
 * Calls `emit` with the whole virtual disk's extents in order, adjacent ones merged where qemu-img
 * merges them (same kind, and stored back to back). Streams: memory does not grow with the disk.
 */
export async function mapImage(image: DiskImage, emit: (e: MapExtent) => void): Promise<void> {
  let last: MapExtent | null = null;
  const push = (e: MapExtent) => {
    if (e.length === 0) return;
    if (last && mergeable(last, e)) {
      last.length += e.length;
      return;
    }
    if (last) emit(last);
    last = { ...e };
  };
  await mapRange(image, 0, image.virtualSize, 0, push);
  if (last) emit(last);
}

function mergeable(a: MapExtent, b: MapExtent): boolean {
  if (a.start + a.length !== b.start) return false;
  if (a.depth !== b.depth || a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.filename !== b.filename) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}

/** Bytes of the virtual disk mapped per request: bounded, so a map's memory does not grow with the disk. */
const WINDOW = 64 * 1024 ** 3;

async function mapRange(image: DiskImage, start: number, length: number, depth: number, push: (e: MapExtent) => void): Promise<void> {
  if (length === 0) return;
  if (!image.mapping) {
    // A raw image stores every byte where it is; holes cannot be told apart from data without
    // SEEK_DATA, which Node does not offer.
    push({ start, length, depth, present: true, zero: false, data: true, offset: start, filename: image.filename });
    return;
  }
  const end = start + length;
  for (let at = start; at < end; ) {
    const next = Math.min(end, at + WINDOW);
    for (const m of await image.mapping(at, next - at)) {
      const here = { start: m.offset, length: m.length, depth, filename: m.filename ?? image.filename };
      const offset = m.fileOffset === undefined ? {} : { offset: m.fileOffset };
      switch (m.kind) {
        case 'data':
          push({ ...here, present: true, zero: false, data: true, ...offset });
          break;
        case 'zero':
          push({ ...here, present: true, zero: true, data: false, ...offset });
          break;
        case 'unallocated':
          push({ ...here, present: false, zero: true, data: false });
          break;
        case 'backing': {
          const backing = await image.backingImage?.();
          if (backing) await mapRange(backing, m.offset, m.length, depth + 1, push);
          else push({ ...here, present: false, zero: true, data: false });
        }
      }
    }
    at = next;
  }
}
