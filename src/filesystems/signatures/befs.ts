import { trimLabel, type Detector, type FsInfo, type VolumeReader } from '../types.js';

const MAGIC1 = 0x42465331;
const MAGIC2 = 0xdd121031;
const MAGIC3 = 0x15b6830e;
const FS_ENDIAN = 0x42494745;
const INODE_MAGIC = 0x3bbe0ad9;
const UINT64_TYPE = 0x554c4c47;
const VOLUME_ID = 'be:volume_id';
/** Where the small-data area of an inode begins (after the fixed fields and the data stream). */
const SMALL_DATA_AT = 232;
const MAX_INODE_BYTES = 64 * 1024;

/**
 * BeOS/Haiku BFS (blkid's "befs"): the superblock at 0 or 512 in either byte order, all three magics and
 * the byte-order word right, blocks of 1-8 KiB, and a root-directory inode blkid can find. LABEL is the
 * volume name, VERSION the byte order, UUID the `be:volume_id` attribute when the root inode keeps it in
 * its small-data area (an attribute stored in the attribute directory's B+tree is not looked up: no tool
 * here writes one).
 */
export const befs: Detector = {
  name: 'befs',
  async probe(v: VolumeReader): Promise<FsInfo | null> {
    if (v.size < 1440 * 1024) return null;
    for (const at of [0, 512]) {
      const s = await v.read(at, 164);
      let le: boolean;
      if (s.readUInt32LE(32) === MAGIC1 && s.readUInt32LE(68) === MAGIC2 && s.readUInt32LE(112) === MAGIC3 && s.readUInt32LE(36) === FS_ENDIAN) le = true;
      else if (s.readUInt32BE(32) === MAGIC1 && s.readUInt32BE(68) === MAGIC2 && s.readUInt32BE(112) === MAGIC3 && s.readUInt32BE(36) === FS_ENDIAN) le = false;
      else continue;
      const u16 = (b: Buffer, o: number) => (le ? b.readUInt16LE(o) : b.readUInt16BE(o));
      const u32 = (b: Buffer, o: number) => (le ? b.readUInt32LE(o) : b.readUInt32BE(o));
      const blockSize = u32(s, 40);
      const shift = u32(s, 44);
      if (shift < 10 || shift > 13 || blockSize !== 2 ** shift) return null;
      const agShift = u32(s, 76);
      // The root directory's inode, by its block run (allocation group, start, length).
      const runAt = 2 ** (agShift + shift) * u32(s, 116) + u16(s, 120) * blockSize;
      const runLength = u16(s, 122) * blockSize;
      if (agShift > 40 || runLength < SMALL_DATA_AT || runLength > MAX_INODE_BYTES || runAt + runLength > v.size) return null;
      const inode = await v.read(runAt, runLength);
      if (u32(inode, 0) !== INODE_MAGIC) return null;
      const info: FsInfo = { filesystem: 'befs', version: le ? 'little-endian' : 'big-endian' };
      const label = s[0] !== 0 ? trimLabel(s.toString('utf8', 0, 32).split('\0')[0]) : undefined;
      if (label) info.label = label;
      const total = Math.min(runLength - SMALL_DATA_AT, u32(inode, 64));
      for (let o = 0; o + 8 <= total; ) {
        const p = SMALL_DATA_AT + o;
        const type = u32(inode, p);
        const nameSize = u16(inode, p + 4);
        const dataSize = u16(inode, p + 6);
        const size = 8 + nameSize + 3 + dataSize + 1;
        if (o + size > total) break;
        if (type === UINT64_TYPE && nameSize === VOLUME_ID.length && dataSize === 8 && inode.toString('latin1', p + 8, p + 8 + nameSize + 1) === `${VOLUME_ID}\0`) {
          const id = le ? inode.readBigUInt64LE(p + 8 + nameSize + 3) : inode.readBigUInt64BE(p + 8 + nameSize + 3);
          if (id !== 0n) info.uuid = id.toString(16).padStart(16, '0');
          break;
        }
        if (type === 0 && nameSize === 0 && dataSize === 0) break;
        o += size;
      }
      return info;
    }
    return null;
  },
};
