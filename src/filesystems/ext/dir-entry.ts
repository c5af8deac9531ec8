import type { FileType } from '../filesystem.js';
import { extCrc } from './checksum.js';

/**
 * Linear directory entries (Documentation/filesystems/ext4/directory.rst, "Linear (Classic)
 * Directories"): inode (4), rec_len (2), name_len (1 byte, or 2 without the filetype feature), file
 * type (1), name. Hashed (htree) directories keep their index in entries with inode 0 that a linear
 * read skips, so every leaf entry is found by reading the blocks in order.
 */
export interface RawDirEntry {
  ino: number;
  /** Decoded as UTF-8 straight from the block (no view of the bytes per entry). */
  name: string;
  /** The dirent's file type (filetype feature), or null when the inode must be read to know it. */
  type: FileType | null;
}

const FT: (FileType | null)[] = [null, 'file', 'directory', 'char', 'block', 'fifo', 'socket', 'symlink'];

/** rec_len on disk: 64 KiB blocks store 65536 as 0 or 65535, and use the low bits (ext4_rec_len_from_disk). */
function recLen(raw: number, blockSize: number): number {
  if (blockSize < 65536) return raw;
  if (raw === 65535 || raw === 0) return 65536;
  return (raw & 65532) | ((raw & 3) << 16);
}

/**
 * Parses the entries of one region (a directory block, or an inline directory's part). Throws a
 * description of the first malformed entry (the caller names the inode and block), as the kernel's
 * ext4_check_dir_entry refuses the block.
 */
export function parseDirEntries(buf: Buffer, hasFileType: boolean, out: RawDirEntry[], inodesCount: number): void {
  let at = 0;
  while (at < buf.length) {
    if (buf.length - at < 8) throw new Error(`entry at byte ${at} is cut off`);
    const ino = buf.readUInt32LE(at);
    const len = recLen(buf.readUInt16LE(at + 4), buf.length);
    const nameLen = hasFileType ? buf[at + 6] : buf.readUInt16LE(at + 6);
    if (len < 8 || len % 4 !== 0) throw new Error(`entry at byte ${at} has record length ${len}`);
    if (at + len > buf.length) throw new Error(`entry at byte ${at} runs past the end (${len} bytes)`);
    if (8 + nameLen > len) throw new Error(`entry at byte ${at} has a ${nameLen}-byte name in a ${len}-byte record`);
    if (ino !== 0) {
      if (ino > inodesCount) throw new Error(`entry at byte ${at} names inode ${ino}, beyond the inode count ${inodesCount}`);
      if (nameLen === 0) throw new Error(`entry at byte ${at} has an empty name`);
      const n = at + 8;
      const dot = nameLen <= 2 && buf[n] === 0x2e && (nameLen === 1 || buf[n + 1] === 0x2e);
      if (!dot) out.push({ ino, name: buf.toString('utf8', n, n + nameLen), type: hasFileType ? FT[buf[at + 7]] ?? null : null });
    }
    at += len;
  }
}

/** The 12-byte checksum tail of a leaf block (metadata_csum): a fake entry with inode 0, rec_len 12, type 0xDE. */
export function hasDirTail(block: Buffer): boolean {
  const t = block.length - 12;
  return t >= 0 && block.readUInt32LE(t) === 0 && block.readUInt16LE(t + 4) === 12 && block[t + 6] === 0 && block[t + 7] === 0xde;
}

/** crc32c from the inode's seed over the block before the tail (directory.rst, "Checksums"). */
export function dirTailChecksumOk(block: Buffer, inodeSeed: number): boolean {
  const t = block.length - 12;
  return extCrc(inodeSeed, block.subarray(0, t)) === block.readUInt32LE(t + 8);
}
