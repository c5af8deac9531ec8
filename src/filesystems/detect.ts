import type { DiskImage } from '../formats/image.js';
import { readPartitionTable, sectorReader } from '../partitions/detect.js';
import type { Partition } from '../partitions/types.js';
import { fat } from './fat/detector.js';
import { exfat } from './exfat/detector.js';
import { ext } from './ext/detector.js';
import { ntfs } from './ntfs/detector.js';
import { btrfs, f2fs, squashfs, swap, swsuspend, xfs } from './simple.js';
import { iso9660 } from './iso9660/detector.js';
import { udf } from './udf/detector.js';
import { hpfs } from './hpfs.js';
import { apfs, luks, lvm2, refs } from './containers.js';
import { zfs } from './signatures/zfs.js';
import { bitlocker } from './signatures/bitlocker.js';
import { hfs, hfsplus } from './signatures/hfs.js';
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
import { erofs } from './signatures/erofs.js';
import { mdraid } from './signatures/mdraid.js';
import { ufs } from './signatures/ufs.js';
import { integrity, lvm1, snapshotCow, verity } from './signatures/dm.js';
import { vxfs } from './signatures/vxfs.js';
import { drbd } from './signatures/drbd.js';
import { xfsLog } from './signatures/xfs-log.js';
import { ubi, ubifs } from './signatures/ubi.js';
import { befs } from './signatures/befs.js';
import { drbdmanage, drbdproxyDatalog, exfs, mpool, nss, ocfs, oracleasm, sysv, xenix } from './signatures/legacy.js';
import { FIRMWARE_RAIDS } from './signatures/firmware-raid.js';
import { vmfs, vmfsVolume } from './signatures/vmfs.js';
import { bluestore, stratis, vdo, zonefs } from './signatures/storage.js';

/**
 * In order of preference when more than one signature matches: containers own the whole volume;
 * UDF and ISO-9660 describe the whole disc even when it starts with a FAT boot image; then the rest.
 */
export const DETECTORS: Detector[] = [
  mdraid, ...FIRMWARE_RAIDS, ubi, drbd, vmfsVolume, stratis, luks, lvm2, lvm1, verity, integrity, snapshotCow, bcache, bitlocker, vdo, bluestore, udf, iso9660, ntfs, exfat, fat, ext, xfs, btrfs, f2fs, squashfs, swap, swsuspend, hpfs, hfsplus, hfs, apfs, refs, zfs,
  reiserfs, reiser4, jfs, nilfs2, ocfs2, gfs, gfs2, cramfs, romfs, minix, bfs, erofs, ufs, vmfs, zonefs, vxfs, xfsLog, ubifs, befs,
  ocfs, oracleasm, sysv, xenix, nss, exfs, mpool, drbdmanage, drbdproxyDatalog,
];

export interface Detection {
  info: FsInfo | null;
  /** Other signatures found on the same volume. */
  others: string[];
}

/** libblkid's probing order, for the case where it picks the first match itself (tiny devices). */
const BLKID_ORDER = ['linux_raid_member', 'ddf_raid_member', 'isw_raid_member', 'lsi_mega_raid_member', 'via_raid_member', 'silicon_medley_raid_member', 'nvidia_raid_member', 'promise_fasttrack_raid_member', 'hpt45x_raid_member', 'hpt37x_raid_member', 'adaptec_raid_member', 'jmicron_raid_member', 'bcache', 'drbd', 'drbdmanage_control_volume', 'drbdproxy_datalog', 'LVM2_member', 'LVM1_member', 'DM_snapshot_cow', 'DM_verity_hash', 'DM_integrity', 'VMFS_volume_member', 'ubi', 'vdo', 'stratis', 'crypto_LUKS', 'BitLocker', 'vfat', 'swsuspend', 'swap', 'xfs_external_log', 'xfs', 'ext4', 'ext3', 'ext2', 'jbd', 'reiserfs', 'reiser4', 'jfs', 'udf', 'iso9660', 'zfs_member', 'hfsplus', 'hfs', 'ufs', 'hpfs', 'sysv', 'xenix', 'ntfs', 'ReFS', 'cramfs', 'romfs', 'minix', 'gfs', 'gfs2', 'ocfs', 'ocfs2', 'oracleasm', 'vxfs', 'squashfs', 'squashfs3', 'nss', 'btrfs', 'ubifs', 'befs', 'bfs', 'nilfs2', 'exfat', 'exfs', 'mpool', 'f2fs', 'apfs', 'zonefs', 'erofs', 'VMFS', 'ceph_bluestore'];
/** blkid treats devices up to a 1.44 MB floppy as tiny: there it reports the first match, not "ambivalent". */
const TINY = 1440 * 1024;

/**
 * Signatures that own the whole device, as blkid's RAID and crypto probers do: blkid probes them before
 * any file system and stops at the first, so a stale file-system or swap signature left inside a LUKS
 * header or an md member is no reason for doubt (and is not reported).
 */
