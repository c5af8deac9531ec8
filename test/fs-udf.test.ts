import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, closeSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { havePeer, needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { compareTrees, diffTrees } from './helpers/fs-tree.js';
import { makeFilledUdf, needPycdlib, makePycdlibUdf, modeString, udfinfo, walkFs, walkHost, type Node, type PeerListing } from './helpers/udf.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';
import { detectVolumes } from '../src/filesystems/detect.js';
import type { Filesystem } from '../src/filesystems/filesystem.js';
import type { UdfReader } from '../src/filesystems/udf/reader.js';
import { crcItu } from '../src/filesystems/udf/tag.js';

const MiB = 1024 * 1024;
const ENV = { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` };

/** A tree udfclient can copy: ASCII names (it stores names' bytes as 8-bit CS0), no symlinks (it follows them). */
function asciiTree(root: string): void {
  mkdirSync(join(root, 'docs', 'deep', 'deeper'), { recursive: true });
  mkdirSync(join(root, 'many'), { recursive: true });
  writeFileSync(join(root, 'hello.txt'), 'hello, udf\n');
  writeFileSync(join(root, 'empty'), '');
  writeFileSync(join(root, 'docs', 'five-k.bin'), randomBytes(5000));
  writeFileSync(join(root, 'docs', 'deep', 'big.bin'), randomBytes(700 * 1024 + 123));
  writeFileSync(join(root, 'docs', 'deep', 'deeper', 'leaf'), 'leaf\n');
  // A directory of several blocks: FIDs straddle block boundaries, and it cannot be embedded.
  for (let i = 0; i < 100; i++) writeFileSync(join(root, 'many', `file-with-a-longish-name-${String(i).padStart(3, '0')}.txt`), `${i}\n`.repeat(i % 7));
  chmodSync(join(root, 'hello.txt'), 0o640);
  chmodSync(join(root, 'docs', 'five-k.bin'), 0o600);
  chmodSync(join(root, 'docs', 'deep'), 0o750);
}

async function open(img: string, partition?: number): Promise<{ fs: Filesystem; close: () => Promise<void> }> {
  const image = await openImage(img);
  const fs = await openFilesystem(image, partition === undefined ? {} : { partition });
  return { fs, close: () => image.close() };
}

async function freeBytes(fs: Filesystem): Promise<number> {
  let total = 0;
  let last = -1;
  for await (const r of fs.freeExtents()) {
    assert.ok(r.offset > last, 'free extents in order, merged');
    last = r.offset + r.length;
    total += r.length;
  }
  return total;
}

function assertSameContents(ours: Map<string, Node>, src: Map<string, Node>, opts: { modes?: boolean; mtimes?: boolean } = {}): void {
  assert.deepEqual([...ours.keys()].sort(), [...src.keys()].sort());
  for (const [p, s] of src) {
    const o = ours.get(p) as Node;
    assert.equal(o.type, s.type, `${p}: type`);
    if (s.type === 'file') {
      assert.equal(o.size, s.size, `${p}: size`);
      assert.equal(o.sha, s.sha, `${p}: contents`);
    }
    if (s.type === 'symlink') assert.equal(o.target, s.target, `${p}: target`);
    if (opts.modes) assert.equal((o.mode & 0o7777).toString(8), (s.mode & 0o7777).toString(8), `${p}: mode`);
    if (opts.mtimes && s.type !== 'symlink') assert.equal(o.mtime, s.mtime, `${p}: mtime`);
  }
}

function blkid(img: string): Record<string, string> {
  const r = spawnSync('blkid', ['-p', '-o', 'export', img], { encoding: 'utf8', env: ENV });
  return Object.fromEntries(r.stdout.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1).replace(/\\(.)/gu, '$1')]));
}

/** udfclient's free-space search gives up early on large blocks unless the (sparse) volume is large. */
const SIZE_FOR_BLOCK: Record<number, number> = { 512: 256 * MiB, 2048: 256 * MiB, 4096: 1024 * MiB };

const MATRIX = ['1.02', '1.50', '2.01'].flatMap((rev) => [512, 2048, 4096].map((bs) => ({ rev, bs })));
const LAYOUTS = [
  { name: 'CD-RW: sparable partition', mkudffs: ['--media-type=cdrw'], bs: 2048, kinds: ['sparable'] },
  { name: 'DVD-RW: sparable partition', mkudffs: ['--media-type=dvdrw'], bs: 2048, kinds: ['sparable'] },
  { name: 'DVD-RAM', mkudffs: ['--media-type=dvdram'], bs: 2048, kinds: ['physical'] },
  { name: 'ICB strategy 4096', mkudffs: ['--media-type=hd', '--strategy=4096'], bs: 512, kinds: ['physical'] },
  { name: 'long allocation descriptors', mkudffs: ['--media-type=hd', '--ad=long'], bs: 512, kinds: ['physical'] },
  { name: 'short allocation descriptors, file entries (no EFE)', mkudffs: ['--media-type=hd', '--ad=short', '--noefe'], bs: 512, kinds: ['physical'] },
];

interface Filled {
  img: string;
  src: string;
  peer: Map<string, PeerListing>;
}

/**
 * udfclient sleeps seconds in every session: all the volumes it fills for this file are made at once,
 * before the first test (each test that changes its volume has its own).
 */
const pool = new Map<string, Promise<Filled>>();
let poolDir = '';
before(() => {
  if (!['mkudffs', 'udfclient', 'udfinfo'].every(havePeer)) return;
  poolDir = mkdtempSync(join(tmpdir(), 'vdisk-udf-'));
  const src = join(poolDir, 'src');
  asciiTree(src);
  const dirs = ['/', ...[...walkHost(src)].filter(([, n]) => n.type === 'directory').map(([p]) => p)];
  const make = (key: string, opts: { rev: string; blockSize: number; size: number; label: string; mkudffs?: string[] }) => {
    const img = join(poolDir, `${key.replace(/[^a-z0-9.]+/giu, '-')}.img`);
    const p = makeFilledUdf(img, { ...opts, src, dirs }).then((peer) => ({ img, src, peer }));
    p.catch(() => undefined);
    pool.set(key, p);
  };
  for (const { rev, bs } of MATRIX) make(`${rev}/${bs}`, { rev, blockSize: bs, size: SIZE_FOR_BLOCK[bs], label: `Vol ${rev}` });
  for (const c of LAYOUTS) make(c.name, { rev: '2.01', blockSize: c.bs, size: 256 * MiB, label: 'Layout', mkudffs: c.mkudffs });
  for (const key of ['gpt', 'metadata', 'chains']) make(key, { rev: '2.01', blockSize: 512, size: 256 * MiB, label: key });
});
after(() => {
  if (poolDir) rmSync(poolDir, { recursive: true, force: true });
});

function filled(key: string): Promise<Filled> {
  return pool.get(key) as Promise<Filled>;
}

describe('UDF made by mkudffs and filled by udfclient, at each revision and block size', () => {
  const cases = MATRIX;
  for (const { rev, bs } of cases) {
    test(`UDF ${rev}, ${bs}-byte blocks: tree, udfclient's listing, udfinfo and blkid agree`, async (t) => {
      if (!needPeers(t, 'mkudffs', 'udfclient', 'udfinfo', 'blkid')) return;
      const { img, src, peer } = await filled(`${rev}/${bs}`);
      const before = statSync(img);
      const { fs, close } = await open(img);
      t.after(close);
      const reader = fs.reader as UdfReader;
      const ours = await walkFs(fs);
      assertSameContents(ours, walkHost(src), { modes: true });

      // udfclient's own listing: mode string, owner (-1 unset: Linux and we show 65534) and size.
      assert.deepEqual([...peer.keys()].sort(), [...ours.keys()].sort());
      for (const [p, l] of peer) {
        const o = ours.get(p) as Node;
        assert.equal(modeString(o.mode), l.mode, `${p}: mode`);
        assert.equal(o.uid, l.uid === -1 ? 65534 : l.uid, `${p}: uid`);
        assert.equal(o.gid, l.gid === -1 ? 65534 : l.gid, `${p}: gid`);
        if (o.type === 'file') assert.equal(o.size, l.size, `${p}: size`);
      }

      const info = udfinfo(img);
      assert.equal(reader.label, info.lvid);
      assert.equal(reader.uuid, info.uuid);
      assert.equal(reader.blockSize, Number(info.blocksize));
      assert.equal(revision(reader), info.udfrev);
      assert.equal(await freeBytes(fs), Number(info.freeblocks) * bs, 'free space as udfinfo counts it');
      const count = (type: string) => [...ours.values()].filter((n) => n.type === type).length;
      assert.equal(count('file'), Number(info.numfiles));
      assert.equal(count('directory') + 1, Number(info.numdirs));
      assert.deepEqual(fs.warnings, []);

      const b = blkid(img);
      const { volumes } = await detectVolumes(await openImage(img));
      assert.deepEqual({ TYPE: volumes[0].filesystem, LABEL: volumes[0].label, UUID: volumes[0].uuid, VERSION: volumes[0].version }, { TYPE: b.TYPE, LABEL: b.LABEL, UUID: b.UUID, VERSION: b.VERSION });

      // The CLI: `get` of the whole tree equals the source; `ls -l -R` agrees with udfclient's listing.
      const dest = join(tempDir(t), 'out');
      mkdirSync(dest);
      const got = vdisk(['get', img, '/', dest]);
      assert.equal(got.code, 0, got.stderr);
      assert.deepEqual(compareTrees(src, dest, { modes: true }), []);
      assert.equal(diffTrees(src, dest), '');
      const ls = vdisk(['ls', '-l', '-R', '--output', 'json', img, '/']);
      assert.equal(ls.code, 0, ls.stderr);
      const listed = JSON.parse(ls.stdout) as { path: string; 'mode-string': string; uid: number; gid: number; size: number; type: string }[];
      assert.deepEqual(listed.map((e) => e.path).sort(), [...peer.keys()].sort());
      for (const e of listed) {
        const l = peer.get(e.path) as PeerListing;
        assert.deepEqual([e['mode-string'], e.uid, e.gid], [l.mode, l.uid === -1 ? 65534 : l.uid, l.gid === -1 ? 65534 : l.gid], e.path);
        if (e.type === 'file') assert.equal(e.size, l.size, e.path);
      }
      const after = statSync(img);
      assert.equal(after.ctimeMs, before.ctimeMs, 'the image is not written');
    });
  }
});

