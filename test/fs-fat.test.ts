import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, writeFileSync, openSync, writeSync, readSync, closeSync, statSync, mkdirSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { havePeer, needPeers, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { compareTrees, diffTrees } from './helpers/fs-tree.js';
import {
  mdir,
  mdirFree,
  PEER_ENV,
  openFat,
  readSource,
  run,
  sampleTree,
  sevenZip,
  sha,
  utcSecond,
  walkAll,
  writeTree,
  type Listed,
} from './helpers/fat.js';
import type { FatReader } from '../src/filesystems/fat/reader.js';
import type { Filesystem } from '../src/filesystems/filesystem.js';
import { VdiskError } from '../src/errors.js';

const MiB = 1024 * 1024;
const SEVEN = havePeer('7zz') ? '7zz' : '7z';

interface Shape {
  name: string;
  size: number;
  mkfs: string[];
  version: string;
  sector: number;
}

const SHAPES: Shape[] = [
  { name: 'FAT12', size: 4 * MiB, mkfs: ['-F', '12', '-n', 'TWELVE'], version: 'FAT12', sector: 512 },
  { name: 'FAT16', size: 32 * MiB, mkfs: ['-F', '16', '-n', 'Sixteen'], version: 'FAT16', sector: 512 },
  { name: 'FAT32', size: 64 * MiB, mkfs: ['-F', '32', '-n', 'THIRTY TWO'], version: 'FAT32', sector: 512 },
  // 65525 clusters of at least one 4 KiB sector: FAT32 needs 256 MiB here (a sparse file).
  { name: 'FAT32 on 4 KiB sectors', size: 300 * MiB, mkfs: ['-F', '32', '-S', '4096', '-n', 'FOURK'], version: 'FAT32', sector: 4096 },
];

/**
 * Builds a FAT volume from the sample tree with mkfs.vfat and mcopy, then makes the hard cases the
 * tree alone does not: a deleted entry (mdel), a file whose clusters are in two runs (written into the
 * hole the deleted one left), and attributes (mattrib).
 */
function buildVolume(dir: string, shape: Shape): { img: string; src: string } {
  const src = join(dir, 'src');
  writeTree(src, sampleTree());
  const img = join(dir, 'fat.img');
  run('truncate', ['-s', String(shape.size), img]);
  run('mkfs.vfat', [...shape.mkfs, img]);
  run('mcopy', ['-s', '-m', '-i', img, ...listTop(src), '::/']);
  return { img, src };
}

function listTop(src: string): string[] {
  return [...readSource(src).keys()].filter((p) => p.lastIndexOf('/') === 0).map((p) => join(src, p));
}

/** Adds a deleted entry and a two-run file to the volume, and the same file to the source tree. */
function fragment(img: string, src: string, cluster: number): void {
  const pad = join(src, '..', 'pad');
  writeFileSync(pad, Buffer.alloc(3 * cluster, 1));
  run('mcopy', ['-m', '-i', img, pad, '::/pad1']);
  run('mcopy', ['-m', '-i', img, pad, '::/pad2']);
  run('mcopy', ['-m', '-i', img, pad, '::/pad3']);
  run('mdel', ['-i', img, '::/pad2']);
  forgetNextFree(img);
  const two = join(src, 'two runs.bin');
  writeFileSync(two, Buffer.from(Array.from({ length: 7 * cluster + 123 }, (_, i) => (i * 7 + (i >> 9)) & 0xff)));
  run('mcopy', ['-m', '-i', img, two, '::/two runs.bin']);
  run('mdel', ['-i', img, '::/pad1', '::/pad3']);
  run('mattrib', ['-i', img, '+r', '::/UPPER.TXT']);
  run('mattrib', ['-i', img, '+h', '+s', '::/empty']);
}

/**
 * On FAT32 mtools allocates after the FSInfo sector's next-free hint and would not reuse the hole:
 * the hint set to "unknown" (0xFFFFFFFF, fatgen103 section 5) makes it search from the start.
 */
function forgetNextFree(img: string): void {
  const boot = Buffer.alloc(512);
  const fd = openSync(img, 'r+');
  try {
    readSync(fd, boot, 0, 512, 0);
    if (boot.readUInt16LE(22) !== 0) return; // not FAT32
    const at = boot.readUInt16LE(48) * boot.readUInt16LE(11) + 492;
    writeSync(fd, Buffer.from([0xff, 0xff, 0xff, 0xff]), 0, 4, at);
  } finally {
    closeSync(fd);
  }
}

/** A raw disk with one GPT partition (made by sfdisk) at 1 MiB holding the volume, and the same disk as a VHDX (qemu-img). */
function inGptDisk(dir: string, volume: string, size: number, type: string): { disk: string; vhdx: string } {
  const disk = join(dir, 'disk.img');
  run('truncate', ['-s', String(size + 16 * MiB), disk]);
  const r = spawnSync('sfdisk', ['-q', disk], { input: `label: gpt\nstart=2048, size=${size / 512}, type=${type}\n`, env: PEER_ENV });
  assert.equal(r.status, 0, String(r.stderr));
  const fd = openSync(disk, 'r+');
  writeSync(fd, readFileSync(volume), 0, size, 2048 * 512);
  closeSync(fd);
  const vhdx = join(dir, 'disk.vhdx');
  run('qemu-img', ['convert', '-O', 'vhdx', disk, vhdx]);
  return { disk, vhdx };
}

function byPath(items: Listed[]): Map<string, Listed> {
  return new Map(items.map((i) => [i.path, i]));
}

/** The reader's tree equals the source tree: names, types, contents, sizes, mtimes, modes. */
function assertSameAsSource(ours: Listed[], src: string, readOnly: Set<string>): void {
  const source = readSource(src);
  assert.deepEqual(ours.map((o) => o.path).sort(), [...source.keys()].sort(), 'the same paths');
  for (const o of ours) {
    const s = source.get(o.path)!;
    assert.equal(o.stats.type, s.dir ? 'directory' : 'file', o.path);
    // FAT keeps modification times in two-second steps, rounding down as mtools writes them.
    assert.equal(o.stats.mtime!.sec, s.mtime - (s.mtime % 2), `${o.path} mtime`);
    if (s.dir) {
      assert.equal(o.stats.mode, 0o40755, `${o.path} mode`);
      continue;
    }
    assert.equal(o.stats.size, s.data!.length, `${o.path} size`);
    assert.equal(sha(o.content!), sha(s.data!), `${o.path} content`);
    assert.equal(o.stats.mode, readOnly.has(o.path) ? 0o100555 : 0o100755, `${o.path} mode`);
    assert.equal(o.stats.nlink, 1);
  }
}

/** Our listing against `mdir -/ -a`: every name, long and short, size, type and mtime to the minute. */
function assertSameAsMdir(ours: Listed[], img: string, offset?: number): void {
  const theirs = mdir(img, offset);
  assert.equal(ours.length, theirs.length, 'as many entries as mdir lists');
  const mine = byPath(ours);
  for (const t of theirs) {
    const path = t.dir === '/' ? `/${t.name}` : `${t.dir}/${t.name}`;
    const o = mine.get(path);
    assert.ok(o, `mdir lists ${path}`);
    assert.equal(o.shortName, t.shortName, `${path}: short name`);
    assert.equal(o.stats.type, t.directory ? 'directory' : 'file', path);
    if (!t.directory) assert.equal(o.stats.size, t.size, `${path}: size`);
    assert.equal(utcSecond(o.stats.mtime!.sec).slice(0, 16), t.minute, `${path}: mtime`);
  }
}

/** Our stats against `7z l -slt`: sizes, modification, creation (10 ms) and access times, attributes. */
function assertSameAs7z(ours: Listed[], img: string, reader: FatReader): void {
  const { archive, entries } = sevenZip(img);
  assert.equal(archive['File System'], reader.layout.version);
  assert.equal(archive.Label, reader.label);
  assert.equal(Number(archive['Cluster Size']), reader.blockSize);
  assert.equal(entries.length, ours.length, 'as many entries as 7-Zip lists');
  const mine = byPath(ours);
  let compared = 0;
  for (const e of entries) {
    // 7-Zip decodes short names in another code page than mtools wrote them in; those are mdir's to check.
    if (e.Path.includes('\ufffd')) continue;
    const o = mine.get(`/${e.Path}`);
    assert.ok(o, `7-Zip lists ${e.Path}`);
    compared++;
    assert.equal(o.stats.type, e.Folder === '+' ? 'directory' : 'file', e.Path);
    if (e.Folder !== '+') assert.equal(String(o.stats.size), e.Size, `${e.Path}: size`);
    assert.equal(utcSecond(o.stats.mtime!.sec), e.Modified, `${e.Path}: mtime`);
    const b = o.stats.birthtime!;
    assert.equal(`${utcSecond(b.sec)}.${String(b.nsec / 1e7).padStart(2, '0')}`, e.Created, `${e.Path}: creation time`);
    assert.equal(utcSecond(o.stats.atime!.sec), e.Accessed, `${e.Path}: access date`);
    const attrs = ['readonly', 'hidden', 'system', 'archive'].filter((f) => o.stats.flags!.includes(f)).map((f) => ({ readonly: 'R', hidden: 'H', system: 'S', archive: 'A' })[f]).join('');
    assert.equal((o.stats.type === 'directory' ? 'D' : '') + attrs, e.Attributes.replace(/[^RHSAD]/g, '').replace(/^(.*)D(.*)$/, 'D$1$2'), `${e.Path}: attributes`);
  }
  assert.ok(compared >= ours.length - 2, `7-Zip decoded ${compared} of ${ours.length} names`);
}

async function freeBytes(fs: Filesystem, reader: FatReader): Promise<number> {
  let total = 0;
  let last = -1;
  for await (const r of fs.freeExtents()) {
    assert.ok(r.offset > last, 'free extents in order, merged');
    assert.equal((r.offset - reader.layout.dataOffset) % reader.blockSize, 0, 'free extents start on a cluster');
    assert.ok(r.offset + r.length <= reader.layout.totalBytes);
    last = r.offset + r.length;
    total += r.length;
  }
  return total;
}

describe('FAT reader against mkfs.vfat, mcopy, mdir and 7-Zip', () => {
  for (const shape of SHAPES) {
    test(shape.name, async (t) => {
      if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir', 'mdel', 'mattrib', SEVEN)) return;
      const dir = tempDir(t);
      const { img, src } = buildVolume(dir, shape);
      const cluster = Number(sevenZip(img).archive['Cluster Size']);
      fragment(img, src, cluster);
      const before = sha(readFileSync(img));
      const { fs, close } = await openFat(img);
      try {
        const reader = fs.reader as FatReader;
        assert.equal(reader.layout.version, shape.version);
        assert.equal(reader.layout.sectorSize, shape.sector);
        assert.deepEqual(reader.warnings, []);
        const ours = await walkAll(fs);
        assertSameAsSource(ours, src, new Set(['/UPPER.TXT']));
        assertSameAsMdir(ours, img);
        assertSameAs7z(ours, img, reader);
        const empty = ours.find((o) => o.path === '/empty')!;
        assert.deepEqual(empty.stats.flags, ['hidden', 'system', 'archive']);
        // The two-run file really is in two runs (else the test proves nothing about coalescing).
        const twoRuns = await reader.fileExtents((await reader.lookup(await reader.root(), 'two runs.bin'))!);
        assert.ok(twoRuns.length >= 2, `two runs.bin lies in ${twoRuns.length} runs`);
        assert.equal(await freeBytes(fs, reader), mdirFree(img));
        assert.equal(await freeBytes(fs, reader), Number(sevenZip(img).archive['Free Space']));
        // Lower-case 8.3 names come from the NT flags, not from a long name.
        assert.equal(ours.find((o) => o.path === '/readme.txt')!.shortName, 'readme.txt');
        assert.equal(ours.find((o) => o.path === '/Õ.TXT')!.shortName, 'Õ.TXT');
        // Directory link counts as Linux gives them: subdirectories plus . and .. (the root: plus 2).
        assert.equal((await fs.stat('/')).nlink, 4);
        assert.equal((await fs.stat('/deep')).nlink, 3);
        assert.equal((await fs.stat('/many')).nlink, 2);
        assert.equal((await fs.stat('/deep/a/b/c/d/e/f/g')).nlink, 2);
      } finally {
        await fs.close();
        await close();
      }
      assert.equal(sha(readFileSync(img)), before, 'the image is not written');
    });
  }

  test('a FAT32 FAT of 16 MiB: chains across FAT pieces, free space across scan chunks', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir', SEVEN)) return;
    const dir = tempDir(t);
    const img = join(dir, 'fat.img');
    run('truncate', ['-s', String(2048 * MiB), img]);
    run('mkfs.vfat', ['-F', '32', '-s', '1', img]);
    // 20 MiB of 512-byte clusters: 40960 FAT entries, past the 32768 a cached FAT piece holds.
    const data = Buffer.alloc(20 * MiB);
    for (let i = 0; i < data.length; i += 4) data.writeUInt32LE(i * 2654435761 >>> 0, i);
    writeFileSync(join(dir, 'large.bin'), data);
    run('mcopy', ['-m', '-i', img, join(dir, 'large.bin'), '::/']);
    const { fs, close } = await openFat(img);
    try {
      const reader = fs.reader as FatReader;
      assert.ok(reader.layout.fatBytes > 8 * MiB, `FAT of ${reader.layout.fatBytes} bytes`);
      const f = await fs.open('/large.bin');
      const got = Buffer.alloc(f.size);
      assert.equal(await f.read(got, 0), data.length);
      assert.ok(got.equals(data));
      assert.equal(await freeBytes(fs, reader), mdirFree(img));
      assert.equal(await freeBytes(fs, reader), Number(sevenZip(img).archive['Free Space']));
    } finally {
      await close();
    }
  });

  test('lookups ignore case and accept the short names mdir shows', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir')) return;
    const dir = tempDir(t);
    const { img } = buildVolume(dir, SHAPES[1]);
    const { fs, close } = await openFat(img);
    try {
      const want = (await fs.stat('/Long file name with spaces.text')).ino;
      assert.equal((await fs.stat('/LONG FILE NAME WITH SPACES.TEXT')).ino, want);
      const alias = mdir(img).find((e) => e.name === 'Long file name with spaces.text')!.shortName;
      assert.match(alias, /~/);
      assert.equal((await fs.stat(`/${alias}`)).ino, want);
      assert.equal((await fs.stat(`/${alias.toLowerCase()}`)).ino, want);
      assert.equal((await fs.stat('/ÜNÏ.TXT')).ino, (await fs.stat('/ünï.txt')).ino);
      assert.equal((await fs.stat('/DEEP/A/b/C/d/E/f/G/LEAF WITH A LONG NAME.TXT')).size, 5);
      await assert.rejects(fs.stat('/nothing'), (e: unknown) => e instanceof VdiskError && e.code === 'NOT_FOUND');
      await assert.rejects(fs.readlink('/readme.txt'), VdiskError);
      const chunks: Buffer[] = [];
      for await (const c of await fs.createReadStream('/big.bin')) chunks.push(c as Buffer);
      assert.equal(sha(Buffer.concat(chunks)), sha(readFileSync(join(dir, 'src', 'big.bin'))));
    } finally {
      await close();
    }
  });

  test('in a GPT partition of a VHDX', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir', 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const { img: part, src } = buildVolume(dir, SHAPES[2]);
    const { disk, vhdx } = inGptDisk(dir, part, SHAPES[2].size, 'C12A7328-F81F-11D2-BA4B-00A0C93EC93B');
    for (const image of [disk, vhdx]) {
      const { fs, close } = await openFat(image, 1);
      try {
        assert.equal(fs.name, `${image} partition 1`);
        const ours = await walkAll(fs);
        assertSameAsSource(ours, src, new Set());
        assertSameAsMdir(ours, disk, 2048 * 512);
        assert.equal((fs.reader as FatReader).label, 'THIRTY TWO');
      } finally {
        await close();
      }
    }
  });
});


