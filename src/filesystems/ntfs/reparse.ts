/**
 * Links on NTFS, in the two forms ntfs-3g reads:
 * - reparse points ($REPARSE_POINT, type 0xC0; MS-FSCC 2.1.2): symbolic links (IO_REPARSE_TAG_SYMLINK)
 *   and junctions (IO_REPARSE_TAG_MOUNT_POINT), each with a substitute name and a print name, and WSL's
 *   links (IO_REPARSE_TAG_LX_SYMLINK, MS-FSCC 2.1.2.7);
 * - Interix special files, which ntfs-3g creates for `ln -s`, mkfifo and mknod: a system file whose data
 *   starts with "IntxLNK\1" (then the UTF-16 target), "IntxCHR\0" / "IntxBLK\0" (then 64-bit major
 *   and minor); an empty system file is a FIFO and a one-byte one a socket.
 */

export const TAG_MOUNT_POINT = 0xa0000003;
export const TAG_SYMLINK = 0xa000000c;
/** WSL's symbolic links: a 32-bit version (2), then the target as UTF-8, Linux-style. */
export const TAG_LX_SYMLINK = 0xa000001d;
export const TAG_DEDUP = 0x80000013;
export const TAG_WOF = 0x80000017;

/** Symbolic link flag: the target is relative to the link's directory. */
const SYMLINK_RELATIVE = 0x1;

export interface ReparsePoint {
  tag: number;
  /** For symlinks and junctions: the target as ntfs-3g shows it, relative to the volume's root. */
  target?: string;
}

/**
 * The target the way ntfs-3g's mount shows it, with the mount point left out: `\` becomes `/`; an
 * absolute Windows path (`\??\C:\dir`, `\??\Volume{...}\`) points outside the volume's own tree, and
 * ntfs-3g sends it to `<mount>/.NTFS-3G/C:/dir` (where a user may put a link to that drive), so it
 * becomes `/.NTFS-3G/C:/dir` here. Relative symlinks are kept as stored (ntfs-3g also re-cases their
 * directories from the volume and refuses dangling ones; we show what the link says).
 */
function translate(target: string, relative: boolean): string {
  if (relative) return target.replace(/\\/g, '/');
  let t = target;
  if (t.startsWith('\\??\\')) t = t.slice(4);
  else if (t.startsWith('\\\\?\\')) t = t.slice(4);
  t = t.replace(/\\/g, '/').replace(/\/+$/, '');
  return t.startsWith('/') ? t : `/.NTFS-3G/${t}`;
}

/** The reparse point's tag and, for links, target; or what is wrong. */
export function parseReparsePoint(b: Buffer): ReparsePoint | string {
  if (b.length < 8) return 'reparse data truncated';
  const tag = b.readUInt32LE(0);
  const dataLength = b.readUInt16LE(4);
  if (8 + dataLength > b.length) return `reparse data length ${dataLength} runs past the attribute`;
  if (tag === TAG_LX_SYMLINK) {
    if (dataLength < 4) return 'WSL link reparse data truncated';
    return { tag, target: b.toString('utf8', 12, 8 + dataLength) };
  }
  if (tag !== TAG_SYMLINK && tag !== TAG_MOUNT_POINT) return { tag };
  const head = tag === TAG_SYMLINK ? 12 : 8;
  if (dataLength < head) return 'link reparse data truncated';
  const substOff = b.readUInt16LE(8);
  const substLen = b.readUInt16LE(10);
  const printOff = b.readUInt16LE(12);
  const printLen = b.readUInt16LE(14);
  const flags = tag === TAG_SYMLINK ? b.readUInt32LE(16) : 0;
  const buf = 8 + head;
  const end = 8 + dataLength;
  const take = (off: number, len: number) => (buf + off + len <= end && (len & 1) === 0 ? b.toString('utf16le', buf + off, buf + off + len) : null);
  const subst = take(substOff, substLen);
  const print = take(printOff, printLen);
  if (subst === null || print === null) return 'link names run past the reparse data';
  const relative = tag === TAG_SYMLINK && (flags & SYMLINK_RELATIVE) !== 0;
  // The substitute name is what the system follows; the print name is only for display and may be empty.
  const name = subst !== '' ? subst : print;
  return { tag, target: translate(name, relative) };
}

export type InterixType = { type: 'symlink'; target: string } | { type: 'char' | 'block'; major: number; minor: number } | { type: 'fifo' | 'socket' };

/** What an Interix system file's data says it is, or null when it is an ordinary file. */
export function parseInterix(data: Buffer, size: number): InterixType | null {
  if (size === 0) return { type: 'fifo' };
  if (size === 1) return { type: 'socket' };
  if (data.length < 8) return null;
  const magic = data.toString('latin1', 0, 8);
  if (magic === 'IntxLNK\x01') {
    if ((data.length - 8) % 2 !== 0) return null;
    return { type: 'symlink', target: data.toString('utf16le', 8) };
  }
  if ((magic === 'IntxCHR\0' || magic === 'IntxBLK\0') && data.length === 24) {
    const major = Number(data.readBigUInt64LE(8));
    const minor = Number(data.readBigUInt64LE(16));
    return { type: magic === 'IntxCHR\0' ? 'char' : 'block', major, minor };
  }
  return null;
}
