import { createHash } from 'node:crypto';
import { chmodSync, chownSync, existsSync, linkSync, mkdirSync, symlinkSync, truncateSync, writeFileSync, readdirSync, lstatSync, readlinkSync, readFileSync, type Stats } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { sh } from './peers.js';
import type { Filesystem, FsStats } from '../../src/index.js';

const PATH = `${process.env.PATH}:/usr/sbin:/sbin`;

/** Deterministic pseudo-random bytes (xorshift), so failures reproduce. */
export function bytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = seed | 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Runs a command with sbin on PATH; returns stdout (throws with stderr on failure). */
export function run(cmd: string, args: string[], env: Record<string, string> = {}): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 256 * 1024 * 1024, env: { ...process.env, PATH, TZ: 'UTC', ...env } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/**
 * A tree with what the ext reader must get right: empty, tiny (inline), mid-size and multi-block files,
 * sparse files, fast, slow, absolute and dangling symlinks, a hard link, a FIFO and a device, owners,
 * setuid and sticky modes, names in several scripts, deep paths, a directory big enough to span blocks
 * (indexed by e2fsck -D), xattrs small (in the inode) and large (in a block).
 */
export function makeTree(dir: string): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'a.txt'), 'hello\n');
  linkSync(join(dir, 'a.txt'), join(dir, 'hard.txt'));
  writeFileSync(join(dir, 'empty'), '');
  writeFileSync(join(dir, 'tiny'), 'forty bytes of text in one small file..\n');
  writeFileSync(join(dir, 'mid'), bytes(100, 7));
  writeFileSync(join(dir, 'random.bin'), bytes(300_000, 11));
  writeFileSync(join(dir, 'multi.bin'), bytes(2_500_000, 13));
  // Sparse: a hole then data; data, a hole, data.
  writeFileSync(join(dir, 'sparse-head'), '');
  sh('truncate', ['-s', String(3 * 1024 * 1024), join(dir, 'sparse-head')]);
  sh('sh', ['-c', `printf tail >> '${join(dir, 'sparse-head')}'`]);
  writeFileSync(join(dir, 'sparse-mid'), bytes(8192, 17));
  sh('truncate', ['-s', String(4 * 1024 * 1024 + 8192), join(dir, 'sparse-mid')]);
  sh('sh', ['-c', `head -c 8192 /dev/urandom >> '${join(dir, 'sparse-mid')}'`]);
  symlinkSync('a.txt', join(dir, 'fast-link'));
  symlinkSync('d1/' + 'long-name-'.repeat(15) + 'target', join(dir, 'slow-link'));
  symlinkSync('/d1/d2', join(dir, 'abs-link'));
  symlinkSync('nowhere', join(dir, 'dangling'));
  const deep = join(dir, 'd1', 'd2', 'd3', 'd4', 'd5', 'd6');
  mkdirSync(deep, { recursive: true });
  writeFileSync(join(deep, 'deep.txt'), 'deep\n');
  const intl = join(dir, 'ünïcödé', '日本語', 'Ελληνικά', 'emoji 🎉 space');
  mkdirSync(intl, { recursive: true });
  writeFileSync(join(intl, 'файл.txt'), 'кириллица\n');
  writeFileSync(join(dir, 'ünïcödé', 'עברית'), 'hebrew\n');
  const many = join(dir, 'many');
  mkdirSync(many);
  for (let i = 0; i < 400; i++) writeFileSync(join(many, `entry-with-a-longish-name-${String(i).padStart(4, '0')}`), `${i}\n`);
  sh('mkfifo', [join(dir, 'fifo')]);
  sh('mknod', [join(dir, 'null-dev'), 'c', '1', '3']);
  writeFileSync(join(dir, 'owned'), 'owned\n');
  chownSync(join(dir, 'owned'), 1234, 5678);
  writeFileSync(join(dir, 'setuid'), '#!/bin/sh\n');
  chmodSync(join(dir, 'setuid'), 0o4755);
  writeFileSync(join(dir, 'private'), 'secret\n');
  chmodSync(join(dir, 'private'), 0o600);
  mkdirSync(join(dir, 'sticky'));
  chmodSync(join(dir, 'sticky'), 0o1777);
  sh('setfattr', ['-n', 'user.color', '-v', 'blue', join(dir, 'a.txt')]);
  sh('setfattr', ['-n', 'user.empty', join(dir, 'tiny')]);
  sh('setfattr', ['-n', 'user.café-日本', '-v', 'non-ASCII name', join(dir, 'tiny')]);
  sh('setfattr', ['-n', 'trusted.level', '-v', '42', join(dir, 'd1')]);
  sh('setfattr', ['-n', 'security.label', '-v', 'confined', join(dir, 'mid')]);
  sh('setfattr', ['-n', 'user.big', '-v', '0x' + bytes(700, 19).toString('hex'), join(dir, 'random.bin')]);
  sh('setfattr', ['-n', 'user.small', '-v', 'x', join(dir, 'random.bin')]);
}

