import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** cramfs: magic 0x28CD3D45 at 0 in either byte order; the 16-byte name at 48 is the label. */
export const cramfs: Detector = {
  name: 'cramfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 64);
    if (s.readUInt32LE(0) !== 0x28cd3d45 && s.readUInt32BE(0) !== 0x28cd3d45) return null;
    const info: FsInfo = { filesystem: 'cramfs' };
    const label = trimLabel(s.toString('utf8', 48, 64).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};
