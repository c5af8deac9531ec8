import { crc32c } from '../../util/crc.js';
import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const MAGIC = 0xe0f5e1e2;
const SB_AT = 1024;
const FEATURE_SB_CSUM = 1;

/**
 * EROFS: superblock at 1 KiB, blocks of at most 4 KiB; when the superblock says it is checksummed, the
 * CRC-32C over the rest of its block (checksum field as zero) must hold, as blkid requires.
 */
export const erofs: Detector = {
  name: 'erofs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(SB_AT, 128);
    if (s.readUInt32LE(0) !== MAGIC) return null;
    const bits = s[12];
    if (bits > 12) return null;
    if (s.readUInt32LE(8) & FEATURE_SB_CSUM) {
      if (2 ** bits <= SB_AT) return null;
      const block = await v.read(SB_AT, 2 ** bits - SB_AT);
      block.writeUInt32LE(0, 4);
      // crc32c here is the standard (inverted) CRC-32C; EROFS stores it without the final inversion.
      if (((~crc32c(block, 0)) >>> 0) !== s.readUInt32LE(4)) return null;
    }
    const info: FsInfo = { filesystem: 'erofs', size: 2 ** bits * s.readUInt32LE(0x24) };
    const label = s[0x40] !== 0 ? trimLabel(s.toString('utf8', 0x40, 0x50).split('\0')[0]) : undefined;
    if (label) info.label = label;
    const uuid = uuidFromBytes(s.subarray(0x30, 0x40));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
