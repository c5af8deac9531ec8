import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync, openSync, writeSync, readFileSync, readSync, closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { makeBitLocker, makeDos1Floppy, makeHfs, makeHfsPlus, makeHpfs, makeLuks1, makeLvm2, makeWith, makeZfsMember, makeBefs, ufs2Superblock } from './helpers/handmade.js';
import { crc32, crc32c } from '../src/util/crc.js';
import type { Volume } from '../src/index.js';

const MiB = 1024 * 1024;

type Vol = Omit<Volume, 'fsSize'>;

/**
 * An MD RAID member's superblock as mdadm writes it (the kernel's md driver, which mdadm needs to
 * create an array, is not there to use): 0.90 in the last 64 KiB, 1.0 8 KiB before the end, 1.1 at 0,
 * 1.2 at 4 KiB.
 */
function makeMdMember(file: string, version: '0.90' | '1.0' | '1.1' | '1.2', size: number): void {
  const sb = Buffer.alloc(256);
  let at: number;
  if (version === '0.90') {
    at = Math.floor(size / 65536) * 65536 - 65536;
    sb.writeUInt32LE(0xa92b4efc, 0);
    [0, 90, 0].forEach((n, k) => sb.writeUInt32LE(n, 4 + 4 * k));
    sb.writeUInt32LE(0x11223344, 20);
    sb.writeUInt32LE(1, 28); // level 1
    sb.writeUInt32LE(1024, 32); // KiB used of each member
    [0x55667788, 0x99aabbcc, 0xddeeff00].forEach((n, k) => sb.writeUInt32LE(n, 52 + 4 * k));
  } else {
    at = version === '1.0' ? Math.floor(size / 4096) * 4096 - 8192 : version === '1.1' ? 0 : 4096;
    sb.writeUInt32LE(0xa92b4efc, 0);
    sb.writeUInt32LE(1, 4);
    Buffer.from('0f1e2d3c4b5a69788796a5b4c3d2e1f0', 'hex').copy(sb, 16);
    sb.write('host:array', 32, 'latin1');
    sb.writeBigUInt64LE(BigInt(at / 512), 144);
  }
  const fd = openSync(file, 'r+');
  writeSync(fd, sb, 0, sb.length, at);
  closeSync(fd);
}

/** The rarer signatures blkid knows, each as its own tools would leave it: name, image size, what is written where. */
const LEGACY: [string, number, () => [number, Buffer][]][] = [
  ['OCFS version 1', 16 * MiB, () => {
    const l = Buffer.alloc(132);
    l.write('ocfs-one', 48, 'latin1');
    l.writeUInt16LE(8, 112);
    Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(l, 114);
    return [[8192, Buffer.from('OracleCFS')], [8192 + 512, l]];
  }],
  ['Oracle ASM disk', 4 * MiB, () => [[32, Buffer.from('ORCLDISKDATA_DISK01')]]],
  ['Xenix', 4 * MiB, () => [[2048, Buffer.from('2b5544', 'hex')], [1024 + 632, Buffer.from('xroot')]]],
  ['System V', 4 * MiB, () => {
    const sb = Buffer.alloc(512);
    sb.write('sysvfs', 440, 'latin1');
    sb.writeUInt32LE(0xfd187e20, 504);
    return [[9 * 1024 + 512, sb]];
  }],
  ['NetWare NSS pool', 4 * MiB, () => {
    const sb = Buffer.alloc(364);
    sb.write('SPB5', 0, 'latin1');
    sb.writeUInt16LE(5, 8);
    sb.writeUInt16LE(3, 10);
    Buffer.from('a0a1a2a3a4a5a6a7a8a9aaabacadaeaf', 'hex').copy(sb, 348);
    return [[4096, sb]];
  }],
  ['SGI EXFS', 4 * MiB, () => {
    const s = Buffer.alloc(128);
    s.write('EXFS', 0, 'latin1');
    s.writeUInt32BE(4096, 4);
    s.writeBigUInt64BE(1000n, 8);
    Buffer.from('0f0e0d0c0b0a09080706050403020100', 'hex').copy(s, 32);
    s.writeUInt32BE(1, 80);
    s.writeUInt32BE(1000, 84);
    s.writeUInt32BE(1, 88);
    s.writeUInt16BE(512, 102);
    s.writeUInt16BE(256, 104);
    s.write('exfsvol', 108, 'latin1');
    [s[120], s[121], s[122], s[123]] = [12, 9, 8, 4];
    s[127] = 25;
    return [[0, s]];
  }],
  ['Micron mpool', 4 * MiB, () => {
    const d = Buffer.alloc(66);
    d.write('mpoolDev', 0, 'latin1');
    d.write('pool0', 8, 'latin1');
    Buffer.from('11112222333344445555666677778888', 'hex').copy(d, 40);
    d.writeUInt32LE(crc32c(d.subarray(0, 62), 0), 62);
    return [[0, d]];
  }],
  ['DRBDmanage control volume', 4 * MiB, () => [[0, Buffer.from('$DRBDmgr=q 0123456789abcdef0123456789abcdef\n', 'latin1')]]],
  ['DRBD proxy data log', 4 * MiB, () => {
    const h = Buffer.alloc(40);
    h.write('DRBDdlh*', 0, 'latin1');
    h.writeBigUInt64LE(3n, 8);
    Buffer.from('cafebabe000011112222333344445555', 'hex').copy(h, 16);
    return [[0, h]];
  }],
  ['ReFS', 4 * MiB, () => {
    const h = Buffer.alloc(32);
    h.write('ReFS\0\0\0\0', 3, 'latin1');
    h.write('FSRS', 16, 'latin1');
    return [[0, h]];
  }],
];

