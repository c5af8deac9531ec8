import type { DiskImage } from '../formats/image.js';
import { readPartitionTable, sectorReader } from '../partitions/detect.js';
import type { Partition } from '../partitions/types.js';
import { fat } from './fat.js';
import { exfat } from './exfat.js';
import { ext } from './ext/detector.js';
import { ntfs } from './ntfs.js';
import { btrfs, f2fs, squashfs, swap, xfs } from './simple.js';
import { iso9660 } from './iso9660.js';
import { udf } from './udf.js';
import { hpfs } from './hpfs.js';
import { apfs, bitlocker, hfsplus, luks, lvm2, refs, zfs } from './containers.js';
import type { Detector, FsInfo, VolumeReader } from './types.js';
import { reiserfs, reiser4 } from './signatures/reiserfs.js';
import { jfs } from './signatures/jfs.js';
import { minix } from './signatures/minix.js';
import { bfs } from './signatures/bfs.js';
import { nilfs2 } from './signatures/nilfs2.js';
import { ocfs2 } from './signatures/ocfs2.js';
import { gfs, gfs2 } from './signatures/gfs.js';
import { cramfs } from './signatures/cramfs.js';
import { romfs } from './signatures/romfs.js';
import { bcache } from './signatures/bcache.js';

/**
 * In order of preference when more than one signature matches: containers own the whole volume;
 * UDF and ISO-9660 describe the whole disc even when it starts with a FAT boot image; then the rest.
 */
export const DETECTORS: Detector[] = [
  luks, lvm2, bcache, bitlocker, udf, iso9660, ntfs, exfat, fat, ext, xfs, btrfs, f2fs, squashfs, swap, hpfs, hfsplus, apfs, refs, zfs,
  reiserfs, reiser4, jfs, nilfs2, ocfs2, gfs, gfs2, cramfs, romfs, minix, bfs,
];

export interface Detection {
  info: FsInfo | null;
  /** Other signatures found on the same volume. */
  others: string[];
}

/** libblkid's probing order, for the case where it picks the first match itself (tiny devices). */
const BLKID_ORDER = ['bcache', 'LVM2_member', 'crypto_LUKS', 'BitLocker', 'vfat', 'swap', 'xfs', 'ext4', 'ext3', 'ext2', 'jbd', 'reiserfs', 'reiser4', 'jfs', 'udf', 'iso9660', 'zfs_member', 'hfsplus', 'hpfs', 'ntfs', 'refs', 'cramfs', 'romfs', 'minix', 'gfs', 'gfs2', 'ocfs2', 'squashfs', 'squashfs3', 'btrfs', 'bfs', 'nilfs2', 'exfat', 'f2fs', 'apfs'];
/** blkid treats devices up to a 1.44 MB floppy as tiny: there it reports the first match, not "ambivalent". */
const TINY = 1440 * 1024;

/**
 * Runs every detector. With several matches, blkid -p gives up ("ambivalent result") except on tiny
 * devices, where it reports the first in its probing order: we do the same there, and elsewhere pick
 * by DETECTORS' preference; either way the other signatures are reported.
 */
export async function detectFilesystem(v: VolumeReader): Promise<Detection> {
  const found: FsInfo[] = [];
  for (const d of DETECTORS) {
    const r = await d.probe(v);
    if (r) found.push(r);
  }
  if (v.size <= TINY) {
    const rank = (f: FsInfo) => (BLKID_ORDER.indexOf(f.filesystem) + BLKID_ORDER.length + 1) % (BLKID_ORDER.length + 1);
    found.sort((a, b) => rank(a) - rank(b));
  }
  // A UDF bridge disc carries ISO-9660 too by design: not worth a warning.
  const best = found[0] ?? null;
  const others = found.slice(1).filter((f) => !(best?.filesystem === 'udf' && f.filesystem === 'iso9660')).map((f) => f.filesystem);
  return { info: best, others };
}

/** The bytes of one volume of the disk; reads past its end are zeros. */
export function volumeReader(disk: VolumeReader, offset: number, size: number): VolumeReader {
  return {
    size,
    read: async (o, len) => {
      if (o >= size) return Buffer.alloc(len);
      const n = Math.min(len, size - o);
      const buf = await disk.read(offset + o, n);
      return n === len ? buf : Buffer.concat([buf, Buffer.alloc(len - n)]);
    },
  };
}

export interface Volume {
  partition: number | null;
  offset: number;
  size: number;
  filesystem: string | null;
  version: string | null;
  label: string | null;
  uuid: string | null;
  fsSize?: number;
}

const CONTAINER_TYPES = new Set(['0x05', '0x0f', '0x85', '0xee']);

/** The file system of the whole disk, or of each partition when there is a partition table. */
export async function detectVolumes(image: DiskImage): Promise<{ volumes: Volume[]; warnings: string[] }> {
  const disk = sectorReader(image);
  const table = await readPartitionTable(image);
  const warnings = [...table.warnings];
  const nestedParents = new Set(table.partitions.filter((p) => p.parent !== undefined).map((p) => p.parent));
  const targets: (Partition | null)[] = table.partitions.length > 0
    ? table.partitions.filter((p) => !(table.scheme === 'mbr' && p.parent === undefined && CONTAINER_TYPES.has(p.type)) && !nestedParents.has(p.index))
    : [null];
  const volumes: Volume[] = [];
  for (const p of targets) {
    const offset = p ? p.start : 0;
    const size = p ? Math.max(0, Math.min(p.size, image.virtualSize - p.start)) : image.virtualSize;
    const d = await detectFilesystem(volumeReader(disk, offset, size));
    const where = p ? `partition ${p.index}` : 'the disk';
    if (d.others.length && d.info) warnings.push(`${where}: also carries ${d.others.join(', ')} signatures; reporting ${d.info.filesystem}`);
    volumes.push({
      partition: p ? p.index : null,
      offset,
      size,
      filesystem: d.info?.filesystem ?? null,
      version: d.info?.version ?? null,
      label: d.info?.label ?? null,
      uuid: d.info?.uuid ?? null,
      ...(d.info?.size !== undefined ? { fsSize: d.info.size } : {}),
    });
  }
  return { volumes, warnings };
}
