import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { lstatSync, unlinkSync, readdirSync, readFileSync, readlinkSync, statfsSync, writeFileSync, writeSync, mkdirSync, openSync, readSync, closeSync } from 'node:fs';
import { needPeers, tempDir, vdisk, sh, sha256Buffer } from './helpers/peers.js';
import { compareTrees, diffTrees, allocatedBytes } from './helpers/fs-tree.js';
import { makeNtfs, mountNtfs, unmount, noiseBytes, NTFS_PEERS, type NtfsFixture } from './helpers/ntfs.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';
import type { Filesystem, FsStats } from '../src/filesystems/filesystem.js';

const MiB = 1024 * 1024;

async function readAll(fs: Filesystem, path: string, stream?: string): Promise<Buffer> {
  const f = await fs.open(path, stream);
  const out = Buffer.alloc(f.size);
  // Odd-sized reads cross cluster, run and compression-unit boundaries.
  for (let at = 0; at < f.size; ) {
    const n = await f.read(out.subarray(at, Math.min(f.size, at + 77_777)), at);
    assert.ok(n > 0, `${path}: short read at ${at}`);
    at += n;
  }
  return out;
}

function ntfscat(img: string, path: string, stream?: string): Buffer {
  // -f: the volume is mounted read-only by ntfs-3g meanwhile; both only read.
  const args = ['-f', ...(stream ? ['-a', '0x80', '-n', stream, img, path] : [img, path])];
  return execFileSync('ntfscat', args, { maxBuffer: 64 * MiB, stdio: ['ignore', 'pipe', 'pipe'] });
}

interface Walked {
  path: string;
  st: FsStats;
}

async function walk(fs: Filesystem): Promise<Walked[]> {
  const out: Walked[] = [];
  const pending = ['/'];
  while (pending.length) {
    const dir = pending.shift() as string;
    for (const e of await fs.readdir(dir)) {
      const path = dir === '/' ? `/${e.name}` : `${dir}/${e.name}`;
      const st = await fs.lstat(path);
      assert.equal(st.type, e.type, `${path}: readdir says ${e.type}, stat ${st.type}`);
      out.push({ path, st });
      if (st.type === 'directory') pending.push(path);
    }
  }
  return out;
}

function nsOf(t: { sec: number; nsec: number } | undefined): bigint {
  assert.ok(t);
  return BigInt(t.sec) * 1_000_000_000n + BigInt(t.nsec);
}

/** `ntfsls -l -p DIR` as name -> size (ntfsls prints data sizes; directories show 0). */
function ntfsls(img: string, dir: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of sh('ntfsls', ['-f', '-l', '-p', dir, img]).split('\n')) {
    const m = /^\s*(\d+) \S+ +\d+ \d\d:\d\d \d{4} (.*)$/.exec(line);
    if (m && m[2] !== '.' && m[2] !== '..') out.set(m[2], Number(m[1]));
  }
  return out;
}

/**
 * Everything the library says about the volume, held against ntfs-3g's mount (stat with nanoseconds,
 * readdir, readlink, statfs), ntfscat (every file and stream) and ntfsls (names and sizes).
 */