/** The FAT16 sample volume, with its geometry for hand edits. */
async function fat16Sample(dir: string): Promise<{ img: string; src: string; fatAt: number; rootAt: number; clusterAt: (c: number) => number }> {
  const { img, src } = buildVolume(dir, SHAPES[1]);
  const b = readFileSync(img).subarray(0, 512);
  const bps = b.readUInt16LE(11);
  const fatAt = b.readUInt16LE(14) * bps;
  const rootAt = fatAt + b[16] * b.readUInt16LE(22) * bps;
  const dataAt = rootAt + b.readUInt16LE(17) * 32;
  const cs = b[13] * bps;
  return { img, src, fatAt, rootAt, clusterAt: (c) => dataAt + (c - 2) * cs };
}

function patch(img: string, at: number, bytes: Buffer | number[]): void {
  const fd = openSync(img, 'r+');
  const b = Buffer.from(bytes as number[]);
  writeSync(fd, b, 0, b.length, at);
  closeSync(fd);
}

/** Offsets of the 32-byte slots of a directory region whose long-name characters or short name contain `text`. */
function slotsOf(img: string, from: number, length: number, text: string): number[] {
  const b = readFileSync(img).subarray(from, from + length);
  const out: number[] = [];
  for (let at = 0; at < b.length; at += 32) {
    const chars = (b[at + 11] & 0x3f) === 0x0f
      ? Buffer.concat([b.subarray(at + 1, at + 11), b.subarray(at + 14, at + 26), b.subarray(at + 28, at + 32)]).toString('utf16le')
      : b.toString('latin1', at, at + 11);
    if (chars.includes(text)) out.push(from + at);
  }
  return out;
}

