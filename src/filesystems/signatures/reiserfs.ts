import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/**
 * ReiserFS 3: the superblock at 64 KiB (3.5 also at 8 KiB), magic at 0x34. Only 3.6 and the journal-
 * relocation variant (JR) carry a UUID and label (offsets 84 and 100); blkid rejects a superblock found
 * inside the journal, which is how a 3.5 copy lingering in an old journal is told from the real one.
 */
export const reiserfs: Detector = {
  name: 'reiserfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 128 * 1024) return null;
    for (const [kb, at, magic] of [[8, 0x34, 'ReIsErFs'], [64, 0x34, 'ReIsEr2Fs'], [64, 0x34, 'ReIsEr3Fs'], [64, 0x34, 'ReIsErFs'], [8, 20, 'ReIsErFs']] as const) {
      const s = await v.read(kb * 1024, 128);
      if (s.toString('latin1', at, at + magic.length) !== magic) continue;
      const blockSize = s.readUInt16LE(44);
      if (blockSize >> 9 === 0) continue;
      if (Math.floor(kb / (blockSize >> 9)) > Math.floor(s.readUInt32LE(12) / 2)) continue;
      const info: FsInfo = { filesystem: 'reiserfs', version: magic === 'ReIsEr3Fs' ? 'JR' : magic === 'ReIsEr2Fs' ? '3.6' : '3.5' };
      if (magic !== 'ReIsErFs') {
        const label = s[100] !== 0 ? trimLabel(s.toString('utf8', 100, 116).split('\0')[0]) : undefined;
        if (label) info.label = label;
        const uuid = uuidFromBytes(s.subarray(84, 100));
        if (uuid) info.uuid = uuid;
      }
      info.size = s.readUInt32LE(0) * blockSize;
      return info;
    }
    return null;
  },
};

/** Reiser4: magic at 64 KiB, UUID at 20, label at 36. */
export const reiser4: Detector = {
  name: 'reiser4',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 128 * 1024) return null;
    const s = await v.read(64 * 1024, 64);
    if (s.toString('latin1', 0, 7) !== 'ReIsEr4') return null;
    const info: FsInfo = { filesystem: 'reiser4', version: '4' };
    const label = s[36] !== 0 ? trimLabel(s.toString('utf8', 36, 52).split('\0')[0]) : undefined;
    if (label) info.label = label;
    const uuid = uuidFromBytes(s.subarray(20, 36));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
