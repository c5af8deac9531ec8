import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from './types.js';

/** XFS: big-endian superblock at 0; UUID and the 12-byte label. */
export const xfs: Detector = {
  name: 'xfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 512);
    if (s.toString('latin1', 0, 4) !== 'XFSB') return null;
    const blockSize = s.readUInt32BE(4);
    if (blockSize < 512 || blockSize > 65536) return null;
    const info: FsInfo = { filesystem: 'xfs', uuid: uuidFromBytes(s.subarray(32, 48)), size: Number(s.readBigUInt64BE(8)) * blockSize };
    const label = trimLabel(s.toString('utf8', 108, 120).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};

/** Btrfs: superblock at 64 KiB; fsid as UUID, label of up to 256 bytes. */
export const btrfs: Detector = {
  name: 'btrfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(65536, 4096);
    if (s.toString('latin1', 64, 72) !== '_BHRfS_M') return null;
    const info: FsInfo = { filesystem: 'btrfs', uuid: uuidFromBytes(s.subarray(32, 48)), size: Number(s.readBigUInt64LE(112)) };
    const label = trimLabel(s.toString('utf8', 299, 299 + 256).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};

/** Linux swap, version 1 (SWAPSPACE2) or 0 (SWAP-SPACE), with any page size Linux uses. */
export const swap: Detector = {
  name: 'swap',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    for (const page of [4096, 8192, 16384, 65536]) {
      const sig = (await v.read(page - 10, 10)).toString('latin1');
      if (sig === 'SWAP-SPACE') return { filesystem: 'swap', version: '0' };
      if (sig !== 'SWAPSPACE2') continue;
      const h = await v.read(1024, 44);
      const info: FsInfo = { filesystem: 'swap', version: String(h.readUInt32LE(0)), uuid: uuidFromBytes(h.subarray(12, 28)), size: (h.readUInt32LE(4) + 1) * page };
      const label = trimLabel(h.toString('utf8', 28, 44).split('\0')[0]);
      if (label) info.label = label;
      return info;
    }
    return null;
  },
};

/** F2FS: superblock at 1 KiB; VERSION major.minor, UUID, UTF-16 label. */
export const f2fs: Detector = {
  name: 'f2fs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(1024, 1024);
    if (s.readUInt32LE(0) !== 0xf2f52010) return null;
    const logBlock = s.readUInt32LE(16);
    const info: FsInfo = {
      filesystem: 'f2fs',
      version: `${s.readUInt16LE(4)}.${s.readUInt16LE(6)}`,
      uuid: uuidFromBytes(s.subarray(108, 124)),
      size: logBlock < 20 ? Number(s.readBigUInt64LE(36)) * 2 ** logBlock : undefined,
    };
    if (info.size === undefined) delete info.size;
    const label = trimLabel(s.toString('utf16le', 124, 124 + 1024 - 124).split('\0')[0]);
    if (label) info.label = label;
    return info;
  },
};

/** SquashFS 4: VERSION from the superblock; no label or UUID. */
export const squashfs: Detector = {
  name: 'squashfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 96);
    if (s.toString('latin1', 0, 4) !== 'hsqs') return null;
    const major = s.readUInt16LE(28);
    if (major < 4) return { filesystem: 'squashfs3', version: `${major}.${s.readUInt16LE(30)}` };
    return { filesystem: 'squashfs', version: `${major}.${s.readUInt16LE(30)}`, size: Number(s.readBigUInt64LE(40)) };
  },
};