function revision(r: UdfReader): string {
  return `${r.revision >> 8}.${(r.revision & 0xff).toString(16).padStart(2, '0')}`;
}

describe('mkudffs layouts filled by udfclient: sparable partitions, strategy 4096, long ADs, plain file entries', () => {
  const cases = LAYOUTS;
  for (const c of cases) {
    test(`${c.name}: tree and free space as udfinfo`, async (t) => {
      if (!needPeers(t, 'mkudffs', 'udfclient', 'udfinfo')) return;
      const { img, src } = await filled(c.name);
      const { fs, close } = await open(img);
      t.after(close);
      const reader = fs.reader as UdfReader;
      assert.deepEqual(reader.structures.maps.map((m) => m.kind), c.kinds);
      const ours = await walkFs(fs);
      assertSameContents(ours, walkHost(src), { modes: true });
      const info = udfinfo(img);
      assert.equal(await freeBytes(fs), Number(info.freeblocks) * c.bs);
      assert.equal([...ours.values()].filter((n) => n.type === 'file').length, Number(info.numfiles));
      assert.deepEqual(fs.warnings, []);
    });
  }
});

describe('free space kept as a table or as a freed-space bitmap (mkudffs --space; udfclient cannot fill these)', () => {
  for (const space of ['unalloctable', 'freedbitmap', 'freedtable'] as const) {
    test(`--space=${space}: free space as udfinfo counts it`, async (t) => {
      if (!needPeers(t, 'mkudffs', 'udfinfo')) return;
      const dir = tempDir(t);
      const img = join(dir, 'space.img');
      sh('truncate', ['-s', String(64 * MiB), img]);
      sh('mkudffs', ['--media-type=hd', `--space=${space}`, '--label=Space', img]);
      const { fs, close } = await open(img);
      t.after(close);
      assert.equal(await freeBytes(fs), Number(udfinfo(img).freeblocks) * fs.reader.blockSize);
      assert.deepEqual(await fs.readdir('/'), []);
    });
  }
});

