import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { needPeers, havePeer, vdisk } from './helpers/peers.js';
import { compareTrees, diffTrees, allocatedBytes, withFs } from './helpers/fs-tree.js';
import {
  bytes, debugfsLs, debugfsStats, dumpe2fsFree, entryPath, makeTree, run, sourceXattrs, walkSource, walkVolume, writeHoleyFile, type Seen,
} from './helpers/ext.js';
import { openImage, Filesystem } from '../src/index.js';
import { ExtReader } from '../src/filesystems/ext/reader.js';
import fc from 'fast-check';
import { mkdirSync, symlinkSync } from 'node:fs';
import { VdiskError } from '../src/errors.js';
import { countingVolume } from './helpers/memory.js';

const MiB = 1024 * 1024;
const PEERS = ['mkfs.ext4', 'debugfs', 'dumpe2fs', 'e2fsck', 'setfattr', 'getfattr'];

let work = '';
let src = '';
before(() => {
  if (!PEERS.every(havePeer)) return;
  work = mkdtempSync(join(tmpdir(), 'vdisk-ext-'));
  src = join(work, 'src');
  makeTree(src);
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
});


function mkfs(img: string, args: string[], sizeMiB: number, from = src): void {
  rmSync(img, { force: true });
  run('mkfs.ext4', ['-q', '-F', ...args, '-d', from, img, `${sizeMiB}M`]);
}

/** Every file, directory, link and special file of the source equals what the reader shows. */
function compareWithSource(seen: Map<string, Seen>, source: string): void {
  const want = walkSource(source);
  const xattrs = sourceXattrs(source);
  const got = [...seen.keys()].filter((p) => p !== '/lost+found' && !p.startsWith('/lost+found/'));
  assert.deepEqual(got.sort(), [...want.keys()].sort(), 'the same paths');
  for (const [path, w] of want) {
    if (path === '/') continue;
    const s = seen.get(path)!;
    const st = s.stats;
    const type = w.st.isFile() ? 'file' : w.st.isDirectory() ? 'directory' : w.st.isSymbolicLink() ? 'symlink'
      : w.st.isFIFO() ? 'fifo' : w.st.isCharacterDevice() ? 'char' : w.st.isBlockDevice() ? 'block' : 'socket';
    assert.equal(st.type, type, `${path}: type`);
    assert.equal(st.mode, Number(w.st.mode), `${path}: mode`);
    assert.equal(st.uid, Number(w.st.uid), `${path}: uid`);
    assert.equal(st.gid, Number(w.st.gid), `${path}: gid`);
    if (type !== 'directory') {
      assert.equal(st.size, Number(w.st.size), `${path}: size`);
      assert.equal(st.nlink, Number(w.st.nlink), `${path}: nlink`);
    }
    // mke2fs -d copies whole seconds of the source's times.
    assert.equal(st.mtime?.sec, Math.floor(Number(w.st.mtimeMs) / 1000), `${path}: mtime`);
    assert.equal(s.target, w.target, `${path}: symlink target`);
    assert.equal(s.sha, w.sha, `${path}: contents`);
    if (type === 'char') assert.deepEqual(st.rdev, { major: 1, minor: 3 }, `${path}: device numbers`);
    assert.deepEqual(s.xattrs, xattrs.get(path) ?? [], `${path}: xattrs`);
  }
  if (want.has('/hard.txt')) assert.equal(seen.get('/a.txt')!.stats.ino, seen.get('/hard.txt')!.stats.ino, 'hard links share the inode');
}

