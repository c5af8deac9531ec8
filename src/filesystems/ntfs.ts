import type { Detector, FsInfo, VolumeReader } from './types.js';

const VOLUME_RECORD = 3; // $Volume
const ATTR_VOLUME_NAME = 0x60;

/**
 * NTFS, 512 to 4096-byte sectors: UUID is the volume serial as 16 hex digits, LABEL the $VOLUME_NAME
 * attribute of the $Volume MFT record (read with its update-sequence fixups applied).
 */
export const ntfs: Detector = {
  name: 'ntfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const b = await v.read(0, 512);
    if (b.toString('latin1', 3, 11) !== 'NTFS    ') return null;
    const bps = b.readUInt16LE(11);
    if (![256, 512, 1024, 2048, 4096].includes(bps)) return null;
    const spcRaw = b[13];
    const spc = spcRaw > 0x80 ? 2 ** (256 - spcRaw) : spcRaw;
    if (spc === 0 || (spc & (spc - 1)) !== 0) return null;
    const cluster = bps * spc;
    const mftCluster = Number(b.readBigUInt64LE(48));
    const rec = b.readInt8(64);
    const recordSize = rec < 0 ? 2 ** -rec : rec * cluster;
    if (recordSize < 256 || recordSize > 65536) return null;
    const info: FsInfo = {
      filesystem: 'ntfs',
      uuid: b.readBigUInt64LE(72).toString(16).toUpperCase().padStart(16, '0'),
      size: Number(b.readBigUInt64LE(40)) * bps,
    };
    const mft = mftCluster * cluster;
    if (!Number.isSafeInteger(mft) || mft >= v.size) return info;
    const r = await v.read(mft + VOLUME_RECORD * recordSize, recordSize);
    if (r.toString('latin1', 0, 4) !== 'FILE') return info;
    // Update sequence: the last two bytes of every sector were moved to the array and must go back.
    const usaOffset = r.readUInt16LE(4);
    const usaCount = r.readUInt16LE(6);
    const stride = Math.min(bps, 512) === 256 ? 256 : 512;
    if (usaOffset + usaCount * 2 > recordSize) return info;
    for (let i = 1; i < usaCount; i++) {
      const end = i * stride - 2;
      if (end + 2 > recordSize) break;
      r.writeUInt16LE(r.readUInt16LE(usaOffset + i * 2), end);
    }
    let at = r.readUInt16LE(20);
    for (let n = 0; n < 64 && at + 24 <= recordSize; n++) {
      const type = r.readUInt32LE(at);
      if (type === 0xffffffff) break;
      const len = r.readUInt32LE(at + 4);
      if (len < 24 || at + len > recordSize) break;
      if (type === ATTR_VOLUME_NAME && r[at + 8] === 0) {
        const valueLen = r.readUInt32LE(at + 16);
        const valueAt = at + r.readUInt16LE(at + 20);
        if (valueAt + valueLen <= at + len && valueLen > 0) info.label = r.toString('utf16le', valueAt, valueAt + valueLen);
        break;
      }
      at += len;
    }
    return info;
  },
};
