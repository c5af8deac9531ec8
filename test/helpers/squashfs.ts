import { spawnSync } from 'node:child_process';
import { chmodSync, lchownSync, linkSync, lstatSync, lutimesSync, mkdirSync, openSync, closeSync, readdirSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Filesystem, FileType } from '../../src/filesystems/filesystem.js';
import { noise } from './iso.js';

/** What the squashfs tests compare for one path: the fields `unsquashfs -lln` shows, and contents. */
export interface SqSeen {
  type: FileType;
  perms: number;
  uid: number;
  gid: number;
  /** Files and symlinks: bytes; directories: the listing's size; devices: absent. */
  size?: number;
  rdev?: string;
  mtime: string;
  target?: string;
}

const TYPE_CHAR: Record<string, FileType> = { '-': 'file', d: 'directory', l: 'symlink', p: 'fifo', b: 'block', c: 'char', s: 'socket' };

function permsFrom(s: string): number {
  let p = 0;
  for (let i = 0; i < 9; i++) if (s[i] !== '-' && s[i] !== 'S' && s[i] !== 'T') p |= 1 << (8 - i);
  if (s[2] === 's' || s[2] === 'S') p |= 0o4000;
  if (s[5] === 's' || s[5] === 'S') p |= 0o2000;
  if (s[8] === 't' || s[8] === 'T') p |= 0o1000;
  return p;
}

/** `unsquashfs -lln` (numeric owners, times in UTC) as path -> fields. */
export function unsquashfsListing(img: string): Map<string, SqSeen> {
  const r = spawnSync('unsquashfs', ['-lln', img], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`unsquashfs -lln failed: ${r.stderr}`);
  const out = new Map<string, SqSeen>();
  for (const line of r.stdout.split('\n')) {
    const m = /^(\S)(\S{9}) (\d+)\/(\d+)\s+(\d+|\d+,\s*\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) squashfs-root(.*)$/s.exec(line);
    if (!m) continue;
    const seen: SqSeen = { type: TYPE_CHAR[m[1]] ?? 'other', perms: permsFrom(m[2]), uid: Number(m[3]), gid: Number(m[4]), mtime: m[6] };
    if (m[5].includes(',')) seen.rdev = m[5].replace(/\s+/g, '');
    else seen.size = Number(m[5]);
    let path = m[7];
    if (seen.type === 'symlink') {
      const at = path.indexOf(' -> ');
      seen.target = path.slice(at + 4);
      path = path.slice(0, at);
    }
    out.set(path === '' ? '/' : path, seen);
  }
  return out;
}

export interface SqWalked extends SqSeen {
  nlink: number;
  ino: number;
  read?: Buffer;
  xattrs: Record<string, string>;
}

/** Our reading of every path, in `unsquashfs -lln`'s terms, with contents and xattrs. */
export async function walkSquash(fs: Filesystem, contents = true): Promise<Map<string, SqWalked>> {
  const out = new Map<string, SqWalked>();
  const visit = async (path: string) => {
    const st = await fs.lstat(path);
    const w: SqWalked = {
      type: st.type,
      perms: st.mode & 0o7777,
      uid: st.uid,
      gid: st.gid,
      mtime: new Date((st.mtime?.sec ?? 0) * 1000).toISOString().slice(0, 16).replace('T', ' '),
      nlink: st.nlink,
      ino: st.ino,
      xattrs: {},
    };
    if (st.rdev) w.rdev = `${st.rdev.major},${st.rdev.minor}`;
    else w.size = st.type === 'file' || st.type === 'directory' || st.type === 'symlink' ? st.size : 0;
    for (const x of await fs.xattrs(path)) w.xattrs[x.name] = x.value.toString('hex');
    if (st.type === 'symlink') w.target = await fs.readlink(path);
    if (st.type === 'file' && contents) {
      const f = await fs.open(path);
      const buf = Buffer.alloc(st.size);
      const n = await f.read(buf, 0);
      if (n !== st.size) throw new Error(`${path}: read ${n} of ${st.size}`);
      w.read = buf;
    }
    out.set(path, w);
    if (st.type === 'directory') {
      for (const e of await fs.readdir(path)) await visit(path === '/' ? `/${e.name}` : `${path}/${e.name}`);
    }
  };
  await visit('/');
  return out;
}

/** `getfattr -d -m - -e hex` of every path in the source, as path -> name -> hex value. */
export function sourceXattrs(root: string): Map<string, Record<string, string>> {
  const r = spawnSync('getfattr', ['-R', '-P', '-h', '-d', '-m', '-', '-e', 'hex', '.'], { cwd: root, encoding: 'utf8' });
  const out = new Map<string, Record<string, string>>();
  let cur: Record<string, string> | null = null;
  for (const line of r.stdout.split('\n')) {
    const f = /^# file: (.*)$/.exec(line);
    if (f) {
      cur = {};
      out.set(f[1] === '.' ? '/' : `/${f[1].replace(/^\.\//, '')}`, cur);
      continue;
    }
    const kv = /^([^=]+)=0x([0-9a-f]*)$/.exec(line);
    if (kv && cur) cur[kv[1]] = kv[2];
  }
  return out;
}