/** `getfattr -d -m - -e hex` of every path under `dir`, as path -> sorted "name=hex" strings. */
export function sourceXattrs(dir: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  const text = run('getfattr', ['-R', '-h', '-d', '-m', '-', '-e', 'hex', '--absolute-names', dir]);
  let current = '';
  for (const line of text.split('\n')) {
    if (line.startsWith('# file: ')) {
      current = '/' + line.slice(8).slice(dir.length).replace(/^\//, '');
      out.set(current, []);
    } else if (line.includes('=')) {
      const [name, value] = [line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1)];
      out.get(current)!.push(`${name}=${value.replace(/^0x/, '')}`);
    } else if (/^\S/.test(line) && current) {
      // An attribute without a value prints its bare name.
      out.get(current)!.push(`${line}=`);
    }
  }
  for (const v of out.values()) v.sort();
  return out;
}

export interface Seen {
  stats: FsStats;
  target?: string;
  sha?: string;
  xattrs: string[];
}

/** Every path of the volume with its stat, symlink target, content hash and xattrs (cycles bounded by inode). */
export async function walkVolume(fs: Filesystem): Promise<Map<string, Seen>> {
  const out = new Map<string, Seen>();
  const visited = new Set<number>();
  const visit = async (path: string): Promise<void> => {
    const stats = await fs.lstat(path);
    const xattrs = (await fs.xattrs(path)).map((x) => `${x.name}=${x.value.toString('hex')}`).sort();
    const seen: Seen = { stats, xattrs };
    if (stats.type === 'symlink') seen.target = await fs.readlink(path);
    if (stats.type === 'file') {
      const h = createHash('sha256');
      const f = await fs.open(path);
      const buf = Buffer.alloc(1024 * 1024);
      for (let pos = 0; pos < f.size;) {
        const n = await f.read(buf, pos);
        if (n <= 0) throw new Error(`${path}: short read at ${pos}`);
        h.update(buf.subarray(0, n));
        pos += n;
      }
      seen.sha = h.digest('hex');
    }
    out.set(path, seen);
    if (stats.type === 'directory') {
      if (visited.has(stats.ino)) throw new Error(`${path}: directory cycle`);
      visited.add(stats.ino);
      for (const e of await fs.readdir(path)) await visit(path === '/' ? `/${e.name}` : `${path}/${e.name}`);
    }
  };
  await visit('/');
  return out;
}

/** The source tree as the reader should see it (lost+found excluded by the caller). */
export function walkSource(dir: string): Map<string, { st: Stats; target?: string; sha?: string }> {
  const out = new Map<string, { st: Stats; target?: string; sha?: string }>();
  const visit = (rel: string) => {
    const abs = join(dir, rel);
    const st = lstatSync(abs);
    const e: { st: Stats; target?: string; sha?: string } = { st };
    if (st.isSymbolicLink()) e.target = readlinkSync(abs);
    if (st.isFile()) e.sha = createHash('sha256').update(readFileSync(abs)).digest('hex');
    out.set('/' + rel, e);
    if (st.isDirectory()) for (const n of readdirSync(abs)) visit(rel ? `${rel}/${n}` : n);
  };
  visit('');
  return out;
}

