import type { Detector, FsInfo, VolumeReader } from '../types.js';

const V1 = [0x137f, 0x138f];
const V2 = [0x2468, 0x2478];
const V3 = 0x4d5a;
const BLOCK = 1024;

/**
 * Minix 1, 2 and 3 at 1 KiB, in either byte order for 1 and 2 (3 only in the host's order, as blkid
 * reads it). A two-byte magic is weak, so the bitmaps must be large enough for the inodes and zones
 * they map, and an ext superblock's magic at the same place rules minix out (blkid's checks).
 */
export const minix: Detector = {
  name: 'minix',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(1024, 64);
    let version = 0;
    let swap = false;
    const le = s.readUInt16LE(16);
    const be = s.readUInt16BE(16);
    if (V1.includes(le)) version = 1;
    else if (V2.includes(le)) version = 2;
    else if (s.readUInt16LE(24) === V3) version = 3;
    else if (V1.includes(be)) [version, swap] = [1, true];
    else if (V2.includes(be)) [version, swap] = [2, true];
    if (!version) return null;
    const u16 = (o: number) => (swap ? s.readUInt16BE(o) : s.readUInt16LE(o));
    const u32 = (o: number) => (swap ? s.readUInt32BE(o) : s.readUInt32LE(o));
    if (version <= 2) {
      const imaps = u16(4);
      const zmaps = u16(6);
      if (imaps === 0 || zmaps === 0) return null;
      const zones = version === 2 ? u32(20) : u16(2);
      const ninodes = u16(0);
      const firstz = u16(8);
      if (imaps * BLOCK * 8 < ninodes + 1) return null;
      if (zmaps * BLOCK * 8 < zones - firstz + 1) return null;
    } else if (s.readUInt16LE(6) === 0 || s.readUInt16LE(8) === 0) {
      return null;
    }
    if ((await v.read(0x438, 2)).readUInt16LE(0) === 0xef53) return null;
    return { filesystem: 'minix', version: String(version) };
  },
};