/** What debugfs lists and stats agrees with the reader, inode by inode. */
function compareWithDebugfs(img: string, seen: Map<string, Seen>, dataRanges: Map<string, { offset: number; length: number }[]>, blockSize: number): void {
  for (const [path, s] of seen) {
    if (s.stats.type !== 'directory') continue;
    const rows = debugfsLs(img, s.stats.ino);
    const names = rows.map((r) => r.name).sort();
    const ours = [...seen.keys()].filter((p) => p !== '/' && p.slice(0, p.lastIndexOf('/') || 1) === path)
      .map((p) => p.slice(p.lastIndexOf('/') + 1)).sort();
    assert.deepEqual(ours, names, `${path}: debugfs ls -l names`);
    for (const r of rows) {
      const st = seen.get(path === '/' ? `/${r.name}` : `${path}/${r.name}`)!.stats;
      assert.deepEqual([st.ino, st.mode, st.uid, st.gid], [r.ino, r.mode, r.uid, r.gid], `${path}/${r.name}: debugfs ls -l`);
      if (st.type === 'file' || st.type === 'directory' || st.type === 'symlink') assert.equal(st.size, r.size, `${path}/${r.name}: size`);
    }
  }
  const stats = debugfsStats(img, [...new Set([...seen.values()].map((s) => s.stats.ino))]);
  for (const [path, s] of seen) {
    const d = stats.get(s.stats.ino);
    assert.ok(d, `${path}: debugfs stat`);
    const st = s.stats;
    assert.deepEqual([st.mode & 0o7777, st.uid, st.gid, st.size, st.nlink], [d.perm, d.uid, d.gid, d.size, d.links], `${path}: debugfs stat fields`);
    for (const [field, key] of [['mtime', 'mtime'], ['atime', 'atime'], ['ctime', 'ctime'], ['birthtime', 'crtime']] as const) {
      if (!d.times[key]) continue;
      assert.equal(st[field]?.sec, d.times[key].date, `${path}: ${field} as debugfs prints it`);
      assert.equal(st[field]?.nsec, d.times[key].extra >>> 2, `${path}: ${field} nanoseconds`);
    }
    assert.deepEqual(s.xattrs.map((x) => x.slice(0, x.indexOf('='))).sort(), d.xattrNames.filter((n) => n !== 'system.data').sort(), `${path}: xattr names`);
    if (d.fastLink !== undefined) assert.equal(s.target, d.fastLink, `${path}: fast symlink`);
    const ranges = dataRanges.get(path);
    if (ranges && !(st.flags ?? []).includes('inline-data')) {
      const blocks = ranges.map((r) => [r.offset / blockSize, Math.ceil((r.offset + r.length) / blockSize) - 1]);
      const merged: number[][] = [];
      for (const r of d.logical.filter(([a]) => a * blockSize < st.size)) {
        const last = merged[merged.length - 1];
        if (last && last[1] + 1 === r[0]) last[1] = r[1];
        else merged.push([...r]);
      }
      assert.deepEqual(blocks, merged, `${path}: data ranges against debugfs's block list`);
    }
  }
}

async function collectRanges(fs: Filesystem, seen: Map<string, Seen>): Promise<Map<string, { offset: number; length: number }[]>> {
  const out = new Map<string, { offset: number; length: number }[]>();
  for (const [path, s] of seen) {
    if (s.stats.type !== 'file') continue;
    const f = await fs.open(path);
    out.set(path, (await f.dataRanges?.()) ?? []);
  }
  return out;
}

async function freeBlocks(fs: Filesystem): Promise<[number, number][]> {
  const bs = fs.reader.blockSize;
  const out: [number, number][] = [];
  for await (const r of fs.freeExtents()) {
    assert.equal(r.offset % bs, 0);
    assert.equal(r.length % bs, 0);
    out.push([r.offset / bs, (r.offset + r.length) / bs - 1]);
  }
  return out;
}

interface Variant {
  name: string;
  type: string;
  args: string[];
  size: number;
  /** Index the big directory (htree) with e2fsck -D after mkfs. */
  index?: boolean;
  /** bigalloc: blocks per cluster (dumpe2fs names each free cluster by its first block). */
  cluster?: number;
}

const VARIANTS: Variant[] = [
  { name: 'ext4, directories indexed by e2fsck -D', type: 'ext4', args: ['-t', 'ext4'], size: 32, index: true },
  { name: 'ext4 with inline_data and no journal', type: 'ext4', args: ['-t', 'ext4', '-O', 'inline_data,^has_journal'], size: 32 },
  { name: 'ext4 with 64bit and metadata_csum, 4 KiB blocks', type: 'ext4', args: ['-t', 'ext4', '-O', '64bit,metadata_csum', '-b', '4096'], size: 32 },
  { name: 'ext2', type: 'ext2', args: ['-t', 'ext2'], size: 32, index: true },
  { name: 'ext3', type: 'ext3', args: ['-t', 'ext3'], size: 32 },
  { name: 'ext4 with 1 KiB blocks', type: 'ext4', args: ['-t', 'ext4', '-b', '1024'], size: 32 },
  { name: 'ext4 with meta_bg and 64bit, 1 KiB blocks in 20 groups', type: 'ext4', args: ['-t', 'ext4', '-b', '1024', '-O', '64bit,meta_bg,^resize_inode'], size: 160 },
  { name: 'ext4 with bigalloc, 16 KiB clusters of 1 KiB blocks', type: 'ext4', args: ['-t', 'ext4', '-b', '1024', '-O', 'bigalloc', '-C', '16384'], size: 64, cluster: 16 },
];

