import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { openImage } from '../../src/formats/open.js';
import { openFilesystem } from '../../src/filesystems/open.js';
import type { Filesystem } from '../../src/filesystems/filesystem.js';

export interface TreeCompareOptions {
  /** Compare permission bits (off for file systems without modes, e.g. FAT). */
  modes?: boolean;
  /** Compare mtimes, to this many milliseconds (FAT: 2000); off when absent. */
  mtimeMs?: number;
  /** Compare uid and gid. */
  owners?: boolean;
  /** Compare directory mtimes too (some tools touch directories while filling). */
  dirTimes?: boolean;
  /** Compare hard links: files with one inode in the source share one in the copy. */
  hardlinks?: boolean;
  /** Names to leave out at the top level (e.g. 'lost+found'). */
  ignore?: string[];
}

/**
 * The differences between two host trees, one line each: names, types, contents (`diff -r`), symlink
 * targets, and the metadata the options ask for. An empty list means equal.
 */
export function compareTrees(source: string, copy: string, options: TreeCompareOptions = {}): string[] {
  const out: string[] = [];
  const ignore = new Set(options.ignore ?? []);
  const inodes = new Map<number, string>();
  const copyInodes = new Map<string, number>();
  const walk = (rel: string) => {
    const a = join(source, rel);
    const b = join(copy, rel);
    let sa, sb;
    try {
      sa = lstatSync(a);
    } catch {
      out.push(`${rel}: missing in source`);
      return;
    }
    try {
      sb = lstatSync(b);
    } catch {
      out.push(`${rel || '/'}: missing in copy`);
      return;
    }
    const kind = (s: typeof sa) => (s.isDirectory() ? 'dir' : s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : 'other');
    if (kind(sa) !== kind(sb)) {
      out.push(`${rel}: ${kind(sa)} in source, ${kind(sb)} in copy`);
      return;
    }
    if (options.modes && !sa.isSymbolicLink() && (sa.mode & 0o7777) !== (sb.mode & 0o7777)) {
      out.push(`${rel}: mode ${(sa.mode & 0o7777).toString(8)} in source, ${(sb.mode & 0o7777).toString(8)} in copy`);
    }
    if (options.owners && (sa.uid !== sb.uid || sa.gid !== sb.gid)) out.push(`${rel}: owner ${sa.uid}:${sa.gid} in source, ${sb.uid}:${sb.gid} in copy`);
    if (options.mtimeMs !== undefined && (!sa.isDirectory() || options.dirTimes) && Math.abs(sa.mtimeMs - sb.mtimeMs) > options.mtimeMs) {
      out.push(`${rel}: mtime ${sa.mtime.toISOString()} in source, ${sb.mtime.toISOString()} in copy`);
    }
    if (sa.isSymbolicLink() && readlinkSync(a) !== readlinkSync(b)) out.push(`${rel}: symlink to ${readlinkSync(a)} in source, ${readlinkSync(b)} in copy`);
    if (sa.isFile()) {
      if (sa.size !== sb.size) out.push(`${rel}: ${sa.size} bytes in source, ${sb.size} in copy`);
      else if (!readFileSync(a).equals(readFileSync(b))) out.push(`${rel}: contents differ`);
      if (options.hardlinks && sa.nlink > 1) {
        const first = inodes.get(sa.ino);
        if (first === undefined) {
          inodes.set(sa.ino, rel);
          copyInodes.set(rel, sb.ino);
        } else if (copyInodes.get(first) !== sb.ino) out.push(`${rel}: a hard link of ${first} in source, not in copy`);
      }
    }
    if (sa.isDirectory()) {
      const na = readdirSync(a).filter((n) => rel !== '' || !ignore.has(n)).sort();
      const nb = readdirSync(b).filter((n) => rel !== '' || !ignore.has(n)).sort();
      for (const n of nb) if (!na.includes(n)) out.push(`${join(rel, n)}: only in copy`);
      for (const n of na) walk(join(rel, n));
    }
  };
  walk('');
  return out;
}

/** Allocated bytes of a host file (st_blocks * 512), to show a copy stayed sparse. */
export function allocatedBytes(path: string): number {
  return lstatSync(path).blocks * 512;
}

/** Runs `diff -r --no-dereference`: a second, independent opinion on contents and names. */
export function diffTrees(a: string, b: string): string {
  const r = spawnSync('diff', ['-r', '--no-dereference', a, b], { encoding: 'utf8' });
  return r.status === 0 ? '' : `${r.stdout}${r.stderr}`.trim();
}

/** Runs `fn` on the file system of an image (the only one, or `partition`), closing the image after. */
export async function withFs<T>(img: string, fn: (fs: Filesystem) => Promise<T>, partition?: number): Promise<T> {
  const image = await openImage(img);
  try {
    return await fn(await openFilesystem(image, partition === undefined ? {} : { partition }));
  } finally {
    await image.close();
  }
}
