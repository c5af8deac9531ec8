import { VdiskError } from '../../errors.js';
import type { FsInfo } from '../types.js';

/**
 * The squashfs superblock (squashfs_fs.h, struct squashfs_super_block): 96 little-endian bytes at the
 * volume's start. Version 4 only; 3 and older (and big-endian "sqsh") are named for mount-detect and
 * refused by the reader.
 */

export const SUPERBLOCK_SIZE = 96;
const MAGIC_LE = 'hsqs';
const MAGIC_BE = 'sqsh';
/** "No table": the export, xattr and fragment tables may be absent. */
const NO_TABLE = 0xffffffffffffffffn;

export const COMPRESSORS: Record<number, string> = { 1: 'gzip', 2: 'lzma', 3: 'lzo', 4: 'xz', 5: 'lz4', 6: 'zstd' };

export interface Superblock {
  inodeCount: number;
  modTime: number;
  blockSize: number;
  fragmentCount: number;
  compressor: number;
  blockLog: number;
  flags: number;
  idCount: number;
  major: number;
  minor: number;
  /** The root inode's reference: metadata block (relative to the inode table) << 16 | offset. */
  rootInode: number;
  bytesUsed: number;
  idTable: number;
  /** Absent (null) when the superblock says NO_TABLE. */
  xattrIdTable: number | null;
  inodeTable: number;
  directoryTable: number;
  fragmentTable: number | null;
  exportTable: number | null;
}

/** mount-detect's view: TYPE, VERSION and (for version 4) the size, as blkid gives them. */
export function probeSuperblock(s: Buffer): FsInfo | null {
  const magic = s.toString('latin1', 0, 4);
  if (magic === MAGIC_BE) {
    const major = s.readUInt16BE(28);
    return major > 3 ? null : { filesystem: 'squashfs3', version: `${major}.${s.readUInt16BE(30)}` };
  }
  if (magic !== MAGIC_LE) return null;
  const major = s.readUInt16LE(28);
  if (major < 4) return { filesystem: 'squashfs3', version: `${major}.${s.readUInt16LE(30)}` };
  return { filesystem: 'squashfs', version: `${major}.${s.readUInt16LE(30)}`, size: Number(s.readBigUInt64LE(40)) };
}

function u64(s: Buffer, at: number, name: string, field: string): number {
  const v = s.readBigUInt64LE(at);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new VdiskError('CORRUPT', `${name}: squashfs superblock: ${field} ${v} is out of range`);
  return Number(v);
}

function optionalTable(s: Buffer, at: number, name: string, field: string): number | null {
  return s.readBigUInt64LE(at) === NO_TABLE ? null : u64(s, at, name, field);
}

/**
 * Parses and checks the superblock against itself and the volume: every table starts inside
 * bytes_used, bytes_used fits the volume, the block size is a power of two from 4 KiB to 1 MiB that
 * block_log agrees with, and the tables come in the order mksquashfs and the kernel rely on.
 */
export function parseSuperblock(s: Buffer, volumeSize: number, name: string): Superblock {
  const bad = (what: string) => new VdiskError('CORRUPT', `${name}: squashfs superblock: ${what}`);
  if (s.length < SUPERBLOCK_SIZE) throw new VdiskError('TRUNCATED', `${name}: squashfs superblock: the volume is shorter than its 96 bytes`);
  const magic = s.toString('latin1', 0, 4);
  if (magic === MAGIC_BE) throw new VdiskError('UNSUPPORTED', `${name}: big-endian squashfs (version 3 or older) is not supported`);
  if (magic !== MAGIC_LE) throw bad('no "hsqs" magic');
  const major = s.readUInt16LE(28);
  const minor = s.readUInt16LE(30);
  if (major !== 4 || minor !== 0) throw new VdiskError('UNSUPPORTED', `${name}: squashfs version ${major}.${minor} is not supported (only 4.0)`);
  const sb: Superblock = {
    inodeCount: s.readUInt32LE(4),
    modTime: s.readUInt32LE(8),
    blockSize: s.readUInt32LE(12),
    fragmentCount: s.readUInt32LE(16),
    compressor: s.readUInt16LE(20),
    blockLog: s.readUInt16LE(22),
    flags: s.readUInt16LE(24),
    idCount: s.readUInt16LE(26),
    major,
    minor,
    rootInode: u64(s, 32, name, 'root inode reference'),
    bytesUsed: u64(s, 40, name, 'bytes_used'),
    idTable: u64(s, 48, name, 'id table start'),
    xattrIdTable: optionalTable(s, 56, name, 'xattr id table start'),
    inodeTable: u64(s, 64, name, 'inode table start'),
    directoryTable: u64(s, 72, name, 'directory table start'),
    fragmentTable: optionalTable(s, 80, name, 'fragment table start'),
    exportTable: optionalTable(s, 88, name, 'export table start'),
  };
  const bs = sb.blockSize;
  if (bs < 4096 || bs > 1024 * 1024 || (bs & (bs - 1)) !== 0) throw bad(`block size ${bs} is not a power of two from 4 KiB to 1 MiB`);
  if (2 ** sb.blockLog !== bs) throw bad(`block_log ${sb.blockLog} does not match the block size ${bs}`);
  if (sb.bytesUsed < SUPERBLOCK_SIZE) throw bad(`bytes_used ${sb.bytesUsed} is below the superblock's own 96 bytes`);
  if (sb.bytesUsed > volumeSize) {
    throw new VdiskError('TRUNCATED', `${name}: squashfs superblock: bytes_used ${sb.bytesUsed} runs past the end of the volume (${volumeSize} bytes)`);
  }
  if (sb.idCount === 0) throw bad('the id table is empty (every squashfs has at least one owner id)');
  const tables: [string, number | null][] = [
    ['inode table', sb.inodeTable], ['directory table', sb.directoryTable], ['fragment table', sb.fragmentTable],
    ['export table', sb.exportTable], ['id table', sb.idTable], ['xattr id table', sb.xattrIdTable],
  ];
  for (const [what, at] of tables) {
    if (at !== null && (at < SUPERBLOCK_SIZE || at >= sb.bytesUsed)) throw bad(`${what} start ${at} is outside the image's ${sb.bytesUsed} bytes`);
  }
  if (sb.inodeTable >= sb.directoryTable) throw bad(`the inode table (${sb.inodeTable}) does not come before the directory table (${sb.directoryTable})`);
  for (const [what, at] of tables.slice(2)) {
    if (at !== null && at <= sb.directoryTable) throw bad(`the ${what} (${at}) does not come after the directory table (${sb.directoryTable})`);
  }
  if (sb.fragmentCount > 0 && sb.fragmentTable === null) throw bad(`${sb.fragmentCount} fragments but no fragment table`);
  if (Math.floor(sb.rootInode / 65536) >= sb.directoryTable - sb.inodeTable) throw bad('the root inode reference points past the inode table');
  return sb;
}

/** Where a table's metadata ends: the next table's start (the tables are in order), or bytes_used. */
export function tableEnd(sb: Superblock, start: number): number {
  let end = sb.bytesUsed;
  for (const at of [sb.inodeTable, sb.directoryTable, sb.fragmentTable, sb.exportTable, sb.idTable, sb.xattrIdTable]) {
    if (at !== null && at > start && at < end) end = at;
  }
  return end;
}
