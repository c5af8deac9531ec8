import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** VMware's UUID spelling, as blkid prints it: the first two words byte-reversed, then as stored. */
function vmwareUuid(u: Buffer): string {
  const h = (i: number) => u[i].toString(16).padStart(2, '0');
  const seq = (ix: number[]) => ix.map(h).join('');
  return `${seq([3, 2, 1, 0])}-${seq([7, 6, 5, 4])}-${seq([9, 8])}-${seq([10, 11, 12, 13, 14, 15])}`;
}

/** VMFS file system: its header at 2 MiB; VERSION, UUID and a 128-byte label. */
export const vmfs: Detector = {
  name: 'VMFS',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(2048 * 1024, 160);
    if (s.readUInt32BE(0) !== 0x5ef1ab2f) return null;
    const info: FsInfo = { filesystem: 'VMFS', version: String(s[8]), uuid: vmwareUuid(s.subarray(9, 25)) };
    const label = trimLabel(s.toString('utf8', 29, 157).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};

/** A VMFS volume member (VMware's LVM): header at 1 MiB; the UUID is the LVM id stored as text. */
export const vmfsVolume: Detector = {
  name: 'VMFS_volume_member',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(1024 * 1024, 512 + 20 + 35);
    if (s.readUInt32BE(0) !== 0x0dd001c0) return null;
    const info: FsInfo = { filesystem: 'VMFS_volume_member', version: String(s.readUInt32LE(4)) };
    const uuid = trimLabel(s.toString('latin1', 532, 567).split('\0')[0]);
    if (uuid) info.uuid = uuid;
    return info;
  },
};
