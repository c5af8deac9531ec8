import { VdiskError, corrupt, unsupported } from '../../errors.js';
import { ZERO_GUID, readGuid, writeGuid } from '../vhdx/guid.js';
import {
  HEADER_SECTOR, MAX_BLOCKS, MAX_BLOCK_SIZE, MAX_DISK_SIZE, MIN_BLOCK_SIZE, SECTOR_SIZE, TYPE_DIFF, TYPE_DYNAMIC,
  TYPE_STATIC, TYPE_UNDO, VDI_SIGNATURE, VDI_VERSION_1_1, isPowerOfTwo, roundUp,
} from './constants.js';

/**
 * The first sector: a 64-byte text pre-header, the signature and version, then header version 1.1.
 * UUIDs are stored as VirtualBox's RTUUID, little-endian in their first three fields (as GUIDs).
 */
export interface VdiHeader {
  text: string;
  signature: number;
  version: number;
  headerSize: number;
  imageType: number;
  imageFlags: number;
  description: string;
  offsetBmap: number;
  offsetData: number;
  cylinders: number;
  heads: number;
  sectors: number;
  sectorSize: number;
  diskSize: number;
  blockSize: number;
  blockExtra: number;
  blocksInImage: number;
  blocksAllocated: number;
  uuidImage: string;
  uuidLastSnap: string;
  uuidLink: string;
  uuidParent: string;
}

const O = {
  signature: 0x40, version: 0x44, headerSize: 0x48, imageType: 0x4c, imageFlags: 0x50, description: 0x54,
  offsetBmap: 0x154, offsetData: 0x158, cylinders: 0x15c, heads: 0x160, sectors: 0x164, sectorSize: 0x168,
  diskSize: 0x170, blockSize: 0x178, blockExtra: 0x17c, blocksInImage: 0x180, blocksAllocated: 0x184,
  uuidImage: 0x188, uuidLastSnap: 0x198, uuidLink: 0x1a8, uuidParent: 0x1b8,
} as const;

/** Text up to its first NUL (the fields are NUL-padded C strings). */
function cString(b: Buffer, start: number, length: number): string {
  const field = b.subarray(start, start + length);
  const nul = field.indexOf(0);
  return field.toString('latin1', 0, nul < 0 ? length : nul);
}

export function hasVdiSignature(head: Buffer): boolean {
  return head.length >= O.signature + 4 && head.readUInt32LE(O.signature) === VDI_SIGNATURE;
}

export function parseVdiHeader(b: Buffer): VdiHeader {
  return {
    text: cString(b, 0, 0x40),
    signature: b.readUInt32LE(O.signature),
    version: b.readUInt32LE(O.version),
    headerSize: b.readUInt32LE(O.headerSize),
    imageType: b.readUInt32LE(O.imageType),
    imageFlags: b.readUInt32LE(O.imageFlags),
    description: cString(b, O.description, 256),
    offsetBmap: b.readUInt32LE(O.offsetBmap),
    offsetData: b.readUInt32LE(O.offsetData),
    cylinders: b.readUInt32LE(O.cylinders),
    heads: b.readUInt32LE(O.heads),
    sectors: b.readUInt32LE(O.sectors),
    sectorSize: b.readUInt32LE(O.sectorSize),
    // Up to 2^64: compared against MAX_DISK_SIZE (safe) before it is used as a size.
    diskSize: Number(b.readBigUInt64LE(O.diskSize)),
    blockSize: b.readUInt32LE(O.blockSize),
    blockExtra: b.readUInt32LE(O.blockExtra),
    blocksInImage: b.readUInt32LE(O.blocksInImage),
    blocksAllocated: b.readUInt32LE(O.blocksAllocated),
    uuidImage: readGuid(b, O.uuidImage),
    uuidLastSnap: readGuid(b, O.uuidLastSnap),
    uuidLink: readGuid(b, O.uuidLink),
    uuidParent: readGuid(b, O.uuidParent),
  };
}

export function serializeVdiHeader(h: VdiHeader): Buffer {
  const b = Buffer.alloc(HEADER_SECTOR);
  b.write(h.text, 0, 0x3f, 'latin1');
  b.writeUInt32LE(h.signature, O.signature);
  b.writeUInt32LE(h.version, O.version);
  b.writeUInt32LE(h.headerSize, O.headerSize);
  b.writeUInt32LE(h.imageType, O.imageType);
  b.writeUInt32LE(h.imageFlags, O.imageFlags);
  b.write(h.description, O.description, 255, 'latin1');
  b.writeUInt32LE(h.offsetBmap, O.offsetBmap);
  b.writeUInt32LE(h.offsetData, O.offsetData);
  b.writeUInt32LE(h.cylinders, O.cylinders);
  b.writeUInt32LE(h.heads, O.heads);
  b.writeUInt32LE(h.sectors, O.sectors);
  b.writeUInt32LE(h.sectorSize, O.sectorSize);
  b.writeBigUInt64LE(BigInt(h.diskSize), O.diskSize);
  b.writeUInt32LE(h.blockSize, O.blockSize);
  b.writeUInt32LE(h.blockExtra, O.blockExtra);
  b.writeUInt32LE(h.blocksInImage, O.blocksInImage);
  b.writeUInt32LE(h.blocksAllocated, O.blocksAllocated);
  writeGuid(b, O.uuidImage, h.uuidImage);
  writeGuid(b, O.uuidLastSnap, h.uuidLastSnap);
  writeGuid(b, O.uuidLink, h.uuidLink);
  writeGuid(b, O.uuidParent, h.uuidParent);
  return b;
}

