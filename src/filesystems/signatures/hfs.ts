import { createHash } from 'node:crypto';
import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

// MD5 name space blkid (and Apple's tools) hash the 64-bit Finder volume id into, for a version 3 UUID.
const HASH_INIT = Buffer.from('b3e20f39f29211d697a4003065 43ecac'.replace(/ /g, ''), 'hex');

/** The UUID blkid derives from the 8-byte volume id in the Finder info; none when the id is zero. */
function hfsUuid(id: Buffer): string | undefined {
  if (id.every((b) => b === 0)) return undefined;
  const md5 = createHash('md5').update(HASH_INIT).update(id).digest();
  md5[6] = 0x30 | (md5[6] & 0x0f);
  md5[8] = 0x80 | (md5[8] & 0x3f);
  return uuidFromBytes(md5);
}

/** HFS (the Master Directory Block "BD" at 1 KiB): label in Pascal form, UUID from the Finder info. */
export const hfs: Detector = {
  name: 'hfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const m = await v.read(1024, 162);
    if (m.toString('latin1', 0, 2) !== 'BD') return null;
    // A wrapper around an embedded HFS+ volume is HFS+, not HFS.
    const embedded = m.toString('latin1', 124, 126);
    if (embedded === 'H+' || embedded === 'HX') return null;
    const info: FsInfo = { filesystem: 'hfs' };
    const len = Math.min(m[36], 27);
    const label = trimLabel(m.toString('latin1', 37, 37 + len));
    if (label) info.label = label;
    const uuid = hfsUuid(m.subarray(116, 124));
    if (uuid) info.uuid = uuid;
    return info;
  },
};

const LEAF = 0xff;
const ROOT_PARENT = 1;

/**
 * HFS+ and HFSX, also inside an HFS wrapper. The UUID comes from the Finder info; the label is the name
 * of the root folder, read as blkid reads it: the first record of the catalog B-tree's first leaf node.
 */
export const hfsplus: Detector = {
  name: 'hfsplus',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    let off = 0;
    const mdb = await v.read(1024, 162);
    if (mdb.toString('latin1', 0, 2) === 'BD') {
      const embedded = mdb.toString('latin1', 124, 126);
      if (embedded !== 'H+' && embedded !== 'HX') return null;
      off = mdb.readUInt16BE(28) * 512 + mdb.readUInt16BE(126) * mdb.readUInt32BE(20);
    }
    const h = await v.read(off + 1024, 512);
    const sig = h.toString('latin1', 0, 2);
    if (sig !== 'H+' && sig !== 'HX') return null;
    const blockSize = h.readUInt32BE(40);
    const info: FsInfo = { filesystem: 'hfsplus', size: blockSize * h.readUInt32BE(44) };
    const uuid = hfsUuid(h.subarray(104, 112));
    if (uuid) info.uuid = uuid;
    if (blockSize < 512) return null;
    const label = await rootName(v, off, blockSize, h.subarray(272 + 16, 272 + 80));
    if (label) info.label = label;
    return info;
  },
};

/** The root folder's name from the catalog file (its extents given), or undefined where it cannot be read. */
async function rootName(v: VolumeReader, off: number, blockSize: number, extents: Buffer): Promise<string | undefined> {
  const catBlock = extents.readUInt32BE(0);
  const header = await v.read(off + catBlock * blockSize, 64);
  const leafHead = header.readUInt32BE(24);
  const nodeSize = header.readUInt16BE(32);
  const leafCount = header.readUInt32BE(20);
  if (nodeSize < 14 + 516 || leafCount === 0) return undefined;
  let leafBlock = Math.floor((leafHead * nodeSize) / blockSize);
  let start = -1;
  for (let e = 0; e < 8; e++) {
    const first = extents.readUInt32BE(e * 8);
    const count = extents.readUInt32BE(e * 8 + 4);
    if (count === 0) return undefined;
    if (leafBlock < count) {
      start = first;
      break;
    }
    leafBlock -= count;
  }
  if (start < 0) return undefined;
  const node = await v.read(off + (start + leafBlock) * blockSize, Math.min(nodeSize, 14 + 8 + 512));
  if (node.readUInt16BE(10) === 0 || node[8] !== LEAF) return undefined;
  if (node.readUInt32BE(16) !== ROOT_PARENT) return undefined;
  const len = node.readUInt16BE(20);
  if (len > 255) return undefined;
  const name = node.subarray(22, 22 + len * 2);
  // UTF-16 big-endian, as HFS+ stores names.
  const swapped = Buffer.from(name);
  swapped.swap16();
  return trimLabel(swapped.toString('utf16le')) ?? undefined;
}
