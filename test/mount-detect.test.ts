import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, writeFileSync, openSync, writeSync, readFileSync, closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { makeDos1Floppy, makeHpfs, makeLuks1, makeLvm2 } from './helpers/handmade.js';
import type { Volume } from '../src/index.js';

const MiB = 1024 * 1024;

type Vol = Omit<Volume, 'fsSize'>;

function ours(img: string): { volumes: Vol[]; warnings: string[] } {
  const r = vdisk(['mount-detect', '--output', 'json', img]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** `blkid -p -o export` as { TYPE, VERSION, LABEL, UUID }, optionally for a range of the image. */
function blkid(img: string, offset?: number, size?: number): Record<string, string | null> {
  const args = ['-p', '-o', 'export', ...(offset !== undefined ? ['-O', String(offset)] : []), ...(size !== undefined ? ['-S', String(size)] : []), img];
  const r = spawnSync('blkid', args, { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  const out: Record<string, string | null> = { TYPE: null, VERSION: null, LABEL: null, UUID: null };
  for (const line of r.stdout.split('\n')) {
    const m = /^(TYPE|VERSION|LABEL|UUID)=(.*)$/.exec(line);
    if (m) out[m[1]] = m[2].replace(/\\(.)/g, '$1');
  }
  return out;
}

function asBlkid(v: Vol): Record<string, string | null> {
  return { TYPE: v.filesystem, VERSION: v.version, LABEL: v.label, UUID: v.uuid };
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
  { name: 'exFAT', size: 64 * MiB, tool: 'mkfs.exfat', make: (i) => sh('mkfs.exfat', ['-L', 'ExLabel', i]) },
  { name: 'ext2', size: 32 * MiB, tool: 'mkfs.ext2', make: (i) => sh('mkfs.ext2', ['-q', '-L', 'two', i]) },
  { name: 'ext3', size: 32 * MiB, tool: 'mkfs.ext3', make: (i) => sh('mkfs.ext3', ['-q', '-L', 'three', i]) },
  { name: 'ext4', size: 32 * MiB, tool: 'mkfs.ext4', make: (i) => sh('mkfs.ext4', ['-q', '-L', 'four', i]) },
  { name: 'ext4 without a journal', size: 32 * MiB, tool: 'mkfs.ext4', make: (i) => sh('mkfs.ext4', ['-q', '-O', '^has_journal', i]) },
  { name: 'NTFS', size: 32 * MiB, tool: 'mkntfs', make: (i) => sh('mkntfs', ['-q', '-F', '-f', '-L', 'Windows Vol', i]) },
  { name: 'NTFS on 4 KiB sectors', size: 32 * MiB, tool: 'mkntfs', make: (i) => sh('mkntfs', ['-q', '-F', '-f', '-s', '4096', '-L', 'four-k', i]) },
  { name: 'XFS', size: 320 * MiB, tool: 'mkfs.xfs', make: (i) => sh('mkfs.xfs', ['-q', '-L', 'xfsvol', i]) },
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
    });
  }

  test('a PC-DOS 1.0 floppy without a BPB (built by hand) is FAT12', (t) => {
    const dir = tempDir(t);
    const img = join(dir, 'dos1.img');
    makeDos1Floppy(img);
    const o = ours(img);
    assert.deepEqual(asBlkid(o.volumes[0]), { TYPE: 'vfat', VERSION: 'FAT12', LABEL: null, UUID: null });
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
