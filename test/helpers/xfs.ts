import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, lstatSync, rmSync, symlinkSync, writeFileSync, openSync, writeSync, fsyncSync, closeSync, type BigIntStats, type Stats } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import { run, bytes, sourceXattrs, walkSource } from './ext.js';
import type { Filesystem, FsStats, FsTime } from '../../src/index.js';

/** Lets mkfs.xfs make volumes under 300 MiB (the fstests escape hatch of xfsprogs 6.x). */
const SMALL_FS_ENV = { TEST_DIR: '1', TEST_DEV: '1', QA_CHECK_FS: '1' };

export const XFS_PEERS = ['mkfs.xfs', 'xfs_db', 'xfs_repair', 'xfs_io', 'getfattr', 'setfattr', 'mount', 'umount'];

let mountOk: boolean | undefined;
/** Loop mounts need root; without them the kernel cannot be the peer (skip locally, fail in CI). */
export function needMount(t: TestContext): boolean {
  if (mountOk === undefined) mountOk = process.getuid?.() === 0 && spawnSync('sh', ['-c', 'command -v losetup && losetup -f'], { encoding: 'utf8' }).status === 0;
  if (mountOk) return true;
  if (process.env.CI === 'true') throw new Error('XFS tests need root and loop devices to mount their fixtures');
  t.skip('needs root and loop devices');
  return false;
}

export function mkfsXfs(img: string, sizeMiB: number, args: string[] = []): void {
  rmSync(img, { force: true });
  run('truncate', ['-s', `${sizeMiB}M`, img]);
  run('mkfs.xfs', ['-q', '-f', ...args, img], SMALL_FS_ENV);
}

/** Mounts the image with the kernel's XFS driver for `fn`, then unmounts (read-only unless asked). */
export function withMount<T>(img: string, dir: string, fn: (mnt: string) => T, rw = false): T {
  mkdirSync(dir, { recursive: true });
  run('mount', ['-t', 'xfs', '-o', rw ? 'loop' : 'loop,ro,norecovery', img, dir]);
  try {
    return fn(dir);
  } finally {
    run('umount', [dir]);
  }
}

/** Writes two files in alternating 4 KiB pieces with a sync after each: both end up in hundreds of extents (a BMBT). */
export function fragment(a: string, b: string, pieces: number, seed: number): void {
  const fa = openSync(a, 'w');
  const fb = openSync(b, 'w');
  for (let i = 0; i < pieces; i++) {
    writeSync(fa, bytes(4096, seed + 2 * i));
    fsyncSync(fa);
    writeSync(fb, bytes(4096, seed + 2 * i + 1));
    fsyncSync(fb);
  }
  closeSync(fa);
  closeSync(fb);
}

/**
 * Features only a mounted XFS makes: fragmented files (btree-format forks), preallocated (unwritten)
 * extents, leaf and node directories, attributes in leaf blocks with remote values, an ACL.
 */
export type ExtraScale = 'full' | 'small' | 'tiny';
const SCALES: Record<ExtraScale, { pieces: number; leaf: number; node: number }> = {
  full: { pieces: 80, leaf: 300, node: 1200 },
  // Still btree, leaf and node formats with 2 KiB blocks and 1 KiB inodes...
  small: { pieces: 60, leaf: 40, node: 600 },
  // ...and with 1 KiB blocks and 512-byte inodes.
  tiny: { pieces: 40, leaf: 40, node: 250 },
};

export function xfsExtras(mnt: string, scale: ExtraScale = 'full'): void {
  const n = SCALES[scale];
  fragment(join(mnt, 'frag-a'), join(mnt, 'frag-b'), n.pieces, 77);
  run('xfs_io', ['-f', '-c', 'falloc 0 1m', '-c', 'pwrite -S 0x61 200k 8k', join(mnt, 'prealloc')]);
  for (const [dir, count] of [['leafdir', n.leaf], ['nodedir', n.node]] as const) {
    mkdirSync(join(mnt, dir));
    for (let i = 0; i < count; i++) writeFileSync(join(mnt, dir, `a-name-long-enough-to-fill-blocks-${i}`), `${i}\n`);
  }
  // Times past 2038 and before 1970 (bigtime keeps them; without it the kernel clamps them to 32 bits).
  writeFileSync(join(mnt, 'future'), 'future\n');
  run('touch', ['-d', '2100-01-02 03:04:05.123456789 UTC', join(mnt, 'future')]);
  writeFileSync(join(mnt, 'past'), 'past\n');
  run('touch', ['-d', '1950-06-07 08:09:10.987654321 UTC', join(mnt, 'past')]);
  // Longer than any inode's fork: the target goes to a remote block (with its header on v5).
  symlinkSync('remote/'.repeat(140) + 'end', join(mnt, 'remote-link'));
  writeFileSync(join(mnt, 'attrs'), 'attrs\n');
  // Forty attributes overflow the inode's fork: a leaf block. setfattr --restore sets them in one run.
  const dump = [`# file: ${join(mnt, 'attrs')}`, ...Array.from({ length: 40 }, (_, i) => `user.attr-${i}="${`value-${i}`.repeat(8)}"`), ''].join('\n');
  writeFileSync(join(mnt, '..', 'attrs.dump'), dump);
  run('setfattr', [`--restore=${join(mnt, '..', 'attrs.dump')}`]);
  run('setfattr', ['-n', 'user.remote', '-v', '0x' + bytes(9000, 3).toString('hex'), join(mnt, 'attrs')]);
  // A POSIX ACL in the xattr layout Linux takes (version 2; user::rw-, user:1000:r--, group::r--, mask::r--, other::r--).
  const acl = Buffer.alloc(4 + 5 * 8);
  acl.writeUInt32LE(2, 0);
  [[1, 6, -1], [2, 4, 1000], [4, 4, -1], [0x10, 4, -1], [0x20, 4, -1]].forEach(([tag, perm, id], i) => {
    acl.writeUInt16LE(tag, 4 + i * 8);
    acl.writeUInt16LE(perm, 6 + i * 8);
    acl.writeUInt32LE(id >>> 0, 8 + i * 8);
  });
  run('setfattr', ['-n', 'system.posix_acl_access', '-v', '0x' + acl.toString('hex'), join(mnt, 'a.txt')]);
}

