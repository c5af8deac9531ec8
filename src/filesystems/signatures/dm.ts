import { uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/** dm-verity's hash device: "verity\0\0", superblock version 1, the hash device's UUID. */
export const verity: Detector = {
  name: 'DM_verity_hash',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 32);
    if (!s.subarray(0, 8).equals(Buffer.from('verity\0\0', 'latin1')) || s.readUInt32LE(8) !== 1) return null;
    const info: FsInfo = { filesystem: 'DM_verity_hash', version: '1' };
    const uuid = uuidFromBytes(s.subarray(16, 32));
    if (uuid) info.uuid = uuid;
    return info;
  },
};

/** dm-integrity: "integrt\0" and a non-zero superblock version. */
export const integrity: Detector = {
  name: 'DM_integrity',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 9);
    if (!s.subarray(0, 8).equals(Buffer.from('integrt\0', 'latin1')) || s[8] === 0) return null;
    return { filesystem: 'DM_integrity', version: String(s[8]) };
  },
};

/** A device-mapper snapshot's copy-on-write store: "SnAp" at 0, nothing more to say. */
export const snapshotCow: Detector = {
  name: 'DM_snapshot_cow',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    return (await v.read(0, 4)).toString('latin1') === 'SnAp' ? { filesystem: 'DM_snapshot_cow' } : null;
  },
};

/** LVM1 physical volume: "HM", version 1 or 2, its PV id in LVM's hyphenated form. */
export const lvm1: Detector = {
  name: 'LVM1_member',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 44 + 32);
    if (s.toString('latin1', 0, 2) !== 'HM') return null;
    const version = s.readUInt16LE(2);
    if (version !== 1 && version !== 2) return null;
    const id = s.toString('latin1', 44, 76).split('\0')[0];
    let at = 0;
    const uuid = [6, 4, 4, 4, 4, 4, 6].map((n) => id.slice(at, (at += n))).filter((p) => p !== '').join('-');
    return uuid ? { filesystem: 'LVM1_member', uuid } : { filesystem: 'LVM1_member' };
  },
};