describe('ext reader against the source tree, debugfs and dumpe2fs', () => {
  for (const v of VARIANTS) {
    test(v.name, async (t) => {
      if (!needPeers(t, ...PEERS)) return;
      const img = join(work, `${v.name.replace(/\W+/g, '-')}.img`);
      mkfs(img, v.args, v.size);
      if (v.index) run('e2fsck', ['-fyD', img], {});
      run('e2fsck', ['-fn', img]);
      await withFs(img, async (fs) => {
        assert.equal(fs.type, v.type);
        assert.deepEqual(fs.warnings, []);
        const seen = await walkVolume(fs);
        compareWithSource(seen, src);
        compareWithDebugfs(img, seen, await collectRanges(fs, seen), fs.reader.blockSize);
        const peer = dumpe2fsFree(img).map(([a, b]) => [a, b + (v.cluster ?? 1) - 1]);
        assert.deepEqual(await freeBlocks(fs), peer, 'free blocks as dumpe2fs lists them');
      });
      rmSync(img);
    });
  }

  test('BLOCK_UNINIT groups are free but for their metadata, as dumpe2fs reckons', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'uninit.img');
    mkfs(img, ['-t', 'ext4', '-b', '1024', '-O', '^flex_bg'], 64);
    const dump = run('dumpe2fs', [img]);
    assert.match(dump, /BLOCK_UNINIT/, 'the fixture has BLOCK_UNINIT groups');
    await withFs(img, async (fs) => assert.deepEqual(await freeBlocks(fs), dumpe2fsFree(img)));
    rmSync(img);
  });

  test('a VHDX holding the file system in a GPT partition', async (t) => {
    if (!needPeers(t, ...PEERS, 'sfdisk', 'qemu-img')) return;
    const fsImg = join(work, 'part.img');
    mkfs(fsImg, ['-t', 'ext4', '-O', '64bit,metadata_csum'], 24);
    const disk = join(work, 'disk.raw');
    rmSync(disk, { force: true });
    run('truncate', ['-s', `${32 * MiB}`, disk]);
    // sfdisk reads its script from stdin: a GPT with one Linux partition at 1 MiB.
    run('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=${(24 * MiB) / 512}, type=L\\n' | sfdisk -q '${disk}'`]);
    run('dd', [`if=${fsImg}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc', 'status=none']);
    const vhdx = join(work, 'disk.vhdx');
    rmSync(vhdx, { force: true });
    run('qemu-img', ['convert', '-O', 'vhdx', disk, vhdx]);
    await withFs(vhdx, async (fs) => {
      assert.equal(fs.name, `${vhdx} partition 1`);
      const seen = await walkVolume(fs);
      compareWithSource(seen, src);
      const free = await freeBlocks(fs);
      assert.deepEqual(free, dumpe2fsFree(fsImg));
    }, 1);
  });
});

/** Sets inode fields with debugfs -w (the peer writes the fixture). */
function debugfsWrite(img: string, cmds: string[]): void {
  const file = `${img}.cmds`;
  writeFileSync(file, cmds.join('\n') + '\n');
  run('debugfs', ['-w', '-f', file, img]);
}

