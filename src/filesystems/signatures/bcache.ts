import { uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const MAGIC = Buffer.from('c68573f64e1a45ca8265f57f48ba6d81', 'hex');
const SB_SECTOR = 8;

/** bcache backing or cache device: superblock at 4 KiB, its 16-byte magic at 24, the device UUID at 40. */
export const bcache: Detector = {
  name: 'bcache',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(SB_SECTOR * 512, 72);
    if (!s.subarray(24, 40).equals(MAGIC)) return null;
    if (s.readBigUInt64LE(8) !== BigInt(SB_SECTOR)) return null;
    const info: FsInfo = { filesystem: 'bcache' };
    const uuid = uuidFromBytes(s.subarray(40, 56));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