async function corruptError(p: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(p, (e: unknown) => {
    assert.ok(e instanceof VdiskError, String(e));
    assert.equal(e.code, 'CORRUPT');
    assert.doesNotMatch(e.message, /\n/);
    assert.match(e.message, pattern);
    return true;
  });
}

describe('FAT reader on damaged and unusual volumes', () => {
  test('long names whose slots are orphaned, out of order or fail the checksum fall back to the short name, as mdir shows', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir')) return;
    const dir = tempDir(t);
    const { img, rootAt } = await fat16Sample(dir);
    // A checksum that does not match the short name.
    const [mixed] = slotsOf(img, rootAt, 16384, 'MiXed');
    patch(img, mixed + 13, [readFileSync(img)[mixed + 13] ^ 0x5a]);
    // The middle slot of a three-slot name swapped with the last.
    const spaces = slotsOf(img, rootAt, 16384, 'name with ').concat(slotsOf(img, rootAt, 16384, 'Long file '));
    const all = readFileSync(img);
    const first = spaces.sort((a, b) => a - b)[0];
    const a = Buffer.from(all.subarray(first, first + 32));
    const b = Buffer.from(all.subarray(first + 32, first + 64));
    patch(img, first, b);
    patch(img, first + 32, a);
    // A short entry deleted under its long name: the slots are orphans and nothing is listed.
    const [greekShort] = slotsOf(img, rootAt, 16384, '~1DAT');
    patch(img, greekShort, [0xe5]);
    const { fs, close } = await openFat(img);
    try {
      const ours = await walkAll(fs, false);
      const names = ours.filter((o) => o.path.lastIndexOf('/') === 0).map((o) => o.path.slice(1));
      assert.ok(names.includes('MIXED.TXT'), names.join(', '));
      assert.ok(!names.includes('MiXed.Txt'));
      assert.ok(!names.includes('Long file name with spaces.text'));
      assert.ok(names.some((n) => /^LONGFI~\d\.TEX$/.test(n)), names.join(', '));
      assert.ok(!names.some((n) => n.startsWith('Ελληνικά')));
      assertSameAsMdir(ours, img);
    } finally {
      await close();
    }
  });

  for (const floppy of [
    { media: 0xfe, kib: 160, spc: 1, root: 64 },
    { media: 0xfd, kib: 360, spc: 2, root: 112 },
  ]) {
    test(`a PC-DOS 1.0 ${floppy.kib} KiB floppy without a BPB reads as mdir reads the same volume with one`, async (t) => {
      if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir')) return;
      const dir = tempDir(t);
      const withBpb = join(dir, 'bpb.img');
      run('truncate', ['-s', String(floppy.kib * 1024), withBpb]);
      run('mkfs.vfat', ['-F', '12', '-S', '512', '-s', String(floppy.spc), '-R', '1', '-f', '2', '-r', String(floppy.root), '-M', `0x${floppy.media.toString(16)}`, withBpb]);
      const src = join(dir, 'src');
      writeTree(src, [
        { path: 'COMMAND.COM', data: Buffer.alloc(4959, 0x90) },
        { path: 'basic.bas', data: Buffer.from('10 PRINT "HELLO"\r\n') },
        { path: 'SUB', dir: true },
        { path: 'SUB/README.TXT', data: Buffer.alloc(3000, 0x41) },
      ]);
      run('mcopy', ['-s', '-m', '-i', withBpb, ...listTop(src), '::/']);
      const dos1 = join(dir, 'dos1.img');
      const bytes = readFileSync(withBpb);
      bytes.fill(0, 3, 62); // no OEM name, no BPB: as PC-DOS 1.0 wrote its boot sector
      bytes[510] = 0;
      bytes[511] = 0;
      writeFileSync(dos1, bytes);
      const { fs, close } = await openFat(dos1);
      try {
        const reader = fs.reader as FatReader;
        assert.equal(reader.layout.version, 'FAT12');
        assert.equal(reader.blockSize, floppy.spc * 512);
        assert.equal(reader.uuid, undefined);
        const ours = await walkAll(fs);
        assertSameAsSource(ours, src, new Set());
        assertSameAsMdir(ours, withBpb);
        assert.equal(await freeBytes(fs, reader), mdirFree(withBpb));
      } finally {
        await close();
      }
    });
  }

  test('broken chains, sizes and directories end in one-line CORRUPT errors naming the volume and the path', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy')) return;
    const dir = tempDir(t);
    const { img, fatAt, rootAt } = await fat16Sample(dir);
    const clean = readFileSync(img);
    const setFat = (c: number, v: number) => patch(img, fatAt + c * 2, [v & 0xff, v >> 8]);
    const { fs: fs0, close: close0 } = await openFat(img);
    const reader0 = fs0.reader as FatReader;
    const root = await reader0.root();
    const big = (await reader0.lookup(root, 'big.bin'))!;
    const many = (await reader0.lookup(root, 'many'))!;
    const deep = (await reader0.lookup(root, 'deep'))!;
    const cs = reader0.blockSize;
    const bigFirst = big.entry!.startCluster;
    const bigClusters = Math.ceil(big.entry!.size / cs);
    const manyFirst = many.entry!.startCluster;
    const clusterCount = reader0.layout.clusterCount;
    await close0();

    const cases: [string, () => void, (fs: Filesystem) => Promise<unknown>, RegExp][] = [
      ['a file chain that loops', () => setFat(bigFirst + 3, bigFirst + 1), (fs) => fs.open('/big.bin'), /big\.bin: cluster chain loops back to cluster/],
      ['a file chain that points outside the volume', () => setFat(bigFirst + 2, clusterCount + 10), (fs) => fs.open('/big.bin'), /big\.bin: cluster chain links cluster \d+ to \d+, outside/],
      ['a file chain that runs into a free cluster', () => setFat(bigFirst + 2, 0), (fs) => fs.open('/big.bin'), /big\.bin: cluster chain runs into free cluster/],
      ['a file chain that runs into a bad cluster', () => setFat(bigFirst + 2, 0xfff7), (fs) => fs.open('/big.bin'), /big\.bin: cluster chain runs into bad cluster/],
      ['a file chain shorter than its size', () => setFat(bigFirst + bigClusters - 2, 0xffff), (fs) => fs.open('/big.bin'), /big\.bin: size 700000 needs \d+ clusters but the cluster chain ends after/],
      ['a size beyond the volume', () => {
        const [slot] = slotsOf(img, rootAt, 16384, 'BIG     BIN');
        patch(img, slot + 28, [0xff, 0xff, 0xff, 0xff]);
      }, (fs) => fs.open('/big.bin'), /big\.bin: size 4294967295 needs \d+ clusters, more than the volume's/],
      ['a directory chain that loops', () => setFat(manyFirst, manyFirst), (fs) => fs.readdir('/many'), /directory \/many: cluster chain loops back/],
      ['a directory larger than 2 MiB', () => {
        // many's chain continued through 1100 clusters at the volume's end.
        const from = clusterCount + 1 - 1100;
        setFat(lastOf(manyFirst), from);
        for (let c = from; c < from + 1099; c++) setFat(c, c + 1);
        setFat(from + 1099, 0xffff);
      }, (fs) => fs.readdir('/many'), /directory \/many: directory is larger than 2097152 bytes/],
      ['a first cluster outside the volume', () => {
        const [slot] = slotsOf(img, rootAt, 16384, 'UPPER   TXT');
        patch(img, slot + 26, [0xfe, 0xff]);
      }, (fs) => fs.open('/UPPER.TXT'), /UPPER\.TXT: first cluster 65534 is outside the volume's/],
    ];
    function lastOf(first: number): number {
      const b = readFileSync(img);
      let c = first;
      while (b.readUInt16LE(fatAt + c * 2) < 0xfff8) c = b.readUInt16LE(fatAt + c * 2);
      return c;
    }
    for (const [what, damage, op, pattern] of cases) {
      writeFileSync(img, clean);
      damage();
      const { fs, close } = await openFat(img);
      try {
        await corruptError(op(fs), new RegExp(`^${img.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: FAT16 .*${pattern.source}`));
      } catch (e) {
        throw new Error(`${what}: ${(e as Error).message}`);
      } finally {
        await close();
      }
    }

    // A FAT32 root directory whose cluster lies outside the volume: the volume does not open.
    const f32 = join(dir, 'fat32.img');
    run('truncate', ['-s', String(40 * MiB), f32]);
    run('mkfs.vfat', ['-F', '32', f32]);
    for (const root of [0, 1, 0x0ffffff8]) {
      patch(f32, 44, [root & 0xff, (root >> 8) & 0xff, (root >> 16) & 0xff, root >>> 24]);
      await corruptError(openFat(f32), new RegExp(`^${f32.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: FAT32 directory /: first cluster ${root} is outside the volume's \\d+ clusters$`));
    }

    // A chain longer than its file's size is read, with a warning.
    writeFileSync(img, clean);
    const free = clusterCount; // the last cluster: free on this volume
    setFat(lastOf(bigFirst), free);
    setFat(free, 0xffff);
    {
      const { fs, close } = await openFat(img);
      const f = await fs.open('/big.bin');
      assert.equal(f.size, 700000);
      assert.match(fs.warnings.join('\n'), /big\.bin: cluster chain goes on past the \d+ clusters its size 700000 needs/);
      await close();
    }

    // A subdirectory pointing at its parent: the same inode number, so tree walkers see the cycle.
    writeFileSync(img, clean);
    {
      const { fs, close } = await openFat(img);
      const reader = fs.reader as FatReader;
      const a = (await reader.lookup(deep, 'a'))!;
      await close();
      const where = await entryOffset(img, reader, deep, 'A          ');
      patch(img, where + 26, [deep.entry!.startCluster & 0xff, deep.entry!.startCluster >> 8]);
      const again = await openFat(img);
      assert.equal((await again.fs.stat('/deep/a')).ino, (await again.fs.stat('/deep')).ino);
      assert.equal((await again.fs.stat('/deep/a/a/a/a')).ino, (await again.fs.stat('/deep')).ino);
      assert.notEqual(a.ino, deep.ino);
      await again.close();
    }
  });
});

