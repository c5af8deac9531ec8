import { uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** A UBI image (raw flash with UBI's erase-counter headers): VERSION, and the image sequence as UUID. */
export const ubi: Detector = {
  name: 'ubi',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 28);
    if (h.toString('latin1', 0, 4) !== 'UBI#') return null;
    return { filesystem: 'ubi', version: String(h[4]), uuid: String(h.readUInt32BE(24)) };
  },
};

/** UBIFS (a file system on a UBI volume): its superblock node at 0; VERSION as blkid spells it, w<format>r<ro-compat>. */
export const ubifs: Detector = {
  name: 'ubifs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 128);
    if (s.readUInt32LE(0) !== 0x06101831) return null;
    const info: FsInfo = { filesystem: 'ubifs', version: `w${s.readInt32LE(80)}r${s.readInt32LE(124)}` };
    const uuid = uuidFromBytes(s.subarray(108, 124));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
