import { VdiskError } from '../../errors.js';
import type { DiskImage } from '../image.js';
import { HEADER_SECTION_SIZE, MiB } from './constants.js';
import { PAYLOAD_NOT_PRESENT, SB_PRESENT, isBitmapEntry } from './bat.js';
import { batSectorUpdates } from './bat-update.js';
import { LogSession, entryCapacity } from './log-writer.js';
import { newGuid } from './guid.js';
import { newParentLocator } from './parent.js';
import { rewriteParentLocator } from './locator-update.js';
import type { HeaderPair } from './header-pair.js';
import type { LogOperation } from './log.js';
import type { VhdxImage } from './vhdx-image.js';

const WINDOW = 8 * MiB;

function writerOf(image: VhdxImage): HeaderPair {
  const w = image.writer;
  if (!w) throw new VdiskError('IO', `${image.filename}: opened read-only`);
  return w;
}

/** Sets locator entries of `child` (through its log) and reads its structures again. */
async function setLocator(child: VhdxImage, entries: Record<string, string | undefined>): Promise<void> {
  const locator = child.layout.parentLocator;
  if (!locator) throw new VdiskError('USAGE', `${child.filename}: not a differencing image`);
  const merged: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...locator.entries, ...entries })) if (v !== undefined) merged[k] = v;
  await rewriteParentLocator(child.file, writerOf(child), child.layout, { ...locator, entries: merged });
  await child.reload();
}

/**
 * Merges a child into its parent (qemu-img commit, Merge-VHD). The chain reads the same throughout:
 * the parent's new DataWriteGuid is announced to the child first (parent_linkage2), so that the chain
 * still opens while the parent changes; the child's sectors are then written into the parent (through
 * its own log), which changes nothing the chain shows since the child covers them; then the child's
 * linkage is the parent's new GUID alone, and without `keepChild` its blocks are dropped, so the
 * chain reads them from the parent, which holds the same.
 */
export async function commitChild(child: VhdxImage, parent: VhdxImage, keepChild: boolean, onProgress?: (done: number, total: number) => void): Promise<number> {
  child.useParent(parent);
  const next = newGuid();
  await setLocator(child, { parent_linkage2: `{${next}}` });
  parent.nextDataWriteGuid = next;
  let copied = 0;
  const buf = Buffer.alloc(WINDOW);
  for (let at = 0; at < child.virtualSize; at += WINDOW) {
    const n = Math.min(WINDOW, child.virtualSize - at);
    for (const m of await child.mapping(at, n)) {
      if (m.kind === 'backing') continue;
      const piece = buf.subarray(0, m.length);
      if (m.kind === 'data') await child.read(piece, m.offset);
      else piece.fill(0);
      await parent.write(piece, m.offset);
      copied += m.length;
    }
    onProgress?.(at + n, child.virtualSize);
  }
  await parent.flush();
  const guid = parent.layout.header.dataWriteGuid;
  if (guid.replace(/[{}]/g, '') !== next && copied > 0) throw new VdiskError('IO', `${parent.filename}: the parent's DataWriteGuid is not the one announced`);
  await setLocator(child, { parent_linkage: `{${guid}}`, parent_linkage2: undefined });
  if (!keepChild) await emptyChild(child);
  return copied;
}

/**
 * Drops every payload block of a child (NOT_PRESENT: read from the parent), through the log, and
 * truncates the file after the last structure or sector-bitmap block.
 */
async function emptyChild(child: VhdxImage): Promise<void> {
  const pair = writerOf(child);
  const g = child.layout.geometry;
  const changes: [number, { state: number; fileOffset: number }][] = [];
  let end = HEADER_SECTION_SIZE;
  const h = child.layout.header;
  end = Math.max(end, h.logOffset + h.logLength);
  for (const r of child.layout.regions) end = Math.max(end, r.fileOffset + r.length);
  // The bitmaps are cleared too: a block that comes back must not find old bits (and libvhdi reads
  // them even for NOT_PRESENT blocks).
  const bitmaps: LogOperation[] = [];
  await child.bat.scan((i, e) => {
    if (isBitmapEntry(g, i)) {
      if (e.state === SB_PRESENT) {
        end = Math.max(end, e.fileOffset + MiB);
        bitmaps.push({ kind: 'zero', fileOffset: e.fileOffset, length: MiB });
      }
    } else if (e.state !== PAYLOAD_NOT_PRESENT) changes.push([i, { state: PAYLOAD_NOT_PRESENT, fileOffset: 0 }]);
  }, () => undefined);
  await pair.update({ fileWriteGuid: newGuid(), dataWriteGuid: newGuid() });
  // The entries first: a crash between leaves NOT_PRESENT blocks, whose old bits nobody reads until
  // a write clears them (writeChild does for every block it brings back).
  const ops = (await batSectorUpdates(child.file, child.layout.bat.fileOffset, changes)).concat(bitmaps);
  const capacity = entryCapacity(pair.header.logLength);
  const session = await LogSession.begin(child.file, pair);
  for (let i = 0; i < ops.length; i += capacity) await session.commit(ops.slice(i, i + capacity));
  await session.end();
  if (end < child.file.size()) {
    await child.file.truncate(end);
    await child.file.flush();
  }
  await child.reload();
}

/**
 * Points a child at a new parent (qemu-img rebase). Safe mode first copies into the child every
 * sector it does not hold where the old chain and the new parent differ, so the child reads the same
 * afterwards; `unsafe` only rewrites the locator. The locator changes last, in one log entry.
 */
export async function rebaseChild(child: VhdxImage, newParent: DiskImage, newParentPath: string, unsafe: boolean, onProgress?: (done: number, total: number) => void): Promise<void> {
  if (newParent.format !== 'vhdx' || !('layout' in newParent)) {
    throw new VdiskError('UNSUPPORTED', `${newParentPath}: a differencing VHDX needs a VHDX parent, not ${newParent.format}`);
  }
  const np = newParent as unknown as VhdxImage;
  if (np.virtualSize !== child.virtualSize) {
    throw new VdiskError('USAGE', `${newParentPath}: the new parent is ${np.virtualSize} bytes, the child ${child.virtualSize}`);
  }
  if (!unsafe) {
    const oldParent = await child.openParent();
    const lss = child.logicalSectorSize;
    const a = Buffer.alloc(WINDOW);
    const b = Buffer.alloc(WINDOW);
    for (let at = 0; at < child.virtualSize; at += WINDOW) {
      const n = Math.min(WINDOW, child.virtualSize - at);
      for (const m of await child.mapping(at, n)) {
        if (m.kind !== 'backing') continue;
        const old = a.subarray(0, m.length);
        const now = b.subarray(0, m.length);
        await Promise.all([oldParent.read(old, m.offset), np.read(now, m.offset)]);
        // Runs of differing sectors go into the child in one write each.
        let run = -1;
        for (let s = 0; s <= m.length; s += lss) {
          const differs = s < m.length && !old.subarray(s, s + lss).equals(now.subarray(s, s + lss));
          if (differs && run < 0) run = s;
          if (!differs && run >= 0) {
            await child.write(old.subarray(run, s), m.offset + run);
            run = -1;
          }
        }
      }
      onProgress?.(at + n, child.virtualSize);
    }
    await child.flush();
  }
  const fresh = newParentLocator(child.filename, newParentPath, np.layout.header.dataWriteGuid);
  await setLocator(child, { ...fresh.entries, parent_linkage2: undefined });
}