/** `debugfs -R 'ls -l <ino>'` rows: inode, mode, uid, gid, size, name ('.' and '..' left out). */
export function debugfsLs(img: string, dir: number): { ino: number; mode: number; uid: number; gid: number; size: number; name: string }[] {
  const text = run('debugfs', ['-R', `ls -l <${dir}>`, img]);
  const rows = [];
  for (const line of text.split('\n')) {
    const m = /^\s*(\d+)\s+([0-7]+)\s+\(\d+\)\s+(\d+)\s+(\d+)\s+(\d+)\s+\d+-\w+-\d+ \d+:\d+ (.*)$/.exec(line);
    if (!m || m[6] === '.' || m[6] === '..') continue;
    // debugfs prints bytes outside printable ASCII as \xNN.
    const name = Buffer.from(m[6].replace(/\\x([0-9a-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1').toString('utf8');
    rows.push({ ino: +m[1], mode: parseInt(m[2], 8), uid: +m[3], gid: +m[4], size: +m[5], name });
  }
  return rows;
}

export interface DebugfsStat {
  ino: number;
  perm: number;
  uid: number;
  gid: number;
  size: number;
  links: number;
  /** Times as debugfs prints them (TZ=UTC), seconds since the epoch, and the raw "0xSEC:EXTRA" words. */
  times: Record<string, { date: number; extra: number }>;
  xattrNames: string[];
  fastLink?: string;
  /** Logical block ranges of data, from the EXTENTS/BLOCKS list, uninitialized extents left out. */
  logical: [number, number][];
  uninit: [number, number][];
}

/** `stat <ino>` for many inodes in one debugfs run (the command file is written next to the image). */
export function debugfsStats(img: string, inos: number[]): Map<number, DebugfsStat> {
  const cmds = `${img}.debugfs-cmds`;
  writeFileSync(cmds, inos.map((i) => `stat <${i}>`).join('\n') + '\n');
  return parseDebugfsStats(run('debugfs', ['-f', cmds, img]));
}

/** Parses the output of `debugfs -f cmds` running `stat <ino>` commands. */
export function parseDebugfsStats(text: string): Map<number, DebugfsStat> {
  const out = new Map<number, DebugfsStat>();
  for (const chunk of text.split(/^debugfs: /m).slice(1)) {
    const inoM = /^Inode: (\d+)\s+Type: .*?Mode:\s+([0-7]+)/m.exec(chunk);
    if (!inoM) continue;
    const num = (re: RegExp) => Number((re.exec(chunk) ?? [])[1]);
    const st: DebugfsStat = {
      ino: +inoM[1],
      perm: parseInt(inoM[2], 8),
      uid: num(/User:\s+(\d+)/),
      gid: num(/Group:\s+(\d+)/),
      size: num(/Size: (\d+)\n/),
      links: num(/Links: (\d+)/),
      times: {},
      xattrNames: [],
      logical: [],
      uninit: [],
    };
    for (const m of chunk.matchAll(/^\s*(\w+): 0x([0-9a-f]+)(?::([0-9a-f]+))? -- (.*)$/gm)) {
      st.times[m[1]] = { date: Date.parse(m[4] + ' UTC') / 1000, extra: m[3] ? parseInt(m[3], 16) : 0 };
    }
    const xa = /Extended attributes:\n((?: {2}.*\n)*)/.exec(chunk);
    // Names debugfs cannot print come as hex bytes ("75 73 65 72 2e ...").
    if (xa) {
      for (const m of xa[1].matchAll(/^ {2}(.*?) +\(\d+\)/gm)) {
        const hex = /^(?:[0-9a-f]{2} )*[0-9a-f]{2}$/.test(m[1]);
        st.xattrNames.push(hex ? Buffer.from(m[1].replace(/ /g, ''), 'hex').toString('utf8') : m[1]);
      }
    }
    const fl = /Fast link dest: "(.*)"/.exec(chunk);
    if (fl) st.fastLink = fl[1];
    const list = /^(?:EXTENTS|BLOCKS):\n([\s\S]*)$/m.exec(chunk);
    if (list) {
      for (const m of list[1].matchAll(/\((\d+)(?:-(\d+))?(\[u\])?\):/g)) {
        (m[3] ? st.uninit : st.logical).push([+m[1], m[2] ? +m[2] : +m[1]]);
      }
    }
    out.set(st.ino, st);
  }
  return out;
}

/** dumpe2fs's "Free blocks:" lists of every group, as merged [first, last] block ranges. */
export function dumpe2fsFree(img: string): [number, number][] {
  const text = run('dumpe2fs', [img]);
  const ranges: [number, number][] = [];
  for (const m of text.matchAll(/^\s+Free blocks: (.*)$/gm)) {
    for (const part of m[1].split(',').map((s) => s.trim()).filter(Boolean)) {
      const [a, b] = part.split('-').map(Number);
      const r: [number, number] = [a, b ?? a];
      const last = ranges[ranges.length - 1];
      if (last && last[1] + 1 === r[0]) last[1] = r[1];
      else ranges.push(r);
    }
  }
  return ranges;
}

/**
 * Where a generated tree entry goes under `root`, its directories made on the way; null when a file
 * already stands where one of them must be, or the name is taken (the property tests skip the entry).
 */
export function entryPath(root: string, dirs: string[], name: string): string | null {
  let dir = root;
  for (const d of dirs) {
    dir = join(dir, d);
    if (existsSync(dir) && !lstatSync(dir).isDirectory()) return null;
    mkdirSync(dir, { recursive: true });
  }
  const path = join(dir, name);
  return existsSync(path) ? null : path;
}

/** A sparse file: up to 20,000 bytes of data, a hole of `hole` bytes, then 3,000 bytes more. */
export function writeHoleyFile(path: string, size: number, hole: number, seed: number): void {
  writeFileSync(path, bytes(Math.min(size, 20_000), seed));
  truncateSync(path, hole + Math.min(size, 20_000));
  writeFileSync(path, bytes(3000, seed + 1), { flag: 'a' });
}
