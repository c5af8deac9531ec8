import { VdiskError } from '../../errors.js';
import type { FileType } from '../filesystem.js';
import { typeOfInode } from './inode.js';

/**
 * A directory's listing in the directory table: runs of entries, each run after a 12-byte header
 * (entries - 1, the metadata block of their inodes, a base inode number), each entry 8 bytes
 * (offset of its inode in that block, inode number - base, type, name length - 1) and its name.
 */

/** The kernel's bound on the entries behind one header (SQUASHFS_DIR_COUNT). */
const MAX_RUN = 256;
const HEADER = 12;
const ENTRY = 8;

export interface DirEntry {
  name: string;
  type: FileType;
  /** The inode's reference: block relative to the inode table << 16 | offset. */
  ref: number;
  ino: number;
}

export function parseListing(buf: Buffer, where: string): DirEntry[] {
  const bad = (at: number, m: string) => new VdiskError('CORRUPT', `${where}: directory listing at byte ${at}: ${m}`);
  const out: DirEntry[] = [];
  let at = 0;
  while (at < buf.length) {
    if (at + HEADER > buf.length) throw bad(at, 'header runs past the listing');
    const count = buf.readUInt32LE(at) + 1;
    const block = buf.readUInt32LE(at + 4);
    const base = buf.readUInt32LE(at + 8);
    if (count > MAX_RUN) throw bad(at, `${count} entries after one header (at most 256)`);
    at += HEADER;
    for (let i = 0; i < count; i++) {
      if (at + ENTRY > buf.length) throw bad(at, 'entry runs past the listing');
      const offset = buf.readUInt16LE(at);
      const delta = buf.readInt16LE(at + 2);
      const kind = buf.readUInt16LE(at + 4);
      const len = buf.readUInt16LE(at + 6) + 1;
      if (len > 256) throw bad(at, `name of ${len} bytes (at most 256)`);
      if (at + ENTRY + len > buf.length) throw bad(at, 'name runs past the listing');
      const type = kind <= 7 ? typeOfInode(kind) : null;
      if (type === null) throw bad(at, `unknown entry type ${kind}`);
      const name = buf.toString('utf8', at + ENTRY, at + ENTRY + len);
      if (name === '.' || name === '..' || name.includes('/') || name.includes('\0')) throw bad(at, `file name ${JSON.stringify(name)} is not a valid name`);
      if (offset >= 8192) throw bad(at, `inode offset ${offset} is past a metadata block`);
      out.push({ name, type, ref: block * 65536 + offset, ino: base + delta });
      at += ENTRY + len;
    }
  }
  return out;
}
