import { dirname, isAbsolute, join, resolve } from 'node:path';
import { VdiskError, corrupt, unsupported } from '../../errors.js';
import { readExact, type PositionalFile } from '../../io/file.js';
import type { OpenContext } from '../driver.js';
import type { DiskImage } from '../image.js';
import { COWD_MAGIC, MAX_DESCRIPTOR, SECTOR, SPARSE_MAGIC } from './constants.js';
import { parseDescriptor, type Descriptor } from './descriptor.js';
import { FlatExtent, ZeroExtent } from './extent.js';
import { SparseExtent } from './sparse-extent.js';
import { VmdkImage, type PlacedExtent } from './vmdk-image.js';

/** Opens a VMDK: a sparse extent with its embedded descriptor, or a descriptor file and its extents. */
export async function openVmdk(file: PositionalFile, ctx: OpenContext): Promise<VmdkImage> {
  const head = Buffer.alloc(SECTOR);
  await file.readAt(head, 0);
  const magic = head.readUInt32LE(0);
  const parent = (path: string) => ctx.openBacking(path);
  if (magic === COWD_MAGIC) throw unsupported(file.path, 'an ESX Server sparse (COWD) disk, which vdisk does not read');
  if (magic === SPARSE_MAGIC) {
    // As QEMU does: a sparse file opened directly is its own single extent; its embedded
    // descriptor says only the CIDs, the type and the parent.
    const extent = await SparseExtent.open(file);
    const text = await extent.embeddedDescriptor();
    const descriptor = text === null
      ? { version: 1, cid: 0, parentCid: 0xffffffff, createType: extent.compressed ? 'streamOptimized' : 'monolithicSparse', parentFileNameHint: null, extents: [], ddb: {} }
      : parseDescriptor(file.path, text);
    const placed: PlacedExtent = { start: 0, length: extent.sizeBytes, extent, type: '' };
    return new VmdkImage(file, descriptor, [placed], [], parent);
  }
  if (file.size() > MAX_DESCRIPTOR) throw corrupt(file.path, 'not a VMDK: no sparse extent header, and too long for a descriptor file');
  const text = (await readExact(file, 0, file.size(), 'descriptor')).toString('latin1');
  const descriptor = parseDescriptor(file.path, text);
  if (descriptor.extents.length === 0) throw corrupt(file.path, 'descriptor file without extents');
  return openExtents(file, descriptor, ctx, parent);
}

async function openExtents(file: PositionalFile, descriptor: Descriptor, ctx: OpenContext, parent: (path: string) => Promise<DiskImage>): Promise<VmdkImage> {
  const opened: PositionalFile[] = [];
  const byPath = new Map<string, PositionalFile>();
  const sparse = new Map<PositionalFile, SparseExtent>();
  const placed: PlacedExtent[] = [];
  const dir = dirname(file.path);
  const self = resolve(file.path);
  let start = 0;
  try {
    for (const line of descriptor.extents) {
      const length = line.sectors * SECTOR;
      if (!Number.isSafeInteger(start + length)) throw corrupt(file.path, 'descriptor: the extents add up to more than any disk');
      if (line.access === 'NOACCESS') throw unsupported(file.path, `a NOACCESS extent ("${line.file}")`);
      if (line.type === 'ZERO') {
        placed.push({ start, length, extent: new ZeroExtent(), type: line.type });
        start += length;
        continue;
      }
      if (line.type === 'VMFSSPARSE') throw unsupported(file.path, `extent "${line.file}" is VMFSSPARSE (ESX COW), which vdisk does not read`);
      if (line.type === 'SESPARSE') throw unsupported(file.path, `extent "${line.file}" is SESPARSE (ESXi space-efficient sparse), which vdisk does not read yet`);
      if (line.type === 'VMFSRDM' || line.type === 'VMFSRAW') throw unsupported(file.path, `extent "${line.file}" maps a raw device (${line.type})`);
      const path = isAbsolute(line.file) ? line.file : join(dir, line.file);
      if (resolve(path) === self) throw corrupt(file.path, `descriptor names itself as extent "${line.file}"`);
      // Extents of one file share its descriptor: a descriptor listing one file thousands of times opens it once.
      let f = byPath.get(resolve(path));
      if (!f) {
        f = await ctx.openFile(path).catch((err) => {
          if (err instanceof VdiskError && err.code === 'NOT_FOUND') throw new VdiskError('NOT_FOUND', `${file.path}: extent file ${path} not found`);
          throw err;
        });
        opened.push(f);
        byPath.set(resolve(path), f);
      }
      if (line.type === 'SPARSE') {
        // One sparse file listed twice is one extent: two writers would allocate the same sectors.
        const extent = sparse.get(f) ?? (await SparseExtent.open(f));
        sparse.set(f, extent);
        placed.push({ start, length, extent, type: line.type });
      } else {
        placed.push({ start, length, extent: new FlatExtent(f, line.offset), type: line.type });
      }
      start += length;
    }
  } catch (err) {
    for (const f of opened) await f.close();
    throw err;
  }
  return new VmdkImage(file, descriptor, placed, opened, parent);
}