test('UDF inside a VHDX, in a GPT partition', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient', 'sfdisk', 'qemu-img')) return;
  const dir = tempDir(t);
  const { img: vol, src } = await filled('gpt');
  const disk = join(dir, 'disk.img');
  sh('truncate', ['-s', String(260 * MiB), disk]);
  sh('sfdisk', ['-q', disk], Buffer.from(`label: gpt\nstart=2048, size=${(256 * MiB) / 512}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n`));
  // Only the written parts: the volume is sparse.
  sh('dd', [`if=${vol}`, `of=${disk}`, 'bs=1M', `seek=1`, 'conv=notrunc,sparse', 'status=none']);
  const vhdx = join(dir, 'disk.vhdx');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', disk, vhdx]);
  const { fs, close } = await open(vhdx, 1);
  t.after(close);
  assert.equal(fs.type, 'udf');
  assertSameContents(await walkFs(fs), walkHost(src), { modes: true });
  const free = await freeBytes(fs);
  assert.equal(free, Number(udfinfo(vol).freeblocks) * 512);
  for await (const r of fs.freeExtents()) assert.ok(r.offset + r.length <= 256 * MiB, 'free extents are volume-relative');
  const dest = join(dir, 'out');
  mkdirSync(dest); // the root's contents go into it; its own mode is the volume root's
  const got = vdisk(['get', '-P', '1', vhdx, '/', dest]);
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(compareTrees(src, dest, { modes: true }), []);
});

