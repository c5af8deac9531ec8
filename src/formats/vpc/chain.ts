import { stat } from 'node:fs/promises';
import { basename } from 'node:path';
import { VdiskError, corrupt } from '../../errors.js';
import { readExact } from '../../io/file.js';
import type { DiskImage } from '../image.js';
import { HEADER_SIZE, MiB, SECTOR, VHD_EPOCH } from './constants.js';
import { rechecksumHeader, serializeDynamicHeader } from './dynamic-header.js';
import { serializeFooter } from './footer.js';
import { newLocators, placeLocators } from './locator.js';
import { ZERO_UUID } from './uuid.js';
import { packBlocks } from './compact.js';
import type { VpcImage } from './vpc-image.js';

const WINDOW = 8 * MiB;
const PARENT_TIMESTAMP_AT = 56;

/** A file's modification time in the VHD clock, as a differencing header records its parent's. */
async function vhdMtime(path: string): Promise<number> {
  return Math.max(0, Math.floor((await stat(path)).mtimeMs / 1000) - VHD_EPOCH);
}

function differencing(img: VpcImage, what: string): void {
  if (!img.isDifferencing) throw new VdiskError('USAGE', `${img.filename}: not a differencing VHD; ${what}`);
}

/** Reads `dst.length` bytes of `image` at `pos`; past its end, zeros (a shorter parent). */
async function readPadded(image: DiskImage, dst: Buffer, pos: number): Promise<void> {
  const inside = Math.max(0, Math.min(dst.length, image.virtualSize - pos));
  if (inside > 0) await image.read(dst.subarray(0, inside), pos);
  dst.fill(0, inside);
}

/**
 * Merges a differencing VHD into its parent (qemu-img commit, Merge-VHD). The parent, of any format
 * vdisk writes, is opened read-write through the driver table and written through its own image (so
 * by its own crash-safe order), every sector the child's bitmaps hold, then flushed: the chain reads
 * the same throughout, the child covering what changes below it. The child's header then records the
 * parent's new time stamp (one sector: field and checksum). Without `keepChild` the child is then
 * emptied: its BAT entries cleared (flushed; each block reads from the parent, which holds the same
 * bytes) and the file cut after its metadata.
 */
export async function commitVpc(img: VpcImage, keepChild: boolean, onProgress?: (done: number, total: number) => void): Promise<{ parent: string; bytes: number }> {
  differencing(img, 'there is no parent to commit into');
  const parentPath = await img.parentPath();
  // The parent open for reads holds a shared lock that would keep the read-write open out.
  await img.dropParent();
  // Imported here: the driver table imports this format, so a static import would be a cycle.
  const { openImage } = await import('../open.js');
  const parent = await openImage(parentPath, { mode: 'rw' });
  let bytes = 0;
  try {
    const problem = img.parentProblem(parent, parentPath);
    if (problem) throw corrupt(img.filename, problem);
    const size = img.virtualSize;
    if (parent.virtualSize < size) {
      for (const m of await img.mapping(parent.virtualSize, size - parent.virtualSize)) {
        if (m.kind === 'data') throw new VdiskError('USAGE', `${img.filename}: holds data at byte ${m.offset}, past the end of its parent ${parentPath} (${parent.virtualSize} bytes); resize the parent first`);
      }
    }
    const buf = Buffer.alloc(WINDOW);
    for (let at = 0; at < size; at += WINDOW) {
      const n = Math.min(WINDOW, size - at);
      for (const m of await img.mapping(at, n)) {
        if (m.kind !== 'data') continue;
        const piece = buf.subarray(0, m.length);
        await img.read(piece, m.offset);
        await parent.write(piece, m.offset);
        bytes += m.length;
      }
      onProgress?.(at + n, size);
    }
    await parent.flush();
  } finally {
    await parent.close();
  }
  const L = img.layout;
  const raw = await readExact(img.file, L.footer.dataOffset, HEADER_SIZE, 'dynamic disk header');
  raw.writeUInt32BE(await vhdMtime(parentPath), PARENT_TIMESTAMP_AT);
  await img.file.writeAt(rechecksumHeader(raw).subarray(0, SECTOR), L.footer.dataOffset);
  await img.file.flush();
  if (!keepChild) {
    await img.bat!.clearRange(img.file, 0, L.entries);
    await img.file.flush();
    await img.reload();
    await packBlocks(img);
  }
  return { parent: parentPath, bytes };
}

/**
 * Points a differencing VHD at a new parent (qemu-img rebase). Safe mode first writes into the child
 * (through its own crash-safe write path) every sector it does not hold where the old chain and the
 * new parent read differently, flushed, so that the child reads the same on either parent. Then the
 * new locator data (W2ku absolute, W2ru relative, UTF-16) goes to the end of the file as a new block
 * would (the footer to the new end first, then the data, flushed), where nothing references it yet;
 * last, one write of the dynamic header switches the parent UUID, time stamp, name and locators.
 * `unsafe` skips the copy.
 */
export async function rebaseVpc(img: VpcImage, newParent: DiskImage, newParentPath: string, unsafe: boolean, onProgress?: (done: number, total: number) => void): Promise<void> {
  differencing(img, 'vdisk cannot give a VHD a parent it was made without');
  const size = img.virtualSize;
  if (!unsafe) {
    const oldParent = await img.openParent();
    const a = Buffer.alloc(WINDOW);
    const b = Buffer.alloc(WINDOW);
    for (let at = 0; at < size; at += WINDOW) {
      const n = Math.min(WINDOW, size - at);
      for (const m of await img.mapping(at, n)) {
        if (m.kind === 'data') continue;
        const was = a.subarray(0, m.length);
        const will = b.subarray(0, m.length);
        await Promise.all([readPadded(oldParent, was, m.offset), readPadded(newParent, will, m.offset)]);
        for (const [from, to] of differingSectors(was, will)) await img.write(was.subarray(from, to), m.offset + from);
      }
      onProgress?.(at + n, size);
    }
    await img.flush();
  }
  const L = img.layout;
  const file = img.file;
  const locs = newLocators(img.filename, newParentPath);
  const placed = placeLocators(locs, img.appendAt);
  await file.writeAt(serializeFooter(L.footer), placed.end);
  await file.flush();
  for (const [i, l] of locs.entries()) {
    const padded = Buffer.alloc(placed.entries[i].dataSpace);
    l.data.copy(padded);
    await file.writeAt(padded, placed.entries[i].dataOffset);
  }
  await file.flush();
  const np = newParent as Partial<VpcImage>;
  const header = serializeDynamicHeader({
    ...L.header!,
    parentUuid: newParent.format === 'vpc' && np.layout ? np.layout.footer.uuid : ZERO_UUID,
    parentTimestamp: await vhdMtime(newParentPath),
    parentName: basename(newParentPath),
    locators: placed.entries,
  });
  await file.writeAt(header, L.footer.dataOffset);
  await file.flush();
}

/** The [from, to) byte runs of whole 512-byte sectors in which `a` and `b` differ. */
function differingSectors(a: Buffer, b: Buffer): [number, number][] {
  const runs: [number, number][] = [];
  for (let s = 0; s < a.length; s += SECTOR) {
    const e = Math.min(a.length, s + SECTOR);
    if (a.subarray(s, e).equals(b.subarray(s, e))) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === s) last[1] = e;
    else runs.push([s, e]);
  }
  return runs;
}
