import { trimLabel, uuidFromBytes, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const MAGIC = 0x3434;
const SUM_AT = 16;
const SB_SIZE = 1024;

/** CRC-32 (reflected 0xEDB88320) from a seed, without the usual inversions: the form NILFS2 stores. */
function crc32Seeded(seed: number, b: Uint8Array): number {
  let crc = seed >>> 0;
  for (const byte of b) {
    crc ^= byte;
    for (let k = 0; k < 8; k++) crc = crc & 1 ? (crc >>> 1) ^ 0xedb88320 : crc >>> 1;
  }
  return crc >>> 0;
}

/** A superblock counts when its magic, device size and checksum (over s_bytes, the sum taken as zero) hold. */
function valid(sb: Buffer, volumeSize: number): boolean {
  if (sb.readUInt16LE(6) !== MAGIC) return false;
  if (Number(sb.readBigUInt64LE(32)) !== volumeSize) return false;
  const bytes = sb.readUInt16LE(8);
  if (bytes < SUM_AT + 4 || bytes > SB_SIZE) return false;
  const copy = Buffer.from(sb.subarray(0, bytes));
  copy.writeUInt32LE(0, SUM_AT);
  return crc32Seeded(sb.readUInt32LE(12), copy) === sb.readUInt32LE(SUM_AT);
}

/**
 * NILFS2: a superblock at 1 KiB and a backup 4 KiB before the end; the newer valid one (by last
 * checkpoint number) gives UUID, label and the revision as VERSION, as blkid chooses.
 */
export const nilfs2: Detector = {
  name: 'nilfs2',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 1024 * 1024) return null;
    const primary = await v.read(0x400, SB_SIZE);
    const backupAt = (Math.floor(v.size / 0x200) - 8) * 0x200;
    const backup = await v.read(backupAt, SB_SIZE);
    const ok = [valid(primary, v.size), valid(backup, v.size)];
    if (!ok[0] && !ok[1]) return null;
    const useBackup = ok[1] && (!ok[0] || primary.readBigUInt64LE(56) > backup.readBigUInt64LE(56));
    const sb = useBackup ? backup : primary;
    const info: FsInfo = { filesystem: 'nilfs2', version: String(sb.readUInt32LE(0)) };
    const label = trimLabel(sb.toString('utf8', 0xa8, 0xa8 + 80).split('\0')[0]);
    if (label) info.label = label;
    const uuid = uuidFromBytes(sb.subarray(0x98, 0xa8));
    if (uuid) info.uuid = uuid;
    return info;
  },
};
