import { crc32, crc32c } from '../../util/crc.js';
import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** VDO (Linux's deduplicating layer): "dmvdo001" at 0 and its UUID at 40. */
export const vdo: Detector = {
  name: 'vdo',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 56);
    if (s.toString('latin1', 0, 8) !== 'dmvdo001') return null;
    const info: FsInfo = { filesystem: 'vdo' };
    const uuid = uuidFromBytes(s.subarray(40, 56));
    if (uuid) info.uuid = uuid;
    return info;
  },
};

const STRATIS_MAGIC = Buffer.from('!Stra0tis\x86\xff\x02^\x41rh', 'latin1');

/**
 * A Stratis block device: a 512-byte superblock at sector 1, or its copy at sector 9, whose CRC-32C must
 * hold; the UUID is the device's, stored as 32 hex digits and shown with hyphens.
 */
export const stratis: Detector = {
  name: 'stratis',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 8192) return null;
    for (const at of [512, 512 * 9]) {
      const sb = await v.read(at, 512);
      if (!sb.subarray(4, 20).equals(STRATIS_MAGIC)) continue;
      if (crc32c(sb.subarray(4), 0) !== sb.readUInt32LE(0)) continue;
      const id = sb.toString('latin1', 64, 96);
      return { filesystem: 'stratis', uuid: `${id.slice(0, 8)}-${id.slice(8, 12)}-${id.slice(12, 16)}-${id.slice(16, 20)}-${id.slice(20)}` };
    }
    return null;
  },
};

/**
 * Ceph BlueStore's block device label: its magic at 0. (util-linux 2.39 and later also print the label's
 * version; the blkid this is held against, 2.38, prints the type alone, and so does this.)
 */
export const bluestore: Detector = {
  name: 'ceph_bluestore',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 22);
    return s.toString('latin1', 0, 22) === 'bluestore block device' ? { filesystem: 'ceph_bluestore' } : null;
  },
};

/** zonefs: the 4 KiB superblock at 0 ("SFOZ"), its CRC-32 (stored without the final inversion), label, UUID. */
export const zonefs: Detector = {
  name: 'zonefs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sb = await v.read(0, 4096);
    if (sb.toString('latin1', 0, 4) !== 'SFOZ') return null;
    const stored = sb.readUInt32LE(4);
    sb.writeUInt32LE(0, 4);
    if (((~crc32(sb, 0)) >>> 0) !== stored) return null;
    const info: FsInfo = { filesystem: 'zonefs' };
    const label = sb[8] !== 0 ? trimLabel(sb.toString('utf8', 8, 40).split('\0')[0]) : undefined;
    if (label) info.label = label;
    const uuid = uuidFromBytes(sb.subarray(40, 56));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
