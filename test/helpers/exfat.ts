import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, readSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './peers.js';

/**
 * exFAT fixtures made by the real tools: mkfs.exfat (exfatprogs) formats, exfat-fuse fills through a loop
 * device, as a user would. Edits that no tool makes (a valid-data length below the size, an attribute, a
 * UTC offset) are made on the image's bytes and then resealed with the set checksum, and fsck.exfat is the
 * judge that the edit left a consistent volume.
 */

const PATH_ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

export const EXFAT_PEERS = ['mkfs.exfat', 'mount.exfat-fuse', 'losetup', 'fsck.exfat'];

export function mkfsExfat(img: string, size: number, opts: { label?: string; clusterSize?: number } = {}): void {
  sh('truncate', ['-s', String(size), img]);
  const args = [...(opts.label ? ['-L', opts.label] : []), ...(opts.clusterSize ? ['-c', String(opts.clusterSize)] : []), img];
  sh('mkfs.exfat', args);
}

/**
 * Runs `fn` with the image mounted through exfat-fuse on a loop device, then unmounts and detaches in a
 * finally, waiting until the loop device is gone (the FUSE daemon closes it when it has flushed).
 */
export function withExfatMount<T>(img: string, mnt: string, fn: () => T, opts: { readOnly?: boolean; tz?: string } = {}): T {
  mkdirSync(mnt, { recursive: true });
  const dev = sh('losetup', ['-f', '--show', img]).trim();
  let mounted = false;
  try {
    const r = spawnSync('mount.exfat-fuse', [...(opts.readOnly ? ['-o', 'ro'] : []), dev, mnt], {
      encoding: 'utf8',
      env: { ...PATH_ENV, ...(opts.tz ? { TZ: opts.tz } : {}) },
    });
    if (r.status !== 0) throw new Error(`mount.exfat-fuse ${dev}: ${r.stderr}`);
    mounted = true;
    return fn();
  } finally {
    if (mounted) {
      spawnSync('sync', []);
      for (let i = 0; i < 50; i++) {
        if (spawnSync('umount', [mnt], { env: PATH_ENV }).status === 0) break;
        spawnSync('sleep', ['0.1']);
      }
    }
    spawnSync('losetup', ['-d', dev], { env: PATH_ENV });
    for (let i = 0; i < 100; i++) {
      const r = spawnSync('losetup', ['-j', img], { encoding: 'utf8', env: PATH_ENV });
      if (r.stdout.trim() === '') break;
      spawnSync('sleep', ['0.1']);
    }
  }
}

/** Copies a host tree into the volume through exfat-fuse (`cp -a`, which keeps the mtimes). */
export function fillExfat(img: string, source: string, mnt: string, after?: (mnt: string) => void, tz?: string): void {
  withExfatMount(img, mnt, () => {
    sh('cp', ['-a', `${source}/.`, `${mnt}/`]);
    after?.(mnt);
  }, { tz });
}

/** `fsck.exfat -n`: its exit status and output (0 is a clean volume). */
export function fsckExfat(img: string): { status: number; output: string } {
  const r = spawnSync('fsck.exfat', ['-n', img], { encoding: 'utf8', env: PATH_ENV });
  return { status: r.status ?? -1, output: `${r.stdout}${r.stderr}` };
}

/** `dump.exfat`'s figures: cluster size, free clusters, label. */
export function dumpExfat(img: string): { clusterSize: number; totalClusters: number; freeClusters: number; label: string } {
  const out = sh('dump.exfat', [img]);
  const num = (re: RegExp) => Number((re.exec(out) ?? [])[1]);
  return {
    clusterSize: num(/Cluster size:\s*(\d+)/),
    totalClusters: num(/Total Clusters:\s*(\d+)/),
    freeClusters: num(/Free Clusters:\s*(\d+)/),
    label: (/Volume label:\s*(.*)$/m.exec(out) ?? [])[1]?.trim() ?? '',
  };
}

/**
 * Where the entry set of the file called `name` (at most 15 characters: its whole name is in the first
 * File Name entry) starts in the image, found by scanning the bytes for its File Name entry: no reader
 * of ours is asked.
 */
