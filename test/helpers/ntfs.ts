import { spawnSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, symlinkSync, linkSync, utimesSync, lutimesSync, writeFileSync, writeSync, chmodSync, ftruncateSync } from 'node:fs';
import { join } from 'node:path';
import { sh } from './peers.js';

/**
 * NTFS fixtures made with the real tools: mkntfs formats, ntfs-3g (FUSE) fills. The helpers keep the
 * host source tree and what ntfs-3g was asked to add beyond it, so tests can compare both ways.
 */

export const NTFS_PEERS = ['mkntfs', 'ntfs-3g', 'ntfsls', 'ntfscat', 'ntfsinfo', 'setfattr', 'getfattr', 'blkid'];

export function mountNtfs(img: string, mnt: string, options: string): void {
  mkdirSync(mnt, { recursive: true });
  sh('ntfs-3g', ['-o', options, img, mnt]);
}

/** Unmounts, retrying while the FUSE daemon finishes (umount says "busy" for a moment after writes). */
export function unmount(mnt: string): void {
  for (let i = 0; i < 50; i++) {
    const r = spawnSync('umount', [mnt], { encoding: 'utf8' });
    if (r.status === 0) return;
    spawnSync('sleep', ['0.1']);
  }
  throw new Error(`cannot unmount ${mnt}`);
}

/** A reparse point buffer (MS-FSCC 2.1.2.4 symlink, 2.1.2.5 mount point) as setfattr's hex value. */
export function reparseHex(tag: number, substitute: string, print: string, flags = 0): string {
  const s = Buffer.from(substitute, 'utf16le');
  const p = Buffer.from(print, 'utf16le');
  const isLink = tag === 0xa000000c;
  const head = isLink ? 12 : 8;
  const names = Buffer.concat([s, Buffer.alloc(2), p, Buffer.alloc(2)]);
  const b = Buffer.alloc(8 + head + names.length);
  b.writeUInt32LE(tag >>> 0, 0);
  b.writeUInt16LE(head + names.length, 4);
  b.writeUInt16LE(0, 8);
  b.writeUInt16LE(s.length, 10);
  b.writeUInt16LE(s.length + 2, 12);
  b.writeUInt16LE(p.length, 14);
  if (isLink) b.writeUInt32LE(flags, 16);
  names.copy(b, 8 + head);
  return '0x' + b.toString('hex');
}

/** Deterministic bytes: compressible text, or pseudo-random noise. */
export function textBytes(n: number, seed: number): Buffer {
  const line = Buffer.from(`line ${seed}: the quick brown fox jumps over the lazy dog 0123456789\n`);
  const b = Buffer.alloc(n);
  for (let i = 0; i < n; i += line.length) line.copy(b, i, 0, Math.min(line.length, n - i));
  return b;
}

