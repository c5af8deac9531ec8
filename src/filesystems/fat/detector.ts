import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';
import { dos1Bpb, fatLayout, parseBpb, volumeSerial, type FatLayout } from './boot-sector.js';
import { parseDirectory } from './directory.js';
import { FatTable } from './fat-table.js';

/** How far the detector follows a FAT32 root directory looking for the label. */
const MAX_ROOT_CLUSTERS = 64;

/**
 * FAT12/16/32 as blkid names it: the version follows the cluster count, LABEL is the root
 * directory's volume label entry (the boot sector's copy can be stale), UUID the volume serial.
 * PC-DOS 1.0 floppies have no BPB at all: they are recognised by their size and the media byte that
 * starts the FAT in sector 1.
 */
export const fat: Detector = {
  name: 'vfat',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    const b = await v.read(0, 512);
    const bpb = parseBpb(b);
    if (!bpb) {
      const dos1 = await dos1Bpb(v, b);
      return dos1 ? { filesystem: 'vfat', version: 'FAT12', size: dos1.totalSectors * dos1.bytesPerSector } : null;
    }
    const fsType = b.toString('latin1', bpb.fat32 ? 82 : 54, (bpb.fat32 ? 82 : 54) + 8);
    const hasMagic = /^(FAT1[26]|FAT32|FAT) /.test(fsType) || /MSWIN|MSDOS/.test(b.toString('latin1', 3, 11));
    if (!hasMagic && b[510] !== 0x55) return null;
    const layout = fatLayout(bpb);
    if (!layout) return null;
    const info: FsInfo = { filesystem: 'vfat', version: layout.version, size: layout.totalBytes };
    const uuid = volumeSerial(b, bpb);
    if (uuid !== undefined) info.uuid = uuid;
    info.label = await rootLabel(v, layout);
    const boot = bootLabel(b, bpb.fat32);
    if (boot !== undefined) info.labelFatboot = boot;
    return info;
  },
};

/**
 * The boot sector's copy of the label (blkid's LABEL_FATBOOT), present with the extended boot signature
 * 0x29; "NO NAME" there means none. It may differ from the root directory's, which is the LABEL.
 */
function bootLabel(b: Buffer, fat32: boolean): string | undefined {
  const base = fat32 ? 28 : 0;
  if (b[38 + base] !== 0x29) return undefined;
  const l = b.toString('latin1', 43 + base, 54 + base);
  return l === 'NO NAME    ' ? undefined : trimLabel(l);
}

/** The root directory's label, read leniently: a damaged root only means no label. */
async function rootLabel(v: VolumeReader, layout: FatLayout): Promise<string | undefined> {
  if (layout.version !== 'FAT32') {
    return parseDirectory(await v.read(layout.rootOffset, Math.min(layout.rootBytes, 1024 * 1024)), false).label;
  }
  const table = new FatTable(v, layout, '');
  let cluster = layout.rootCluster;
  const seen = new Set<number>();
  for (let n = 0; n < MAX_ROOT_CLUSTERS && table.isCluster(cluster) && !seen.has(cluster); n++) {
    seen.add(cluster);
    const found = parseDirectory(await v.read(table.clusterOffset(cluster), Math.min(layout.clusterSize, 1024 * 1024)), true);
    if (found.label !== undefined || found.ended) return found.label;
    cluster = await table.entry(cluster);
  }
  return undefined;
}
