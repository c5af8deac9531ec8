import type { Detector, FsInfo, VolumeReader } from '../types.js';

const DRBD_MAGIC = 0x83740267;
const MD_08 = DRBD_MAGIC + 4;
const MD_84_UNCLEAN = DRBD_MAGIC + 5;
const MD_09 = DRBD_MAGIC + 6;

/**
 * DRBD's internal metadata in the last 4 KiB: v08 (device UUID at 40) or v09 (at 48), magic at 60, all
 * big-endian; the 64-bit device UUID is shown in hex without padding, as blkid does.
 */
export const drbd: Detector = {
  name: 'drbd',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 0x10000) return null;
    const md = await v.read(v.size - 4096, 64);
    const magic = md.readUInt32BE(60);
    if (magic === MD_08 || magic === MD_84_UNCLEAN) return { filesystem: 'drbd', version: 'v08', uuid: md.readBigUInt64BE(40).toString(16) };
    if (magic === MD_09) return { filesystem: 'drbd', version: 'v09', uuid: md.readBigUInt64BE(48).toString(16) };
    return null;
  },
};