export function noiseBytes(n: number, seed: number): Buffer {
  const b = Buffer.alloc(n);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export interface NtfsFixture {
  img: string;
  /** The host tree `vdisk get` must reproduce (modes as ntfs3 shows them). */
  src: string;
  /** Streams written: path -> name -> contents. */
  streams: Map<string, Map<string, Buffer>>;
  /** Paths of files ntfs-3g stored compressed and sparse. */
  compressed: string[];
  sparse: string[];
  label: string;
}

/** Each 8 MiB of the volume holds the tree comfortably; clusters above 4 KiB cannot compress. */
export function makeNtfs(dir: string, opts: { sector: number; cluster: number; size: number; label?: string }): NtfsFixture {
  const img = join(dir, 'ntfs.img');
  const src = join(dir, 'src');
  const mnt = join(dir, 'mnt');
  const label = opts.label ?? 'Données';
  sh('truncate', ['-s', String(opts.size), img]);
  sh('mkntfs', ['-q', '-F', '-f', '-s', String(opts.sector), '-c', String(opts.cluster), '-L', label, img]);

  // The source tree: every file 0755 and readonly.txt 0555, as ntfs3 shows them.
  const file = (rel: string, data: Buffer | string, mtime = 1_600_000_000.123456) => {
    writeFileSync(join(src, rel), data);
    chmodSync(join(src, rel), 0o755);
    utimesSync(join(src, rel), mtime, mtime);
  };
  mkdirSync(join(src, 'docs', 'deep', 'er', 'still', 'deeper'), { recursive: true });
  mkdirSync(join(src, 'bigdir'));
  mkdirSync(join(src, 'links'));
  mkdirSync(join(src, 'Ünïcödé 日本語'));
  file('empty', '');
  file('one', 'x');
  file('resident.txt', textBytes(600, 1));
  file('docs/readme.txt', textBytes(5000, 2), 1_234_567_890.5);
  file('docs/deep/er/still/deeper/bottom.bin', noiseBytes(70_000, 3));
  file('noise.bin', noiseBytes(300_000, 4), 1_000_000_000);
  file('Ünïcödé 日本語/ファイル 🎉.txt', 'emoji and CJK\n');
  file('MixedCase.TXT', 'case\n');
  file('Long File Name.txt', 'has a DOS name too\n');
  for (let i = 0; i < 250; i++) file(`bigdir/entry with a long name number ${String(i).padStart(4, '0')}.dat`, `${i}\n`);
  file('hard-a', 'linked twice\n');
  linkSync(join(src, 'hard-a'), join(src, 'links', 'hard-b'));
  symlinkSync('../docs/readme.txt', join(src, 'links', 'relative'));
  symlinkSync('/etc/hostname', join(src, 'links', 'absolute'));
  symlinkSync('docs', join(src, 'links-to-dir'));
  file('readonly.txt', 'read only\n');

  const compress = opts.cluster <= 4096;
  mountNtfs(img, mnt, 'streams_interface=windows');
  const streams = new Map<string, Map<string, Buffer>>();
  const compressed: string[] = [];
  const sparse: string[] = [];
  try {
    if (compress) {
      // Files created in a directory with the compressed attribute are compressed by ntfs-3g.
      mkdirSync(join(mnt, 'packed'));
      sh('setfattr', ['-n', 'system.ntfs_attrib_be', '-v', '0x00000810', join(mnt, 'packed')]);
    }
    sh('cp', ['-a', `${src}/.`, `${mnt}/`]);
    if (compress) {
      mkdirSync(join(src, 'packed'), { mode: 0o755 });
      const packed: [string, Buffer][] = [
        ['text.txt', textBytes(200_000, 5)],
        ['noise.bin', noiseBytes(70_000, 6)],
        ['mixed.bin', Buffer.concat([textBytes(65536, 7), noiseBytes(40_000, 8), Buffer.alloc(100_000), textBytes(3000, 9)])],
        ['small.txt', textBytes(100, 10)],
      ];
      for (const [n, data] of packed) {
        writeFileSync(join(mnt, 'packed', n), data);
        writeFileSync(join(src, 'packed', n), data, { mode: 0o755 });
        compressed.push(`/packed/${n}`);
      }
    }
    // A sparse file: data at 1 MiB and 3 MiB + 5, holes elsewhere, 5 MiB long.
    for (const root of [mnt, src]) {
      const fd = openSync(join(root, 'sparse.bin'), 'w', 0o755);
      writeSync(fd, noiseBytes(8192, 11), 0, 8192, 1024 * 1024);
      writeSync(fd, textBytes(5000, 12), 0, 5000, 3 * 1024 * 1024 + 5);
      ftruncateSync(fd, 5 * 1024 * 1024);
      closeSync(fd);
    }
    sparse.push('/sparse.bin');
    // Alternate data streams, and a file with so many that its attributes spill into extension records.
    writeFileSync(join(mnt, 'ads.txt'), 'main stream\n');
    writeFileSync(join(src, 'ads.txt'), 'main stream\n', { mode: 0o755 });
    const adsStreams = new Map<string, Buffer>([['alpha', Buffer.from('first stream\n')], ['beta', noiseBytes(20_000, 13)]]);
    for (const [n, data] of adsStreams) writeFileSync(join(mnt, `ads.txt:${n}`), data);
    streams.set('/ads.txt', adsStreams);
    writeFileSync(join(mnt, 'many-streams'), 'base\n');
    writeFileSync(join(src, 'many-streams'), 'base\n', { mode: 0o755 });
    const many = new Map<string, Buffer>();
    for (let i = 0; i < 60; i++) {
      const data = Buffer.from(`stream ${i} `.repeat(4));
      many.set(`stream-number-${i}`, data);
      writeFileSync(join(mnt, `many-streams:stream-number-${i}`), data);
    }
    streams.set('/many-streams', many);
    // Reparse-point links (as Windows makes them), set through ntfs-3g's reparse xattr.
    mkdirSync(join(mnt, 'reparse'));
    mkdirSync(join(src, 'reparse'), { mode: 0o755 });
    writeFileSync(join(mnt, 'reparse', 'relative'), '');
    sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', reparseHex(0xa000000c, '..\\docs\\readme.txt', '..\\docs\\readme.txt', 1), join(mnt, 'reparse', 'relative')]);
    symlinkSync('../docs/readme.txt', join(src, 'reparse', 'relative'));
    writeFileSync(join(mnt, 'reparse', 'absolute'), '');
    sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', reparseHex(0xa000000c, '\\??\\C:\\Users\\Public', 'C:\\Users\\Public', 0), join(mnt, 'reparse', 'absolute')]);
    symlinkSync('/.NTFS-3G/C:/Users/Public', join(src, 'reparse', 'absolute'));
    mkdirSync(join(mnt, 'reparse', 'junction'));
    sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', reparseHex(0xa0000003, '\\??\\C:\\Windows\\System32', 'C:\\Windows\\System32'), join(mnt, 'reparse', 'junction')]);
    symlinkSync('/.NTFS-3G/C:/Windows/System32', join(src, 'reparse', 'junction'));
    // Special files, which ntfs-3g stores as Interix system files (get skips them; src has the empty directory).
    mkdirSync(join(mnt, 'special'));
    mkdirSync(join(src, 'special'), { mode: 0o755 });
    sh('mkfifo', [join(mnt, 'special', 'fifo')]);
    sh('mknod', [join(mnt, 'special', 'null'), 'c', '1', '3']);
    sh('mknod', [join(mnt, 'special', 'disk'), 'b', '8', '1']);
    // A Win32 name with its DOS 8.3 name in a separate $FILE_NAME (as Windows makes them).
    sh('setfattr', ['-n', 'system.ntfs_dos_name', '-v', 'LONGFI~1.TXT', join(mnt, 'Long File Name.txt')]);
    // A WSL symlink: version 2, then the UTF-8 target.
    const lxTarget = Buffer.from('../docs/deep/er', 'utf8');
    const lx = Buffer.alloc(12 + lxTarget.length);
    lx.writeUInt32LE(0xa000001d, 0);
    lx.writeUInt16LE(4 + lxTarget.length, 4);
    lx.writeUInt32LE(2, 8);
    lxTarget.copy(lx, 12);
    writeFileSync(join(mnt, 'reparse', 'wsl'), '');
    sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', '0x' + lx.toString('hex'), join(mnt, 'reparse', 'wsl')]);
    symlinkSync('../docs/deep/er', join(src, 'reparse', 'wsl'));
    // The read-only attribute: ntfs3 drops the write bits.
    sh('setfattr', ['-n', 'system.ntfs_attrib_be', '-v', '0x00000021', join(mnt, 'readonly.txt')]);
    chmodSync(join(src, 'readonly.txt'), 0o555);
    // What was written here rather than copied gets one fixed time on both sides, links included.
    const extras = ['sparse.bin', 'ads.txt', 'many-streams', 'readonly.txt', 'Long File Name.txt', ...(compress ? ['packed/text.txt', 'packed/noise.bin', 'packed/mixed.bin', 'packed/small.txt'] : [])];
    for (const rel of extras) for (const root of [mnt, src]) lutimesSync(join(root, rel), 1_500_000_000.25, 1_500_000_000.25);
  } finally {
    unmount(mnt);
  }
  // ntfs-3g sees new reparse points as links only once mounted afresh.
  mountNtfs(img, mnt, 'rw');
  try {
    for (const rel of ['reparse/relative', 'reparse/absolute', 'reparse/junction', 'reparse/wsl']) for (const root of [mnt, src]) lutimesSync(join(root, rel), 1_500_000_000.25, 1_500_000_000.25);
  } finally {
    unmount(mnt);
  }
  for (const d of ['', 'docs', 'docs/deep', 'docs/deep/er', 'docs/deep/er/still', 'docs/deep/er/still/deeper', 'bigdir', 'links', 'Ünïcödé 日本語']) chmodSync(join(src, d), 0o755);
  return { img, src, streams, compressed, sparse, label };
}
