import type { Detector, FsInfo, VolumeReader } from '../types.js';

const MAGIC = 0xa501fcf5;

/** Veritas VxFS: little-endian superblock at 1 KiB (x86) or big-endian at 8 KiB (HP-UX); VERSION as stored. */
export const vxfs: Detector = {
  name: 'vxfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const le = await v.read(1024, 8);
    if (le.readUInt32LE(0) === MAGIC) return { filesystem: 'vxfs', version: String(le.readInt32LE(4) >>> 0) };
    const be = await v.read(8192, 8);
    if (be.readUInt32BE(0) === MAGIC) return { filesystem: 'vxfs', version: String(be.readInt32BE(4) >>> 0) };
    return null;
  },
};
