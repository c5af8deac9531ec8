/**
 * Extended attributes (xfs_da_format.h): shortform in the inode's attribute fork, or leaf blocks of a
 * dabtree in the fork's blocks, with large values in "remote" blocks elsewhere in the fork.
 */
const ATTR_LOCAL = 0x1;
const ATTR_ROOT = 0x2;
const ATTR_SECURE = 0x4;
const ATTR_PARENT = 0x8;
const ATTR_INCOMPLETE = 0x80;

export const ATTR_LEAF_MAGIC = 0xfbee;
export const ATTR3_LEAF_MAGIC = 0x3bee;
export const DA_NODE_MAGIC = 0xfebe;
export const DA3_NODE_MAGIC = 0x3ebe;
export const ATTR3_RMT_MAGIC = 0x5841524d; // 'XARM'
export const DA3_CRC_OFFSET = 12;

export interface RawAttr {
  name: string;
  /** The value, or where it lies in the attribute fork when it is remote. */
  value: Buffer | { block: number; length: number };
}

/** The Linux name of an attribute: the namespace flags choose the prefix; parent pointers and half-set ones are left out. */
function linuxName(flags: number, name: Buffer): string | null {
  if (flags & (ATTR_PARENT | ATTR_INCOMPLETE)) return null;
  const n = name.toString('utf8');
  if (flags & ATTR_ROOT) return `trusted.${n}`;
  return flags & ATTR_SECURE ? `security.${n}` : `user.${n}`;
}

/**
 * POSIX ACLs live as trusted.SGI_ACL_* attributes in XFS's own layout; Linux lists those raw (to root) and
 * also as system.posix_acl_*, converted: the Linux name for one of them, or null.
 */
export function aclName(name: string): string | null {
  if (name === 'trusted.SGI_ACL_FILE') return 'system.posix_acl_access';
  if (name === 'trusted.SGI_ACL_DEFAULT') return 'system.posix_acl_default';
  return null;
}

/** Shortform: totsize, count, then entries of namelen, valuelen, flags, name and value. */
export function parseShortformAttrs(fork: Buffer, out: RawAttr[]): void {
  if (fork.length < 4) throw new Error('shortform header does not fit the fork');
  const total = fork.readUInt16BE(0);
  const count = fork[2];
  if (total < 4 || total > fork.length) throw new Error(`shortform size ${total} does not fit the ${fork.length}-byte fork`);
  let at = 4;
  for (let i = 0; i < count; i++) {
    if (at + 3 > total) throw new Error(`shortform entry ${i} overruns the fork`);
    const namelen = fork[at];
    const valuelen = fork[at + 1];
    const flags = fork[at + 2];
    const end = at + 3 + namelen + valuelen;
    if (end > total) throw new Error(`shortform entry ${i} overruns the fork`);
    const name = linuxName(flags, fork.subarray(at + 3, at + 3 + namelen));
    if (name !== null) out.push({ name, value: Buffer.from(fork.subarray(at + 3 + namelen, end)) });
    at = end;
  }
}

/** A leaf block's entries: hash, name index and flags, each naming a local or remote name/value pair. */
export function parseLeafAttrs(b: Buffer, v5: boolean, out: RawAttr[]): void {
  const hdr = v5 ? 80 : 32;
  const base = v5 ? 56 : 12;
  const count = b.readUInt16BE(base);
  if (hdr + count * 8 > b.length) throw new Error(`${count} entries overrun the block`);
  for (let i = 0; i < count; i++) {
    const e = hdr + i * 8;
    const idx = b.readUInt16BE(e + 4);
    const flags = b[e + 6];
    if (idx < hdr || idx >= b.length) throw new Error(`entry ${i} names offset ${idx}`);
    if (flags & ATTR_LOCAL) {
      // xfs_attr_leaf_name_local: valuelen (2), namelen (1), name, value.
      if (idx + 3 > b.length) throw new Error(`entry ${i} overruns the block`);
      const valuelen = b.readUInt16BE(idx);
      const namelen = b[idx + 2];
      if (idx + 3 + namelen + valuelen > b.length) throw new Error(`entry ${i} overruns the block`);
      const name = linuxName(flags, b.subarray(idx + 3, idx + 3 + namelen));
      if (name !== null) out.push({ name, value: Buffer.from(b.subarray(idx + 3 + namelen, idx + 3 + namelen + valuelen)) });
    } else {
      // xfs_attr_leaf_name_remote: valueblk (4), valuelen (4), namelen (1), name.
      if (idx + 9 > b.length) throw new Error(`entry ${i} overruns the block`);
      const namelen = b[idx + 8];
      if (idx + 9 + namelen > b.length) throw new Error(`entry ${i} overruns the block`);
      const name = linuxName(flags, b.subarray(idx + 9, idx + 9 + namelen));
      if (name !== null) out.push({ name, value: { block: b.readUInt32BE(idx), length: b.readUInt32BE(idx + 4) } });
    }
  }
}

/** The first child and the forward sibling of a dabtree node, and its level. */
export function daNode(b: Buffer, v5: boolean): { level: number; count: number; first: number } {
  const base = v5 ? 56 : 12;
  const hdr = v5 ? 64 : 16;
  return { count: b.readUInt16BE(base), level: b.readUInt16BE(base + 2), first: b.readUInt32BE(hdr + 4) };
}

/** xfs_acl (big-endian count, then tag, id, perm) to the Linux posix_acl xattr layout (version 2, little-endian). */
export function aclToXattr(v: Buffer): Buffer | null {
  if (v.length < 4) return null;
  const count = v.readUInt32BE(0);
  if (4 + count * 12 !== v.length) return null;
  const out = Buffer.alloc(4 + count * 8);
  out.writeUInt32LE(2, 0);
  for (let i = 0; i < count; i++) {
    const at = 4 + i * 12;
    const tag = v.readUInt32BE(at);
    out.writeUInt16LE(tag & 0xffff, 4 + i * 8);
    out.writeUInt16LE(v.readUInt16BE(at + 8) & 0xffff, 6 + i * 8);
    // ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_MASK and ACL_OTHER carry no id: Linux writes ACL_UNDEFINED_ID.
    out.writeUInt32LE(tag === 2 || tag === 8 ? v.readUInt32BE(at + 4) : 0xffffffff, 8 + i * 8);
  }
  return out;
}
