import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** romfs: "-rom1fs-" at 0, the volume name from 16 as the label. */
export const romfs: Detector = {
  name: 'romfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 32);
    if (s.toString('latin1', 0, 8) !== '-rom1fs-') return null;
    const info: FsInfo = { filesystem: 'romfs', size: s.readUInt32BE(8) };
    const label = s[16] !== 0 ? trimLabel(s.toString('utf8', 16, 32).split('\0')[0]) : undefined;
    if (label) info.label = label;
    return info;
  },
};