/** BIOS RAID members: name, sectors back from the end (negative: bytes from the start), the metadata. */
const FIRMWARE_RAID_MEMBERS: [string, number, () => Buffer][] = [
  ['Intel Matrix', 2, () => Buffer.from('Intel Raid ISM Cfg Sig. 1.3.00\0', 'latin1')],
  ['SNIA DDF', 1, () => {
    const h = Buffer.alloc(512);
    h.writeUInt32BE(0xde11de11, 0);
    h.write('LSI     1000000011223344', 8, 'latin1');
    h.write('02.00.00', 32, 'latin1');
    return h;
  }],
  ['NVIDIA', 2, () => {
    const h = Buffer.alloc(512);
    h.write('NVIDIA  ', 0, 'latin1');
    h.writeUInt16LE(100, 16);
    return h;
  }],
  ['Promise FastTrack', 63, () => Buffer.from('Promise Technology, Inc.', 'latin1')],
  ['JMicron', 1, () => Buffer.from('JM\x01\x02', 'latin1')],
  ['LSI MegaRAID', 1, () => Buffer.from('$XIDE$', 'latin1')],
  ['Silicon Image', 1, () => {
    const h = Buffer.alloc(512);
    h.writeUInt32LE(0x2f000000, 0x60);
    h.writeUInt16LE(3, 0x108);
    h.writeUInt16LE(2, 0x10a);
    h[0x116] = 1;
    let sum = 0;
    for (let o = 0; o < 0x13e; o += 2) sum += h.readUInt16LE(o);
    h.writeUInt16LE(-sum & 0xffff, 0x13e);
    return h;
  }],
  ['VIA', 1, () => {
    const h = Buffer.alloc(512);
    h.writeUInt16LE(0xaa55, 0);
    h[2] = 2;
    h[3] = 3;
    let sum = 0;
    for (let i = 0; i < 50; i++) sum = (sum + h[i]) & 0xff;
    h[50] = sum;
    return h;
  }],
  ['Adaptec HostRAID', 1, () => {
    const h = Buffer.alloc(512);
    h.writeUInt32BE(0x37fc4d1e, 0);
    h[63] = 9;
    h.writeUInt32BE(0x4450544d, 256);
    return h;
  }],
  ['HighPoint 45x', 11, () => Buffer.from('f316785a', 'hex')],
  ['HighPoint 37x', -4640, () => Buffer.from('f016785a', 'hex')],
];

/** Rewrites `length` bytes of a file at `offset` in place. */
function patch(file: string, offset: number, edit: (b: Buffer) => void, length: number): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(length);
    readSync(fd, b, 0, length, offset);
    edit(b);
    writeSync(fd, b, 0, length, offset);
  } finally {
    closeSync(fd);
  }
}

