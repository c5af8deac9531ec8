import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from './types.js';

/** LVM's label checksum: CRC-32 (reflected, 0xEDB88320) from 0xF597A6CF, without the final inversion. */
export function lvmCrc(b: Buffer): number {
  let crc = 0xf597a6cf;
  for (const byte of b) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return crc >>> 0;
}

/**
 * LVM2 physical volume: LABELONE in one of the first four sectors, its CRC right, UUID in LVM's
 * 6-4-4-4-4-4-6 form.
 */
export const lvm2: Detector = {
  name: 'LVM2_member',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const head = await v.read(0, 2048);
    for (let s = 0; s < 4; s++) {
      const o = s * 512;
      if (head.toString('latin1', o, o + 8) !== 'LABELONE' || head.toString('latin1', o + 24, o + 32) !== 'LVM2 001') continue;
      if (lvmCrc(head.subarray(o + 20, o + 512)) !== head.readUInt32LE(o + 16)) continue;
      const pvAt = o + head.readUInt32LE(o + 20);
      if (pvAt + 32 > head.length) return null;
      const id = head.toString('latin1', pvAt, pvAt + 32);
      if (!/^[0-9A-Za-z!#]{32}$/.test(id)) return null;
      const parts = [6, 4, 4, 4, 4, 4, 6];
      let at = 0;
      const uuid = parts.map((n) => id.slice(at, (at += n))).join('-');
      return { filesystem: 'LVM2_member', version: 'LVM2 001', uuid };
    }
    return null;
  },
};

/** LUKS 1 and 2: VERSION, UUID (stored as text), and LUKS2's label. */
export const luks: Detector = {
  name: 'crypto_LUKS',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 512);
    const magic = h.subarray(0, 6);
    if (!magic.equals(Buffer.from('LUKS\xba\xbe', 'latin1')) && !magic.equals(Buffer.from('SKUL\xba\xbe', 'latin1'))) return null;
    const version = h.readUInt16BE(6);
    const info: FsInfo = { filesystem: 'crypto_LUKS', version: String(version) };
    const uuid = trimLabel(h.toString('latin1', 168, 208).split('\0')[0]);
    if (uuid) info.uuid = uuid;
    if (version === 2) {
      const label = trimLabel(h.toString('utf8', 24, 72).split('\0')[0]);
      if (label) info.label = label;
    }
    return info;
  },
};

/** APFS container superblock: NXSB, with the container UUID. */
export const apfs: Detector = {
  name: 'apfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 128);
    if (h.toString('latin1', 32, 36) !== 'NXSB') return null;
    return { filesystem: 'apfs', uuid: uuidFromBytes(h.subarray(72, 88)) };
  },
};

/** ReFS and BitLocker announce themselves in the OEM field of the boot sector. */
export const refs: Detector = {
  name: 'ReFS',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 32);
    if (!h.subarray(3, 11).equals(Buffer.from('ReFS\0\0\0\0', 'latin1')) || h.toString('latin1', 16, 20) !== 'FSRS') return null;
    return { filesystem: 'ReFS' };
  },
};

