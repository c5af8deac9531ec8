import { dosSerial, type Detector, type FsInfo, type VolumeReader } from '../types.js';
import { clusterSize, parseBootSector, sectorSize } from './boot-sector.js';
import { ENTRY_SIZE, TYPE_END_OF_DIRECTORY, TYPE_VOLUME_LABEL, parseVolumeLabel } from './entries.js';

const MAX_ROOT_CLUSTERS = 64;

/** exFAT: VERSION from the file system revision, UUID the serial, LABEL the root's label entry (0x83). */
export const exfat: Detector = {
  name: 'exfat',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const b = await v.read(0, 512);
    const bs = parseBootSector(b);
    if (!bs) return null;
    const sector = sectorSize(bs);
    const clusterBytes = clusterSize(bs);
    const fatOffset = bs.fatOffset * sector;
    const heapOffset = bs.clusterHeapOffset * sector;
    const info: FsInfo = {
      filesystem: 'exfat',
      version: `${bs.revision.major}.${bs.revision.minor}`,
      uuid: dosSerial(b, 100),
      size: Number(bs.volumeLength) * sector,
    };
    let cluster = bs.rootCluster;
    const seen = new Set<number>();
    for (let n = 0; n < MAX_ROOT_CLUSTERS && cluster >= 2 && cluster < bs.clusterCount + 2 && !seen.has(cluster); n++) {
      seen.add(cluster);
      const dir = await v.read(heapOffset + (cluster - 2) * clusterBytes, Math.min(clusterBytes, 1024 * 1024));
      for (let o = 0; o + ENTRY_SIZE <= dir.length; o += ENTRY_SIZE) {
        const type = dir[o];
        if (type === TYPE_END_OF_DIRECTORY) return info;
        if (type === TYPE_VOLUME_LABEL) {
          const label = parseVolumeLabel(dir, o);
          if (label) info.label = label;
          return info;
        }
      }
      cluster = (await v.read(fatOffset + cluster * 4, 4)).readUInt32LE(0);
    }
    return info;
  },
};