describe('a 1 TiB ext4 (sparse file, 8,192 groups)', () => {
  test('a lookup reads only the blocks on its way; free space streams and equals dumpe2fs', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'tebi.img');
    rmSync(img, { force: true });
    run('truncate', ['-s', '1T', img]);
    run('mkfs.ext4', ['-q', '-F', '-E', 'lazy_itable_init=1,lazy_journal_init=1', '-d', src, img]);
    const image = await openImage(img);
    try {
      const { volume, count } = countingVolume(image);
      const fs = new Filesystem(await ExtReader.open(volume, { name: img }), img);
      const f = await fs.open('/d1/d2/d3/d4/d5/d6/deep.txt');
      const buf = Buffer.alloc(f.size);
      await f.read(buf, 0);
      assert.equal(buf.toString(), 'deep\n');
      // Superblock, one descriptor window, the inode-table and directory windows on the way: never all 8,192 tables.
      assert.ok(count.reads <= 20 && count.bytes <= 6 * MiB, `${count.reads} reads, ${count.bytes} bytes`);
      const free: [number, number][] = [];
      for await (const r of fs.freeExtents()) free.push([r.offset / 4096, (r.offset + r.length) / 4096 - 1]);
      assert.deepEqual(free, dumpe2fsFree(img));
    } finally {
      await image.close();
      rmSync(img);
    }
  });
});