test('UDF 2.60 made by pycdlib: Unicode names, symlinks (relative and absolute), contents', async (t) => {
  if (!needPycdlib(t)) return;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'sub', 'deeper'), { recursive: true });
  writeFileSync(join(src, 'a.txt'), 'alpha\n');
  writeFileSync(join(src, 'sub', 'big.bin'), randomBytes(1234567));
  writeFileSync(join(src, 'sub', 'deeper', 'ünïcødé 日本語 ✓.txt'), 'wide\n');
  writeFileSync(join(src, 'sub', 'empty'), '');
  symlinkSync('a.txt', join(src, 'link'));
  symlinkSync('../a.txt', join(src, 'sub', 'up'));
  symlinkSync('/sub/big.bin', join(src, 'abs'));
  symlinkSync('./deeper/../big.bin', join(src, 'sub', 'dots'));
  linkSync(join(src, 'a.txt'), join(src, 'sub', 'hard-link-to-a'));
  const iso = join(dir, 'p.iso');
  makePycdlibUdf(src, iso);
  const before = readFileSync(iso);
  const { fs, close } = await open(iso);
  t.after(close);
  assert.equal(fs.type, 'udf');
  const ours = await walkFs(fs);
  assertSameContents(ours, walkHost(src));
  // pycdlib's "2.60" volumes name revision 1.02 in their domain; udfinfo and blkid say so too.
  const info = udfinfo(iso);
  assert.equal(revision(fs.reader as UdfReader), info.udfrev);
  assert.equal([...ours.values()].filter((n) => n.type !== 'directory').length, Number(info.numfiles));
  assert.equal([...ours.values()].filter((n) => n.type === 'directory').length + 1, Number(info.numdirs));
  assert.equal(await fs.readlink('/sub/dots'), './deeper/../big.bin');
  // Through the walker: the absolute link is resolved from the volume's root.
  assert.equal((await fs.stat('/abs')).size, 1234567);
  const dest = join(dir, 'out');
  const got = vdisk(['get', iso, '/', dest]);
  assert.equal(got.code, 0, got.stderr);
  assert.deepEqual(compareTrees(src, dest), []);
  assert.equal(diffTrees(src, dest), '');
  // pycdlib points both FIDs at one ICB but leaves its link count at 1 (so Linux, and we, show 1).
  const [a, b] = [await fs.lstat('/a.txt'), await fs.lstat('/sub/hard-link-to-a')];
  assert.equal(a.ino, b.ino, 'hard links share one ICB');
  const cat = vdisk(['cat', iso, '/sub/deeper/ünïcødé 日本語 ✓.txt']);
  assert.equal(cat.stdout, 'wide\n');
  assert.ok(before.equals(readFileSync(iso)));
});

test('UDF 1.02 bridge made by genisoimage -udf: contents, names and mtimes as the source', async (t) => {
  if (!needPeers(t, 'genisoimage', 'blkid')) return;
  const dir = tempDir(t);
  const src = join(dir, 'src');
  mkdirSync(join(src, 'dir one', 'two'), { recursive: true });
  writeFileSync(join(src, 'readme.txt'), 'bridge\n');
  writeFileSync(join(src, 'dir one', 'data.bin'), randomBytes(3 * MiB + 17));
  writeFileSync(join(src, 'dir one', 'two', 'Ähnliche Größe — long name over sixty-four characters for Joliet.txt'), 'x');
  utimesSync(join(src, 'readme.txt'), new Date('2001-02-03T04:05:06Z'), new Date('2001-02-03T04:05:06Z'));
  const iso = join(dir, 'bridge.iso');
  // In India's time zone genisoimage records local times with a +05:30 offset: mtimes agree only if the offset is applied.
  const made = spawnSync('genisoimage', ['-quiet', '-udf', '-J', '-joliet-long', '-R', '-V', 'BRIDGE', '-o', iso, src], { env: { ...ENV, TZ: 'Asia/Kolkata' }, encoding: 'utf8' });
  assert.equal(made.status, 0, made.stderr);
  const { volumes } = await detectVolumes(await openImage(iso));
  assert.equal(volumes[0].filesystem, 'udf');
  const { fs, close } = await open(iso);
  t.after(close);
  assert.equal((fs.reader as UdfReader).revision, 0x0102);
  assert.equal(fs.reader.label, blkid(iso).LABEL);
  assertSameContents(await walkFs(fs), walkHost(src), { mtimes: true });
  const dest = join(dir, 'out');
  const got = vdisk(['get', iso, '/', dest]);
  assert.equal(got.code, 0, got.stderr);
  // genisoimage records whole seconds.
  assert.deepEqual(compareTrees(src, dest, { mtimeMs: 1000 }), []);
});

