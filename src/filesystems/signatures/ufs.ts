import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const UFS2 = 0x19540119;
const MAGICS = [UFS2, 0x00011954, 0x00195612, 0x00095014, 0x00612195, 0x05231994];
const MAGIC_AT = 1372;

/**
 * UFS 1 and 2 (BSD, Solaris, NeXT): the superblock at 0, 8, 64 or 256 KiB in either byte order, told by
 * fs_magic at 1372. UFS2 keeps a volume name at 680; fs_id's two words make blkid's 16-digit UUID.
 */
export const ufs: Detector = {
  name: 'ufs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    for (const kb of [0, 8, 64, 256]) {
      const s = await v.read(kb * 1024, MAGIC_AT + 4);
      const le = s.readUInt32LE(MAGIC_AT);
      const be = s.readUInt32BE(MAGIC_AT);
      const magic = MAGICS.find((m) => m === le || m === be);
      if (magic === undefined) continue;
      const big = be === magic;
      const u32 = (o: number) => (big ? s.readUInt32BE(o) : s.readUInt32LE(o));
      const info: FsInfo = { filesystem: 'ufs', version: magic === UFS2 ? '2' : '1' };
      if (magic === UFS2) {
        const label = trimLabel(s.toString('utf8', 680, 712).split('\0')[0]);
        if (label) info.label = label;
      }
      if (u32(144) || u32(148)) info.uuid = u32(144).toString(16).padStart(8, '0') + u32(148).toString(16).padStart(8, '0');
      return info;
    }
    return null;
  },
};
