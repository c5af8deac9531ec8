import { spawnSync } from 'node:child_process';
import { chmodSync, lchownSync, linkSync, lstatSync, mkdirSync, readdirSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, lutimesSync } from 'node:fs';
import { join } from 'node:path';
import type { Filesystem, FileType } from '../../src/filesystems/filesystem.js';

/** What the ISO tests compare for one path: the fields every side can state. */
export interface Seen {
  type: FileType;
  perms: number;
  uid: number;
  gid: number;
  nlink: number;
  size: number;
  target?: string;
  mtime?: number;
  flags?: string[];
}

export interface Walked extends Seen {
  read?: Buffer;
}

const TYPE_CHAR: Record<string, FileType> = { '-': 'file', d: 'directory', l: 'symlink', p: 'fifo', b: 'block', c: 'char', s: 'socket' };

function permsFrom(s: string): number {
  let p = 0;
  for (let i = 0; i < 9; i++) if (s[i] !== '-') p |= 1 << (8 - i);
  if (s[2] === 's' || s[2] === 'S') p |= 0o4000;
  if (s[5] === 's' || s[5] === 'S') p |= 0o2000;
  if (s[8] === 't' || s[8] === 'T') p |= 0o1000;
  if (s[2] === 'S') p &= ~0o100;
  if (s[5] === 'S') p &= ~0o010;
  if (s[8] === 'T') p &= ~0o001;
  return p;
}

/** Words as xorriso quotes them: '...' and "..." runs glued together ('it'"'"'s'), separated by spaces. */
function shellWords(s: string): string[] {
  const out: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < s.length;) {
    const c = s[i];
    if (c === "'" || c === '"') {
      const end = s.indexOf(c, i + 1);
      cur = (cur ?? '') + s.slice(i + 1, end < 0 ? s.length : end);
      i = end < 0 ? s.length : end + 1;
    } else if (c === ' ') {
      if (cur !== null) out.push(cur);
      cur = null;
      i++;
    } else {
      cur = (cur ?? '') + c;
      i++;
    }
  }
  if (cur !== null) out.push(cur);
  return out;
}

/** xorriso's own reading of the image: `-find / -exec lsdl`, as path -> fields (sizes of files only). */
export function xorrisoLsdl(img: string): Map<string, Seen> {
  const r = spawnSync('xorriso', ['-indev', `stdio:${img}`, '-find', '/', '-exec', 'lsdl'], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`xorriso failed: ${r.stderr}`);
  const out = new Map<string, Seen>();
  for (const line of r.stdout.split('\n')) {
    // s: names may hold U+2028, a line terminator to a plain '.'
    const m = /^(\S)(\S{9})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+[\d:]+\s+(.*)$/s.exec(line);
    if (!m) continue;
    const words = shellWords(m[7]);
    m[7] = words[0];
    m[8] = words[1] === '->' ? words[2] : (undefined as unknown as string);
    const seen: Seen = { type: TYPE_CHAR[m[1]] ?? 'other', perms: permsFrom(m[2]), nlink: Number(m[3]), uid: Number(m[4]), gid: Number(m[5]), size: Number(m[6]) };
    if (m[8] !== undefined) seen.target = m[8];
    out.set(m[7], seen);
  }
  return out;
}

/** Every path of our reading, from the root, with contents of regular files when `contents` says so. */
export async function walkOurs(fs: Filesystem, contents = true): Promise<Map<string, Walked>> {
  const out = new Map<string, Walked>();
  const visit = async (path: string) => {
    const st = await fs.lstat(path);
    const w: Walked = { type: st.type, perms: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink, size: st.size };
    if (st.mtime) w.mtime = st.mtime.sec;
    if (st.flags) w.flags = st.flags;
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

/** The source tree as lstat sees it. */
export function walkSource(root: string): Map<string, Walked> {
  const out = new Map<string, Walked>();
  const visit = (rel: string) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    const type: FileType = st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : 'file';
    const w: Walked = { type, perms: st.mode & 0o7777, uid: st.uid, gid: st.gid, nlink: st.nlink, size: st.size, mtime: Math.floor(st.mtimeMs / 1000) };
    if (type === 'symlink') w.target = readlinkSync(p);
    out.set(rel === '' ? '/' : `/${rel}`, w);
    if (type === 'directory') for (const n of readdirSync(p)) visit(rel === '' ? n : `${rel}/${n}`);
  };
  visit('');
  return out;
}

/** A deterministic pseudo-random buffer (xorshift), so failures reproduce. */
export function noise(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size + 3);
  let x = seed | 1;
  for (let i = 0; i < size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b.writeInt32LE(x | 0, i);
  }
  return b.subarray(0, size);
}

export const LONG_NAME = 'A long name, '.repeat(14) + 'end.txt'; // 189 characters: Rock Ridge keeps it, Joliet cuts it
export const UNICODE_NAME = 'Ünïcödé – 日本語 ñame.txt';