export function findEntrySet(image: Buffer, name: string): number {
  const needle = Buffer.concat([Buffer.from([0xc1, 0x00]), Buffer.from(name, 'utf16le')]);
  if (name.length > 15) throw new Error('findEntrySet: names up to 15 characters');
  for (let i = image.indexOf(needle); i >= 0; i = image.indexOf(needle, i + 1)) {
    if (i % 32 !== 0) continue;
    const file = i - 64;
    if (image[file] === 0x85 && image[file + 32] === 0xc0 && image[file + 32 + 3] === name.length) return file;
  }
  throw new Error(`no entry set for ${name}`);
}

/** Recomputes the SetChecksum of the set at `at` (exFAT specification 6.3.3), written out here independently of the reader. */
export function resealEntrySet(image: Buffer, at: number): void {
  const bytes = (1 + image[at + 1]) * 32;
  let sum = 0;
  for (let i = 0; i < bytes; i++) {
    if (i === 2 || i === 3) continue;
    sum = ((sum & 1 ? 0x8000 : 0) + (sum >> 1) + image[at + i]) & 0xffff;
  }
  image.writeUInt16LE(sum, at + 2);
}

/** Edits the image in place: `edit` gets the whole image (fixtures are a few MiB). */
export function editImage(img: string, edit: (image: Buffer) => void): void {
  const image = readFileSync(img);
  edit(image);
  writeFileSync(img, image);
}

/** Reads `length` bytes at `offset` of a file. */
export function readAt(path: string, offset: number, length: number): Buffer {
  const fd = openSync(path, 'r');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    return b;
  } finally {
    closeSync(fd);
  }
}

export function writeAt(path: string, offset: number, data: Buffer): void {
  const fd = openSync(path, 'r+');
  try {
    writeSync(fd, data, 0, data.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** Deterministic bytes, so that a failing comparison can be reproduced. */
export function patternBytes(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    b[i] = x & 0xff;
  }
  return b;
}

/** Names in many scripts, as exFAT keeps them (UTF-16) and a Linux host can hold them (255 bytes of UTF-8). */
export const SCRIPT_NAMES = [
  'Ελληνικά κείμενο.txt',
  'Русский текст.md',
  '中文文件名.txt',
  '日本語のファイル.txt',
  'עברית.txt',
  'العربية.txt',
  'हिन्दी पाठ.txt',
  '한국어 파일.txt',
  'ไทย.txt',
  'Ünïcødé Àccents ß.txt',
  'emoji 😀🎉 astral 𝄞.txt',
  'ǅ Dž dž title-case.txt',
];

/**
 * The known tree: small and empty files, a multi-cluster file, names in many scripts, 255-character
 * names, a deep path, a directory that spans several clusters, mtimes on odd and even seconds from
 * 1980 to 2100. Returns the relative paths of its files.
 */
export function makeSourceTree(root: string): string[] {
  const files: string[] = [];
  const put = (rel: string, data: Buffer, mtime: number) => {
    const p = join(root, rel);
    mkdirSync(join(p, '..'), { recursive: true });
    writeFileSync(p, data);
    utimesSync(p, mtime, mtime);
    files.push(rel);
  };
  put('readme.txt', Buffer.from('hello, exFAT\n'), 1_600_000_001);
  put('empty', Buffer.alloc(0), 1_500_000_000);
  put('big.bin', patternBytes(1_536_123, 7), 1_234_567_891);
  // 1980-01-02 00:00:03 UTC: local time west of UTC must not fall before the exFAT epoch (1980-01-01 local).
  put('old.txt', Buffer.from('from 1980\n'), 315_619_203);
  put('future.txt', Buffer.from('from 2100\n'), 4_102_444_799); // 2099-12-31 23:59:59 UTC
  SCRIPT_NAMES.forEach((n, i) => put(`scripts/${n}`, Buffer.from(`${n}\n`), 1_700_000_000 + i * 3));
  put(`long/${'a'.repeat(251)}.txt`, Buffer.from('255 ASCII characters\n'), 1_650_000_001);
  put(`long/${'é'.repeat(127)}`, Buffer.from('127 two-byte characters\n'), 1_650_000_002);
  put(`long/${'ü'.repeat(100)}${'z'.repeat(55)}`, Buffer.from('155 characters\n'), 1_650_000_003);
  put('a/b/c/d/e/f/g/h/i/j/k/l/deep.txt', Buffer.from('deep\n'), 1_650_000_005);
  for (let i = 0; i < 120; i++) put(`many/file number ${String(i).padStart(3, '0')} with a longer name.dat`, patternBytes(i * 37, i + 100), 1_600_000_000 + i);
  return files;
}
