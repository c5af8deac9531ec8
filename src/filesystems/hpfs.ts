import { dosSerial, trimLabel, type Detector, type FsInfo, type VolumeReader } from './types.js';

/**
 * HPFS: the boot sector, the superblock at sector 16 (both magics) and the spare block at sector 17.
 * LABEL and UUID come from the boot sector's extended BPB, VERSION from the superblock.
 */
export const hpfs: Detector = {
  name: 'hpfs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const sb = await v.read(16 * 512, 512);
    if (sb.readUInt32LE(0) !== 0xf995e849 || sb.readUInt32LE(4) !== 0xfa53e9c5) return null;
    const spare = await v.read(17 * 512, 512);
    if (spare.readUInt32LE(0) !== 0xf9911849 || spare.readUInt32LE(4) !== 0xfa5229c5) return null;
    const boot = await v.read(0, 512);
    const info: FsInfo = { filesystem: 'hpfs', version: String(sb[8]), size: sb.readUInt32LE(16) * 512 };
    // OS/2 writes extended-BPB signature 0x28 here; like blkid, trust the label only in such a sector.
    if (boot[510] === 0x55 && boot[511] === 0xaa && boot.toString('latin1', 54, 58) === 'HPFS' && boot[38] === 0x28) {
      info.uuid = dosSerial(boot, 39);
      const label = trimLabel(boot.toString('latin1', 43, 54));
      if (label && label !== 'NO NAME') info.label = label;
    }
    return info;
  },
};