describe('write-once media with a virtual allocation table (mkudffs; nothing fills them from a file)', () => {
  for (const [media, rev] of [['cdr', '1.50'], ['cdr', '2.01'], ['dvdr', '2.50'], ['bdr', '2.60']] as const) {
    test(`${media}, UDF ${rev}: root, label, revision and free space as udfinfo and blkid`, async (t) => {
      if (!needPeers(t, 'mkudffs', 'udfinfo', 'blkid')) return;
      const dir = tempDir(t);
      const img = join(dir, 'vat.img');
      sh('truncate', ['-s', String(32 * MiB), img]);
      sh('mkudffs', [`--media-type=${media}`, `--udfrev=${rev}`, '--label=WriteOnce', img]);
      const { fs, close } = await open(img);
      t.after(close);
      const reader = fs.reader as UdfReader;
      assert.ok(reader.structures.maps.some((m) => m.kind === 'virtual'));
      // udfinfo finds the VAT only where told (the image is not cut at the last written sector): we look for it.
      const vat = await vatBlockOf(img);
      const info = udfinfo(img, [`--vatblock=${vat}`]);
      assert.equal(reader.label, info.lvid);
      assert.equal(reader.uuid, info.uuid);
      // udfinfo shows the VAT's minimum read revision (2.50 for mkudffs' 2.60 discs); blkid the domain's, as we do.
      assert.equal(revision(reader), blkid(img).VERSION);
      assert.deepEqual(await fs.readdir('/'), []);
      assert.equal(await freeBytes(fs), Number(info.freeblocks) * 2048);
      assert.deepEqual(fs.warnings, []);
    });
  }
});

/** The last non-zero 2048-byte sector of an image: where mkudffs wrote the VAT's ICB. */
async function vatBlockOf(img: string): Promise<number> {
  const b = readFileSync(img);
  const zero = Buffer.alloc(2048);
  for (let s = Math.floor(b.length / 2048) - 1; s >= 0; s--) {
    if (!b.subarray(s * 2048, (s + 1) * 2048).equals(zero)) return s;
  }
  return 0;
}

/** Seals a descriptor built or changed by hand: its CRC over `crcLength` body bytes, then the tag checksum. */
function seal(b: Buffer, crcLength: number): void {
  b.writeUInt16LE(crcLength, 10);
  b.writeUInt16LE(crcItu(b.subarray(16, 16 + crcLength)), 8);
  let sum = 0;
  for (let i = 0; i < 16; i++) if (i !== 4) sum += b[i];
  b[4] = sum & 0xff;
}

function readAt(fd: number, at: number, n: number): Buffer {
  const b = Buffer.alloc(n);
  readSync(fd, b, 0, n, at);
  return b;
}

/** The partition descriptor and the logical volume descriptor (with its byte offset) of the main sequence. */
function mainDescriptors(fd: number, bs: number): { pd: Buffer; lvd: Buffer; lvdAt: number } {
  const vds = readAt(fd, 256 * bs, bs).readUInt32LE(20);
  let pd: Buffer | null = null;
  let lvdAt = -1;
  for (let i = 0; i < 16; i++) {
    const d = readAt(fd, (vds + i) * bs, bs);
    if (d.readUInt16LE(0) === 5) pd = d;
    if (d.readUInt16LE(0) === 6) lvdAt = (vds + i) * bs;
  }
  assert.ok(pd && lvdAt > 0);
  return { pd, lvd: readAt(fd, lvdAt, bs), lvdAt };
}

/**
 * A UDF 2.50 metadata partition, built by hand from a volume the tools made (no tool here writes one):
 * the logical volume's map 0 becomes a metadata partition map over partition 0 and map 1 a type 1 map
 * of it, so every existing reference goes through the metadata file. That file maps the metadata
 * partition onto the physical one block for block, except the 16 blocks from the file set descriptor on,
 * which are moved near the partition's end (their old place zeroed): reading them right needs the map.
 */
