import { corrupt } from '../../errors.js';
import { Bitmap } from '../../util/bitmap.js';
import type { Mapping } from '../driver.js';
import { PAYLOAD_NOT_PRESENT, PAYLOAD_PARTIALLY_PRESENT } from './bat.js';
import { MiB } from './constants.js';
import type { VhdxImage } from './vhdx-image.js';

/**
 * File MiBs that stored blocks already map, for a map that walks the image from its start in order:
 * two blocks sharing file space are a corrupt BAT, which a map must not present as two copies of
 * data (check -r all clears the later entry). A parent is mapped in pieces, where one block may be
 * met more than once, so only an in-order walk from offset 0 is watched.
 */
export class MapClaims {
  private claimed: Bitmap | null = null;
  private next = -1;

  /** The bitmap for a window at `offset`: a fresh one from 0, the same one in order, none otherwise. */
  at(image: VhdxImage, offset: number, length: number): Bitmap | null {
    if (offset === 0) this.claimed = new Bitmap(Math.ceil(image.source.size() / MiB));
    else if (offset !== this.next) this.claimed = null;
    this.next = offset + length;
    return this.claimed;
  }
}

/** How [start, start+length) is stored, as the BAT (and sector bitmaps of a differencing image) say. */
export async function vhdxMapping(image: VhdxImage, start: number, length: number, claimed: Bitmap | null): Promise<Mapping[]> {
  const out: Mapping[] = [];
  const bs = image.blockSize;
  const hasParent = image.layout.params.hasParent;
  const end = start + length;
  for (const run of await image.blockRuns(start, length)) {
    const runStart = Math.max(start, run.first * bs);
    const runEnd = Math.min(end, (run.first + run.count) * bs);
    const here = { offset: runStart, length: runEnd - runStart };
    if (hasParent && run.state === PAYLOAD_NOT_PRESENT) {
      out.push({ ...here, kind: 'backing' });
    } else if (hasParent && run.state === PAYLOAD_PARTIALLY_PRESENT) {
      const e = await image.blockEntry(run.first);
      claim(image, claimed, run.first, e.fileOffset, 1);
      const inBlock = runStart - run.first * bs;
      for (const s of await image.sectorRuns(run.first, inBlock, runEnd - runStart)) {
        const piece = { offset: runStart + s.from, length: s.to - s.from };
        out.push(s.here ? { ...piece, kind: 'data', fileOffset: e.fileOffset + inBlock + s.from } : { ...piece, kind: 'backing' });
      }
    } else {
      // The image's own reading of the state, invalid states refused as reads refuse them. ZERO,
      // UNDEFINED and UNMAPPED say zeros whatever a parent holds.
      const state = image.stateOf(run.state, run.first);
      if (state === 'data') {
        await image.blockEntry(run.first); // the file-size and header-section checks reads get
        await image.blockEntry(run.first + run.count - 1);
        claim(image, claimed, run.first, run.fileOffset, run.count);
        out.push({ ...here, kind: 'data', fileOffset: run.fileOffset + (runStart - run.first * bs) });
      } else {
        out.push({ ...here, kind: state });
      }
    }
  }
  return out;
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