/** Where the short entry named `raw` (11 bytes as stored) lies in a directory of one cluster. */
async function entryOffset(img: string, reader: FatReader, dir: { entry: { startCluster: number } | null }, raw: string): Promise<number> {
  const at = reader.layout.dataOffset + (dir.entry!.startCluster - 2) * reader.blockSize;
  const [slot] = slotsOf(img, at, reader.blockSize, raw);
  return slot;
}

describe('FAT reader warnings', () => {
  test('a dirty volume (boot sector flag or FAT[1] clean-shutdown bit) is warned about when fsck.fat -n finds it dirty', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'fsck.fat')) return;
    const dir = tempDir(t);
    const { img, fatAt } = await fat16Sample(dir);
    const clean = readFileSync(img);
    const fsckDirty = () => /Dirty bit is set/.test(spawnSync('fsck.fat', ['-n', img], { env: PEER_ENV, encoding: 'utf8' }).stdout);
    const damage: [string, () => void][] = [
      ['clean', () => {}],
      ['boot sector dirty flag', () => patch(img, 37, [clean[37] | 1])],
      ['FAT[1] clean-shutdown bit clear', () => patch(img, fatAt + 3, [clean[fatAt + 3] & 0x7f])],
    ];
    for (const [what, make] of damage) {
      writeFileSync(img, clean);
      make();
      const { fs, close } = await openFat(img);
      const warned = fs.warnings.some((w) => /not cleanly unmounted/.test(w));
      await close();
      assert.equal(warned, fsckDirty(), what);
      assert.equal(warned, what !== 'clean', what);
    }
  });
});