function toMetadataPartition(img: string, bs: number): { moved: number; to: number } {
  const fd = openSync(img, 'r+');
  const read = (at: number, n: number) => readAt(fd, at, n);
  try {
    const { pd, lvd, lvdAt } = mainDescriptors(fd, bs);
    const start = pd.readUInt32LE(188);
    const length = pd.readUInt32LE(192);
    const bitmapBlock = pd.readUInt32LE(56 + 12);
    const fsdBlock = lvd.readUInt32LE(252);
    const n = 16;
    const to = length - 64;
    const feBlock = length - 8;
    const end = to; // the metadata partition stops where the moved copy starts
    // Move the blocks, zero their old place.
    writeSync(fd, read((start + fsdBlock) * bs, n * bs), 0, n * bs, (start + to) * bs);
    writeSync(fd, Buffer.alloc(n * bs), 0, n * bs, (start + fsdBlock) * bs);
    // The metadata file's entry (ECMA-167 4/14.9, file type 250) with three short_ads.
    const fe = Buffer.alloc(bs);
    fe.writeUInt16LE(261, 0);
    fe.writeUInt16LE(3, 2);
    fe.writeUInt32LE(feBlock, 12);
    fe.writeUInt16LE(4, 20); // strategy 4
    fe.writeUInt16LE(1, 24);
    fe[27] = 250;
    fe.writeUInt32LE(0xffffffff, 36);
    fe.writeUInt32LE(0xffffffff, 40);
    fe.writeUInt16LE(1, 48);
    fe.writeBigUInt64LE(BigInt(end * bs), 56);
    fe.writeBigUInt64LE(BigInt(end), 64);
    fe.writeUInt32LE(24, 172);
    const ads: [number, number][] = [[fsdBlock, 0], [n, to], [end - fsdBlock - n, fsdBlock + n]];
    ads.forEach(([count, at], i) => {
      fe.writeUInt32LE(count * bs, 176 + 8 * i);
      fe.writeUInt32LE(at, 180 + 8 * i);
    });
    seal(fe, 176 + 24 - 16);
    writeSync(fd, fe, 0, bs, (start + feBlock) * bs);
    // The bitmap: the moved copy and the entry are used now, the old place free.
    const bitmap = read((start + bitmapBlock) * bs, bs * 256);
    const setFree = (block: number, free: boolean) => {
      const byte = 24 + (block >> 3);
      bitmap[byte] = free ? bitmap[byte] | (1 << (block & 7)) : bitmap[byte] & ~(1 << (block & 7));
    };
    for (let k = 0; k < n; k++) {
      setFree(to + k, false);
      setFree(fsdBlock + k, true);
    }
    setFree(feBlock, false);
    writeSync(fd, bitmap, 0, bitmap.length, (start + bitmapBlock) * bs);
    // Map 0: metadata partition of partition 0 (UDF 2.60 2.2.10); map 1: partition 0 itself.
    const maps = Buffer.alloc(70);
    maps[0] = 2;
    maps[1] = 64;
    maps.write('*UDF Metadata Partition', 5, 'latin1');
    maps.writeUInt16LE(0x0250, 4 + 24);
    maps.writeUInt16LE(1, 36);
    maps.writeUInt16LE(0, 38);
    maps.writeUInt32LE(feBlock, 40);
    maps.writeUInt32LE(0xffffffff, 44); // no mirror
    maps.writeUInt32LE(0xffffffff, 48); // no bitmap file
    maps.writeUInt32LE(32, 52);
    maps.writeUInt16LE(1, 56);
    maps[64] = 1;
    maps[65] = 6;
    maps.writeUInt16LE(1, 66);
    maps.writeUInt16LE(0, 68);
    lvd.fill(0, 440);
    maps.copy(lvd, 440);
    lvd.writeUInt32LE(maps.length, 264);
    lvd.writeUInt32LE(2, 268);
    lvd.writeUInt16LE(0x0250, 216 + 24); // domain: UDF 2.50
    seal(lvd, 440 + maps.length - 16);
    writeSync(fd, lvd, 0, bs, lvdAt);
    return { moved: fsdBlock, to };
  } finally {
    closeSync(fd);
  }
}

test('UDF 2.50 metadata partition (made by hand from a udfclient volume): the tree through the metadata file, the physical partition\'s bitmap as free space', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient', 'udfinfo')) return;
  const dir = tempDir(t);
  const { img, src } = await filled('metadata');
  const freeBefore = Number(udfinfo(img).freeblocks);
  toMetadataPartition(img, 512);
  const { fs, close } = await open(img);
  t.after(close);
  const reader = fs.reader as UdfReader;
  assert.deepEqual(reader.structures.maps.map((m) => m.kind), ['metadata', 'physical']);
  assert.equal(revision(reader), '2.50');
  assertSameContents(await walkFs(fs), walkHost(src), { modes: true });
  // One block more in use than before: the metadata file's entry (the moved blocks swapped places).
  assert.equal(await freeBytes(fs), (freeBefore - 1) * 512);
  const dest = join(dir, 'out');
  mkdirSync(dest);
  assert.equal(vdisk(['get', img, '/', dest]).code, 0);
  assert.deepEqual(compareTrees(src, dest, { modes: true }), []);
});

