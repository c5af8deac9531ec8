import { probeSuperblock } from './squashfs/superblock.js';
import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from './types.js';
import { parseSuperblock as parseXfsSuperblock } from './xfs/superblock.js';

/** XFS: big-endian superblock at 0 (parsed by the XFS reader's module); UUID and the 12-byte label. */
export const xfs: Detector = {
  name: 'xfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sb = parseXfsSuperblock(await v.read(0, 512));
    if (!sb || sb.blockSize < 512 || sb.blockSize > 65536) return null;
    const info: FsInfo = { filesystem: 'xfs', uuid: uuidFromBytes(sb.uuid), size: sb.dblocks * sb.blockSize };
    const label = trimLabel(sb.label);
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

const PAGE_SIZES = [4096, 8192, 16384, 32768, 65536];
// TuxOnIce writes its own magic at 0 and keeps a valid-looking swap header at the end of the first page.
const TUXONICE = Buffer.from('edc302e99856e50c', 'hex');
const SUSPEND: Record<string, string> = { S1SUSPEND: 's1suspend', S2SUSPEND: 's2suspend', ULSUSPEND: 'ulsuspend', LINHIB0001: 'linhib0001' };

/**
 * The swap header at 1 KiB (version, last page, bad pages, UUID, label). blkid takes the UUID and label
 * only when two padding words are zero (garbage there means an old, overwritten header).
 */
async function swapHeader(v: VolumeReader, version: string): Promise<FsInfo | null> {
  const h = await v.read(1024, 1024);
  const info: FsInfo = { filesystem: version === '0' || version === '1' ? 'swap' : 'swsuspend', version };
  if (info.filesystem === 'swap') {
    // Version 1 in either byte order (a big-endian machine's swap reads as 1 too).
    if (h.readUInt32LE(0) !== 1 && h.readUInt32BE(0) !== 1) return null;
    if (h.readUInt32LE(4) === 0) return null;
  }
  if (h.readUInt32LE(44 + 32 * 4) === 0 && h.readUInt32LE(44 + 33 * 4) === 0) {
    const label = h[28] !== 0 ? trimLabel(h.toString('utf8', 28, 44).split('\0')[0]) : undefined;
    if (label) info.label = label;
    const uuid = uuidFromBytes(h.subarray(12, 28));
    if (uuid) info.uuid = uuid;
  }
  return info;
}

async function swapSignature(v: VolumeReader): Promise<string | null> {
  if (v.size < 10 * 4096) return null;
  for (const page of PAGE_SIZES) {
    const sig = (await v.read(page - 10, 10)).toString('latin1');
    if (sig === 'SWAP-SPACE' || sig === 'SWAPSPACE2' || sig in SUSPEND || sig.slice(0, 9) in SUSPEND) return sig;
  }
  return null;
}

/** Linux swap, version 1 (SWAPSPACE2) or 0 (SWAP-SPACE, no UUID or label), with any page size Linux uses. */
export const swap: Detector = {
  name: 'swap',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sig = await swapSignature(v);
    if (sig !== 'SWAP-SPACE' && sig !== 'SWAPSPACE2') return null;
    if ((await v.read(0, 8)).equals(TUXONICE)) return null;
    return sig === 'SWAP-SPACE' ? { filesystem: 'swap', version: '0' } : swapHeader(v, '1');
  },
};

/** A hibernation image in a swap area (swsuspend, uswsusp, TuxOnIce), VERSION naming which, as blkid does. */
export const swsuspend: Detector = {
  name: 'swsuspend',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 10 * 4096) return null;
    if ((await v.read(0, 8)).equals(TUXONICE)) return swapHeader(v, 'tuxonice');
    const sig = await swapSignature(v);
    if (sig === null) return null;
    const name = SUSPEND[sig] ?? SUSPEND[sig.slice(0, 9)];
    return name ? swapHeader(v, name) : null;
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

/** SquashFS 4, and 3 or older (squashfs3) in either byte order ("sqsh" is big-endian): VERSION only. */
export const squashfs: Detector = {
  name: 'squashfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    return probeSuperblock(await v.read(0, 96));
  },
};
