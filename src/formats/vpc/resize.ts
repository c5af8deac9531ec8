import { VdiskError } from '../../errors.js';
import { readExact } from '../../io/file.js';
import { DISK_FIXED, FOOTER_SIZE, HEADER_SIZE, MAX_SIZE, SECTOR, roundUp } from './constants.js';
import { serializeFooter, type Footer } from './footer.js';
import { MAX_TABLE_ENTRIES_AT, rechecksumHeader } from './dynamic-header.js';
import { resizedGeometry } from './geometry.js';
import { endFileAt, moveBlockToEnd, writeFooters, zeroRange } from './relocate.js';
import { packBlocks } from './compact.js';
import type { Bat } from './bat.js';
import type { VpcImage } from './vpc-image.js';

/**
 * Changes the virtual size of a fixed or dynamic VHD to `newSize` bytes: the footer's current size
 * (which Windows reads) and original size (which libvhdi reads) become exactly that, with the
 * geometry resizedGeometry() picks (QEMU reads the geometry unless it is the maximum one). VHD has no
 * log; every step is ordered so that a cut-off leaves an image that opens at the old or the new
 * size with its data (see resizeFixed and resizeDynamic).
 */
export async function resizeVpc(img: VpcImage, newSize: number): Promise<void> {
  const path = img.filename;
  if (img.isDifferencing) {
    throw new VdiskError('UNSUPPORTED', `${path}: resizing a differencing VHD is not supported (it has its parent's size; resize the parent and make a new child)`);
  }
  if (!Number.isSafeInteger(newSize) || newSize <= 0 || newSize > MAX_SIZE) {
    throw new VdiskError('USAGE', `${path}: a VHD holds 1 sector to 2040 GiB, not ${newSize} bytes`);
  }
  if (newSize % SECTOR !== 0) throw new VdiskError('USAGE', `${path}: size ${newSize} is not a multiple of the 512-byte sector`);
  const oldSize = img.virtualSize;
  if (newSize === oldSize) return;
  const old = img.layout.footer;
  // libvhdi takes the original size as the disk's: it changes too, so that every reader agrees.
  const footer: Footer = { ...old, originalSize: newSize, currentSize: newSize, chs: resizedGeometry(old.creatorApp, newSize) };
  if (img.diskType === DISK_FIXED) await resizeFixed(img, footer, oldSize, newSize);
  else await resizeDynamic(img, footer, oldSize, newSize);
}

/**
 * A fixed VHD is the disk followed by the footer. The new footer is written at the new end first
 * and flushed (the old one stays valid at the file's end until then); a shrink then cuts the file
 * after it; a grow then zeros what of the old footer (and any space past the old disk) lies inside
 * the larger disk. Cut off in between, a grow reads the old footer's bytes in the new space, and a
 * shrink the new footer's in the sector past the new end: outside what the old or new disk holds.
 */
async function resizeFixed(img: VpcImage, footer: Footer, oldSize: number, newSize: number): Promise<void> {
  const file = img.file;
  const oldEnd = file.size();
  await endFileAt(file, footer, newSize);
  if (newSize > oldSize) {
    const n = Math.min(newSize, oldEnd) - oldSize;
    if (n > 0) {
      await zeroRange(file, oldSize, n);
      await file.flush();
    }
  }
}

/** Where things lie in a dynamic VHD's file, for finding what is in the way of a larger BAT. */
interface Occupant {
  start: number;
  end: number;
  /** A stored block's BAT entry; absent for structures that do not move. */
  entry?: number;
  what: string;
}

async function occupants(img: VpcImage, bat: Bat, blockBytes: number): Promise<Occupant[]> {
  const L = img.layout;
  const h = L.header!;
  const out: Occupant[] = [{ start: L.footer.dataOffset, end: L.footer.dataOffset + HEADER_SIZE, what: 'the dynamic header' }];
  for (const l of h.locators) {
    if (l.code && l.dataLength > 0 && l.dataOffset >= 0) out.push({ start: l.dataOffset, end: l.dataOffset + roundUp(l.dataLength, SECTOR), what: `the ${l.code} parent locator` });
  }
  const entries: number[] = [];
  await bat.forEachAllocated((i) => void entries.push(i));
  // Each checked (inside the file, clear of the header and BAT) before anything moves it.
  for (const i of entries) {
    const start = await img.blockStart(i);
    out.push({ start, end: start + blockBytes, entry: i, what: `block ${i}` });
  }
  return out.sort((a, b) => a.start - b.start);
}