/** Where the header's block map entry count field sits: a commit rewrites only the first sector. */
export const BLOCKS_ALLOCATED_OFFSET = O.blocksAllocated;

/** What the header says, checked: the sizes every read and write relies on. */
export interface VdiGeometry {
  /** disk_size rounded up to whole sectors, as QEMU does ('VBoxManage convertfromraw' writes odd sizes). */
  virtualSize: number;
  blockSize: number;
  blocks: number;
  offsetBmap: number;
  offsetData: number;
  isStatic: boolean;
}

/**
 * Checks the header against itself and the file before anything is read through it: a block map that
 * does not fit in the file is refused, so no size a header claims is ever allocated.
 */
export function validateVdiHeader(path: string, h: VdiHeader, fileSize: number): VdiGeometry {
  const refuse = (what: string) => unsupported(path, `unsupported VDI image (${what})`);
  if (h.signature !== VDI_SIGNATURE) throw corrupt(path, `not a VDI image (bad signature ${h.signature.toString(16).padStart(8, '0')} in the header)`);
  if (h.version !== VDI_VERSION_1_1) throw refuse(`header version ${h.version >>> 16}.${h.version & 0xffff}, vdisk reads 1.1`);
  if (h.imageType === TYPE_DIFF || h.imageType === TYPE_UNDO || h.uuidParent !== ZERO_GUID || h.uuidLink !== ZERO_GUID) {
    throw unsupported(path, 'differencing VDI images (snapshots) are not supported yet');
  }
  if (h.imageType !== TYPE_DYNAMIC && h.imageType !== TYPE_STATIC) throw corrupt(path, `VDI header has unknown image type ${h.imageType}`);
  if (h.sectorSize !== SECTOR_SIZE) throw refuse(`sector size ${h.sectorSize} is not 512`);
  if (!isPowerOfTwo(h.blockSize) || h.blockSize < MIN_BLOCK_SIZE || h.blockSize > MAX_BLOCK_SIZE) {
    throw refuse(`block size ${h.blockSize} is not a power of two from 512 to 256 MiB`);
  }
  if (h.blockExtra !== 0) throw refuse(`${h.blockExtra} extra bytes per block`);
  if (h.offsetBmap % SECTOR_SIZE !== 0) throw refuse(`unaligned block map offset ${h.offsetBmap}`);
  if (h.offsetData % SECTOR_SIZE !== 0) throw refuse(`unaligned data offset ${h.offsetData}`);
  if (h.blocksInImage > MAX_BLOCKS) throw refuse(`too many blocks ${h.blocksInImage}, max is ${MAX_BLOCKS}`);
  if (h.diskSize > MAX_DISK_SIZE) throw refuse(`disk size ${h.diskSize} is over the VDI maximum of ${MAX_DISK_SIZE}`);
  const virtualSize = roundUp(h.diskSize, SECTOR_SIZE);
  if (virtualSize > h.blocksInImage * h.blockSize) {
    throw corrupt(path, `VDI header: disk size ${h.diskSize} is larger than its ${h.blocksInImage} blocks of ${h.blockSize} bytes`);
  }
  const bmapEnd = h.offsetBmap + h.blocksInImage * 4;
  if (h.blocksInImage > 0) {
    if (h.offsetBmap < HEADER_SECTOR) throw corrupt(path, `VDI block map at offset ${h.offsetBmap} overlaps the header`);
    if (bmapEnd > fileSize) {
      throw new VdiskError('TRUNCATED', `${path}: file ends at ${fileSize} bytes, inside the VDI block map (bytes ${h.offsetBmap}..${bmapEnd})`);
    }
    if (h.offsetData < bmapEnd) throw corrupt(path, `VDI data offset ${h.offsetData} lies inside the block map (bytes ${h.offsetBmap}..${bmapEnd})`);
  }
  return {
    virtualSize,
    blockSize: h.blockSize,
    blocks: h.blocksInImage,
    offsetBmap: h.offsetBmap,
    offsetData: h.offsetData,
    isStatic: h.imageType === TYPE_STATIC,
  };
}
