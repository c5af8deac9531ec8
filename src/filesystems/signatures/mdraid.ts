import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const MAGIC = 0xa92b4efc;
const RESERVED = 0x10000;

/**
 * A 0.90 superblock: in the last 64 KiB-aligned 64 KiB of the device, in either byte order. Its UUID is
 * four 32-bit words (only the first before minor version 90), shown as big-endian bytes as blkid does;
 * the array must fit before it.
 */
async function md090(v: VolumeReader): Promise<FsInfo | null> {
  const off = Math.floor(v.size / RESERVED) * RESERVED - RESERVED;
  if (off < 0) return null;
  const s = await v.read(off, 64);
  let le: boolean;
  if (s.readUInt32LE(0) === MAGIC) le = true;
  else if (s.readUInt32BE(0) === MAGIC) le = false;
  else return null;
  const u32 = (o: number) => (le ? s.readUInt32LE(o) : s.readUInt32BE(o));
  const [major, minor, patch] = [u32(4), u32(8), u32(12)];
  const size = u32(32) * 1024;
  if (v.size < size + RESERVED || off < size) return null;
  const uuid = Buffer.alloc(16);
  uuid.writeUInt32BE(u32(20), 0);
  if (minor >= 90) [52, 56, 60].forEach((o, i) => uuid.writeUInt32BE(u32(o), 4 + 4 * i));
  const info: FsInfo = { filesystem: 'linux_raid_member', version: `${major}.${minor}.${patch}` };
  const id = uuidFromBytes(uuid);
  if (id) info.uuid = id;
  return info;
}

/** A 1.x superblock at `off`: version 1, and its own recorded position must be where it was found. */
async function md1(v: VolumeReader, off: number): Promise<FsInfo | null> {
  const s = await v.read(off, 256);
  if (s.readUInt32LE(0) !== MAGIC || s.readUInt32LE(4) !== 1) return null;
  if (s.readBigUInt64LE(144) !== BigInt(Math.floor(off / 512))) return null;
  const info: FsInfo = { filesystem: 'linux_raid_member' };
  const id = uuidFromBytes(s.subarray(16, 32));
  if (id) info.uuid = id;
  const label = trimLabel(s.toString('utf8', 32, 64).split('\0')[0]);
  if (label) info.label = label;
  return info;
}

/** Linux MD RAID members: 0.90 and 1.0 at the end, 1.1 at the start, 1.2 at 4 KiB; VERSION says which. */
export const mdraid: Detector = {
  name: 'linux_raid_member',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size > RESERVED) {
      const old = await md090(v);
      if (old) return old;
      const end = await md1(v, Math.floor(v.size / 0x1000) * 0x1000 - 0x2000);
      if (end) return { ...end, version: '1.0' };
    }
    const start = await md1(v, 0);
    if (start) return { ...start, version: '1.1' };
    const at4k = await md1(v, 0x1000);
    return at4k ? { ...at4k, version: '1.2' } : null;
  },
};