function ours(img: string): { volumes: Vol[]; warnings: string[] } {
  const r = vdisk(['mount-detect', '--output', 'json', img]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** `blkid -p -o export` as { TYPE, VERSION, LABEL, UUID }, optionally for a range of the image. */
function blkid(img: string, offset?: number, size?: number): Record<string, string | null> {
  const args = ['-p', '-o', 'export', ...(offset !== undefined ? ['-O', String(offset)] : []), ...(size !== undefined ? ['-S', String(size)] : []), img];
  const r = spawnSync('blkid', args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  const out: Record<string, string | null> = { TYPE: null, VERSION: null, LABEL: null, UUID: null, LABEL_FATBOOT: null, LOGUUID: null };
  for (const line of r.stdout.split('\n')) {
    const m = /^(TYPE|VERSION|LABEL|UUID|LABEL_FATBOOT|LOGUUID)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/\\(.)/g, '$1');
  }
  return out;
}

function asBlkid(v: Vol): Record<string, string | null> {
  return { TYPE: v.filesystem, VERSION: v.version, LABEL: v.label, UUID: v.uuid, LABEL_FATBOOT: v.labelFatboot ?? null, LOGUUID: v.logUuid ?? null };
}

interface Maker {
  name: string;
  size: number;
  tool: string;
  make: (img: string, dir: string) => void;
}

const MAKERS: Maker[] = [
  { name: 'FAT12', size: 4 * MiB, tool: 'mkfs.vfat', make: (i) => sh('mkfs.vfat', ['-F', '12', '-n', 'SMALL DISK', i]) },
  { name: 'FAT16', size: 64 * MiB, tool: 'mkfs.vfat', make: (i) => sh('mkfs.vfat', ['-F', '16', '-n', 'MID', i]) },
  { name: 'FAT32', size: 64 * MiB, tool: 'mkfs.vfat', make: (i) => sh('mkfs.vfat', ['-F', '32', '-n', 'BIG32', i]) },
  { name: 'FAT32 without a label', size: 64 * MiB, tool: 'mkfs.vfat', make: (i) => sh('mkfs.vfat', ['-F', '32', i]) },
  {
    name: 'FAT16 whose root-directory label differs from the boot sector\'s (LABEL and LABEL_FATBOOT)',
    size: 16 * MiB,
    tool: 'mkfs.vfat',
    make: (i) => {
      sh('mkfs.vfat', ['-F', '16', '-n', 'BOOTLBL', i]);
      const b = readFileSync(i).subarray(0, 512);
      const root = (b.readUInt16LE(14) + b[16] * b.readUInt16LE(22)) * b.readUInt16LE(11);
      patch(i, root, (e) => e.write('ROOTLBL    ', 0, 'latin1'), 11);
    },
  },
  { name: 'exFAT', size: 64 * MiB, tool: 'mkfs.exfat', make: (i) => sh('mkfs.exfat', ['-L', 'ExLabel', i]) },
  { name: 'ext2', size: 32 * MiB, tool: 'mkfs.ext2', make: (i) => sh('mkfs.ext2', ['-q', '-L', 'two', i]) },
  { name: 'ext3', size: 32 * MiB, tool: 'mkfs.ext3', make: (i) => sh('mkfs.ext3', ['-q', '-L', 'three', i]) },
  { name: 'ext4', size: 32 * MiB, tool: 'mkfs.ext4', make: (i) => sh('mkfs.ext4', ['-q', '-L', 'four', i]) },
  { name: 'ext4 external journal device (jbd)', size: 16 * MiB, tool: 'mke2fs', make: (i) => sh('mke2fs', ['-q', '-O', 'journal_dev', '-L', 'journal', i]) },
  { name: 'ext4 without a journal', size: 32 * MiB, tool: 'mkfs.ext4', make: (i) => sh('mkfs.ext4', ['-q', '-O', '^has_journal', i]) },
  { name: 'NTFS', size: 32 * MiB, tool: 'mkntfs', make: (i) => sh('mkntfs', ['-q', '-F', '-f', '-L', 'Windows Vol', i]) },
  { name: 'NTFS on 4 KiB sectors', size: 32 * MiB, tool: 'mkntfs', make: (i) => sh('mkntfs', ['-q', '-F', '-f', '-s', '4096', '-L', 'four-k', i]) },
  { name: 'XFS', size: 320 * MiB, tool: 'mkfs.xfs', make: (i) => sh('mkfs.xfs', ['-q', '-L', 'xfsvol', i]) },
  {
    name: 'XFS external log device',
    size: 80 * MiB,
    tool: 'mkfs.xfs',
    make: (i, d) => {
      const data = join(d, 'xfs-data.img');
      sh('truncate', ['-s', '320M', data]);
      sh('mkfs.xfs', ['-q', '-f', '-l', `logdev=${i},size=64m`, data]);
    },
  },
  { name: 'Btrfs', size: 128 * MiB, tool: 'mkfs.btrfs', make: (i) => sh('mkfs.btrfs', ['-q', '-L', 'butter', i]) },
  { name: 'swap', size: 16 * MiB, tool: 'mkswap', make: (i) => sh('mkswap', ['-L', 'swappy', i]) },
  { name: 'F2FS', size: 64 * MiB, tool: 'mkfs.f2fs', make: (i) => sh('mkfs.f2fs', ['-q', '-l', 'flash', i]) },
  { name: 'UDF', size: 32 * MiB, tool: 'mkudffs', make: (i) => sh('mkudffs', ['--label=discs', i]) },
  {
    name: 'ISO-9660',
    size: 0,
    tool: 'genisoimage',
    make: (i, d) => {
      mkdirSync(join(d, 'tree'), { recursive: true });
      writeFileSync(join(d, 'tree', 'readme.txt'), 'hello');
      sh('genisoimage', ['-quiet', '-V', 'MY_CD', '-o', i, join(d, 'tree')]);
    },
  },
  {
    name: 'ISO-9660 with Joliet',
    size: 0,
    tool: 'genisoimage',
    make: (i, d) => {
      mkdirSync(join(d, 'tree'), { recursive: true });
      writeFileSync(join(d, 'tree', 'readme.txt'), 'hello');
      sh('genisoimage', ['-quiet', '-J', '-V', 'Mixed Case CD', '-o', i, join(d, 'tree')]);
    },
  },
  {
    name: 'SquashFS',
    size: 0,
    tool: 'mksquashfs',
    make: (i, d) => {
      mkdirSync(join(d, 'sq'), { recursive: true });
      writeFileSync(join(d, 'sq', 'f'), 'x');
      sh('mksquashfs', [join(d, 'sq'), i, '-quiet']);
    },
  },
  { name: 'ReiserFS 3.6', size: 64 * MiB, tool: 'mkfs.reiserfs', make: (i) => sh('mkfs.reiserfs', ['-q', '-l', 'reiser', i]) },
  { name: 'ReiserFS 3.5', size: 64 * MiB, tool: 'mkfs.reiserfs', make: (i) => sh('mkfs.reiserfs', ['-q', '--format', '3.5', i]) },
  { name: 'JFS', size: 64 * MiB, tool: 'mkfs.jfs', make: (i) => sh('mkfs.jfs', ['-q', '-L', 'jfsvol', i]) },
  { name: 'NILFS2', size: 160 * MiB, tool: 'mkfs.nilfs2', make: (i) => sh('mkfs.nilfs2', ['-q', '-L', 'nilfsvol', i]) },
  { name: 'OCFS2', size: 64 * MiB, tool: 'mkfs.ocfs2', make: (i) => { spawnSync('mkfs.ocfs2', ['-q', '-F', '-L', 'ocfsvol', '--fs-feature-level=max-compat', i], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }); } },
  { name: 'GFS2', size: 64 * MiB, tool: 'mkfs.gfs2', make: (i) => sh('mkfs.gfs2', ['-q', '-O', '-p', 'lock_nolock', '-t', 'cluster:gfsvol', i]) },
  { name: 'Minix 1', size: 8 * MiB, tool: 'mkfs.minix', make: (i) => sh('mkfs.minix', ['-1', i]) },
  { name: 'Minix 2 with 30-character names', size: 8 * MiB, tool: 'mkfs.minix', make: (i) => sh('mkfs.minix', ['-2', '-n', '30', i]) },
  { name: 'Minix 3', size: 8 * MiB, tool: 'mkfs.minix', make: (i) => sh('mkfs.minix', ['-3', i]) },
  { name: 'BFS', size: 8 * MiB, tool: 'mkfs.bfs', make: (i) => sh('mkfs.bfs', ['-V', 'vol', '-F', 'fsname', i]) },
  { name: 'bcache backing device', size: 64 * MiB, tool: 'make-bcache', make: (i) => sh('make-bcache', ['-B', i]) },
  { name: 'bcache cache device', size: 64 * MiB, tool: 'make-bcache', make: (i) => sh('make-bcache', ['-C', i]) },
  {
    name: 'cramfs',
    size: 0,
    tool: 'mkfs.cramfs',
    make: (i, d) => {
      mkdirSync(join(d, 'cr'), { recursive: true });
      writeFileSync(join(d, 'cr', 'f'), 'x');
      sh('mkfs.cramfs', ['-n', 'cramvol', join(d, 'cr'), i]);
    },
  },
  {
    name: 'romfs',
    size: 0,
    tool: 'genromfs',
    make: (i, d) => {
      mkdirSync(join(d, 'rom'), { recursive: true });
      writeFileSync(join(d, 'rom', 'f'), 'x');
      sh('genromfs', ['-V', 'romvol', '-d', join(d, 'rom'), '-f', i]);
      // blkid probes nothing this small (one KiB): give it the size of a small ROM.
      sh('truncate', ['-s', '1M', i]);
    },
  },
  {
    name: 'swap written by a big-endian machine (header swapped by hand)',
    size: 16 * MiB,
    tool: 'mkswap',
    make: (i) => {
      sh('mkswap', ['-L', 'bigswap', i]);
      patch(i, 1024, (b) => {
        b.writeUInt32BE(b.readUInt32LE(0), 0);
        b.writeUInt32BE(b.readUInt32LE(4), 4);
      }, 8);
    },
  },
  {
    name: 'hibernation image (S1SUSPEND over a swap header)',
    size: 16 * MiB,
    tool: 'mkswap',
    make: (i) => {
      sh('mkswap', ['-L', 'resume', i]);
      patch(i, 4086, (b) => b.write('S1SUSPEND', 'latin1'), 9);
    },
  },
  {
    name: 'TuxOnIce hibernation image',
    size: 16 * MiB,
    tool: 'mkswap',
    make: (i) => {
      sh('mkswap', [i]);
      patch(i, 0, (b) => Buffer.from('edc302e99856e50c', 'hex').copy(b), 8);
    },
  },
  {
    name: 'LUKS2 whose header area carries a stale swap signature',
    size: 32 * MiB,
    tool: 'cryptsetup',
    make: (i) => {
      sh('cryptsetup', ['luksFormat', '-q', '--type', 'luks2', '--pbkdf', 'pbkdf2', '--pbkdf-force-iterations', '1000', '--key-file', '-', i], Buffer.from('pass'));
      patch(i, 4086, (b) => b.write('SWAPSPACE2', 'latin1'), 10);
    },
  },
  {
    name: 'EROFS',
    size: 0,
    tool: 'mkfs.erofs',
    make: (i, d) => {
      mkdirSync(join(d, 'ro'), { recursive: true });
      writeFileSync(join(d, 'ro', 'f'), 'x');
      sh('mkfs.erofs', ['--quiet', '-U', 'c0ffee00-1111-2222-3333-444455556666', i, join(d, 'ro')]);
      sh('truncate', ['-s', '1M', i]);
    },
  },
  ...(['0.90', '1.0', '1.1', '1.2'] as const).map((version): Maker => ({
    name: `MD RAID member, metadata ${version} (built by hand)`,
    size: 8 * MiB,
    tool: 'blkid',
    make: (i) => makeMdMember(i, version, 8 * MiB),
  })),
  { name: 'HFS+ with a volume name and id (built by hand)', size: 0, tool: 'blkid', make: (i) => makeHfsPlus(i, 'Macintosh HD', Buffer.from('0123456789abcdef', 'hex')) },
  { name: 'HFS (built by hand)', size: 0, tool: 'blkid', make: (i) => makeHfs(i, 'Old Mac', Buffer.from('fedcba9876543210', 'hex')) },
  { name: 'BitLocker, Windows 7 and later (built by hand)', size: 0, tool: 'blkid', make: (i) => makeBitLocker(i, 'win7', 2, 0x1234) },
  { name: 'BitLocker, Vista (built by hand)', size: 0, tool: 'blkid', make: (i) => makeBitLocker(i, 'vista') },
  { name: 'BitLocker To Go (built by hand)', size: 0, tool: 'blkid', make: (i) => makeBitLocker(i, 'togo', 1) },
  { name: 'UFS2, little-endian (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[65536, ufs2Superblock('freebsd', [0x5f1e2d3c, 0x1234abcd], 'le')]]) },
  { name: 'UFS2, big-endian (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[65536, ufs2Superblock('sparc', [0x0badcafe, 0x00c0ffee], 'be')]]) },
  {
    name: 'VMFS (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => {
      const h = Buffer.alloc(160);
      h.writeUInt32BE(0x5ef1ab2f, 0);
      h.writeUInt32LE(6, 4);
      h[8] = 6;
      Buffer.from('00112233445566778899aabbccddeeff', 'hex').copy(h, 9);
      h.write('datastore1', 29, 'latin1');
      makeWith(i, 4 * MiB, [[2 * MiB, h]]);
    },
  },
  {
    name: 'VMFS volume member (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => {
      const h = Buffer.alloc(600);
      h.writeUInt32BE(0x0dd001c0, 0);
      h.writeUInt32LE(14, 4);
      h.write('4f6d5a21-0c4e9a62-1b2c-001122334455', 532, 'latin1');
      makeWith(i, 4 * MiB, [[MiB, h]]);
    },
  },
  {
    name: 'VDO (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => makeWith(i, 4 * MiB, [[0, Buffer.from('dmvdo001')], [40, Buffer.from('6a1b2c3d4e5f60718293a4b5c6d7e8f9', 'hex')]]),
  },
  {
    name: 'Stratis block device (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => {
      const sb = Buffer.alloc(512);
      Buffer.from('!Stra0tis\x86\xff\x02^\x41rh', 'latin1').copy(sb, 4);
      sb.writeBigUInt64LE(8192n, 20);
      sb.write('0123456789abcdef0123456789abcdef', 32, 'latin1');
      sb.write('fedcba9876543210fedcba9876543210', 64, 'latin1');
      sb.writeUInt32LE(crc32c(sb.subarray(4), 0), 0);
      makeWith(i, 4 * MiB, [[512, sb]]);
    },
  },
  { name: 'Ceph BlueStore (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[0, Buffer.concat([Buffer.from('bluestore block device'), Buffer.from([2, 0, 0, 0])])]]) },
  {
    name: 'zonefs (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => {
      const sb = Buffer.alloc(4096);
      sb.write('SFOZ', 0, 'latin1');
      sb.write('zones', 8, 'latin1');
      Buffer.from('a1a2a3a4b1b2c1c2d1d2e1e2e3e4e5e6', 'hex').copy(sb, 40);
      sb.writeUInt32LE((~crc32(sb, 0)) >>> 0, 4);
      makeWith(i, 4 * MiB, [[0, sb]]);
    },
  },
  {
    name: 'dm-verity hash device',
    size: 0,
    tool: 'veritysetup',
    make: (i, d) => {
      const data = join(d, 'verity-data.img');
      sh('truncate', ['-s', '4M', data]);
      sh('truncate', ['-s', '1M', i]);
      sh('veritysetup', ['format', data, i]);
    },
  },
  { name: 'dm-integrity (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[0, Buffer.from('integrt\0\x02', 'latin1')]]) },
  { name: 'device-mapper snapshot store (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[0, Buffer.from('SnAp\x01\x00\x00\x00', 'latin1')]]) },
  {
    name: 'LVM1 physical volume (built by hand)',
    size: 0,
    tool: 'blkid',
    make: (i) => makeWith(i, 4 * MiB, [[0, Buffer.from('HM\x02\x00', 'latin1')], [44, Buffer.from('abcdefGHIJKLmnopQRSTuvwxYZ012345', 'latin1')]]),
  },
  { name: 'VxFS, little-endian (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[1024, Buffer.from('f5fc01a50a000000', 'hex')]]) },
  { name: 'VxFS, big-endian (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, 4 * MiB, [[8192, Buffer.from('a501fcf500000006', 'hex')]]) },
  ...([['v08', 0x83740267 + 4, 40], ['v09', 0x83740267 + 6, 48]] as const).map(([version, magic, uuidAt]): Maker => ({
    name: `DRBD ${version} metadata (built by hand)`,
    size: 0,
    tool: 'blkid',
    make: (i) => {
      const md = Buffer.alloc(64);
      md.writeBigUInt64BE(0x0123456789abcdefn, uuidAt);
      md.writeUInt32BE(magic, 60);
      makeWith(i, 4 * MiB, [[4 * MiB - 4096, md]]);
    },
  })),
  { name: 'SquashFS 3, big-endian (built by hand)', size: 0, tool: 'blkid', make: (i) => makeWith(i, MiB, [[0, Buffer.from('sqsh')], [28, Buffer.from('00030001', 'hex')]]) },
  ...FIRMWARE_RAID_MEMBERS.map(([name, back, sector]): Maker => ({
    name: `${name} metadata (built by hand)`,
    size: 0,
    tool: 'blkid',
    make: (i) => makeWith(i, 4 * MiB, [[back < 0 ? -back : 4 * MiB - back * 512, sector()]]),
  })),
  {
    name: 'UBIFS image (mkfs.ubifs)',
    size: 0,
    tool: 'mkfs.ubifs',
    make: (i, d) => {
      mkdirSync(join(d, 'ubiroot'), { recursive: true });
      writeFileSync(join(d, 'ubiroot', 'f'), 'x');
      sh('mkfs.ubifs', ['-r', join(d, 'ubiroot'), '-m', '2048', '-e', '129024', '-c', '100', '-o', i]);
    },
  },
  {
    name: 'UBI image (ubinize)',
    size: 0,
    tool: 'ubinize',
    make: (i, d) => {
      mkdirSync(join(d, 'ubiroot'), { recursive: true });
      writeFileSync(join(d, 'ubiroot', 'f'), 'x');
      const fs = join(d, 'fs.ubifs');
      sh('mkfs.ubifs', ['-r', join(d, 'ubiroot'), '-m', '2048', '-e', '129024', '-c', '100', '-o', fs]);
      const ini = join(d, 'ubi.ini');
      writeFileSync(ini, `[vol]\nmode=ubi\nimage=${fs}\nvol_id=0\nvol_size=8MiB\nvol_type=dynamic\nvol_name=rootfs\n`);
      sh('ubinize', ['-o', i, '-m', '2048', '-p', '128KiB', '-s', '512', ini]);
    },
  },
  { name: 'ZFS pool member (built by hand)', size: 0, tool: 'blkid', make: (i) => makeZfsMember(i, 'tank', 12345678901234567890n, 5000n) },
  { name: 'BeOS BFS (built by hand)', size: 0, tool: 'blkid', make: (i) => makeBefs(i, 'Haiku', 0x0123456789abcdefn) },
  ...LEGACY.map(([name, size, parts]): Maker => ({ name: `${name} (built by hand)`, size: 0, tool: 'blkid', make: (i) => makeWith(i, size, parts()) })),
  { name: 'HPFS (built by hand)', size: 0, tool: 'blkid', make: (i) => makeHpfs(i, 'OS2 DISK', 0x1234abcd) },
  { name: 'LVM2 member (built by hand)', size: 0, tool: 'blkid', make: (i) => makeLvm2(i, 'aBcDeF0123456789aBcDeF0123456789') },
  { name: 'LUKS1 (built by hand)', size: 0, tool: 'blkid', make: (i) => makeLuks1(i, '9d2b3d51-7d2f-4a8b-a9f4-1b0b9e2e1c55') },
];

describe('mount-detect names file systems exactly as blkid -p does', () => {
  for (const m of MAKERS) {
    test(m.name, (t) => {
      if (!needPeers(t, m.tool, 'blkid')) return;
      const dir = tempDir(t);
      const img = join(dir, 'fs.img');
      if (m.size) sh('truncate', ['-s', String(m.size), img]);
      m.make(img, dir);
      const b = blkid(img);
      assert.ok(b.TYPE, `blkid recognises ${m.name}`);
      const o = ours(img);
      assert.equal(o.volumes.length, 1);
      assert.deepEqual(asBlkid(o.volumes[0]), b);
      assert.equal(o.volumes[0].partition, null);
      // blkid -p gave one answer without doubt: no signature worth a warning either.
      assert.deepEqual(o.warnings, []);
    });
  }

  test('a FAT label whose first byte is 0x05 means 0xE5, byte for byte as blkid reads it', (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'blkid')) return;
    const dir = tempDir(t);
    const img = join(dir, 'e5.img');
    sh('truncate', ['-s', String(16 * MiB), img]);
    sh('mkfs.vfat', ['-F', '16', '-n', 'XOOTLBL', img]);
    const b = readFileSync(img).subarray(0, 512);
    const root = (b.readUInt16LE(14) + b[16] * b.readUInt16LE(22)) * b.readUInt16LE(11);
    patch(img, root, (e) => (e[0] = 0x05), 1);
    // -o udev spells the label's bytes out (\xe5), where -o export would show them as M-e.
    const udev = spawnSync('blkid', ['-p', '-o', 'udev', img], { encoding: 'latin1', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).stdout;
    const enc = /^ID_FS_LABEL_ENC=(.*)$/m.exec(udev)?.[1] ?? '';
    const theirs = Buffer.from(enc.replace(/\\x([0-9a-f]{2})/g, (_, h) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    assert.deepEqual([...theirs], [0xe5, ...Buffer.from('OOTLBL')]);
    assert.deepEqual([...Buffer.from(ours(img).volumes[0].label ?? '', 'latin1')], [...theirs]);
  });

  test('a PC-DOS 1.0 floppy without a BPB (built by hand) is FAT12', (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'dos1.img');
    makeDos1Floppy(img);
    const o = ours(img);
    assert.deepEqual(asBlkid(o.volumes[0]), { TYPE: 'vfat', VERSION: 'FAT12', LABEL: null, UUID: null, LABEL_FATBOOT: null, LOGUUID: null });
    // The same bytes one size off are not a DOS 1.0 floppy.
    writeFileSync(img, Buffer.concat([readFileSync(img), Buffer.alloc(512)]));
    assert.equal(ours(img).volumes[0].filesystem, null);
  });

  test('a GPT disk with several file systems, raw and as VHDX, partition by partition', (t) => {
    if (!needPeers(t, 'sgdisk', 'mkfs.vfat', 'mkfs.ext4', 'mkntfs', 'mkswap', 'qemu-img', 'blkid')) return;
    const dir = tempDir(t);
    const img = join(dir, 'disk.img');
    sh('truncate', ['-s', String(160 * MiB), img]);
    sh('sgdisk', ['-n', '1:2048:+40M', '-t', '1:ef00', '-n', '2:0:+40M', '-t', '2:8300', '-n', '3:0:+40M', '-t', '3:0700', '-n', '4:0:+16M', '-t', '4:8200', img]);
    const parts = JSON.parse(vdisk(['partitions', '--output', 'json', img]).stdout).partitions as { start: number; size: number }[];
    const makers: [string[], string][] = [
      [['mkfs.vfat', '-F', '32', '-n', 'EFI'], 'vfat'],
      [['mkfs.ext4', '-q', '-L', 'root'], 'ext4'],
      [['mkntfs', '-q', '-F', '-f', '-L', 'data'], 'ntfs'],
      [['mkswap', '-L', 'sw'], 'swap'],
    ];
    makers.forEach(([cmd], i) => {
      const piece = join(dir, `p${i}.img`);
      sh('truncate', ['-s', String(parts[i].size), piece]);
      sh(cmd[0], [...cmd.slice(1), piece]);
      const fd = openSync(img, 'r+');
      writeSync(fd, readFileSync(piece), 0, parts[i].size, parts[i].start);
      closeSync(fd);
    });
    const o = ours(img);
    assert.deepEqual(o.volumes.map((v) => v.filesystem), makers.map(([, fs]) => fs));
    o.volumes.forEach((v, i) => {
      assert.equal(v.partition, i + 1);
      assert.equal(v.offset, parts[i].start);
      assert.deepEqual(asBlkid(v), blkid(img, parts[i].start, parts[i].size), `partition ${i + 1}`);
    });
    const vhdx = join(dir, 'disk.vhdx');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', img, vhdx]);
    assert.deepEqual(ours(vhdx), o);
  });

  test('an ISO that also starts with a FAT boot sector: ISO-9660 wins, FAT is a warning (blkid gives up); on a floppy-sized image, FAT wins as in blkid', (t) => {
    if (!needPeers(t, 'genisoimage', 'mkfs.vfat', 'blkid')) return;
    const dir = tempDir(t);
    mkdirSync(join(dir, 'tree'));
    writeFileSync(join(dir, 'tree', 'x'), 'x');
    const iso = join(dir, 'cd.iso');
    sh('genisoimage', ['-quiet', '-V', 'HYBRID', '-o', iso, join(dir, 'tree')]);
    const fatImg = join(dir, 'fat.img');
    sh('truncate', ['-s', String(1440 * 1024), fatImg]); // a floppy, as El Torito boot images are
    sh('mkfs.vfat', ['-F', '12', fatImg]);
    const both = Buffer.concat([readFileSync(iso), Buffer.alloc(4 * MiB)]);
    readFileSync(fatImg).copy(both, 0, 0, 512);
    const img = join(dir, 'both.iso');
    writeFileSync(img, both);
    // Tiny (floppy-sized): blkid reports its first match, vfat, and so do we, warning of the ISO.
    const tiny = join(dir, 'tiny.iso');
    writeFileSync(tiny, both.subarray(0, 1024 * 1024));
    const tb = blkid(tiny);
    const to = ours(tiny);
    assert.equal(tb.TYPE, 'vfat');
    assert.deepEqual(asBlkid(to.volumes[0]), tb);
    assert.match(to.warnings.join(' '), /also carries iso9660/);
    assert.equal(spawnSync('blkid', ['-p', img], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).status, 8, 'blkid: ambivalent');
    const r = vdisk(['mount-detect', '--output', 'json', img]);
    const o = JSON.parse(r.stdout);
    assert.equal(o.volumes[0].filesystem, 'iso9660');
    assert.equal(o.volumes[0].label, 'HYBRID');
    assert.match(o.warnings.join(' '), /also carries vfat/);
    assert.match(r.stderr, /^vdisk: warning: .*vfat/m);
  });

  test('a disk with no file system reports none, exit 0', (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'blank.img');
    sh('truncate', ['-s', String(8 * MiB), img]);
    const o = ours(img);
    assert.deepEqual(o.volumes, [{ partition: null, offset: 0, size: 8 * MiB, filesystem: null, version: null, label: null, uuid: null }]);
    const human = vdisk(['mount-detect', img]);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /\(disk\).*-/);
  });
});
