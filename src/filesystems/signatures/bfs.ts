import type { Detector, FsInfo, VolumeReader } from '../types.js';

/** SCO's Boot File System (UnixWare's /stand): magic 0x1BADFACE at 0; blkid reports the type alone. */
export const bfs: Detector = {
  name: 'bfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 4);
    return s.readUInt32LE(0) === 0x1badface ? { filesystem: 'bfs' } : null;
  },
};
