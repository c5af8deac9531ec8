import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { closeSync, copyFileSync, lstatSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { needPeers, tempDir, vdisk, sh, sha256 } from './helpers/peers.js';
import { compareTrees, withFs } from './helpers/fs-tree.js';
import { makeSquashTree, sourceXattrs, unsquashfsListing, walkSquash, SPECIALS, type SqWalked } from './helpers/squashfs.js';
import { SquashfsReader } from '../src/filesystems/squashfs/reader.js';
import { decompressorFor } from '../src/filesystems/squashfs/compression.js';
import { VdiskError } from '../src/errors.js';

/** Ours against `unsquashfs -lln`: the same paths, and per path type, permissions, owners, size, mtime, target, device. */
function assertAgreesWithUnsquashfs(ours: Map<string, SqWalked>, img: string): void {
  const theirs = unsquashfsListing(img);
  assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort(), 'the same paths as unsquashfs lists');
  for (const [p, t] of theirs) {
    const o = ours.get(p) as SqWalked;
    assert.equal(o.type, t.type, `${p}: type`);
    assert.equal(o.perms.toString(8), t.perms.toString(8), `${p}: permissions`);
    assert.equal(`${o.uid}/${o.gid}`, `${t.uid}/${t.gid}`, `${p}: owner`);
    assert.equal(o.mtime, t.mtime, `${p}: mtime`);
    assert.equal(o.target, t.target, `${p}: symlink target`);
    // unsquashfs 4.5 decodes device numbers past 255 with the old 8-bit split; the source has the truth there.
    if (t.rdev === undefined) assert.equal(o.size, t.size, `${p}: size`);
    else if (p !== '/blockdev') assert.equal(o.rdev, t.rdev, `${p}: device`);
  }
}

/** Ours against the source tree: contents, link counts, hard links as one inode, xattrs, devices. */
function assertMatchesSource(ours: Map<string, SqWalked>, src: string, xattrs: boolean): void {
  const sx = sourceXattrs(src);
  const inodes = new Map<number, number>();
  for (const [p, o] of ours) {
    const st = lstatSync(join(src, p));
    if (o.type === 'file') {
      assert.ok(o.read?.equals(readFileSync(join(src, p))), `${p}: contents`);
      assert.equal(o.nlink, st.nlink, `${p}: links`);
      if (st.nlink > 1) {
        const seen = inodes.get(st.ino);
        if (seen === undefined) inodes.set(st.ino, o.ino);
        else assert.equal(o.ino, seen, `${p}: one inode for its hard links`);
      }
    }
    if (o.type === 'block' || o.type === 'char') {
      const dev = sh('stat', ['-c', '%Hr,%Lr', join(src, p)]).trim();
      assert.equal(o.rdev, dev, `${p}: device numbers`);
    }
    if (xattrs) assert.deepEqual(o.xattrs, sx.get(p) ?? {}, `${p}: xattrs as getfattr shows the source's`);
    else assert.deepEqual(o.xattrs, {}, `${p}: no xattrs (-no-xattrs)`);
  }
}