/** Builds an XFS image holding `src` (copied by the kernel) and, optionally, xfsExtras. */
export function buildXfs(img: string, sizeMiB: number, args: string[], src: string, mnt: string, extras: ExtraScale | 'none' = 'full'): void {
  mkfsXfs(img, sizeMiB, args);
  withMount(img, mnt, (m) => {
    run('cp', ['-a', `${src}/.`, m]);
    if (extras !== 'none') xfsExtras(m, extras);
  }, true);
  run('xfs_repair', ['-n', img]);
}

interface KernelEntry {
  st: BigIntStats;
  target?: string;
  sha?: string;
  xattrs: string[];
}

/** The mounted tree as the kernel shows it: bigint stats (nanoseconds), targets, hashes, xattrs by getfattr. */
export function walkKernel(mnt: string): Map<string, KernelEntry> {
  const attrs = sourceXattrs(mnt);
  const out = new Map<string, KernelEntry>();
  // walkSource reads targets and contents; the times are wanted to the nanosecond, so stat again as bigint.
  for (const [path, e] of walkSource(mnt)) {
    out.set(path, { st: lstatSync(join(mnt, path), { bigint: true }), target: e.target, sha: e.sha, xattrs: (attrs.get(path) ?? []).sort() });
  }
  return out;
}

const ns = (t: FsTime | undefined): bigint | undefined => (t ? BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec) : undefined);

/** Linux's dev_t split (MAJOR/MINOR of the 64-bit encoding glibc uses). */
function devParts(rdev: bigint): { major: number; minor: number } {
  return { major: Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn)), minor: Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn)) };
}

export interface Seen {
  stats: FsStats;
  target?: string;
  sha?: string;
  xattrs: string[];
}

/** Every path, stat field, time (to the nanosecond), target, content and xattr the reader shows equals the kernel's. */
export function compareWithKernel(seen: Map<string, Seen>, kernel: Map<string, KernelEntry>): void {
  assert.deepEqual([...seen.keys()].sort(), [...kernel.keys()].sort(), 'the same paths');
  for (const [path, k] of kernel) {
    const s = seen.get(path)!;
    const st = s.stats;
    assert.deepEqual(
      [st.ino, st.mode, st.uid, st.gid, st.nlink, st.size],
      [k.st.ino, k.st.mode, k.st.uid, k.st.gid, k.st.nlink, k.st.size].map(Number),
      `${path}: ino, mode, uid, gid, nlink, size`,
    );
    assert.equal(ns(st.mtime), k.st.mtimeNs, `${path}: mtime`);
    assert.equal(ns(st.ctime), k.st.ctimeNs, `${path}: ctime`);
    assert.equal(ns(st.atime), k.st.atimeNs, `${path}: atime`);
    if (k.st.birthtimeNs > 0n) assert.equal(ns(st.birthtime), k.st.birthtimeNs, `${path}: birth time`);
    assert.equal(s.target, k.target, `${path}: symlink target`);
    assert.equal(s.sha, k.sha, `${path}: contents`);
    if (st.type === 'char' || st.type === 'block') assert.deepEqual(st.rdev, devParts(k.st.rdev), `${path}: device numbers`);
    assert.deepEqual(s.xattrs, k.xattrs, `${path}: xattrs`);
  }
}

