import { dosSerial, trimLabel, type Detector, type FsInfo, type VolumeReader } from './types.js';

const NO_NAME = 'NO NAME';
const MAX_ROOT_CLUSTERS = 64;

interface Bpb {
  bytesPerSector: number;
  sectorsPerCluster: number;
  reserved: number;
  fats: number;
  rootEntries: number;
  totalSectors: number;
  fatSize: number;
  rootCluster: number;
  fat32: boolean;
}

function parseBpb(b: Buffer): Bpb | null {
  if (!(b[0] === 0xeb || b[0] === 0xe9)) return null;
  const bytesPerSector = b.readUInt16LE(11);
  const sectorsPerCluster = b[13];
  const reserved = b.readUInt16LE(14);
  const fats = b[16];
  const media = b[21];
  if (![512, 1024, 2048, 4096].includes(bytesPerSector)) return null;
  if (sectorsPerCluster === 0 || (sectorsPerCluster & (sectorsPerCluster - 1)) !== 0) return null;
  if (reserved === 0 || fats === 0 || fats > 4 || !(media === 0xf0 || media >= 0xf8)) return null;
  const fat16Size = b.readUInt16LE(22);
  const fat32 = fat16Size === 0;
  const fatSize = fat32 ? b.readUInt32LE(36) : fat16Size;
  const total = b.readUInt16LE(19) || b.readUInt32LE(32);
  if (fatSize === 0 || total === 0) return null;
  return {
    bytesPerSector,
    sectorsPerCluster,
    reserved,
    fats,
    rootEntries: b.readUInt16LE(17),
    totalSectors: total,
    fatSize,
    rootCluster: fat32 ? b.readUInt32LE(44) : 0,
    fat32,
  };
}

/** The volume label entry of a directory (attribute 0x08, not a long-name entry), if any. */
function findLabel(dir: Buffer): { label?: string; end: boolean } {
  for (let o = 0; o + 32 <= dir.length; o += 32) {
    const first = dir[o];
    if (first === 0x00) return { end: true };
    if (first === 0xe5) continue;
    const attr = dir[o + 11];
    if (attr === 0x0f) continue; // long file name
    if ((attr & 0x18) === 0x08) {
      const l = dir.toString('latin1', o, o + 11);
      return { label: l.startsWith(NO_NAME) ? undefined : trimLabel(l), end: true };
    }
  }
  return { end: false };
}

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
    if (!bpb) return probeDos1Floppy(v, b);
    const fsType = b.toString('latin1', bpb.fat32 ? 82 : 54, (bpb.fat32 ? 82 : 54) + 8);
    const hasMagic = /^(FAT1[26]|FAT32|FAT) /.test(fsType) || /MSWIN|MSDOS/.test(b.toString('latin1', 3, 11));
    if (!hasMagic && b[510] !== 0x55) return null;
    const bps = bpb.bytesPerSector;
    const rootDirSectors = Math.ceil((bpb.rootEntries * 32) / bps);
    const dataStart = bpb.reserved + bpb.fats * bpb.fatSize + rootDirSectors;
    if (dataStart >= bpb.totalSectors) return null;
    const clusters = Math.floor((bpb.totalSectors - dataStart) / bpb.sectorsPerCluster);
    const version = bpb.fat32 ? 'FAT32' : clusters < 4085 ? 'FAT12' : 'FAT16';
    const serialAt = bpb.fat32 ? 67 : 39;
    const hasExtBpb = b[bpb.fat32 ? 66 : 38] === 0x29;
    const info: FsInfo = { filesystem: 'vfat', version, size: bpb.totalSectors * bps };
    if (hasExtBpb) info.uuid = dosSerial(b, serialAt);
    info.label = await rootLabel(v, bpb, dataStart, rootDirSectors, version);
    return info;
  },
};

async function rootLabel(v: VolumeReader, bpb: Bpb, dataStart: number, rootDirSectors: number, version: string): Promise<string | undefined> {
  const bps = bpb.bytesPerSector;
  if (version !== 'FAT32') {
    const start = (bpb.reserved + bpb.fats * bpb.fatSize) * bps;
    return findLabel(await v.read(start, Math.min(rootDirSectors * bps, 1024 * 1024))).label;
  }
  const clusterBytes = bpb.sectorsPerCluster * bps;
  const fatStart = bpb.reserved * bps;
  let cluster = bpb.rootCluster;
  const seen = new Set<number>();
  for (let n = 0; n < MAX_ROOT_CLUSTERS && cluster >= 2 && cluster < 0x0ffffff7 && !seen.has(cluster); n++) {
    seen.add(cluster);
    const at = (dataStart + (cluster - 2) * bpb.sectorsPerCluster) * bps;
    const found = findLabel(await v.read(at, clusterBytes));
    if (found.label !== undefined || found.end) return found.label;
    cluster = (await v.read(fatStart + cluster * 4, 4)).readUInt32LE(0) & 0x0fffffff;
  }
  return undefined;
}

/** Single- and double-sided 5.25" PC-DOS 1.x floppies: no BPB, the media byte says the geometry. */
const DOS1_FLOPPIES: Record<number, number> = { 0xfe: 160 * 1024, 0xfc: 180 * 1024, 0xff: 320 * 1024, 0xfd: 360 * 1024 };

async function probeDos1Floppy(v: VolumeReader, boot: Buffer): Promise<FsInfo | null> {
  if (!(boot[0] === 0xeb || boot[0] === 0xe9 || boot[0] === 0x00 || boot[0] === 0xf6)) return null;
  const fat = await v.read(512, 3); // the FAT starts in sector 1: media byte, then 0xFF 0xFF
  const size = DOS1_FLOPPIES[fat[0]];
  if (size === undefined || fat[1] !== 0xff || fat[2] !== 0xff || v.size !== size) return null;
  return { filesystem: 'vfat', version: 'FAT12', size };
}