describe('ext features crafted with debugfs', () => {
  test('nanoseconds, times past 2038 and before 1970 (epoch bits), as debugfs prints them', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'times.img');
    mkfs(img, ['-t', 'ext4', '-I', '256'], 16);
    // 2100-01-02T03:04:05.123456789Z: seconds past 2^32 need epoch bit 1 in mtime_extra's low bits.
    const sec2100 = Date.UTC(2100, 0, 2, 3, 4, 5) / 1000;
    const lo = sec2100 - 2 ** 32;
    debugfsWrite(img, [
      `sif /a.txt mtime 0x${(lo >>> 0).toString(16)}`,
      `sif /a.txt mtime_extra 0x${((123456789 << 2) | 1).toString(16)}`,
      'sif /tiny mtime 0xf0000000',
      `sif /tiny mtime_extra 0x${(999999999 << 2 >>> 0).toString(16)}`,
      'sif /empty atime 0x7fffffff',
      `sif /empty atime_extra 0x${((5 << 2) | 3).toString(16)}`,
    ]);
    await withFs(img, async (fs) => {
      const stats = debugfsStats(img, [(await fs.stat('/a.txt')).ino, (await fs.stat('/tiny')).ino, (await fs.stat('/empty')).ino]);
      const a = await fs.stat('/a.txt');
      assert.deepEqual(a.mtime, { sec: sec2100, nsec: 123456789 });
      assert.equal(a.mtime!.sec, stats.get(a.ino)!.times.mtime.date, 'debugfs prints the same date');
      const tiny = await fs.stat('/tiny');
      // 0xf0000000 is negative as a signed 32-bit count: 1961, with epoch bits 0.
      assert.deepEqual(tiny.mtime, { sec: 0xf0000000 - 2 ** 32, nsec: 999999999 });
      assert.equal(tiny.mtime!.sec, stats.get(tiny.ino)!.times.mtime.date);
      const empty = await fs.stat('/empty');
      assert.deepEqual(empty.atime, { sec: 0x7fffffff + 3 * 2 ** 32, nsec: 5 });
      assert.equal(empty.atime!.sec, stats.get(empty.ino)!.times.atime.date);
    });
  });

  test('uninitialized extents read as zeros and are not data; holes past them too', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'falloc.img');
    mkfs(img, ['-t', 'ext4', '-b', '4096'], 16);
    // debugfs's fallocate leaves unwritten (uninitialized) extents; its blocks may hold old bytes.
    debugfsWrite(img, ['write /dev/null prealloc', 'sif /prealloc size 65536', 'fallocate /prealloc 4 9']);
    // Old bytes in the preallocated blocks (where debugfs says they are) must not show through.
    const ext = /\(4-9\[u\]\):(\d+)-(\d+)/.exec(run('debugfs', ['-R', 'stat /prealloc', img]))!;
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.alloc((+ext[2] - +ext[1] + 1) * 4096, 0xaa), 0, (+ext[2] - +ext[1] + 1) * 4096, +ext[1] * 4096);
    closeSync(fd);
    await withFs(img, async (fs) => {
      const st = await fs.stat('/prealloc');
      const d = debugfsStats(img, [st.ino]).get(st.ino)!;
      assert.deepEqual(d.uninit, [[4, 9]], 'debugfs shows the uninitialized extent');
      const f = await fs.open('/prealloc');
      const buf = Buffer.alloc(65536, 0xaa);
      assert.equal(await f.read(buf, 0), 65536);
      assert.equal(buf.findIndex((b) => b !== 0), -1, 'unwritten extents read as zeros');
      assert.deepEqual(await f.dataRanges!(), []);
    });
  });

  test('casefolded directories look names up case-insensitively; others do not', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'casefold.img');
    const tree = join(work, 'cf-src');
    rmSync(tree, { recursive: true, force: true });
    run('mkdir', ['-p', join(tree, 'folded'), join(tree, 'plain')]);
    writeFileSync(join(tree, 'folded', 'ReadMe.TXT'), 'folded\n');
    writeFileSync(join(tree, 'folded', 'straße'), 'sharp s\n');
    writeFileSync(join(tree, 'plain', 'ReadMe.TXT'), 'plain\n');
    mkfs(img, ['-t', 'ext4', '-O', 'casefold', '-E', 'encoding=utf8'], 16, tree);
    debugfsWrite(img, ['sif /folded flags 0x40080000']);
    await withFs(img, async (fs) => {
      assert.equal(fs.reader.caseInsensitive, true);
      assert.equal(readFileSync(join(tree, 'folded', 'ReadMe.TXT'), 'utf8'), 'folded\n');
      const read = async (p: string) => {
        const f = await fs.open(p);
        const b = Buffer.alloc(f.size);
        await f.read(b, 0);
        return b.toString();
      };
      assert.equal(await read('/folded/readme.txt'), 'folded\n');
      assert.equal(await read('/folded/README.txt'), 'folded\n');
      assert.equal(await read('/folded/STRASSE'), 'sharp s\n');
      await assert.rejects(fs.open('/plain/readme.txt'), (e: VdiskError) => e.code === 'NOT_FOUND');
      assert.equal(await read('/plain/ReadMe.TXT'), 'plain\n');
    });
  });

  test('encrypted inodes: a clear one-line refusal, stat still works', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'encrypt.img');
    mkfs(img, ['-t', 'ext4', '-O', 'encrypt'], 16);
    debugfsWrite(img, ['sif /random.bin flags 0x80800', 'sif /d1 flags 0x80800']);
    await withFs(img, async (fs) => {
      assert.ok((await fs.stat('/random.bin')).flags?.includes('encrypted'), 'stat flags the inode encrypted');
      for (const op of [() => fs.open('/random.bin'), () => fs.readdir('/d1')]) {
        await assert.rejects(op(), (e: VdiskError) => e.code === 'UNSUPPORTED' && /inode \d+ is encrypted/.test(e.message) && !e.message.includes('\n'));
      }
    });
  });

  test('a journal needing recovery is read as is, with a warning', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'dirty.img');
    mkfs(img, ['-t', 'ext4'], 16);
    debugfsWrite(img, ['feature needs_recovery']);
    await withFs(img, async (fs) => {
      assert.ok(fs.warnings.some((w) => /journal needs recovery/.test(w)), fs.warnings.join('\n'));
      const seen = await walkVolume(fs);
      compareWithSource(seen, src);
    });
  });

  test('a journal with committed transactions is replayed in memory as e2fsck replays it, revokes included', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'journal.img');
    mkfs(img, ['-t', 'ext4'], 32);
    const blockOf = (p: string) => Number(/\(0\):(\d+)/.exec(run('debugfs', ['-R', `stat ${p}`, img]))![1]);
    const a = blockOf('/a.txt');
    const tiny = blockOf('/tiny');
    const bs = Number(/Block size:\s+(\d+)/.exec(run('dumpe2fs', ['-h', img]))![1]);
    const first = join(work, 'j-first');
    const second = join(work, 'j-second');
    writeFileSync(second, Buffer.concat([Buffer.from('SECOND'), Buffer.alloc(2 * bs - 6)]));
    writeFileSync(first, Buffer.concat([Buffer.from('FIRST!'), Buffer.alloc(bs - 6)]));
    // Three transactions written by debugfs into the journal, left for recovery: a.txt's block twice
    // (the later copy wins), tiny's block once and then revoked (its copy must not be replayed).
    debugfsWrite(img, ['jo', `jw -b ${a},${tiny} ${second}`, `jw -b ${a} ${first}`, `jw -r ${tiny}`, 'jc']);
    assert.match(run('dumpe2fs', ['-h', img]), /needs_recovery/);
    const replayedByFsck = join(work, 'journal-fsck.img');
    writeFileSync(replayedByFsck, readFileSync(img));
    // Replay only: a full check would also rebuild directories and change more than the journal says.
    run('e2fsck', ['-E', 'journal_only', '-y', replayedByFsck]);
    const before = readFileSync(img);
    const ours = await withFs(img, async (fs) => {
      assert.ok(fs.warnings.some((w) => /replayed 3 transactions/.test(w)), fs.warnings.join('\n'));
      return walkVolume(fs);
    });
    const theirs = await withFs(replayedByFsck, async (fs) => walkVolume(fs));
    assert.equal(ours.get('/a.txt')!.sha, theirs.get('/a.txt')!.sha);
    assert.equal(run('debugfs', ['-R', 'cat /a.txt', replayedByFsck]), 'FIRST!');
    assert.deepEqual([...ours.keys()], [...theirs.keys()]);
    for (const [path, s] of theirs) assert.deepEqual(ours.get(path), s, path);
    assert.ok(readFileSync(img).equals(before), 'the image is not changed');
  });

  test('a metadata_csum mismatch is a warning naming the inode, as e2fsck finds it', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'csum.img');
    mkfs(img, ['-t', 'ext4', '-O', 'metadata_csum', '-I', '256'], 16);
    let ino = 0;
    let at = 0;
    await withFs(img, async (fs) => {
      assert.deepEqual(fs.warnings, []);
      ino = (await fs.stat('/a.txt')).ino;
    });
    // Where the inode lies, from debugfs (imap), then one byte of i_version (osd1) flipped.
    const imap = run('debugfs', ['-R', `imap <${ino}>`, img]);
    const m = /located at block (\d+), offset 0x([0-9a-f]+)/.exec(imap)!;
    const bs = Number(/Block size:\s+(\d+)/.exec(run('dumpe2fs', ['-h', img]))![1]);
    at = Number(m[1]) * bs + parseInt(m[2], 16) + 0x24;
    const fd = openSync(img, 'r+');
    writeSync(fd, Buffer.from([0x5a]), 0, 1, at);
    closeSync(fd);
    const fsck = spawnFsck(img);
    assert.match(fsck, new RegExp(`[Ii]node ${ino}.*checksum`), 'e2fsck sees the mismatch');
    await withFs(img, async (fs) => {
      const st = await fs.stat('/a.txt');
      assert.equal(st.size, 6);
      assert.ok(fs.warnings.some((w) => w.includes(`inode ${ino}: checksum mismatch`)), fs.warnings.join('\n'));
    });
    const r = vdisk(['cat', img, '/a.txt']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    assert.match(r.stderr, new RegExp(`^vdisk: warning: ${img}: ext4 inode ${ino}: checksum mismatch`, 'm'));
  });

  test('damaged maps end quickly: a size past 2^32 blocks, a triple-indirect pointer reusing the indirect block', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'maps.img');
    mkfs(img, ['-t', 'ext2', '-b', '1024'], 16);
    // The indirect block made to point at itself 256 times, and the double-indirect pointer at it too:
    // 65,536 logical blocks mapped from a file that owns about 300.
    const ind = Number(/\(IND\):(\d+)/.exec(run('debugfs', ['-R', 'stat /random.bin', img]))![1]);
    const self = Buffer.alloc(1024);
    for (let i = 0; i < 256; i++) self.writeUInt32LE(ind, i * 4);
    const fd = openSync(img, 'r+');
    writeSync(fd, self, 0, 1024, ind * 1024);
    closeSync(fd);
    debugfsWrite(img, ['sif /multi.bin size 0xDF000000000002', `sif /random.bin block[DIND] ${ind}`, 'sif /random.bin size 0x1000000000']);
    await withFs(img, async (fs) => {
      const started = Date.now();
      await assert.rejects(fs.stat('/multi.bin'), (e: VdiskError) => e.code === 'CORRUPT' && /size \d+ exceeds the largest possible file/.test(e.message));
      const f = await fs.open('/random.bin');
      await assert.rejects(f.dataRanges!(), (e: VdiskError) => e.code === 'CORRUPT' && /maps more blocks than the \d+ it owns/.test(e.message));
      assert.ok(Date.now() - started < 5000, 'ends within seconds');
    });
  });

  test('large files and many blocks read back exactly (extents across several blocks)', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const tree = join(work, 'frag-src');
    rmSync(tree, { recursive: true, force: true });
    run('mkdir', ['-p', tree]);
    const data = bytes(6 * MiB + 123, 23);
    writeFileSync(join(tree, 'big'), data);
    const img = join(work, 'frag.img');
    mkfs(img, ['-t', 'ext4', '-b', '1024'], 16, tree);
    await withFs(img, async (fs) => {
      const f = await fs.open('/big');
      // Odd offsets and lengths straddle block and extent boundaries.
      for (const [pos, len] of [[0, 1], [1023, 2], [777_777, 333_333], [6 * MiB - 5, 200], [6 * MiB + 122, 10]]) {
        const buf = Buffer.alloc(len);
        const n = await f.read(buf, pos);
        assert.equal(n, Math.min(len, data.length - pos));
        assert.ok(buf.subarray(0, n).equals(data.subarray(pos, pos + n)), `read at ${pos}`);
      }
    });
  });
});

