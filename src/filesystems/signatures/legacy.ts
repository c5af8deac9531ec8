import { crc32c } from '../../util/crc.js';
import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

/**
 * The rarer signatures of blkid's list, each as its prober reads it (util-linux libblkid/src/superblocks):
 * Oracle's OCFS 1 and ASM disks, System V and Xenix, NetWare NSS, SGI's EXFS, Micron's mpool, and DRBD's
 * manager and proxy volumes. Each is small; they share this module to keep the detector table short.
 */

const label = (b: Buffer, from: number, to: number, enc: BufferEncoding = 'utf8') => trimLabel(b.toString(enc, from, to).split('\0')[0]);

function info(filesystem: string, fields: { label?: string; uuid?: string; version?: string }): FsInfo {
  const out: FsInfo = { filesystem };
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) (out as unknown as Record<string, string>)[k] = v;
  return out;
}

/** OCFS (version 1): "OracleCFS" at 8 KiB, the label (with its length) and volume id 512 bytes later. */
export const ocfs: Detector = {
  name: 'ocfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 14000 * 1024) return null;
    // blkid reads the version words from where it finds the magic (a quirk kept, to name it alike).
    const h = await v.read(8192, 9);
    if (h.toString('latin1') !== 'OracleCFS') return null;
    const l = await v.read(8192 + 512, 132);
    const len = Math.min(l.readUInt16LE(112), 64);
    return info('ocfs', { label: label(l, 48, 48 + len), uuid: uuidFromBytes(l.subarray(114, 130)), version: `${h.readUInt32LE(4)}.${h.readUInt32LE(0)}` });
  },
};

/** Oracle ASM disk: "ORCLDISK" at 32, the disk's id at 40 as the label. */
export const oracleasm: Detector = {
  name: 'oracleasm',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const h = await v.read(0, 64);
    return h.toString('latin1', 32, 40) === 'ORCLDISK' ? info('oracleasm', { label: label(h, 40, 64) }) : null;
  },
};

/** Xenix: its magic at 2 KiB in either byte order, the name at 1656. */
export const xenix: Detector = {
  name: 'xenix',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const m = (await v.read(2048, 3)).toString('hex');
    if (m !== '2b5544' && m !== '44552b') return null;
    return info('xenix', { label: label(await v.read(1024 + 632, 6), 0, 6) });
  },
};

/** System V: the superblock in half a block after block 0, 9, 15 or 18, magic 0xFD187E20 either way round. */
export const sysv: Detector = {
  name: 'sysv',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    for (const block of [0, 9, 15, 18]) {
      const sb = await v.read(block * 1024 + 512, 512);
      if (sb.readUInt32LE(504) === 0xfd187e20 || sb.readUInt32BE(504) === 0xfd187e20) return info('sysv', { label: label(sb, 440, 446) });
    }
    return null;
  },
};

/** NetWare NSS pool: "SPB5" at 4 KiB; the pool id as UUID, the media version as VERSION. */
export const nss: Detector = {
  name: 'nss',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sb = await v.read(4096, 364);
    if (sb.toString('latin1', 0, 4) !== 'SPB5') return null;
    return info('nss', { uuid: uuidFromBytes(sb.subarray(348, 364)), version: `${sb.readUInt16LE(8)}.${String(sb.readUInt16LE(10)).padStart(2, '0')}` });
  },
};

const pow2 = (log: number) => 2 ** log;

/** SGI EXFS: an XFS-like big-endian superblock ("EXFS"), accepted only when its geometry is consistent. */
export const exfs: Detector = {
  name: 'exfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const s = await v.read(0, 128);
    if (s.toString('latin1', 0, 4) !== 'EXFS') return null;
    const blocksize = s.readUInt32BE(4);
    const dblocks = s.readBigUInt64BE(8);
    const rextsize = s.readUInt32BE(80);
    const agblocks = s.readUInt32BE(84);
    const agcount = s.readUInt32BE(88);
    const sectsize = s.readUInt16BE(102);
    const inodesize = s.readUInt16BE(104);
    const [blocklog, sectlog, inodelog, inopblog] = [s[120], s[121], s[122], s[123]];
    const ok = agcount > 0 && sectlog >= 9 && sectlog <= 15 && sectsize === pow2(sectlog) && blocklog >= 9 && blocklog <= 16 &&
      blocksize === pow2(blocklog) && inodelog >= 8 && inodelog <= 11 && inodesize === pow2(inodelog) && blocklog - inodelog === inopblog &&
      rextsize * blocksize <= 1024 ** 3 && rextsize * blocksize >= 4096 && s[127] <= 100 && dblocks > 0n &&
      dblocks <= BigInt(agcount) * BigInt(agblocks) && dblocks >= BigInt(agcount - 1) * BigInt(agblocks) + 64n;
    if (!ok) return null;
    return info('exfs', { label: s[108] !== 0 ? label(s, 108, 120) : undefined, uuid: uuidFromBytes(s.subarray(32, 48)) });
  },
};

/** Micron mpool: "mpoolDev", with a CRC-32C over the descriptor; name and pool id. */
export const mpool: Detector = {
  name: 'mpool',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const d = await v.read(0, 66);
    if (d.toString('latin1', 0, 8) !== 'mpoolDev' || crc32c(d.subarray(0, 62), 0) !== d.readUInt32LE(62)) return null;
    return info('mpool', { label: label(d, 8, 40), uuid: uuidFromBytes(d.subarray(40, 56)) });
  },
};

/** A DRBDmanage control volume: its magic, 32 hex digits of UUID and a newline. */
export const drbdmanage: Detector = {
  name: 'drbdmanage_control_volume',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 64 * 1024) return null;
    const h = await v.read(0, 44);
    if (h.toString('latin1', 0, 10) !== '$DRBDmgr=q') return null;
    const uuid = h.toString('latin1', 11, 43);
    if (!/^[0-9a-fA-F]{32}$/.test(uuid) || h[43] !== 0x0a) return null;
    return info('drbdmanage_control_volume', { uuid });
  },
};

/** A DRBD proxy data log: "DRBDdlh*", its UUID, and VERSION v<n>. */
export const drbdproxyDatalog: Detector = {
  name: 'drbdproxy_datalog',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 16 * 1024) return null;
    const h = await v.read(0, 32);
    if (h.toString('latin1', 0, 8) !== 'DRBDdlh*') return null;
    return info('drbdproxy_datalog', { uuid: uuidFromBytes(h.subarray(16, 32)), version: `v${h.readBigUInt64LE(8)}` });
  },
};
