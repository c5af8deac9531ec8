import { mkdirSync, writeFileSync, utimesSync, readdirSync, statSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import { openImage } from '../../src/formats/open.js';
import { openFilesystem } from '../../src/filesystems/open.js';
import type { Filesystem, FsStats } from '../../src/filesystems/filesystem.js';
import type { FatNode, FatReader } from '../../src/filesystems/fat/reader.js';

/** mtools and 7-Zip read FAT times as local time and mtools needs a UTF-8 locale for long names. */
export const PEER_ENV = { ...process.env, TZ: 'UTC', LANG: 'C.UTF-8', LC_ALL: 'C.UTF-8', PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

export function run(cmd: string, args: string[]): string {
  const r = spawnSync(cmd, args, { env: PEER_ENV, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed: ${r.stderr}`);
  return r.stdout;
}

/** Bytes that differ from file to file and are never all zeros. */
export function pattern(seed: number, size: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed * 2654435761 + 1;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}

export interface TreeFile {
  path: string;
  data?: Buffer;
  dir?: boolean;
}

/** Writes the tree under `root` with distinct even-second mtimes (FAT keeps two-second steps). */
export function writeTree(root: string, files: TreeFile[]): void {
  mkdirSync(root, { recursive: true });
  let t = Date.UTC(2003, 4, 6, 7, 8, 10) / 1000;
  for (const f of files) {
    const p = join(root, f.path);
    if (f.dir) mkdirSync(p, { recursive: true });
    else {
      mkdirSync(join(p, '..'), { recursive: true });
      writeFileSync(p, f.data ?? Buffer.alloc(0));
    }
    t += 3 * 3600 + 62;
    utimesSync(p, t, t);
  }
  // Directories get their times after their contents are written.
  for (const f of files.filter((x) => x.dir).reverse()) {
    t += 86400 + 4;
    utimesSync(join(root, f.path), t, t);
  }
}

/** A tree with what FAT makes hard: long names in several scripts, 8.3 names in lower case, 0xE5 first bytes, a deep path, a multi-cluster directory, empty and multi-cluster files. */
export function sampleTree(): TreeFile[] {
  const files: TreeFile[] = [
    { path: 'readme.txt', data: Buffer.from('lower-case 8.3 name: NT case flags\n') },
    { path: 'UPPER.TXT', data: Buffer.from('upper\n') },
    { path: 'MiXed.Txt', data: Buffer.from('mixed case needs a long name\n') },
    { path: 'Long file name with spaces.text', data: pattern(1, 5000) },
    { path: 'ünï.txt', data: Buffer.from('short name in code page 850\n') },
    { path: 'Õ.TXT', data: Buffer.from('first byte 0xE5 stored as 0x05\n') },
    { path: '日本語のファイル名.txt', data: pattern(2, 100) },
    { path: 'Ελληνικά αρχεία.dat', data: pattern(3, 7) },
    { path: 'кириллица', data: pattern(4, 1) },
    { path: 'empty', data: Buffer.alloc(0) },
    { path: 'big.bin', data: pattern(5, 700_000) },
    { path: 'deep', dir: true },
    { path: 'deep/a/b/c/d/e/f/g/leaf with a long name.txt', data: Buffer.from('deep\n') },
    { path: 'many', dir: true },
  ];
  for (let i = 0; i < 40; i++) files.push({ path: `many/file number ${i} with a name long enough for three slots.txt`, data: pattern(100 + i, i * 37) });
  return files;
}

export interface Listed {
  path: string;
  stats: FsStats;
  shortName: string;
  content?: Buffer;
}

/** Every entry under the root, depth first, with stats and file contents (small test volumes only). */
export async function walkAll(fs: Filesystem, withContent = true): Promise<Listed[]> {
  const out: Listed[] = [];
  const reader = fs.reader as FatReader;
  async function walk(node: FatNode, path: string): Promise<void> {
    for (const e of await reader.readdir(node)) {
      const p = path === '/' ? `/${e.name}` : `${path}/${e.name}`;
      const stats = await reader.stat(e.node);
      const item: Listed = { path: p, stats, shortName: (e.node.entry as { name: string }).name };
      if (withContent && e.type === 'file') {
        const f = await reader.open(e.node);
        const buf = Buffer.alloc(f.size);
        // Odd-sized reads at odd offsets cross cluster, run and read-window boundaries.
        for (let at = 0; at < f.size; at += 6553) await f.read(buf.subarray(at, Math.min(f.size, at + 6553)), at);
        // One read of the whole file goes straight into the buffer: the same bytes.
        const whole = Buffer.alloc(f.size + 100, 0xaa);
        assert.equal(await f.read(whole, 0), f.size);
        assert.ok(buf.equals(whole.subarray(0, f.size)), `${p}: whole and piecewise reads agree`);
        item.content = buf;
      }
      out.push(item);
      if (e.type === 'directory') await walk(e.node, p);
    }
  }
  await walk(await reader.root(), '/');
  return out;
}

export async function openFat(img: string, partition?: number): Promise<{ fs: Filesystem; close: () => Promise<void> }> {
  const image = await openImage(img);
  try {
    const fs = await openFilesystem(image, partition === undefined ? {} : { partition });
    return { fs, close: () => image.close() };
  } catch (e) {
    await image.close();
    throw e;
  }
}

/** The source tree as path -> { dir, data, mtime seconds }. */
export function readSource(root: string): Map<string, { dir: boolean; data?: Buffer; mtime: number }> {
  const out = new Map<string, { dir: boolean; data?: Buffer; mtime: number }>();
  function walk(dir: string, rel: string): void {
    for (const name of readdirSync(dir)) {
      const p = join(dir, name);
      const r = `${rel}/${name}`;
      const st = statSync(p);
      if (st.isDirectory()) {
        out.set(r, { dir: true, mtime: Math.floor(st.mtimeMs / 1000) });
        walk(p, r);
      } else out.set(r, { dir: false, data: readFileSync(p), mtime: Math.floor(st.mtimeMs / 1000) });
    }
  }
  walk(root, '');
  return out;
}

export function sha(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export interface MdirEntry {
  dir: string;
  name: string;
  shortName: string;
  directory: boolean;
  size: number;
  /** 'YYYY-MM-DD HH:MM' */
  minute: string;
}

/** `mdir -/ -a` (recursive, hidden files too) parsed: one entry per file or directory, `.` and `..` left out. */
export function mdir(img: string, offset?: number): MdirEntry[] {
  const target = offset === undefined ? img : `${img}@@${offset}`;
  const out: MdirEntry[] = [];
  let dir = '/';
  for (const line of run('mdir', ['-/', '-a', '-i', target, '::']).split('\n')) {
    const d = /^Directory for ::(.*)$/.exec(line);
    if (d) {
      dir = d[1] === '' ? '/' : d[1];
      continue;
    }
    const m = /^(.{8}) (.{3}) +(<DIR>|\d+) +(\d{4}-\d\d-\d\d) +(\d+):(\d\d)(?:  (.*)| ?)$/u.exec(line);
    if (!m) continue;
    const base = m[1].trimEnd();
    const ext = m[2].trimEnd();
    if (base === '.' || base === '..') continue;
    const shortName = ext ? `${base}.${ext}` : base;
    out.push({
      dir,
      name: m[7] ?? shortName,
      shortName,
      directory: m[3] === '<DIR>',
      size: m[3] === '<DIR>' ? 0 : Number(m[3]),
      minute: `${m[4]} ${m[5].padStart(2, '0')}:${m[6]}`,
    });
  }
  return out;
}

/** Bytes free as mdir counts them. */
export function mdirFree(img: string): number {
  const m = /([\d ]+) bytes free/.exec(run('mdir', ['-a', '-i', img, '::']));
  if (!m) throw new Error('mdir printed no free count');
  return Number(m[1].replace(/ /g, ''));
}

export interface SevenZipEntry {
  [key: string]: string;
}

/** `7z l -slt`: the archive's properties and one record per entry. */
export function sevenZip(img: string): { archive: SevenZipEntry; entries: SevenZipEntry[] } {
  const tool = spawnSync('sh', ['-c', 'command -v 7zz || command -v 7z'], { encoding: 'utf8' }).stdout.trim();
  const text = run(tool, ['l', '-slt', img]);
  const [head, body = ''] = text.split(/^----------$/m);
  const parse = (block: string): SevenZipEntry => {
    const o: SevenZipEntry = {};
    for (const line of block.split('\n')) {
      const m = /^([A-Za-z ]+) = (.*)$/.exec(line);
      if (m) o[m[1]] = m[2];
    }
    return o;
  };
  const archiveBlock = head.slice(head.lastIndexOf('--\n'));
  return { archive: parse(archiveBlock), entries: body.split(/\n\n+/).map(parse).filter((e) => e.Path !== undefined) };
}

export function utcSecond(sec: number): string {
  return new Date(sec * 1000).toISOString().slice(0, 19).replace('T', ' ');
}
