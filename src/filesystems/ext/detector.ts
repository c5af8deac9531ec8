import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';
import { COMPAT, INCOMPAT, parseSuperblock, SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE, type Superblock } from './superblock.js';

// What ext2 and ext3 know; anything beyond makes the file system ext4, as blkid decides.
const EXT2_RO_COMPAT = 0x1 | 0x2 | 0x4;
const EXT2_INCOMPAT = 0x2 | 0x10;
const EXT3_INCOMPAT = 0x2 | 0x4 | 0x10;

/** The blkid TYPE of a superblock: ext2, ext3, ext4, or jbd (an external journal). */
export function extType(sb: Superblock): 'ext2' | 'ext3' | 'ext4' | 'jbd' {
  const { featureCompat: compat, featureIncompat: incompat, featureRoCompat: roCompat } = sb;
  if (incompat & INCOMPAT.JOURNAL_DEV) return 'jbd';
  if (!(compat & COMPAT.HAS_JOURNAL) && !(roCompat & ~EXT2_RO_COMPAT) && !(incompat & ~EXT2_INCOMPAT)) return 'ext2';
  if (compat & COMPAT.HAS_JOURNAL && !(roCompat & ~EXT2_RO_COMPAT) && !(incompat & ~EXT3_INCOMPAT)) return 'ext3';
  return 'ext4';
}

/** ext2, ext3, ext4 (and jbd, an external journal), told apart by the journal and feature flags. */
export const ext: Detector = {
  name: 'ext',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sb = parseSuperblock(await v.read(SUPERBLOCK_OFFSET, SUPERBLOCK_SIZE));
    if (!sb || sb.logBlockSize > 6) return null;
    const info: FsInfo = {
      filesystem: extType(sb),
      version: `${sb.revLevel}.${sb.minorRevLevel}`,
      uuid: uuidFromBytes(sb.uuid),
      size: sb.blocksCount * (1024 << sb.logBlockSize),
    };
    const label = trimLabel(sb.raw.toString('utf8', 120, 136).split('\0')[0]);
    if (label) info.label = label;
    // An external journal names the file system it serves by its own UUID, which blkid shows as LOGUUID too.
    if (info.filesystem === 'jbd' && info.uuid) info.logUuid = info.uuid;
    return info;
  },
};
