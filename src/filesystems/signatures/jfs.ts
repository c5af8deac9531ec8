import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/**
 * JFS: superblock at 32 KiB ("JFS1"); accepted only when the block sizes agree with their log2 fields,
 * as blkid checks. UUID at 0x88, label at 0x98.
 */
export const jfs: Detector = {
  name: 'jfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 16 * 1024 * 1024) return null;
    const s = await v.read(32 * 1024, 0xb8);
    if (s.toString('latin1', 0, 4) !== 'JFS1') return null;
    const bsize = s.readUInt32LE(16);
    const l2bsize = s.readUInt16LE(20);
    const l2bfactor = s.readUInt16LE(22);
    const pbsize = s.readUInt32LE(24);
    const l2pbsize = s.readUInt16LE(28);
    if (l2bsize > 31 || l2pbsize > 31 || bsize !== 2 ** l2bsize || pbsize !== 2 ** l2pbsize || l2bsize - l2pbsize !== l2bfactor) return null;
    const info: FsInfo = { filesystem: 'jfs', size: Number(s.readBigUInt64LE(8)) * pbsize };
    const uuid = uuidFromBytes(s.subarray(0x88, 0x98));
    if (uuid) info.uuid = uuid;
    const label = s[0x98] !== 0 ? trimLabel(s.toString('utf8', 0x98, 0xa8).split('\0')[0]) : undefined;
    if (label) info.label = label;
    return info;
  },
};