/** Names of the special files, all at the top level (vdisk get leaves them out, with a warning). */
export const SPECIALS = ['pipe', 'chardev', 'blockdev', 'socket'];

/**
 * The tree the squashfs tests image: modes and owners, hard links, symlinks, a fifo, a socket and
 * devices (as root), sparse files (whole zero blocks at 4 KiB and 128 KiB), files exactly a block long
 * and a few blocks and a tail, xattrs (one value shared by two files, which mksquashfs stores once, out
 * of line), a directory of 400 entries (several headers, several metadata blocks, an extended
 * directory inode with an index), names in several scripts. Whole-second times, set last.
 */
export function makeSquashTree(root: string): void {
  const f = (rel: string, data: string | Buffer, mode = 0o644) => {
    writeFileSync(join(root, rel), data);
    chmodSync(join(root, rel), mode);
  };
  mkdirSync(join(root, 'docs', 'nested'), { recursive: true });
  mkdirSync(join(root, 'many'));
  f('readme.txt', 'hello, world\n', 0o640);
  f('empty', '', 0o600);
  f('run.sh', '#!/bin/sh\necho hi\n', 0o755);
  f('setuid', 'x', 0o4755);
  f('Ünïcödé – 日本語 ñame.txt', 'unicode\n');
  f('block4k', noise(4096, 3));
  f('block128k', noise(131072, 4));
  f('data.bin', noise(3 * 1024 * 1024 + 123, 7));
  f('text.txt', 'compressible text line\n'.repeat(20000));
  f('docs/nested/note.md', '# note\n');
  // Sparse: data, then holes a whole 128 KiB block long (and many 4 KiB ones), then data and a tail.
  const sparse = openSync(join(root, 'sparse'), 'w');
  writeSync(sparse, noise(5000, 9), 0, 5000, 0);
  writeSync(sparse, noise(7000, 10), 0, 7000, 1024 * 1024);
  closeSync(sparse);
  writeFileSync(join(root, 'allzero'), Buffer.alloc(300 * 1024));
  for (let i = 0; i < 400; i++) writeFileSync(join(root, 'many', `entry-${String(i).padStart(4, '0')}-${'x'.repeat(i % 40)}`), `${i}\n`);
  linkSync(join(root, 'readme.txt'), join(root, 'docs', 'hardlink.txt'));
  linkSync(join(root, 'data.bin'), join(root, 'data-link.bin'));
  spawnSync('mkfifo', [join(root, 'pipe')]);
  spawnSync('mknod', [join(root, 'chardev'), 'c', '1', '3']);
  spawnSync('mknod', [join(root, 'blockdev'), 'b', '259', '70000']);
  spawnSync('python3', ['-c', `import socket; s = socket.socket(socket.AF_UNIX); s.bind(${JSON.stringify(join(root, 'socket'))})`]);
  symlinkSync('readme.txt', join(root, 'link'));
  symlinkSync('/etc/passwd', join(root, 'absolute'));
  symlinkSync('../readme.txt', join(root, 'docs', 'up'));
  symlinkSync(Array.from({ length: 40 }, (_, i) => `part${String(i).padStart(5, '0')}`).join('/'), join(root, 'longlink'));
  const big = 'v'.repeat(3000);
  spawnSync('setfattr', ['-n', 'user.shared', '-v', big, join(root, 'readme.txt')]);
  spawnSync('setfattr', ['-n', 'user.shared', '-v', big, join(root, 'run.sh')]);
  spawnSync('setfattr', ['-n', 'user.small', '-v', 'one', join(root, 'run.sh')]);
  spawnSync('setfattr', ['-n', 'user.dir', '-v', 'on a directory', join(root, 'docs')]);
  spawnSync('setfattr', ['-n', 'trusted.t', '-v', '0x00ff', join(root, 'empty')]);
  lchownSync(join(root, 'run.sh'), 1234, 567);
  lchownSync(join(root, 'docs'), 42, 43);
  lchownSync(join(root, 'link'), 7, 8);
  const whole = (rel: string, when: number) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) for (const n of readdirSync(p)) whole(rel ? `${rel}/${n}` : n, when + 1);
    if (!st.isSocket()) lutimesSync(p, when, when);
  };
  whole('', 1500000000);
  lutimesSync(join(root, 'readme.txt'), 981173106, 981173106);
  lutimesSync(join(root, 'link'), 1300000000, 1300000000);
}
