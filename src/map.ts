import type { DiskImage } from './formats/image.js';
import { VhdxImage } from './formats/vhdx/vhdx-image.js';
import { PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT } from './formats/vhdx/bat.js';
import { MiB } from './formats/vhdx/constants.js';
import { corrupt } from './errors.js';
import { Bitmap } from './util/bitmap.js';

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
  await mapRange(image, 0, image.virtualSize, 0, push, new Map());
  if (last) emit(last);
}

function mergeable(a: MapExtent, b: MapExtent): boolean {
  if (a.start + a.length !== b.start) return false;
  if (a.depth !== b.depth || a.present !== b.present || a.zero !== b.zero || a.data !== b.data || a.filename !== b.filename) return false;
  if (a.offset === undefined || b.offset === undefined) return a.offset === b.offset;
  return a.offset + a.length === b.offset;
}

/** File space each image of the chain has mapped so far (see `claim`). */
type Claims = Map<VhdxImage, Bitmap>;

async function mapRange(image: DiskImage, start: number, length: number, depth: number, push: (e: MapExtent) => void, claims: Claims): Promise<void> {
  if (length === 0) return;
  if (image instanceof VhdxImage) return mapVhdx(image, start, length, depth, push, claims);
  // A raw image stores every byte where it is; holes cannot be told apart from data without
  // SEEK_DATA, which Node does not offer.
  push({ start, length, depth, present: true, zero: false, data: true, offset: start, filename: image.filename });
}

/** Blocks whose BAT runs are gathered at a time: a map of 64 Mi blocks must not hold them all. */
const WINDOW_BLOCKS = 65536;

async function mapVhdx(image: VhdxImage, start: number, length: number, depth: number, push: (e: MapExtent) => void, claims: Claims): Promise<void> {
  const bs = image.blockSize;
  const end = start + length;
  // File MiBs that stored blocks already map: two blocks sharing file space are a corrupt BAT, which
  // a map must not present as two copies of data (check -r all clears the later entry). Watched on
  // the image mapped whole; a parent is mapped in pieces, where one block may be met more than once.
  if (start === 0 && length === image.virtualSize) claims.set(image, new Bitmap(Math.ceil(image.source.size() / MiB)));
  for (let at = start; at < end; ) {
    const next = Math.min(end, (Math.floor(at / bs) + WINDOW_BLOCKS) * bs);
    await mapWindow(image, at, next - at, depth, push, claims);
    at = next;
  }
}

async function mapWindow(
  image: VhdxImage,
  start: number,
  length: number,
  depth: number,
  push: (e: MapExtent) => void,
  claims: Claims,
): Promise<void> {
  const claimed = claims.get(image) ?? null;
  const bs = image.blockSize;
  const hasParent = image.layout.params.hasParent;
  const end = start + length;
  // Runs that defer to the parent map the parent over just their range.
  const runs = await image.blockRuns(start, length);
  for (const run of runs) {
    const runStart = Math.max(start, run.first * bs);
    const runEnd = Math.min(end, (run.first + run.count) * bs);
    const here = { start: runStart, length: runEnd - runStart, depth, filename: image.filename };
    if (hasParent && run.state === PAYLOAD_NOT_PRESENT) {
      await mapRange(await image.openParent(), runStart, runEnd - runStart, depth + 1, push, claims);
    } else if (hasParent && run.state === PAYLOAD_PARTIALLY_PRESENT) {
      const e = await image.blockEntry(run.first);
      claim(image, claimed, run.first, e.fileOffset, 1);
      const inBlock = runStart - run.first * bs;
      for (const s of await image.sectorRuns(run.first, inBlock, runEnd - runStart)) {
        if (s.here) push({ ...here, start: runStart + s.from, length: s.to - s.from, present: true, zero: false, data: true, offset: e.fileOffset + inBlock + s.from });
        else await mapRange(await image.openParent(), runStart + s.from, s.to - s.from, depth + 1, push, claims);
      }
    } else {
      // The image's own reading of the state, invalid states refused as reads refuse them. ZERO,
      // UNDEFINED and UNMAPPED say zeros whatever a parent holds.
      switch (image.stateOf(run.state, run.first)) {
        case 'data':
          await image.blockEntry(run.first); // the file-size and header-section checks reads get
          await image.blockEntry(run.first + run.count - 1);
          claim(image, claimed, run.first, run.fileOffset, run.count);
          push({ ...here, present: true, zero: false, data: true, offset: run.fileOffset + (runStart - run.first * bs) });
          break;
        case 'unallocated':
          push({ ...here, present: false, zero: true, data: false });
          break;
        case 'zero':
          push({ ...here, present: true, zero: true, data: false });
      }
    }
  }
}

/** Marks the file space of `count` stored blocks from `first`; refuses space another block maps. */
function claim(image: VhdxImage, claimed: Bitmap | null, first: number, fileOffset: number, count: number): void {
  if (!claimed) return;
  const from = fileOffset / MiB;
  const to = (fileOffset + count * image.blockSize) / MiB;
  const taken = claimed.firstSet(from, to);
  if (taken >= 0) {
    const block = first + Math.floor((taken - from) * MiB / image.blockSize);
    throw corrupt(image.filename, `block ${block} is stored at file offset ${taken * MiB}, where another block already is: the BAT is corrupt (vdisk check -r all repairs it)`);
  }
  claimed.setRange(from, to);
}