describe('squashfs reader against unsquashfs, 7-Zip and the source tree', () => {
  let dir: string;
  let src: string;
  before(() => {
    dir = tempDir({ after: (fn) => process.on('exit', fn) }, 'vdisk-squashfs-');
    src = join(dir, 'src');
    mkdirSync(src);
    makeSquashTree(src);
  });

  const variants: [string, string[]][] = [
    ['gzip', ['-comp', 'gzip']],
    ['zstd-4k', ['-comp', 'zstd', '-b', '4K']],
    ['lz4-1m', ['-comp', 'lz4', '-b', '1M']],
    ['lz4hc-no-fragments', ['-comp', 'lz4', '-Xhc', '-no-fragments']],
    ['zstd-always-fragments', ['-comp', 'zstd', '-always-use-fragments', '-b', '64K']],
    ['uncompressed-nopad', ['-noI', '-noD', '-noF', '-noX', '-nopad']],
    ['gzip-no-xattrs-no-duplicates', ['-comp', 'gzip', '-no-xattrs', '-no-duplicates', '-b', '8K']],
    ['lzo-999', ['-comp', 'lzo', '-b', '16K']],
    ['lzo1x_1', ['-comp', 'lzo', '-Xalgorithm', 'lzo1x_1']],
    ['xz', ['-comp', 'xz']],
    ['xz-1m-dict8k', ['-comp', 'xz', '-b', '1M', '-Xdict-size', '8K']],
  ];
  for (const [label, opts] of variants) {
    test(`mksquashfs ${opts.join(' ')}: every path as unsquashfs -lln lists it; contents, links, devices and xattrs as the source has them`, async (t) => {
      if (!needPeers(t, 'mksquashfs', 'unsquashfs', 'getfattr')) return;
      const img = join(dir, `${label}.sqfs`);
      sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', ...opts]);
      const before = await sha256(img);
      const ours = await withFs(img, async (fs) => {
        assert.equal(fs.type, 'squashfs');
        const r = fs.reader as SquashfsReader;
        const sb = sh('unsquashfs', ['-s', img]);
        assert.equal(r.blockSize, Number(/Block size (\d+)/.exec(sb)?.[1]), 'block size as unsquashfs -s says');
        assert.equal(r.superblock.bytesUsed, Number(/Filesystem size (\d+) bytes/.exec(sb)?.[1]), 'bytes used as unsquashfs -s says');
        // squashfs is packed: only the end past bytes_used (and mksquashfs' padding) is free.
        const free = [];
        for await (const e of fs.freeExtents()) free.push(e);
        const size = statSync(img).size;
        const end = Math.ceil(r.superblock.bytesUsed / 4096) * 4096;
        assert.deepEqual(free, end < size ? [{ offset: end, length: size - end }] : []);
        return walkSquash(fs);
      });
      assertAgreesWithUnsquashfs(ours, img);
      assertMatchesSource(ours, src, !opts.includes('-no-xattrs'));
      // Sparse files: whole zero blocks are holes, as mksquashfs stored them.
      await withFs(img, async (fs) => {
        const f = await fs.open('/sparse');
        const ranges = await f.dataRanges?.();
        const bs = (fs.reader as SquashfsReader).blockSize;
        // Its middle is a whole block of zeros for blocks of up to 512 KiB.
        if (bs <= 512 * 1024) assert.ok(ranges && ranges.length >= 2, `/sparse has holes: ${JSON.stringify(ranges)}`);
        // mksquashfs finds zero blocks in tails too: nothing of /allzero is stored.
        assert.deepEqual(await (await fs.open('/allzero')).dataRanges?.(), [], '/allzero is all hole');
      });
      assert.equal(await sha256(img), before, 'the image is unchanged');
    });
  }

  test('vdisk get -p and tar copy the tree as the source has it, and as unsquashfs -d extracts it; ls -l, ls --output json and cat agree with unsquashfs', async (t) => {
    if (!needPeers(t, 'mksquashfs', 'unsquashfs', 'tar')) return;
    const img = join(dir, 'cli.sqfs');
    sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', 'zstd']);
    const out = join(dir, 'get');
    const r = vdisk(['get', '-p', img, '/', out]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(compareTrees(src, out, { modes: true, owners: true, mtimeMs: 0, hardlinks: true, ignore: SPECIALS }), []);
    const theirs = join(dir, 'unsquashfs-d');
    sh('unsquashfs', ['-q', '-no-progress', '-d', theirs, img]);
    assert.deepEqual(compareTrees(theirs, out, { modes: true, owners: true, mtimeMs: 0, hardlinks: true, ignore: SPECIALS }), []);
    // vdisk tar, unpacked by GNU tar: the same tree, fifo, socket-less (tar has no sockets) and devices included.
    const tarOut = join(dir, 'tar');
    mkdirSync(tarOut);
    const tr = vdisk(['tar', img, '/']);
    assert.equal(tr.code, 0, tr.stderr);
    sh('tar', ['-x', '-p', '--numeric-owner', '-C', tarOut], tr.stdoutBytes);
    assert.deepEqual(compareTrees(src, tarOut, { modes: true, owners: true, mtimeMs: 0, hardlinks: true, ignore: ['socket'] }), []);
    assert.ok(lstatSync(join(tarOut, 'chardev')).isCharacterDevice());

    // ls -l of the root, line by line against unsquashfs -lln.
    const listing = unsquashfsListing(img);
    const ls = vdisk(['ls', '-l', img, '/']);
    assert.equal(ls.code, 0, ls.stderr);
    const lines = ls.stdout.trim().split('\n');
    const top = [...listing.keys()].filter((p) => /^\/[^/]+$/.test(p));
    assert.equal(lines.length, top.length);
    for (const line of lines) {
      const m = /^(\S{10}) +(\d+) +(\d+) +(\d+) +(\d+(?:, +\d+)?) (\d{4}-\d\d-\d\d \d\d:\d\d) (.*?)(?: -> (.*))?$/.exec(line);
      assert.ok(m, line);
      const u = listing.get(`/${m[7]}`);
      assert.ok(u, `${m[7]} is in unsquashfs's listing`);
      assert.equal(`${m[3]}/${m[4]}`, `${u.uid}/${u.gid}`, line);
      assert.equal(m[6], u.mtime, line);
      if (u.size !== undefined) assert.equal(Number(m[5]), u.size, line);
      if (u.target !== undefined) assert.equal(m[8], u.target, line);
    }
    const json = JSON.parse(vdisk(['ls', '--output', 'json', img, '/docs']).stdout) as { path: string; size: number; uid: number; mtime: string; nlink: number }[];
    for (const e of json) {
      const u = listing.get(e.path);
      assert.ok(u, e.path);
      assert.equal(e.size, u.size, e.path);
      assert.equal(e.uid, u.uid, e.path);
      assert.equal(e.mtime.slice(0, 16).replace('T', ' '), u.mtime, e.path);
    }
    assert.equal(json.find((e) => e.path === '/docs/hardlink.txt')?.nlink, 2);
    for (const p of ['/data.bin', '/sparse', '/text.txt', '/many/entry-0399-' + 'x'.repeat(399 % 40)]) {
      const c = vdisk(['cat', img, p]);
      assert.equal(c.code, 0, c.stderr);
      assert.ok(c.stdoutBytes.equals(execFileSync('unsquashfs', ['-cat', img, p.slice(1)], { maxBuffer: 64 * 1024 * 1024 })), `${p}: cat as unsquashfs -cat`);
    }
  });

  test('7-Zip lists the same paths and file sizes, and extracts the same bytes', async (t) => {
    if (!needPeers(t, 'mksquashfs', '7zz')) return;
    const img = join(dir, '7z.sqfs');
    sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', 'gzip', '-b', '16K']);
    const seven = new Map<string, number>();
    for (const m of sh('7zz', ['l', '-slt', img]).matchAll(/Path = (.*)\nFolder = ([-+])\nSize = (\d*)/g)) seven.set(`/${m[1]}`, m[2] === '+' ? -1 : Number(m[3]));
    const ours = await withFs(img, (fs) => walkSquash(fs, false));
    assert.deepEqual([...ours.keys()].filter((p) => p !== '/').sort(), [...seven.keys()].sort());
    for (const [p, size] of seven) if (ours.get(p)?.type === 'file') assert.equal(ours.get(p)?.size, size, p);
    const x = join(dir, '7z-x');
    sh('7zz', ['x', '-y', `-o${x}`, img, 'data.bin', 'sparse', 'text.txt']);
    await withFs(img, async (fs) => {
      for (const n of readdirSync(x)) {
        const f = await fs.open(`/${n}`);
        const buf = Buffer.alloc(f.size);
        await f.read(buf, 0);
        assert.ok(buf.equals(readFileSync(join(x, n))), `${n}: as 7-Zip extracts it`);
      }
    });
  });

  test('inside a VHDX, and in a GPT partition of one, the tree reads the same; the partition past the image is free', async (t) => {
    if (!needPeers(t, 'mksquashfs', 'qemu-img', 'sfdisk')) return;
    const img = join(dir, 'v.sqfs');
    sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', 'lz4']);
    const raw = await withFs(img, (fs) => walkSquash(fs));
    const vhdx = join(dir, 'v.vhdx');
    sh('qemu-img', ['convert', '-O', 'vhdx', img, vhdx]);
    assert.deepEqual(await withFs(vhdx, (fs) => walkSquash(fs)), raw);

    const disk = join(dir, 'gpt.raw');
    const size = statSync(img).size;
    const start = 2048;
    const sectors = Math.ceil(size / 512) + 2048;
    sh('truncate', ['-s', String((start + sectors + 2048) * 512), disk]);
    sh('sfdisk', ['-q', disk], Buffer.from(`label: gpt\nstart=${start}, size=${sectors}\n`));
    const fd = openSync(disk, 'r+');
    writeSync(fd, readFileSync(img), 0, size, start * 512);
    closeSync(fd);
    const gptVhdx = join(dir, 'gpt.vhdx');
    sh('qemu-img', ['convert', '-O', 'vhdx', disk, gptVhdx]);
    assert.deepEqual(await withFs(gptVhdx, (fs) => walkSquash(fs), 1), raw);
    await withFs(gptVhdx, async (fs) => {
      const free = [];
      for await (const e of fs.freeExtents()) free.push(e);
      assert.deepEqual(free, [{ offset: size, length: sectors * 512 - size }]);
    }, 1);
    const r = vdisk(['cat', '-P', '1', gptVhdx, '/data.bin']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(readFileSync(join(src, 'data.bin'))));
    const md = vdisk(['mount-detect', gptVhdx]);
    assert.match(md.stdout, /squashfs/);
  });

  test('xz with the x86 BCJ filter (archiso\'s -Xbcj x86) reads as the source; ARM BCJ and lzma are refused in one line naming them; an uncompressed lzma image still reads', async (t) => {
    if (!needPeers(t, 'mksquashfs', 'xz')) return;
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    // x86 code, where mksquashfs -Xbcj x86 finds the filter pays.
    const bash = sh('sh', ['-c', 'command -v bash']).trim();
    copyFileSync(bash, join(bin, 'bash'));
    const bcj = join(dir, 'bcj.sqfs');
    sh('mksquashfs', [bin, bcj, '-quiet', '-noappend', '-no-progress', '-comp', 'xz', '-Xbcj', 'x86', '-b', '1M', '-Xdict-size', '1M']);
    const r = vdisk(['cat', bcj, '/bash']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(readFileSync(bash)), 'bash as it went in');
    // ARM BCJ, as xz --arm writes it, is refused by name; x86 BCJ as xz --x86 writes it decodes.
    const armed = execFileSync('xz', ['--format=xz', '--check=crc32', '--arm', '--lzma2', '-c', bash], { maxBuffer: 64 * 1024 * 1024 });
    const out = Buffer.alloc(statSync(bash).size);
    assert.throws(() => decompressorFor(4, 'arm.sqfs')(armed, out.length), (err: unknown) => err instanceof VdiskError && err.code === 'UNSUPPORTED' &&
      err.message === 'arm.sqfs: squashfs block compressed with the xz filter ARM BCJ, which cannot be read');
    const x86 = execFileSync('xz', ['--format=xz', '--check=crc32', '--x86', '--lzma2', '-c', bash], { maxBuffer: 64 * 1024 * 1024 });
    assert.ok((await decompressorFor(4, 'x86.sqfs')(x86, out.length)).equals(readFileSync(bash)), 'xz --x86 as xz wrote it');

    const small = join(dir, 'small');
    mkdirSync(small);
    writeFileSync(join(small, 'f'), 'x'.repeat(100000));
    // lzma (compressor 2) is what mksquashfs no longer writes: the superblock's field changed by hand.
    for (const [name, opts] of [['lzma.sqfs', []], ['lzma-plain.sqfs', ['-noI', '-noD', '-noF', '-noX', '-noId']]] as const) {
      const img = join(dir, name);
      sh('mksquashfs', [small, img, '-quiet', '-noappend', '-no-progress', '-comp', 'gzip', ...opts]);
      const b = readFileSync(img);
      b.writeUInt16LE(2, 20);
      writeFileSync(img, b);
    }
    const lz = vdisk(['cat', join(dir, 'lzma.sqfs'), '/f']);
    assert.notEqual(lz.code, 0);
    assert.match(lz.stderr, /^vdisk: .*lzma\.sqfs: squashfs compressed with lzma cannot be read \(gzip, lz4, lzo, xz and zstd can\)\n$/);
    const c = vdisk(['cat', join(dir, 'lzma-plain.sqfs'), '/f']);
    assert.equal(c.code, 0, c.stderr);
    assert.equal(c.stdout, 'x'.repeat(100000));
  });

  test('a truncated image is refused in one line naming bytes_used', async (t) => {
    if (!needPeers(t, 'mksquashfs')) return;
    const img = join(dir, 'trunc.sqfs');
    sh('mksquashfs', [join(src, 'docs'), img, '-quiet', '-noappend', '-no-progress']);
    const cut = join(dir, 'cut.sqfs');
    writeFileSync(cut, readFileSync(img).subarray(0, 4096 * 2 > statSync(img).size ? 200 : 8192));
    await assert.rejects(withFs(cut, async () => undefined), (err: unknown) => {
      assert.ok(err instanceof VdiskError);
      return true;
    });
    const r = vdisk(['ls', cut, '/']);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.split('\n').length, 2, r.stderr);
  });
});
