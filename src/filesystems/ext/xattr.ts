import { extCrc, le64 } from './checksum.js';

/**
 * Extended attributes (Documentation/filesystems/ext4/attributes.rst): after the inode's extra fields
 * (a 4-byte magic, then entries whose value offsets count from the first entry), and in one block named
 * by i_file_acl (a 32-byte header, then entries whose value offsets count from the block's start). An
 * entry is name_len (1), name_index (1), value_offs (2), value_inum (4, ea_inode), value_size (4),
 * hash (4), then the name padded to 4 bytes; a zero word ends the list.
 */
export const XATTR_MAGIC = 0xea020000;
/** The kernel's XATTR_SIZE_MAX: no value is larger. */
export const XATTR_VALUE_MAX = 65536;

export interface RawXattr {
  index: number;
  name: Buffer;
  /** The value bytes, or the inode holding them (ea_inode). */
  value: Buffer | { inode: number; size: number };
}

/**
 * Parses entries starting at `entriesAt` in `region`; values are at `valueBase + value_offs`. Throws a
 * description of the first malformed entry (the caller names the inode or block).
 */
export function parseXattrEntries(region: Buffer, entriesAt: number, valueBase: number, out: RawXattr[]): void {
  let at = entriesAt;
  for (;;) {
    if (at + 4 > region.length || region.readUInt32LE(at) === 0) return;
    if (at + 16 > region.length) throw new Error(`entry at byte ${at} is cut off`);
    const nameLen = region[at];
    const index = region[at + 1];
    const offs = region.readUInt16LE(at + 2);
    const inum = region.readUInt32LE(at + 4);
    const size = region.readUInt32LE(at + 8);
    if (at + 16 + nameLen > region.length) throw new Error(`entry at byte ${at} has a name past the end`);
    const name = region.subarray(at + 16, at + 16 + nameLen);
    if (size > XATTR_VALUE_MAX) throw new Error(`entry at byte ${at} has a ${size}-byte value, larger than ${XATTR_VALUE_MAX}`);
    if (inum !== 0) out.push({ index, name, value: { inode: inum, size } });
    else {
      const v = valueBase + offs;
      if (v + size > region.length) throw new Error(`entry at byte ${at} has its value past the end`);
      out.push({ index, name, value: region.subarray(v, v + size) });
    }
    at += (16 + nameLen + 3) & ~3;
  }
}

/** The xattr block's h_checksum: crc32c from the volume's seed over the block number and the block with it zeroed. */
export function xattrBlockChecksumOk(block: Buffer, blockNr: number, seed: number): boolean {
  const copy = Buffer.from(block);
  const stored = copy.readUInt32LE(0x10);
  copy.writeUInt32LE(0, 0x10);
  return extCrc(extCrc(seed, le64(blockNr)), copy) === stored;
}

/** Name prefixes by name_index, for the indexes Linux lists (fs/ext4/xattr.c's handler map). */
const PREFIX: Record<number, string> = {
  1: 'user.',
  2: 'system.posix_acl_access',
  3: 'system.posix_acl_default',
  4: 'trusted.',
  6: 'security.',
  10: 'gnu.',
};

/** The full name as listxattr shows it, or null for indexes Linux hides (system.data, richacl, lustre). */
export function xattrName(index: number, name: Buffer): string | null {
  const p = PREFIX[index];
  if (p === undefined) return null;
  return p + name.toString('utf8');
}

/**
 * POSIX ACLs are stored in ext4's compact form (version 1; 4-byte entries for the owner, group, mask
 * and other, 8-byte ones with an id for named users and groups); getxattr returns the generic form
 * (version 2, every entry 8 bytes, id 0xFFFFFFFF where there is none). Returns null when malformed.
 */
export function aclToXattr(disk: Buffer): Buffer | null {
  if (disk.length < 4 || disk.readUInt32LE(0) !== 1) return null;
  const entries: [number, number, number][] = [];
  let at = 4;
  while (at < disk.length) {
    if (at + 4 > disk.length) return null;
    const tag = disk.readUInt16LE(at);
    const perm = disk.readUInt16LE(at + 2);
    if (tag === 0x02 || tag === 0x08) {
      // ACL_USER and ACL_GROUP carry an id.
      if (at + 8 > disk.length) return null;
      entries.push([tag, perm, disk.readUInt32LE(at + 4)]);
      at += 8;
    } else {
      entries.push([tag, perm, 0xffffffff]);
      at += 4;
    }
  }
  const out = Buffer.alloc(4 + 8 * entries.length);
  out.writeUInt32LE(2, 0);
  entries.forEach(([tag, perm, id], i) => {
    out.writeUInt16LE(tag, 4 + 8 * i);
    out.writeUInt16LE(perm, 6 + 8 * i);
    out.writeUInt32LE(id, 8 + 8 * i);
  });
  return out;
}
