import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from './types.js';

const HAS_JOURNAL = 0x4;
const INCOMPAT_JOURNAL_DEV = 0x8;
// What ext2 and ext3 know; anything beyond makes the file system ext4, as blkid decides.
const EXT2_RO_COMPAT = 0x1 | 0x2 | 0x4;
const EXT2_INCOMPAT = 0x2 | 0x10;
const EXT3_INCOMPAT = 0x2 | 0x4 | 0x10;

/** ext2, ext3, ext4 (and jbd, an external journal), told apart by the journal and feature flags. */
export const ext: Detector = {
  name: 'ext',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(1024, 1024);
    if (s.readUInt16LE(56) !== 0xef53) return null;
    const logBlock = s.readUInt32LE(24);
    if (logBlock > 6) return null;
    const blockSize = 1024 << logBlock;
    const compat = s.readUInt32LE(92);
    const incompat = s.readUInt32LE(96);
    const roCompat = s.readUInt32LE(100);
    let type: string;
    if (incompat & INCOMPAT_JOURNAL_DEV) type = 'jbd';
    else if (!(compat & HAS_JOURNAL) && !(roCompat & ~EXT2_RO_COMPAT) && !(incompat & ~EXT2_INCOMPAT)) type = 'ext2';
    else if (compat & HAS_JOURNAL && !(roCompat & ~EXT2_RO_COMPAT) && !(incompat & ~EXT3_INCOMPAT)) type = 'ext3';
    else type = 'ext4';
    const blocksLo = s.readUInt32LE(4);
    const blocksHi = incompat & 0x80 ? s.readUInt32LE(0x150) : 0;
    const info: FsInfo = {
      filesystem: type,
      version: `${s.readUInt32LE(76)}.${s.readUInt16LE(62)}`,
      uuid: uuidFromBytes(s.subarray(104, 120)),
      size: (blocksLo + blocksHi * 2 ** 32) * blockSize,
    };
    const label = trimLabel(s.toString('utf8', 120, 136).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};