/** `vdisk ls -lR` output as entries: directory, name, type, mode string, links, size, 'YYYY-MM-DD HH:MM'. */
function lsLR(out: string): { dir: string; name: string; modeString: string; nlink: number; size: number; minute: string }[] {
  const rows = [];
  let dir = '/';
  for (const line of out.split('\n')) {
    const h = /^(\/.*):$/.exec(line);
    if (h) {
      dir = h[1];
      continue;
    }
    const m = /^([-dlrwxst]{10}) +(\d+) +\d+ +\d+ +(\d+) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*)$/.exec(line);
    if (m) rows.push({ dir, name: m[5], modeString: m[1], nlink: Number(m[2]), size: Number(m[3]), minute: m[4] });
  }
  return rows;
}

describe('vdisk ls, cat, get and tar on FAT volumes', () => {
  test('get of the whole tree equals the source tree; ls -lR agrees with mdir, ls --output json with 7-Zip; cat and tar give the same bytes', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'mdir', 'mdel', 'mattrib', 'tar', SEVEN)) return;
    const dir = tempDir(t);
    const { img, src } = buildVolume(dir, SHAPES[2]);
    fragment(img, src, Number(sevenZip(img).archive['Cluster Size']));
    const before = sha(readFileSync(img));

    const dest = join(dir, 'got');
    const got = vdisk(['get', img, '/', dest]);
    assert.equal(got.code, 0, got.stderr);
    assert.equal(got.stderr, '');
    assert.deepEqual(compareTrees(src, dest, { mtimeMs: 1999 }), []);
    assert.equal(diffTrees(src, dest), '');
    // Modes as Linux's vfat shows them: 0755, and 0555 for the file with the read-only attribute.
    assert.equal(statSync(join(dest, 'readme.txt')).mode & 0o777, 0o755);
    assert.equal(statSync(join(dest, 'UPPER.TXT')).mode & 0o777, 0o555);

    const ls = vdisk(['ls', '-lR', img]);
    assert.equal(ls.code, 0, ls.stderr);
    const rows = lsLR(ls.stdout);
    const theirs = mdir(img);
    assert.equal(rows.length, theirs.length, 'as many entries as mdir lists');
    for (const e of theirs) {
      const r = rows.find((x) => x.dir === e.dir && x.name === e.name);
      assert.ok(r, `ls -lR lists ${e.dir} ${e.name}`);
      assert.equal(r.modeString[0], e.directory ? 'd' : '-', e.name);
      if (!e.directory) assert.equal(r.size, e.size, e.name);
      assert.equal(r.minute, e.minute, e.name);
    }

    const json = vdisk(['ls', '-R', '--output', 'json', img]);
    assert.equal(json.code, 0, json.stderr);
    const entries = JSON.parse(json.stdout) as { path: string; mtime: string; birthtime?: string; atime?: string; size: number; type: string }[];
    for (const e of sevenZip(img).entries) {
      if (e.Path.includes('\ufffd')) continue;
      const o = entries.find((x) => x.path === `/${e.Path}`);
      assert.ok(o, `ls --output json lists ${e.Path}`);
      assert.equal(o.mtime.slice(0, 19).replace('T', ' '), e.Modified, e.Path);
      assert.equal(o.birthtime!.slice(0, 22).replace('T', ' '), e.Created, e.Path);
      assert.equal(o.atime!.slice(0, 19).replace('T', ' '), e.Accessed, e.Path);
    }

    const cat = vdisk(['cat', img, '/two runs.bin']);
    assert.equal(cat.code, 0, cat.stderr);
    assert.ok(cat.stdoutBytes.equals(readFileSync(join(src, 'two runs.bin'))));

    const tarFile = join(dir, 'tree.tar');
    const tarred = spawnSync(process.execPath, [VDISK, 'tar', img, '/'], { maxBuffer: 256 * MiB });
    assert.equal(tarred.status, 0, String(tarred.stderr));
    writeFileSync(tarFile, tarred.stdout);
    const untarred = join(dir, 'untarred');
    mkdirSync(untarred);
    run('tar', ['-xf', tarFile, '-C', untarred]);
    assert.deepEqual(compareTrees(src, untarred, { mtimeMs: 1999 }), []);

    assert.equal(sha(readFileSync(img)), before, 'the image is not written');
  });

  test('get from a GPT partition of a VHDX with -P', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy', 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const { img: part, src } = buildVolume(dir, SHAPES[0]);
    const { vhdx } = inGptDisk(dir, part, SHAPES[0].size, 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7');
    const dest = join(dir, 'got');
    const got = vdisk(['get', '-P', '1', vhdx, '/', dest]);
    assert.equal(got.code, 0, got.stderr);
    assert.deepEqual(compareTrees(src, dest, { mtimeMs: 1999 }), []);
  });

  test('a damaged chain ends cat with one line and exit code 1', async (t) => {
    if (!needPeers(t, 'mkfs.vfat', 'mcopy')) return;
    const dir = tempDir(t);
    const { img, fatAt } = await fat16Sample(dir);
    const { fs, close } = await openFat(img);
    const big = (await (fs.reader as FatReader).lookup(await fs.reader.root() as never, 'big.bin'))!;
    await close();
    const first = big.entry!.startCluster;
    patch(img, fatAt + (first + 2) * 2, [first & 0xff, first >> 8]);
    const r = vdisk(['cat', img, '/big.bin']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.match(r.stderr, /^vdisk: .*fat\.img: FAT16 file \/big\.bin: cluster chain loops back to cluster \d+\n$/);
  });
});