async function checkAgainstPeers(fx: NtfsFixture, dir: string, vhdx?: string, partition?: number): Promise<void> {
  const image = await openImage(vhdx ?? fx.img);
  const fs = await openFilesystem(image, partition ? { partition } : {});
  const mnt = join(dir, 'ro');
  mountNtfs(fx.img, mnt, 'ro,streams_interface=windows');
  try {
    assert.equal(fs.type, 'ntfs');
    assert.deepEqual(fs.warnings, []);
    const blk = sh('blkid', ['-p', '-d', '-o', 'export', fx.img]);
    assert.match(blk, new RegExp(`^LABEL=${fs.reader.label}$`, 'm'));
    assert.equal(fs.reader.label, fx.label);
    assert.match(blk, new RegExp(`^UUID=${fs.reader.uuid}$`, 'm'));

    const entries = await walk(fs);
    const dirs = ['/', ...entries.filter((e) => e.st.type === 'directory').map((e) => e.path)];
    const listings = new Map<string, Map<string, number>>();
    for (const d of dirs) {
      const ours = (await fs.readdir(d)).map((e) => e.name).sort();
      assert.deepEqual(ours, readdirSync(join(mnt, d)).sort(), `names in ${d} (ntfs-3g)`);
      const ls = ntfsls(fx.img, d);
      listings.set(d, ls);
      assert.deepEqual(ours, [...ls.keys()].sort(), `names in ${d} (ntfsls)`);
    }
    for (const { path, st } of entries) {
      const theirs = lstatSync(join(mnt, path), { bigint: true });
      const kind = theirs.isDirectory() ? 'directory' : theirs.isSymbolicLink() ? 'symlink' : theirs.isFile() ? 'file' : theirs.isFIFO() ? 'fifo' : theirs.isCharacterDevice() ? 'char' : theirs.isBlockDevice() ? 'block' : 'other';
      assert.equal(st.type, kind, `${path}: type`);
      if (kind === 'char' || kind === 'block') {
        const rdev = Number(theirs.rdev);
        assert.deepEqual(st.rdev, { major: (rdev >> 8) & 0xfff, minor: (rdev & 0xff) | ((rdev >> 12) & 0xfff00) }, `${path}: device numbers`);
      }
      assert.equal(BigInt(st.ino), theirs.ino, `${path}: ino`);
      assert.equal(nsOf(st.mtime), theirs.mtimeNs, `${path}: mtime`);
      assert.equal(nsOf(st.atime), theirs.atimeNs, `${path}: atime`);
      assert.equal(nsOf(st.ctime), theirs.ctimeNs, `${path}: ctime`);
      if (st.type === 'file') {
        assert.equal(BigInt(st.size), theirs.size, `${path}: size`);
        // ntfs-3g counts the record's names, DOS names included; we count links as ntfs3 does (DOS-only names left out).
        assert.equal(BigInt(st.nlink), theirs.nlink - (path === '/Long File Name.txt' ? 1n : 0n), `${path}: nlink`);
        const parent = path.slice(0, path.lastIndexOf('/')) || '/';
        const base = path.slice(path.lastIndexOf('/') + 1);
        assert.equal(st.size, listings.get(parent)?.get(base), `${path}: size (ntfsls)`);
        const data = await readAll(fs, path);
        assert.equal(sha256Buffer(data), sha256Buffer(readFileSync(join(mnt, path))), `${path}: contents (ntfs-3g)`);
        // ntfscat once per file, but only a sample of the 250 one-line files of /bigdir (a process each).
        if (parent !== '/bigdir' || base.endsWith('0.dat')) assert.equal(sha256Buffer(data), sha256Buffer(ntfscat(fx.img, path)), `${path}: contents (ntfscat)`);
        // Modes as ntfs3 synthesises them: 0755, write bits dropped by the read-only attribute.
        assert.equal(st.mode & 0o777, st.flags?.includes('readonly') ? 0o555 : 0o755, `${path}: mode`);
      }
      if (st.type === 'file' && !path.slice(1).includes('/')) {
        // Creation time and attributes as ntfs-3g exposes them (xattrs; one process each, so top-level files only).
        const xattr = (n: string) => execFileSync('getfattr', ['--only-values', '-n', n, join(mnt, path)], { stdio: ['ignore', 'pipe', 'pipe'] });
        const crtime = xattr('system.ntfs_crtime').readBigUInt64LE(0);
        assert.equal(nsOf(st.birthtime), (crtime - 116444736000000000n) * 100n, `${path}: birthtime`);
        const attrib = xattr('system.ntfs_attrib').readUInt32LE(0);
        const bits: [number, string][] = [[0x1, 'readonly'], [0x2, 'hidden'], [0x4, 'system'], [0x20, 'archive'], [0x200, 'sparse'], [0x400, 'reparse-point'], [0x800, 'compressed'], [0x4000, 'encrypted']];
        for (const [bit, flag] of bits) assert.equal(st.flags?.includes(flag), (attrib & bit) !== 0, `${path}: ${flag} (attributes 0x${attrib.toString(16)})`);
      }
      if (st.type === 'symlink') {
        const target = await fs.readlink(path);
        // ntfs-3g puts absolute Windows targets under <mount>/.NTFS-3G; we leave the mount point out.
        assert.equal(target, readlinkSync(join(mnt, path)).replace(`${mnt}/.NTFS-3G/`, '/.NTFS-3G/'), `${path}: target`);
      }
    }

    // Streams: listed in stat, read as ntfscat reads them.
    for (const [path, streams] of fx.streams) {
      const st = await fs.stat(path);
      assert.deepEqual((st.streams ?? []).map((s) => s.name).sort(), [...streams.keys()].sort(), `${path}: streams`);
      for (const [name, data] of streams) {
        const ours = await readAll(fs, path, name);
        assert.ok(ours.equals(data), `${path}:${name}: contents`);
        assert.ok(ours.equals(ntfscat(fx.img, path, name)), `${path}:${name}: contents (ntfscat)`);
        assert.equal(st.streams?.find((s) => s.name === name)?.size, data.length);
      }
    }
    assert.deepEqual((await fs.readdir('/special')).map((e) => `${e.name} ${e.type}`).sort(), ['disk block', 'fifo fifo', 'null char']);
    const many = await fs.stat('/many-streams');
    assert.match(sh('ntfsinfo', ['-f', '-F', '/many-streams', fx.img]), /\$ATTRIBUTE_LIST/, 'the fixture has an attribute list');
    assert.equal(many.streams?.length, 60);

    // Compressed and sparse files: flagged, and read as ntfs-3g reads them (checked above); sparse holes stay holes.
    for (const p of fx.compressed) {
      assert.ok((await fs.stat(p)).flags?.includes('compressed'), `${p}: compressed`);
      assert.match(sh('ntfsinfo', ['-f', '-F', p, fx.img]), /COMPRESSED/, `${p}: ntfs-3g compressed it`);
    }
    for (const p of fx.sparse) {
      const f = await fs.open(p);
      const ranges = await f.dataRanges!();
      const inData = ranges.reduce((s, r) => s + r.length, 0);
      // Two short data runs, each rounded out to whole clusters.
      assert.ok(inData <= 2 * Math.max(fs.reader.blockSize, 16384) && inData >= 8192 + 5000, `${p}: ${inData} bytes of data ranges`);
      const all = await readAll(fs, p);
      let at = 0;
      for (const r of [...ranges, { offset: all.length, length: 0 }]) {
        assert.ok(all.subarray(at, r.offset).every((b) => b === 0), `${p}: a hole at ${at} reads as zeros`);
        at = r.offset + r.length;
      }
    }

    // Case-insensitive lookups through $UpCase, and the same file by two hard links.
    assert.equal((await fs.stat('/mixedcase.txt')).ino, (await fs.stat('/MixedCase.TXT')).ino);
    assert.equal((await fs.stat('/ÜNÏCÖDÉ 日本語/ファイル 🎉.TXT')).size, 14);
    assert.equal((await fs.stat('/hard-a')).ino, (await fs.stat('/links/hard-b')).ino);
    // A DOS name is not listed (checked above against ntfs-3g and ntfsls) but opens the file.
    assert.match(sh('ntfsinfo', ['-f', '-F', '/Long File Name.txt', fx.img]), /Namespace:\s+DOS/);
    assert.equal((await fs.stat('/LONGFI~1.TXT')).ino, (await fs.stat('/Long File Name.txt')).ino);
    await assert.rejects(fs.stat('/no-such-file'), { code: 'NOT_FOUND' });

    // Free space: the clusters $Bitmap leaves clear, as statfs on ntfs-3g counts them.
    const sf = statfsSync(mnt);
    let free = 0;
    let last = 0;
    for await (const r of fs.freeExtents()) {
      assert.ok(r.offset >= last && r.length > 0, 'free extents in order, not touching');
      last = r.offset + r.length + 1;
      free += r.length;
    }
    assert.equal(free, sf.bfree * sf.bsize);
  } finally {
    unmount(mnt);
    await fs.close();
    await image.close();
  }
}