/** e2fsck -fn's report (it exits non-zero when it finds something). */
function spawnFsck(img: string): string {
  const r = spawnSync('e2fsck', ['-fn', img], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  return r.stdout + r.stderr;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const TYPE_CHAR: Record<number, string> = { 0o100000: '-', 0o040000: 'd', 0o120000: 'l', 0o010000: 'p', 0o020000: 'c', 0o060000: 'b', 0o140000: 's' };

/** `ls -l`'s mode string, computed from debugfs's octal mode (independently of our formatter). */
function modeString(mode: number): string {
  const bit = (m: number, c: string) => (mode & m ? c : '-');
  const x = (m: number, special: number, lower: string, upper: string) => (mode & special ? (mode & m ? lower : upper) : bit(m, 'x'));
  return TYPE_CHAR[mode & 0o170000] + bit(0o400, 'r') + bit(0o200, 'w') + x(0o100, 0o4000, 's', 'S') + bit(0o40, 'r') + bit(0o20, 'w') +
    x(0o10, 0o2000, 's', 'S') + bit(0o4, 'r') + bit(0o2, 'w') + x(0o1, 0o1000, 't', 'T');
}

describe('the CLI over ext volumes', () => {
  test('vdisk ls -l agrees with debugfs ls -l and stat', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const img = join(work, 'cli-ls.img');
    mkfs(img, ['-t', 'ext4'], 32);
    for (const dir of ['/', '/d1', '/ünïcödé']) {
      const r = vdisk(['ls', '-l', img, dir]);
      assert.equal(r.code, 0, r.stderr);
      const ino = Number(/Inode: (\d+)/.exec(run('debugfs', ['-R', `stat "${dir}"`, img]))![1]);
      const rows = debugfsLs(img, ino);
      const links = debugfsStats(img, rows.map((x) => x.ino));
      const lines = r.stdout.trim().split('\n');
      assert.equal(lines.length, rows.length, r.stdout);
      for (const row of rows) {
        const d = /^(\d+)-(\w+)-(\d+) (\d+:\d+)$/.exec(run('debugfs', ['-R', `ls -l <${ino}>`, img]).split('\n')
          .find((l) => l.trim().startsWith(`${row.ino} `))!.match(/\d+-\w+-\d+ \d+:\d+/)![0])!;
        const date = `${d[3]}-${String(MONTHS.indexOf(d[2]) + 1).padStart(2, '0')}-${d[1]} ${d[4]}`;
        const st = links.get(row.ino)!;
        // Device nodes show "major, minor" where the size goes.
        const size = [0o020000, 0o060000].includes(row.mode & 0o170000) ? null : String(row.size);
        const line = lines.find((l) => l.endsWith(` ${row.name}`) || l.includes(` ${row.name} -> `));
        assert.ok(line, `${dir}: ${row.name} listed`);
        const m = /^(\S{10}) +(\d+) +(\d+) +(\d+) +(\d+(?:, +\d+)?) (\S+ \S+) /.exec(line!)!;
        assert.equal(m[1], modeString(row.mode), `${row.name}: mode`);
        assert.deepEqual([+m[2], +m[3], +m[4]], [st.links, row.uid, row.gid], `${row.name}: links, owner`);
        if (size !== null) assert.equal(m[5], size, `${row.name}: size`);
        assert.equal(m[6], date, `${row.name}: mtime`);
      }
    }
  });

  test('vdisk get of the whole tree equals the source: contents, modes, owners, times, links, holes', async (t) => {
    if (!needPeers(t, ...PEERS, 'sfdisk', 'qemu-img', 'diff')) return;
    for (const [label, args] of [['inline', ['-t', 'ext4', '-O', 'inline_data,^has_journal']], ['ext3', ['-t', 'ext3']]] as const) {
      const img = join(work, `cli-get-${label}.img`);
      mkfs(img, [...args], 32);
      const vhdx = join(work, `cli-get-${label}.vhdx`);
      rmSync(vhdx, { force: true });
      run('qemu-img', ['convert', '-O', 'vhdx', img, vhdx]);
      const dest = join(work, `cli-get-${label}`);
      rmSync(dest, { recursive: true, force: true });
      const r = vdisk(['get', vhdx, '/', dest]);
      assert.equal(r.code, 0, r.stderr);
      // get skips FIFOs and device nodes, with a warning for each.
      assert.match(r.stderr, /fifo/);
      assert.match(r.stderr, /null-dev/);
      const diffs = compareTrees(src, dest, { modes: true, owners: true, mtimeMs: 999.999, hardlinks: true, ignore: ['lost+found'] })
        .filter((l) => !/^(fifo|null-dev): missing in copy$/.test(l));
      assert.deepEqual(diffs, []);
      const plain = diffTrees(src, dest).split('\n').filter((l) => l && !/^Only in .*: (fifo|null-dev|lost\+found)$/.test(l) && !/^File .*(fifo|null-dev) is a /.test(l));
      assert.deepEqual(plain, []);
      assert.ok(allocatedBytes(join(dest, 'sparse-head')) < 64 * 1024, 'sparse-head stayed sparse');
    }
  });
});

/** Name characters from several scripts (and spaces, dots, dashes); '/' and NUL cannot occur in names. */
const NAME_CHARS = [...'abcXYZ019 ._-éßÆøĳ', ...'жЖщЯ', ...'αΩλ', ...'日本語中文한국', ...'عربي', ...'עברית', ...'देव', ...'🎉😀'];
const nameArb = fc.array(fc.constantFrom(...NAME_CHARS), { minLength: 1, maxLength: 30 })
  .map((cs) => cs.join(''))
  .filter((n) => n !== '.' && n !== '..' && n !== 'lost+found' && Buffer.byteLength(n) <= 255);
const entryArb = fc.record({
  dirs: fc.array(nameArb, { maxLength: 7 }),
  name: nameArb,
  kind: fc.constantFrom('file', 'empty', 'sparse', 'dir', 'symlink'),
  size: fc.integer({ min: 1, max: 200_000 }),
  hole: fc.integer({ min: 1, max: 3 * MiB }),
  seed: fc.integer({ min: 1, max: 1 << 30 }),
});

describe('random trees round-trip through mkfs.ext4 -d and the reader', () => {
  test('names in many scripts, empty and sparse files, deep paths', async (t) => {
    if (!needPeers(t, ...PEERS)) return;
    const variants = [['-t', 'ext4'], ['-t', 'ext4', '-O', 'inline_data,^has_journal'], ['-t', 'ext2'], ['-t', 'ext4', '-b', '1024', '-O', 'metadata_csum,64bit']];
    let runs = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 25 }), fc.nat(), async (entries, which) => {
        const root = join(work, `prop-${runs++}`);
        rmSync(root, { recursive: true, force: true });
        mkdirSync(root);
        for (const e of entries) {
          const path = entryPath(root, e.dirs, e.name);
          if (path === null) continue;
          if (e.kind === 'dir') mkdirSync(path);
          else if (e.kind === 'empty') writeFileSync(path, '');
          else if (e.kind === 'file') writeFileSync(path, bytes(e.size, e.seed));
          else if (e.kind === 'symlink') symlinkSync(e.dirs.concat(e.name).join('/'), path);
          else writeHoleyFile(path, e.size, e.hole, e.seed);
        }
        const img = `${root}.img`;
        mkfs(img, variants[which % variants.length], 32, root);
        await withFs(img, async (fs) => compareWithSource(await walkVolume(fs), root));
        rmSync(root, { recursive: true, force: true });
        rmSync(img);
      }),
      { numRuns: 12 },
    );
  });
});