/**
 * The tree the ISO tests image: modes, owners, hard links, a fifo, symlinks (relative, absolute, long
 * enough to need a continuation area), deep directories (relocated by genisoimage), names in several
 * scripts and past Joliet's 64 characters, an empty file and one of a few MiB. Times are set last.
 */
export function makeSourceTree(root: string): void {
  const f = (rel: string, data: string | Buffer, mode = 0o644) => {
    writeFileSync(join(root, rel), data);
    chmodSync(join(root, rel), mode);
  };
  mkdirSync(join(root, 'docs', 'nested'), { recursive: true });
  mkdirSync(join(root, 'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i'), { recursive: true });
  f('readme.txt', 'hello, world\n', 0o640);
  f('empty', '', 0o600);
  f('run.sh', '#!/bin/sh\necho hi\n', 0o755);
  f('setuid', 'x', 0o4755);
  f(UNICODE_NAME, 'unicode\n');
  f(LONG_NAME, 'long\n');
  f('data.bin', noise(3 * 1024 * 1024 + 123, 7));
  f('docs/nested/note.md', '# note\n');
  f('a/b/c/d/e/f/g/h/i/deep.txt', 'deep\n');
  linkSync(join(root, 'readme.txt'), join(root, 'docs', 'hardlink.txt'));
  spawnSync('mkfifo', [join(root, 'pipe')]);
  symlinkSync('readme.txt', join(root, 'link'));
  symlinkSync('/etc/passwd', join(root, 'absolute'));
  symlinkSync('../readme.txt', join(root, 'docs', 'up'));
  symlinkSync('./nested/../nested/note.md', join(root, 'docs', 'dots'));
  // 200 bytes: past what fits in the record with its name, so xorriso continues it in a CE area.
  symlinkSync(Array.from({ length: 20 }, (_, i) => `part${String(i).padStart(5, '0')}`).join('/'), join(root, 'longlink'));
  lchownSync(join(root, 'run.sh'), 1234, 567);
  lchownSync(join(root, 'docs'), 42, 43);
  // Rock Ridge's short TF form keeps whole seconds: give everything whole-second times first.
  const whole = (rel: string) => {
    const p = join(root, rel);
    const st = lstatSync(p);
    if (st.isDirectory()) for (const n of readdirSync(p)) whole(rel ? `${rel}/${n}` : n);
    lutimesSync(p, Math.floor(st.mtimeMs / 1000), Math.floor(st.mtimeMs / 1000));
  };
  whole('');
  const t = (rel: string, when: number) => utimesSync(join(root, rel), when, when);
  t('readme.txt', 981173106); // 2001-02-03 04:05:06 UTC
  t('data.bin', 1600000000);
  t('empty', 1234567890);
  lutimesSync(join(root, 'link'), 1300000000, 1300000000);
  for (const d of ['a/b/c/d/e/f/g/h/i', 'a/b/c/d/e/f/g/h', 'a/b/c/d/e/f/g', 'a/b/c/d/e/f', 'a/b/c/d/e', 'a/b/c/d', 'a/b/c', 'a/b', 'a', 'docs/nested', 'docs', '']) {
    t(d, 1500000000);
  }
}

/** `isoinfo -l` (with -R or -J as given) as path -> fields; names as isoinfo prints them, ";1" and all. */
export function isoinfoListing(img: string, ...flags: string[]): Map<string, Seen & { extent: number }> {
  // Rock Ridge names are the bytes xorriso and genisoimage wrote (UTF-8 here); Joliet ones isoinfo converts to its own charset.
  const encoding = flags.includes('-R') ? 'utf8' : 'latin1';
  const r = spawnSync('isoinfo', ['-l', ...flags, '-i', img], { encoding, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`isoinfo failed: ${r.stderr}`);
  const out = new Map<string, Seen & { extent: number }>();
  let dir = '/';
  for (const line of r.stdout.split('\n')) {
    const d = /^Directory listing of (.*)$/.exec(line);
    if (d) {
      dir = d[1];
      continue;
    }
    const m = /^(\S)(\S{9})\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+\w{3}\s+\d+\s+\d{4}\s+\[\s*(\d+)\s+\w+\]\s\s(.*?)\s*$/s.exec(line);
    if (!m) continue;
    let name = m[8];
    let target: string | undefined;
    const arrow = name.indexOf(' -> ');
    if (m[1] === 'l' && arrow >= 0) {
      target = name.slice(arrow + 4);
      name = name.slice(0, arrow);
    }
    if (name === '.' || name === '..') continue;
    const seen: Seen & { extent: number } = {
      type: TYPE_CHAR[m[1]] ?? 'other', perms: permsFrom(m[2]), nlink: Number(m[3]), uid: Number(m[4]), gid: Number(m[5]), size: Number(m[6]), extent: Number(m[7]),
    };
    if (target !== undefined) seen.target = target;
    out.set(dir + name, seen);
  }
  return out;
}
