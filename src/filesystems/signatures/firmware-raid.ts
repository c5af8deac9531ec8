import type { Detector, FsInfo, VolumeReader } from '../types.js';

/**
 * The metadata BIOS ("fake") RAID controllers keep near the end of each member disk. blkid looks for
 * them only on whole disks (and image files), never inside a partition, and only on devices of at
 * least 64 KiB; so does this. Each reads one sector counted back from the end.
 */
async function lastSector(v: VolumeReader, back: number, length = 512): Promise<Buffer | null> {
  const sector = Math.floor(v.size / 512) - back;
  if (v.size < 0x10000 || v.wholeDisk === false || sector < 0) return null;
  return v.read(sector * 512, length);
}

function member(name: string, probe: (v: VolumeReader) => Promise<Omit<FsInfo, 'filesystem'> | null>): Detector {
  return {
    name,
    async probe(v) {
      const r = await probe(v);
      return r ? { filesystem: name, ...r } : null;
    },
  };
}

/** Intel Matrix Storage (IMSM): the signature two sectors from the end, VERSION the six characters after it. */
export const iswRaid = member('isw_raid_member', async (v) => {
  const s = await lastSector(v, 2);
  const sig = 'Intel Raid ISM Cfg Sig. ';
  if (!s || s.toString('latin1', 0, sig.length) !== sig) return null;
  return { version: s.toString('latin1', sig.length, sig.length + 6).split('\0')[0] };
});

/** SNIA DDF: the anchor header in the last sector or 257 back, either byte order; GUID and revision as text. */
export const ddfRaid = member('ddf_raid_member', async (v) => {
  if (v.size < 0x30000 || v.wholeDisk === false) return null;
  for (const back of [1, 257]) {
    const s = await lastSector(v, back);
    if (!s || (s.readUInt32BE(0) !== 0xde11de11 && s.readUInt32LE(0) !== 0xde11de11)) continue;
    const uuid = s.toString('latin1', 8, 32).split('\0')[0];
    return { ...(uuid ? { uuid } : {}), version: s.toString('latin1', 32, 40).split('\0')[0] };
  }
  return null;
});

/** NVIDIA MediaShield: "NVIDIA" two sectors from the end, VERSION at 16. */
export const nvidiaRaid = member('nvidia_raid_member', async (v) => {
  const s = await lastSector(v, 2);
  if (!s || s.toString('latin1', 0, 6) !== 'NVIDIA') return null;
  return { version: String(s.readUInt16LE(16)) };
});

/** Promise FastTrack: its vendor string in one of the sectors its controllers used, counted from the end. */
export const promiseRaid = member('promise_fasttrack_raid_member', async (v) => {
  if (v.size < 0x40000) return null;
  for (const back of [63, 255, 256, 16, 399, 591, 675, 735, 911, 974, 991, 951, 3087]) {
    const s = await lastSector(v, back, 24);
    // blkid gives up at the first place before the start of the device.
    if (!s) return null;
    if (s.toString('latin1', 0, 24) === 'Promise Technology, Inc.') return {};
  }
  return null;
});

/** JMicron: "JM" in the last sector, VERSION major.minor. */
export const jmicronRaid = member('jmicron_raid_member', async (v) => {
  const s = await lastSector(v, 1);
  if (!s || s.toString('latin1', 0, 2) !== 'JM') return null;
  return { version: `${s[3]}.${s[2]}` };
});

/** LSI MegaRAID (software): "$XIDE$" in the last sector. */
export const lsiRaid = member('lsi_mega_raid_member', async (v) => {
  const s = await lastSector(v, 1);
  return s && s.toString('latin1', 0, 6) === '$XIDE$' ? {} : null;
});

/** Silicon Image Medley: magic at 0x60 of the last sector, disk number below 8, the 16-bit word sum right. */
export const siliconRaid = member('silicon_medley_raid_member', async (v) => {
  const s = await lastSector(v, 1);
  if (!s || s.readUInt32LE(0x60) !== 0x2f000000 || s[0x116] >= 8) return null;
  let sum = 0;
  for (let o = 0; o < 0x13e; o += 2) sum += s.readUInt16LE(o);
  if ((-sum & 0xffff) !== s.readUInt16LE(0x13e)) return null;
  return { version: `${s.readUInt16LE(0x10a)}.${s.readUInt16LE(0x108)}` };
});

/** VIA V-RAID: 0xAA55 in the last sector, version at most 2, an 8-bit sum of the first 50 bytes. */
export const viaRaid = member('via_raid_member', async (v) => {
  const s = await lastSector(v, 1);
  if (!s || s.readUInt16LE(0) !== 0xaa55 || s[2] > 2) return null;
  let sum = 0;
  for (let i = 0; i < 50; i++) sum = (sum + s[i]) & 0xff;
  if (sum !== s[50]) return null;
  return { version: String(s[2]) };
});

/** Adaptec HostRAID: two big-endian magics in the last sector; VERSION from its resver byte. */
export const adaptecRaid = member('adaptec_raid_member', async (v) => {
  const s = await lastSector(v, 1);
  if (!s || s.readUInt32BE(256) !== 0x4450544d || s.readUInt32BE(0) !== 0x37fc4d1e) return null;
  return { version: String(s[63]) };
});

/** HighPoint 45x: the magic 11 sectors from the end. */
export const hpt45xRaid = member('hpt45x_raid_member', async (v) => {
  const s = await lastSector(v, 11, 4);
  const m = s?.readUInt32LE(0);
  return m === 0x5a7816f3 || m === 0x5a7816fd ? {} : null;
});

/** HighPoint 37x: the magic at 4640 bytes from the start (superblock in sector 9). */
export const hpt37xRaid = member('hpt37x_raid_member', async (v) => {
  if (v.wholeDisk === false) return null;
  const m = (await v.read(4640, 4)).readUInt32LE(0);
  return m === 0x5a7816f0 || m === 0x5a7816fd ? {} : null;
});

export const FIRMWARE_RAIDS = [ddfRaid, iswRaid, lsiRaid, viaRaid, siliconRaid, nvidiaRaid, promiseRaid, hpt45xRaid, hpt37xRaid, adaptecRaid, jmicronRaid];