/**
 * Allocation extent descriptors (ECMA-167 4/14.5), which no tool here writes for small volumes: a file's
 * allocation descriptors rewritten by hand into pieces of 64 blocks, two in its entry and the rest in a
 * chain of two allocation extents, one piece marked allocated but not recorded (a hole).
 */
function chainAllocationExtents(img: string, bs: number, feSector: number, spare: [number, number]): { hole: [number, number] } {
  const fd = openSync(img, 'r+');
  try {
    const fe = readAt(fd, feSector * bs, bs);
    const fixed = fe.readUInt16LE(0) === 266 ? 216 : 176;
    const lea = fe.readUInt32LE(fixed - 8);
    const lad = fe.readUInt32LE(fixed - 4);
    const adType = fe.readUInt16LE(34) & 7;
    assert.ok(adType === 0 || adType === 1, `short or long ADs, not ${adType}`);
    const size = adType === 0 ? 8 : 16;
    const partStart = feSector - fe.readUInt32LE(12);
    const pieces: [number, number][] = []; // [bytes, block]
    for (let at = fixed + lea; at + size <= fixed + lea + lad; at += size) {
      const len = fe.readUInt32LE(at) & 0x3fffffff;
      if (len === 0) break;
      const block = fe.readUInt32LE(at + 4);
      for (let o = 0; o < len; o += 64 * bs) pieces.push([Math.min(64 * bs, len - o), block + o / bs]);
    }
    assert.ok(pieces.length >= 8, `enough pieces (${pieces.length})`);
    const ad = (kind: number, bytes: number, block: number): Buffer => {
      const b = Buffer.alloc(size);
      b.writeUInt32LE(((kind << 30) | bytes) >>> 0, 0);
      b.writeUInt32LE(block, 4);
      return b;
    };
    const [aed1, aed2] = spare;
    const aed = (where: number, list: Buffer[]): Buffer => {
      const b = Buffer.alloc(bs);
      b.writeUInt16LE(258, 0);
      b.writeUInt16LE(fe.readUInt16LE(2), 2);
      b.writeUInt32LE(where, 12);
      const body = Buffer.concat(list);
      b.writeUInt32LE(body.length, 20);
      body.copy(b, 24);
      seal(b, 8 + body.length);
      return b;
    };
    const recorded = (i: number) => ad(i === 2 ? 1 : 0, pieces[i][0], pieces[i][1]);
    const inEntry = [recorded(0), recorded(1), ad(3, bs, aed1)];
    const first = [2, 3, 4].map(recorded).concat(ad(3, bs, aed2));
    const rest = pieces.slice(5).map((_, k) => recorded(k + 5));
    writeSync(fd, aed(aed1, first), 0, bs, (partStart + aed1) * bs);
    writeSync(fd, aed(aed2, rest), 0, bs, (partStart + aed2) * bs);
    fe.fill(0, fixed + lea);
    Buffer.concat(inEntry).copy(fe, fixed + lea);
    fe.writeUInt32LE(inEntry.length * size, fixed - 4);
    seal(fe, fixed + lea + inEntry.length * size - 16);
    writeSync(fd, fe, 0, bs, feSector * bs);
    return { hole: [2 * 64 * bs, pieces[2][0]] };
  } finally {
    closeSync(fd);
  }
}

test('allocation extent chains and an allocated-but-unrecorded extent (made by hand from a udfclient volume)', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient')) return;
  const { img, src } = await filled('chains');
  const path = '/docs/deep/big.bin';
  let spare: [number, number];
  let ino: number;
  {
    const { fs, close } = await open(img);
    ino = (await fs.lstat(path)).ino;
    let last: { offset: number; length: number } | null = null;
    for await (const r of fs.freeExtents()) last = r;
    await close();
    assert.ok(last);
    const tag = Buffer.alloc(16);
    const fd = openSync(img, 'r');
    readSync(fd, tag, 0, 16, ino * 512);
    closeSync(fd);
    const partStart = ino - tag.readUInt32LE(12);
    const end = (last.offset + last.length) / 512 - partStart;
    spare = [end - 10, end - 5];
  }
  const { hole } = chainAllocationExtents(img, 512, ino, spare);
  const expected = readFileSync(join(src, 'docs', 'deep', 'big.bin'));
  expected.fill(0, hole[0], hole[0] + hole[1]);
  const { fs, close } = await open(img);
  t.after(close);
  const f = await fs.open(path);
  const got = Buffer.alloc(f.size);
  assert.equal(await f.read(got, 0), f.size);
  assert.ok(got.equals(expected), 'contents through the chain, the unrecorded piece as zeros');
  const ranges = await f.dataRanges?.();
  assert.deepEqual(ranges, [{ offset: 0, length: hole[0] }, { offset: hole[0] + hole[1], length: expected.length - hole[0] - hole[1] }]);
  // Odd positions and lengths across piece boundaries.
  const part = Buffer.alloc(100_000);
  assert.equal(await f.read(part, 30_000), part.length);
  assert.ok(part.equals(expected.subarray(30_000, 130_000)));
  const cat = vdisk(['cat', img, path]);
  assert.ok(cat.stdoutBytes.equals(expected));
});

