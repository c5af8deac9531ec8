import { VdiskError } from '../../errors.js';
import type { PositionalFile } from '../../io/file.js';
import type { CreateRequest } from '../driver.js';
import { ZERO_GUID, newGuid } from '../vhdx/guid.js';
import {
  DEFAULT_BLOCK_SIZE, ENTRY_UNALLOCATED, HEADER_SECTOR, MAX_DISK_SIZE, MiB, SECTOR_SIZE, TYPE_DYNAMIC, TYPE_STATIC,
  VDI_SIGNATURE, VDI_TEXT, VDI_VERSION_1_1, roundUp,
} from './constants.js';
import { serializeVdiHeader, type VdiHeader } from './header.js';

export const VDI_CREATE_OPTIONS: Record<string, string> = {
  static: 'on: every block is given its place in the file at once (a fixed image, the file sparse); off: dynamic (default)',
};

/** Where a new image's parts go: the map right after the header, the data area from the next MiB. */
export interface VdiLayout {
  size: number;
  blocks: number;
  offsetBmap: number;
  offsetData: number;
  isStatic: boolean;
}

/**
 * The new image's shape, checked before anything is written. The data area starts on a MiB, as
 * VirtualBox places it, so blocks sit on the file system's blocks and holes in them stay holes.
 */
export function vdiLayout(req: CreateRequest): VdiLayout {
  let isStatic = false;
  for (const [key, value] of Object.entries(req.options)) {
    if (key !== 'static') continue;
    if (value === 'on' || value === 'true' || value === 'yes') isStatic = true;
    else if (value !== 'off' && value !== 'false' && value !== 'no') throw new VdiskError('USAGE', `-o static: expected on or off, not '${value}'`);
  }
  if (!Number.isSafeInteger(req.size) || req.size < 0) throw new VdiskError('USAGE', `size must be a number of bytes, not ${req.size}`);
  // QEMU rounds a size to whole sectors silently, for create and convert alike.
  const size = roundUp(req.size, SECTOR_SIZE);
  if (size > MAX_DISK_SIZE) throw new VdiskError('USAGE', `size ${req.size} is over the VDI maximum of ${MAX_DISK_SIZE} bytes`);
  const blocks = Math.ceil(size / DEFAULT_BLOCK_SIZE);
  const offsetBmap = HEADER_SECTOR;
  return { size, blocks, offsetBmap, offsetData: roundUp(offsetBmap + blocks * 4, MiB), isStatic };
}

/** `measure`: the header and map, plus the data blocks (all of them when fully allocated). */
export function vdiMeasure(req: CreateRequest, allocatedBytes: number): { required: number; fullyAllocated: number } {
  const L = vdiLayout(req);
  const all = L.offsetData + L.blocks * DEFAULT_BLOCK_SIZE;
  const data = Math.min(L.blocks, Math.ceil(allocatedBytes / DEFAULT_BLOCK_SIZE)) * DEFAULT_BLOCK_SIZE;
  return { required: L.isStatic ? all : L.offsetData + data, fullyAllocated: all };
}

const MAP_CHUNK = 256 * 1024;

/**
 * Writes a new VDI into an empty file: the map (every entry unallocated, or slot i for block i in a
 * static image, whose data area the file then covers as a hole), then the header last, so that the
 * file is not a VDI at all until everything it describes is there.
 */
export async function writeNewVdi(file: PositionalFile, req: CreateRequest): Promise<void> {
  const L = vdiLayout(req);
  for (let first = 0; first < L.blocks; first += MAP_CHUNK) {
    const n = Math.min(MAP_CHUNK, L.blocks - first);
    const chunk = Buffer.alloc(n * 4);
    for (let i = 0; i < n; i++) chunk.writeUInt32LE(L.isStatic ? first + i : ENTRY_UNALLOCATED, i * 4);
    await file.writeAt(chunk, L.offsetBmap + first * 4);
  }
  await file.truncate(L.isStatic ? L.offsetData + L.blocks * DEFAULT_BLOCK_SIZE : L.offsetData);
  await file.flush();
  const header: VdiHeader = {
    text: VDI_TEXT,
    signature: VDI_SIGNATURE,
    version: VDI_VERSION_1_1,
    headerSize: 0x180,
    imageType: L.isStatic ? TYPE_STATIC : TYPE_DYNAMIC,
    imageFlags: 0,
    description: '',
    offsetBmap: L.offsetBmap,
    offsetData: L.offsetData,
    cylinders: 0,
    heads: 0,
    sectors: 0,
    sectorSize: SECTOR_SIZE,
    diskSize: L.size,
    blockSize: DEFAULT_BLOCK_SIZE,
    blockExtra: 0,
    blocksInImage: L.blocks,
    blocksAllocated: L.isStatic ? L.blocks : 0,
    uuidImage: newGuid(),
    uuidLastSnap: newGuid(),
    uuidLink: ZERO_GUID,
    uuidParent: ZERO_GUID,
  };
  await file.writeAt(serializeVdiHeader(header), 0);
  await file.flush();
}
