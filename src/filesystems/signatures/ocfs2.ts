import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/**
 * OCFS2: the superblock inode ("OCFSV2"), looked for at 1, 2, 4 and 8 KiB as blkid does. VERSION is the
 * major.minor revision (0xC0, 0xC2), the label at 0x110, the UUID at 0x150 of that block.
 */
export const ocfs2: Detector = {
  name: 'ocfs2',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    for (const kb of [1, 2, 4, 8]) {
      const s = await v.read(kb * 1024, 0x160);
      if (s.toString('latin1', 0, 6) !== 'OCFSV2') continue;
      const info: FsInfo = { filesystem: 'ocfs2', version: `${s.readUInt16LE(0xc0)}.${s.readUInt16LE(0xc2)}` };
      const label = trimLabel(s.toString('utf8', 0x110, 0x150).split('\0')[0]);
      if (label) info.label = label;
      const uuid = uuidFromBytes(s.subarray(0x150, 0x160));
      if (uuid) info.uuid = uuid;
      return info;
    }
    return null;
  },
};