/**
 * A spared packet (UDF 2.60 2.2.12), which only a drive's defect management makes: the packet holding a
 * file's entry copied to the first free spare packet the sparing tables list, the tables pointing there,
 * the original packet zeroed. The tree reads right only through the sparing table.
 */
test('a sparable partition with a spared packet (made by hand from the CD-RW volume udfclient filled)', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient')) return;
  const { img: shared, src } = await filled(LAYOUTS[0].name);
  const img = join(tempDir(t), 'spared.img');
  sh('cp', ['--sparse=always', shared, img]);
  const bs = 2048;
  let ino: number;
  {
    const { fs, close } = await open(img);
    ino = (await fs.lstat('/docs/deep/big.bin')).ino;
    await close();
  }
  const fd = openSync(img, 'r+');
  try {
    const { pd, lvd } = mainDescriptors(fd, bs);
    const start = pd.readUInt32LE(188);
    assert.equal(lvd[440], 2, 'map 0 is a type 2 (sparable) map');
    const packetLength = lvd.readUInt16LE(440 + 40);
    const tables = Array.from({ length: lvd[440 + 42] }, (_, i) => lvd.readUInt32LE(440 + 48 + 4 * i));
    const tableSize = lvd.readUInt32LE(440 + 44);
    const packet = Math.floor((ino - start) / packetLength) * packetLength;
    let spare = -1;
    for (const at of tables) {
      const table = readAt(fd, at * bs, Math.ceil(tableSize / bs) * bs);
      const n = table.readUInt16LE(48);
      const free = Array.from({ length: n }, (_, i) => i).find((i) => table.readUInt32LE(56 + 8 * i) === 0xffffffff); // available (0xFFFFFFF0: defective)
      assert.ok(free !== undefined, 'a spare packet is available');
      spare = table.readUInt32LE(60 + 8 * free);
      table.writeUInt32LE(packet, 56 + 8 * free);
      seal(table, table.readUInt16LE(10));
      writeSync(fd, table, 0, table.length, at * bs);
    }
    const data = readAt(fd, (start + packet) * bs, packetLength * bs);
    writeSync(fd, data, 0, data.length, spare * bs);
    writeSync(fd, Buffer.alloc(data.length), 0, data.length, (start + packet) * bs);
  } finally {
    closeSync(fd);
  }
  const { fs, close } = await open(img);
  t.after(close);
  assertSameContents(await walkFs(fs), walkHost(src), { modes: true });
});

test('the anchor at sector 256 and the main descriptor sequence damaged: the last sector\'s anchor and the reserve sequence serve, with warnings', async (t) => {
  if (!needPeers(t, 'mkudffs', 'udfclient', 'udfinfo')) return;
  const { img: shared, src } = await filled('1.50/2048');
  const img = join(tempDir(t), 'damaged.img');
  sh('cp', ['--sparse=always', shared, img]);
  const bs = 2048;
  const fd = openSync(img, 'r+');
  try {
    const main = readAt(fd, 256 * bs, bs).readUInt32LE(20);
    writeSync(fd, Buffer.alloc(bs, 0x5a), 0, bs, 256 * bs);
    writeSync(fd, Buffer.alloc(bs, 0x5a), 0, bs, main * bs);
  } finally {
    closeSync(fd);
  }
  const { fs, close } = await open(img);
  t.after(close);
  assertSameContents(await walkFs(fs), walkHost(src), { modes: true });
  assert.equal(fs.warnings.length, 2, fs.warnings.join(' | '));
  assert.match(fs.warnings[0], /no valid anchor at sector 256; read the one at sector \d+/u);
  assert.match(fs.warnings[1], /main volume descriptor sequence unusable \(.*sector \d+: tag identifier 23130.*\); read the reserve/u);
  // All anchors gone: a one-line refusal.
  const size = statSync(img).size;
  const fd2 = openSync(img, 'r+');
  for (const s of [size / bs - 1, size / bs - 257]) writeSync(fd2, Buffer.alloc(bs), 0, bs, s * bs);
  closeSync(fd2);
  const r = vdisk(['ls', img]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*damaged\.img: udf: no valid anchor volume descriptor pointer/u);
  assert.equal(r.stderr.trim().split('\n').length, 1);
});
