import { dosSerial, type Detector, type FsInfo, type VolumeReader } from './types.js';

const MAX_ROOT_CLUSTERS = 64;

/** exFAT: VERSION from the file system revision, UUID the serial, LABEL the root's label entry (0x83). */
export const exfat: Detector = {
  name: 'exfat',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const b = await v.read(0, 512);
    if (b.toString('latin1', 3, 11) !== 'EXFAT   ') return null;
    const sectorShift = b[108];
    const clusterShift = b[109];
    if (sectorShift < 9 || sectorShift > 12 || clusterShift > 25 - sectorShift) return null;
    const sector = 2 ** sectorShift;
    const clusterBytes = sector * 2 ** clusterShift;
    const fatOffset = b.readUInt32LE(80) * sector;
    const heapOffset = b.readUInt32LE(88) * sector;
    const clusterCount = b.readUInt32LE(92);
    const info: FsInfo = {
      filesystem: 'exfat',
      version: `${b[105]}.${b[104]}`,
      uuid: dosSerial(b, 100),
      size: Number(b.readBigUInt64LE(72)) * sector,
    };
    let cluster = b.readUInt32LE(96);
    const seen = new Set<number>();
    for (let n = 0; n < MAX_ROOT_CLUSTERS && cluster >= 2 && cluster < clusterCount + 2 && !seen.has(cluster); n++) {
      seen.add(cluster);
      const dir = await v.read(heapOffset + (cluster - 2) * clusterBytes, Math.min(clusterBytes, 1024 * 1024));
      for (let o = 0; o + 32 <= dir.length; o += 32) {
        const type = dir[o];
        if (type === 0x00) return info;
        if (type === 0x83) {
          const chars = Math.min(dir[o + 1], 11);
          const label = dir.toString('utf16le', o + 2, o + 2 + chars * 2);
          if (label) info.label = label;
          return info;
        }
      }
      cluster = (await v.read(fatOffset + cluster * 4, 4)).readUInt32LE(0);
    }
    return info;
  },
};