/**
 * A dynamic VHD. Growing, in this order, each step flushed:
 *  1. the old last block's bytes past the old end (which nothing promised were zeros) are zeroed;
 *  2. when something lies where the larger disk's BAT entries go, the trailing footer moves past
 *     them and the blocks in the way move to the end of the file, one at a time (moveBlockToEnd:
 *     copy, flush, BAT entry);
 *  3. the entries the larger disk adds (and, when the header reserved too few, the room freed up
 *     to the next block) are marked unallocated, then the header's max table entries grows (one
 *     sector: the field and the checksum lie in the header's first sector);
 *  4. the footer, trailing first then the copy at offset 0.
 * Until step 4 the disk is the old one; steps 1-3 only touch space the old disk does not read.
 * Shrinking: the footers first (the caller has checked that nothing stored past the new end is
 * needed), then the entries past the new end are cleared, then the kept blocks move down into the
 * space given back and the file is cut (packBlocks).
 */
async function resizeDynamic(img: VpcImage, footer: Footer, oldSize: number, newSize: number): Promise<void> {
  const file = img.file;
  const L = img.layout;
  const h = L.header!;
  const bat = img.bat!;
  const bs = L.blockSize;
  const blockBytes = L.bitmapSize + bs;
  const oldEntries = L.entries;
  const newEntries = Math.ceil(newSize / bs);
  let end = img.appendAt;

  if (newSize < oldSize) {
    await writeFooters(file, footer, end);
    await bat.clearRange(file, newEntries, oldEntries);
    await file.flush();
    await img.reload();
    await packBlocks(img);
    return;
  }

  // A trailing footer lost, or a block past it: the footer goes to the true end before anything else.
  if (!L.trailingValid || end > L.footerAt) {
    await file.writeAt(serializeFooter(L.footer), end);
    await file.flush();
  }
  if (oldSize % bs !== 0) {
    const last = oldEntries - 1;
    const start = await img.blockStart(last);
    if (start >= 0) {
      const from = oldSize - last * bs;
      await zeroRange(file, start + L.bitmapSize + from, bs - from);
      await file.flush();
    }
  }

  // The BAT's room is checked against what lies after it, not taken from the header's word: a
  // header may claim more entries than there is space for before the first block.
  let max = h.maxTableEntries;
  const needEnd = roundUp(h.tableOffset + newEntries * 4, SECTOR);
  if (end < needEnd) {
    await file.writeAt(serializeFooter(L.footer), needEnd);
    await file.flush();
    end = needEnd;
  }
  const all = await occupants(img, bat, blockBytes);
  const inTheWay = all.filter((o) => o.end > h.tableOffset && o.start < needEnd);
  const fixed = inTheWay.find((o) => o.entry === undefined);
  if (fixed) throw new VdiskError('UNSUPPORTED', `${img.filename}: ${fixed.what} lies where the larger BAT must go (offset ${fixed.start}); vdisk moves only blocks`);
  for (const o of inTheWay) {
    const to = end;
    end = await moveBlockToEnd(file, bat, L.footer, o.entry as number, o.start, to, blockBytes);
    o.start = to;
    o.end = end;
  }
  if (newEntries > h.maxTableEntries) {
    // The BAT takes the room up to whatever comes next, so that the space moved blocks left is not lost.
    const next = Math.min(end, ...all.filter((o) => o.start >= needEnd).map((o) => o.start));
    const maxEntries = Math.ceil(MAX_SIZE / bs);
    max = Math.max(newEntries, Math.min(maxEntries, Math.floor((next - h.tableOffset) / 4)));
  }
  // Only entries in space this resize made room for, or that the disk now needs: never by the
  // header's word alone (a claimed table may run far past the file).
  await bat.clearRange(file, oldEntries, Math.max(newEntries, max === h.maxTableEntries ? newEntries : max));
  await file.flush();
  if (max !== h.maxTableEntries) {
    const raw = await readExact(file, L.footer.dataOffset, HEADER_SIZE, 'dynamic disk header');
    raw.writeUInt32BE(max, MAX_TABLE_ENTRIES_AT);
    await file.writeAt(rechecksumHeader(raw).subarray(0, SECTOR), L.footer.dataOffset);
    await file.flush();
  }
  await writeFooters(file, footer, end);
  if (end + FOOTER_SIZE < file.size()) {
    await file.truncate(end + FOOTER_SIZE);
    await file.flush();
  }
}