function checkCli(fx: NtfsFixture, dir: string, image: string, extra: string[] = [], full = true): void {
  const out = join(dir, 'out');
  const r = vdisk(['get', ...extra, image, '/', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(compareTrees(fx.src, out, { modes: true, mtimeMs: 0.001, hardlinks: true }), []);
  assert.equal(diffTrees(fx.src, out), '');
  for (const p of fx.sparse) assert.ok(allocatedBytes(join(out, p)) < MiB, `${p} stays sparse`);

  if (!full) return;
  // cat reads streams as FILE:STREAM; ls --output json lists them.
  for (const [path, streams] of fx.streams) {
    // A process each: all of /ads.txt's streams, two of /many-streams' sixty.
    for (const [name, data] of [...streams].filter((_, i) => path === '/ads.txt' || i % 30 === 7)) {
      const c = vdisk(['cat', ...extra, image, `${path}:${name}`]);
      assert.equal(c.code, 0, c.stderr);
      assert.ok(c.stdoutBytes.equals(data), `${path}:${name} through cat`);
    }
  }
  const ls = vdisk(['ls', '--output', 'json', ...extra, image, '/ads.txt']);
  assert.equal(ls.code, 0, ls.stderr);
  assert.deepEqual(JSON.parse(ls.stdout)[0].streams.map((s: { name: string }) => s.name).sort(), ['ads.txt:alpha', 'ads.txt:beta']);

  // ls -l agrees with ntfsls on names and file sizes.
  const l = vdisk(['ls', '-l', ...extra, image, '/docs']);
  assert.equal(l.code, 0, l.stderr);
  const peer = ntfsls(fx.img, '/docs');
  const names = l.stdout.trim().split('\n').map((line) => line.split(/\s+/).slice(7).join(' '));
  assert.deepEqual(names.sort(), [...peer.keys()].sort());
  assert.match(l.stdout, new RegExp(`^-rwxr-xr-x 1 0 0 +${peer.get('readme.txt')} .* readme.txt$`, 'm'));
}

/** 7-Zip's listing as a second opinion: paths and sizes of regular files and streams. */
function sevenZip(img: string): Map<string, number> {
  const out = new Map<string, number>();
  const text = sh('7zz', ['l', '-slt', '-sns', img]);
  for (const block of text.split('\n\n')) {
    const path = /^Path = (.*)$/m.exec(block)?.[1];
    const size = /^Size = (\d+)$/m.exec(block)?.[1];
    const folder = /^Folder = \+$/m.test(block);
    if (path && size !== undefined && !folder && !path.startsWith('[SYSTEM]') && !path.startsWith('[DELETED]')) out.set(`/${path}`, Number(size));
  }
  return out;
}

const VARIANTS = [
  { name: '512-byte sectors, 4 KiB clusters (1 KiB records: clusters_per_mft_record -10)', sector: 512, cluster: 4096 },
  { name: '4096-byte sectors, 4 KiB clusters (4 KiB records)', sector: 4096, cluster: 4096 },
  { name: '512-byte sectors and clusters (a record is two clusters)', sector: 512, cluster: 512 },
  { name: '64 KiB clusters', sector: 512, cluster: 65536 },
];

describe('NTFS reader against mkntfs, ntfs-3g, ntfscat, ntfsls', () => {
  for (const v of VARIANTS) {
    test(v.name, async (t) => {
      if (!needPeers(t, ...NTFS_PEERS)) return;
      const dir = tempDir(t, 'vdisk-ntfs-');
      const fx = makeNtfs(dir, { sector: v.sector, cluster: v.cluster, size: 24 * MiB });
      const before = createHash('sha256').update(readFileSync(fx.img)).digest('hex');
      await checkAgainstPeers(fx, dir);
      // The CLI's other commands once (a process each is slow here); get on every variant.
      checkCli(fx, dir, fx.img, [], v === VARIANTS[0]);
      assert.equal(createHash('sha256').update(readFileSync(fx.img)).digest('hex'), before, 'the image is never written');
      if (v.sector === 512 && v.cluster === 4096 && needPeers(t, '7zz')) {
        // 7-Zip reads regular files and streams (it misreads ntfs-3g's sparse files and links: left out).
        const seven = sevenZip(fx.img);
        const image = await openImage(fx.img);
        const fs = await openFilesystem(image);
        for (const { path, st } of await walk(fs)) {
          if (st.type !== 'file' || st.flags?.includes('sparse') || st.flags?.includes('system')) continue;
          assert.equal(seven.get(path), st.size, `${path}: size (7z)`);
          for (const s of st.streams ?? []) assert.equal(seven.get(`${path}:${s.name}`), s.size, `${path}:${s.name}: size (7z)`);
        }
        await image.close();
      }
    });
  }

  test('inside a VHDX, in an sfdisk GPT partition', async (t) => {
    if (!needPeers(t, ...NTFS_PEERS, 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t, 'vdisk-ntfs-');
    const fx = makeNtfs(dir, { sector: 512, cluster: 4096, size: 24 * MiB });
    const disk = join(dir, 'disk.raw');
    sh('truncate', ['-s', String(32 * MiB), disk]);
    sh('sfdisk', ['-q', disk], Buffer.from('label: gpt\nstart=2048, size=49152, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n'));
    sh('dd', [`if=${fx.img}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
    const vhdx = join(dir, 'disk.vhdx');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', disk, vhdx]);
    await checkAgainstPeers(fx, dir, vhdx, 1);
    checkCli(fx, dir, vhdx, ['-P', '1'], false);
  });

  test('a fragmented $MFT, read through its own runlist', async (t) => {
    if (!needPeers(t, ...NTFS_PEERS)) return;
    const dir = tempDir(t, 'vdisk-ntfs-');
    const img = join(dir, 'frag.img');
    const mnt = join(dir, 'mnt');
    sh('truncate', ['-s', String(8 * MiB), img]);
    sh('mkntfs', ['-q', '-F', '-f', img]);
    mountNtfs(img, mnt, 'rw');
    try {
      // Fill the volume (the MFT zone too), free every other cluster, then make files: $MFT grows into the holes.
      const block = Buffer.alloc(4096, 0x5a);
      let n = 0;
      for (; n < 4000; n++) {
        try {
          writeFileSync(join(mnt, `fill${n}`), block);
        } catch {
          break;
        }
      }
      for (let i = 0; i < n; i += 2) unlinkSync(join(mnt, `fill${i}`));
      mkdirSync(join(mnt, 'many'));
      for (let i = 0; i < 500; i++) writeFileSync(join(mnt, 'many', `file number ${i}`), `${i}`);
    } finally {
      unmount(mnt);
    }
    const runs = sh('ntfsinfo', ['-v', '-i', '0', img]).split('Runlist:')[1].split('\n').filter((l) => /^\s+0x[0-9a-f]+\s+0x[0-9a-f]+\s+0x[0-9a-f]+$/.test(l));
    assert.ok(runs.length > 3, `$MFT has ${runs.length} runs`);
    const image = await openImage(img);
    const fs = await openFilesystem(image);
    const entries = await fs.readdir('/many');
    assert.equal(entries.length, 500);
    mountNtfs(img, mnt, 'ro');
    try {
      for (const e of entries) {
        const st = await fs.stat(`/many/${e.name}`);
        assert.equal(BigInt(st.ino), lstatSync(join(mnt, 'many', e.name), { bigint: true }).ino);
        assert.equal((await readAll(fs, `/many/${e.name}`)).toString(), e.name.slice(12));
      }
    } finally {
      unmount(mnt);
    }
    await image.close();
  });

  test('a $DATA split into extents in extension records, found through $ATTRIBUTE_LIST', async (t) => {
    if (!needPeers(t, ...NTFS_PEERS)) return;
    const dir = tempDir(t, 'vdisk-ntfs-');
    const img = join(dir, 'list.img');
    const mnt = join(dir, 'mnt');
    sh('truncate', ['-s', String(8 * MiB), img]);
    sh('mkntfs', ['-q', '-F', '-f', img]);
    mountNtfs(img, mnt, 'rw');
    try {
      // 4 KiB of data every 8 KiB: 400 data and sparse runs outgrow the file's record.
      const fd = openSync(join(mnt, 'scattered.bin'), 'w');
      for (let i = 0; i < 200; i++) writeSync(fd, noiseBytes(4096, 100 + i), 0, 4096, i * 8192);
      closeSync(fd);
    } finally {
      unmount(mnt);
    }
    const info = sh('ntfsinfo', ['-F', '/scattered.bin', img]);
    assert.match(info, /\$ATTRIBUTE_LIST/, 'the file has an attribute list');
    assert.ok((info.match(/Dumping attribute \$DATA/g) ?? []).length >= 2, 'its $DATA has several extents');
    const image = await openImage(img);
    const fs = await openFilesystem(image);
    const scattered = await readAll(fs, '/scattered.bin');
    assert.equal(scattered.length, 199 * 8192 + 4096);
    for (let i = 0; i < 200; i++) assert.ok(scattered.subarray(i * 8192, i * 8192 + 4096).equals(noiseBytes(4096, 100 + i)), `block ${i}`);
    assert.ok(scattered.equals(ntfscat(img, '/scattered.bin')), 'contents (ntfscat)');
    const ranges = await (await fs.open('/scattered.bin')).dataRanges!();
    assert.equal(ranges.length, 200);
    await image.close();
  });

  test('EFS-encrypted and WOF-compressed files are listed; reading them is refused in one line', async (t) => {
    if (!needPeers(t, ...NTFS_PEERS)) return;
    const dir = tempDir(t, 'vdisk-ntfs-');
    const img = join(dir, 'x.img');
    const mnt = join(dir, 'mnt');
    sh('truncate', ['-s', String(8 * MiB), img]);
    sh('mkntfs', ['-q', '-F', '-f', img]);
    mountNtfs(img, mnt, 'rw');
    try {
      writeFileSync(join(mnt, 'secret.txt'), 'not really secret, but flagged so\n');
      writeFileSync(join(mnt, 'compact.exe'), '');
      // WOF's reparse data: version 1, provider 2 (file), then the file provider's version and algorithm.
      const wof = Buffer.alloc(24);
      wof.writeUInt32LE(0x80000017, 0);
      wof.writeUInt16LE(16, 4);
      wof.writeUInt32LE(1, 8);
      wof.writeUInt32LE(2, 12);
      wof.writeUInt32LE(1, 16);
      wof.writeUInt32LE(1, 20);
      sh('setfattr', ['-n', 'system.ntfs_reparse_data', '-v', '0x' + wof.toString('hex'), join(mnt, 'compact.exe')]);
    } finally {
      unmount(mnt);
    }
    // EFS: set the encrypted flag of the file's $DATA attribute in its MFT record (as Windows would have).
    const image0 = await openImage(img);
    const fs0 = await openFilesystem(image0);
    const ino = (await fs0.stat('/secret.txt')).ino;
    await image0.close();
    const boot = readFileSync(img).subarray(0, 512);
    const cluster = boot.readUInt16LE(11) * boot[13];
    const recAt = Number(boot.readBigUInt64LE(48)) * cluster + ino * 1024;
    const fd = openSync(img, 'r+');
    const rec = Buffer.alloc(1024);
    readSync(fd, rec, 0, 1024, recAt);
    let at = rec.readUInt16LE(20);
    while (rec.readUInt32LE(at) !== 0x80) at += rec.readUInt32LE(at + 4);
    rec.writeUInt16LE(rec.readUInt16LE(at + 12) | 0x4000, at + 12);
    execFileSync('dd', [`of=${img}`, 'bs=1', `seek=${recAt + at + 12}`, 'count=2', 'conv=notrunc', 'status=none'], { input: rec.subarray(at + 12, at + 14) });
    closeSync(fd);
    assert.match(sh('ntfsinfo', ['-f', '-F', '/secret.txt', img]), /Attribute flags:\s+0x4000/);

    const ls = vdisk(['ls', '-l', img]);
    assert.equal(ls.code, 0, ls.stderr);
    assert.match(ls.stdout, /secret\.txt/);
    assert.match(ls.stdout, /compact\.exe/);
    const cat = vdisk(['cat', img, '/secret.txt']);
    assert.notEqual(cat.code, 0);
    assert.equal(cat.stderr.trim().split('\n').length, 1, cat.stderr);
    assert.match(cat.stderr, /secret\.txt \(MFT record \d+\): EFS-encrypted/);
    const wof = vdisk(['cat', img, '/compact.exe']);
    assert.notEqual(wof.code, 0);
    assert.equal(wof.stderr.trim().split('\n').length, 1, wof.stderr);
    assert.match(wof.stderr, /compact\.exe \(MFT record \d+\): WOF-compressed/);
    const json = vdisk(['ls', '--output', 'json', img, '/compact.exe']);
    assert.ok(JSON.parse(json.stdout)[0].flags.includes('wof-compressed'));

    // A volume not cleanly unmounted: $Volume's $VOLUME_INFORMATION flags 0x0001, as ntfs-3g's ntfsinfo sees it.
    const volRec = Number(boot.readBigUInt64LE(48)) * cluster + 3 * 1024;
    const vrec = readFileSync(img).subarray(volRec, volRec + 1024);
    let va = vrec.readUInt16LE(20);
    while (vrec.readUInt32LE(va) !== 0x70) va += vrec.readUInt32LE(va + 4);
    const flagsIn = va + vrec.readUInt16LE(va + 20) + 10;
    // In $MFT and in its mirror ($MFTMirr keeps records 0-3, and the tools compare them).
    for (const base of [volRec, Number(boot.readBigUInt64LE(56)) * cluster + 3 * 1024]) {
      execFileSync('dd', [`of=${img}`, 'bs=1', `seek=${base + flagsIn}`, 'count=1', 'conv=notrunc', 'status=none'], { input: Buffer.from([vrec[flagsIn] | 1]) });
    }
    const peer = spawnSync('ntfsinfo', ['-m', img], { encoding: 'utf8' });
    assert.match(peer.stderr, /Volume is scheduled for check/, 'ntfs-3g sees the volume dirty');
    const dirty = vdisk(['ls', img]);
    assert.equal(dirty.code, 0);
    assert.match(dirty.stderr, /marked dirty/);
  });
});

