import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

// sb_fs_format and sb_multihost_format of GFS (1) and GFS2.
const GFS = [1309, 1401];
const GFS2 = [1801, 1900];
// gfs2-utils 3.3 and later write format 1802 (newer on-disk features); blkid names it gfs2 too.
const GFS2_NEWER = 1802;

function gfsProbe(type: 'gfs' | 'gfs2', formats: number[]): Detector['probe'] {
  return async (v: VolumeReader) => {
    if (v.size < 32 * 1024 * 1024) return null;
    const s = await v.read(64 * 1024, 0x110);
    if (s.readUInt32BE(0) !== 0x01161970) return null;
    const format = s.readUInt32BE(0x18);
    if (!(format === formats[0] || (type === 'gfs2' && format === GFS2_NEWER)) || s.readUInt32BE(0x1c) !== formats[1]) return null;
    const info: FsInfo = { filesystem: type };
    if (type === 'gfs2') info.version = '1';
    // The lock table ("cluster:fsname") is what blkid shows as the label.
    const label = s[0xa0] !== 0 ? trimLabel(s.toString('utf8', 0xa0, 0xe0).split('\0')[0]) : undefined;
    if (label) info.label = label;
    const uuid = uuidFromBytes(s.subarray(0x100, 0x110));
    if (uuid) info.uuid = uuid;
    return info;
  };
}

/** GFS and GFS2: big-endian superblock at 64 KiB, told apart by their format numbers. */
export const gfs: Detector = { name: 'gfs', probe: gfsProbe('gfs', GFS) };
export const gfs2: Detector = { name: 'gfs2', probe: gfsProbe('gfs2', GFS2) };