const OWNERS = ['linux_raid_member', ...FIRMWARE_RAIDS.map((d) => d.name), 'drbd', 'LVM2_member', 'LVM1_member', 'DM_verity_hash', 'DM_integrity', 'crypto_LUKS', 'VMFS_volume_member', 'stratis', 'ubi', 'BitLocker'];

/**
 * Runs every detector. With several matches, blkid -p gives up ("ambivalent result") except on tiny
 * devices, where it reports the first in its probing order: we do the same there, and elsewhere pick
 * by DETECTORS' preference; either way the other signatures are reported. A device-owning signature
 * (OWNERS, in blkid's order) is decisive, as in blkid.
 */
export async function detectFilesystem(v: VolumeReader): Promise<Detection> {
  // All at once: each probe waits for its own few reads, and one after another those waits added up.
  // The answers, and the first failure, are taken in DETECTORS' order.
  const settled = await Promise.allSettled(DETECTORS.map((d) => d.probe(v)));
  const found: FsInfo[] = [];
  for (const r of settled) {
    if (r.status === 'rejected') throw r.reason;
    if (r.value) found.push(r.value);
  }
  const owner = OWNERS.map((name) => found.find((f) => f.filesystem === name)).find((f) => f !== undefined);
  if (owner) return { info: owner, others: [] };
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
export function volumeReader(disk: VolumeReader, offset: number, size: number, wholeDisk = false): VolumeReader {
  return {
    size,
    wholeDisk,
    read: async (o, len) => {
      if (o >= size) return Buffer.alloc(len);
      const n = Math.min(len, size - o);
      const buf = await disk.read(offset + o, n);
      return n === len ? buf : Buffer.concat([buf, Buffer.alloc(len - n)]);
    },
    ...(disk.readInto ? {
      readInto: async (buf: Uint8Array, o: number) => {
        const n = Math.max(0, Math.min(buf.length, size - o));
        if (n > 0) await (disk.readInto as (b: Uint8Array, at: number) => Promise<void>)(buf.subarray(0, n), offset + o);
        buf.fill(0, n);
      },
    } : {}),
    ...(disk.hostRange ? {
      hostRange: (o: number, len: number) => (o >= 0 && len >= 0 && o + len <= size ? disk.hostRange?.(offset + o, len) ?? null : null),
    } : {}),
  };
}

/**
 * Detectors probe a volume's first 128 KiB with a dozen or more small reads; with tens of
 * thousands of partitions (a GPT may list 32,768) those reads, not the probing, were the cost. The
 * head is read once, on the first read that falls in it, and those reads are served from it.
 */
const HEAD = 192 * 1024;
/** Volumes probed at once by detectVolumes. */
const PROBES_IN_FLIGHT = 8;

function headCached(volume: VolumeReader): VolumeReader {
  let head: Promise<Buffer> | null = null;
  const headLength = Math.min(volume.size, HEAD);
  return {
    size: volume.size,
    wholeDisk: volume.wholeDisk,
    read: async (o, len) => {
      if (o + len > headLength) return volume.read(o, len);
      head ??= volume.read(0, headLength);
      return Buffer.from((await head).subarray(o, o + len));
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
  /** FAT: the boot sector's label when it has one (blkid's LABEL_FATBOOT); `label` is the root directory's. */
  labelFatboot?: string;
  /** An external journal or log: the UUID of the file system it belongs to (blkid's LOGUUID). */
  logUuid?: string;
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
  // A few volumes are probed at once, so that their reads overlap; results are taken in order.
  const span = (p: Partition | null) => ({
    offset: p ? p.start : 0,
    size: p ? Math.max(0, Math.min(p.size, image.virtualSize - p.start)) : image.virtualSize,
  });
  const detect = (p: Partition | null) => {
    const { offset, size } = span(p);
    return detectFilesystem(headCached(volumeReader(disk, offset, size, p === null)));
  };
  const inFlight: ReturnType<typeof detect>[] = [];
  for (let k = 0; k < Math.min(PROBES_IN_FLIGHT, targets.length); k++) inFlight.push(detect(targets[k]));
  for (let k = 0; k < targets.length; k++) {
    const p = targets[k];
    const d = await (inFlight.shift() as ReturnType<typeof detect>);
    if (k + PROBES_IN_FLIGHT < targets.length) inFlight.push(detect(targets[k + PROBES_IN_FLIGHT]));
    const { offset, size } = span(p);
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
      ...(d.info?.labelFatboot !== undefined ? { labelFatboot: d.info.labelFatboot } : {}),
      ...(d.info?.logUuid !== undefined ? { logUuid: d.info.logUuid } : {}),
      ...(d.info?.size !== undefined ? { fsSize: d.info.size } : {}),
    });
  }
  return { volumes, warnings };
}