/** Free extents as `xfs_db -r -c 'freesp -d'` lists them (free-space btree records and free-list blocks), merged, in bytes. */
export function xfsDbFree(img: string, blockSize: number, agBlocks: number): { offset: number; length: number }[] {
  const rows = run('xfs_db', ['-r', '-c', 'freesp -d', img]).split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number)).filter((r) => r.length === 3 && r.every(Number.isInteger));
  const runs = rows.map(([ag, bno, len]) => ({ offset: (ag * agBlocks + bno) * blockSize, length: len * blockSize })).sort((a, b) => a.offset - b.offset);
  const out: { offset: number; length: number }[] = [];
  for (const r of runs) {
    const last = out[out.length - 1];
    if (last && last.offset + last.length === r.offset) last.length += r.length;
    else out.push({ ...r });
  }
  return out;
}

/** One field of `xfs_db -r -c 'inode N' -c 'print FIELD'`. */
export function xfsDbInode(img: string, ino: number, field: string): string {
  return run('xfs_db', ['-r', '-c', `inode ${ino}`, '-c', `print ${field}`, img]).trim().replace(/^\S+ = /, '');
}

/** A volume's geometry from `xfs_db -r -c 'sb 0' -c print`. */
export function xfsDbSb(img: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'print', img]).split('\n')) {
    const m = /^(\w+) = (.*)$/.exec(l);
    if (m) out[m[1]] = m[2];
  }
  return out;
}

export type { Filesystem };

/**
 * A mkfs.xfs protofile for a host tree (xfs_mkfs(8), "-p"): mkfs then copies it without a mount (and
 * without root). Protofiles carry no xattrs, hard links, times or sticky bits; FIFOs, devices and sockets
 * they do carry.
 */
export function protofile(dir: string): string {
  const lines = ['/dev/null', '0 0'];
  const modeOf = (st: Stats, type: string) =>
    `${type}${st.mode & 0o4000 ? 'u' : '-'}${st.mode & 0o2000 ? 'g' : '-'}${(st.mode & 0o777).toString(8).padStart(3, '0')} ${st.uid} ${st.gid}`;
  const visit = (abs: string, depth: number) => {
    for (const name of readdirSync(abs).sort()) {
      const p = join(abs, name);
      const st = lstatSync(p);
      const pad = ' '.repeat(depth);
      if (/\s/.test(name)) continue;
      if (st.isDirectory()) {
        lines.push(`${pad}${name} ${modeOf(st, 'd')}`);
        visit(p, depth + 1);
        lines.push(`${pad}$`);
      } else if (st.isFile()) lines.push(`${pad}${name} ${modeOf(st, '-')} ${p}`);
      else if (st.isSymbolicLink()) lines.push(`${pad}${name} ${modeOf(st, 'l')} ${readlinkSync(p)}`);
      else if (st.isFIFO()) lines.push(`${pad}${name} ${modeOf(st, 'p')}`);
      else if (st.isCharacterDevice() || st.isBlockDevice()) {
        const r = BigInt(st.rdev);
        const { major, minor } = devParts(r);
        lines.push(`${pad}${name} ${modeOf(st, st.isCharacterDevice() ? 'c' : 'b')} ${major} ${minor}`);
      }
    }
  };
  lines.push(`d--755 0 0`);
  visit(dir, 1);
  lines.push('$');
  return lines.join('\n') + '\n';
}

/** What a protofile copy must show: per path, type, permission bits (no sticky), owner, size, target, hash. */
export function compareWithProto(seen: Map<string, Seen>, dir: string): void {
  const want = new Map<string, { mode: number; uid: number; gid: number; size: number; target?: string; sha?: string; type: string }>();
  const visit = (rel: string) => {
    const abs = join(dir, rel);
    for (const name of readdirSync(abs)) {
      if (/\s/.test(name)) continue;
      const p = rel ? `${rel}/${name}` : name;
      const st = lstatSync(join(dir, p));
      const type = st.isFile() ? 'file' : st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : st.isFIFO() ? 'fifo' : st.isCharacterDevice() ? 'char' : 'block';
      want.set('/' + p, {
        type, mode: st.mode & 0o170000 | (st.mode & 0o6777), uid: st.uid, gid: st.gid, size: st.isDirectory() ? -1 : st.size,
        ...(st.isSymbolicLink() ? { target: readlinkSync(join(dir, p)) } : {}),
        ...(st.isFile() ? { sha: createHash('sha256').update(readFileSync(join(dir, p))).digest('hex') } : {}),
      });
      if (st.isDirectory()) visit(p);
    }
  };
  visit('');
  assert.deepEqual([...seen.keys()].filter((p) => p !== '/').sort(), [...want.keys()].sort(), 'the same paths');
  for (const [p, w] of want) {
    const s = seen.get(p)!;
    assert.deepEqual(
      { type: s.stats.type, mode: s.stats.mode, uid: s.stats.uid, gid: s.stats.gid, size: w.size === -1 ? -1 : s.stats.size, target: s.target, sha: s.sha },
      { type: w.type, mode: w.mode, uid: w.uid, gid: w.gid, size: w.size, target: w.target, sha: w.sha },
      p,
    );
  }
}
