import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, mkdtempSync, rmSync, readFileSync, writeFileSync, openSync, writeSync, closeSync, lstatSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { spawnSync } from 'node:child_process';
import { needPeers, havePeer, vdisk } from './helpers/peers.js';
import { compareTrees, diffTrees, allocatedBytes, withFs } from './helpers/fs-tree.js';
import { bytes, makeTree, run, walkVolume } from './helpers/ext.js';
import {
  buildXfs, compareWithKernel, compareWithProto, mkfsXfs, protofile, needMount, walkKernel, withMount, xfsDbFree, xfsDbInode, xfsDbSb, XFS_PEERS,
} from './helpers/xfs.js';
import { Filesystem, openImage } from '../src/index.js';
import { XfsReader } from '../src/filesystems/xfs/reader.js';
import { VdiskError } from '../src/errors.js';
import { countingVolume } from './helpers/memory.js';

const MiB = 1024 * 1024;

let work = '';
let src = '';
before(() => {
  if (!XFS_PEERS.every(havePeer)) return;
  work = mkdtempSync(join(tmpdir(), 'vdisk-xfs-'));
  src = join(work, 'src');
  makeTree(src);
  process.on('exit', () => rmSync(work, { recursive: true, force: true }));
});

/** xfs_db's bmap of an inode: [file block, count, unwritten] per extent of the data fork. */
function bmap(img: string, ino: number): [number, number, boolean][] {
  return run('xfs_db', ['-r', '-c', `inode ${ino}`, '-c', 'bmap', img]).split('\n')
    .map((l) => /data offset (\d+) startblock \d+ \(\d+\/\d+\) count (\d+) flag (\d)/.exec(l))
    .filter((m): m is RegExpExecArray => m !== null).map((m) => [+m[1], +m[2], m[3] === '1']);
}

async function freeList(fs: Filesystem): Promise<{ offset: number; length: number }[]> {
  const out: { offset: number; length: number }[] = [];
  for await (const r of fs.freeExtents()) out.push(r);
  return out;
}

interface Variant {
  name: string;
  args: string[];
  size: number;
  blockSize: number;
  /** Fewer entries in the leaf and node directories (enough for their formats at this block size). */
  small?: boolean;
}

const VARIANTS: Variant[] = [
  { name: 'v5 (crc, ftype, bigtime, sparse inodes): the mkfs defaults', args: [], size: 64, blockSize: 4096 },
  { name: 'v5 with 1 KiB blocks, 8 KiB directory blocks and 64-bit extent counts', args: ['-b', 'size=1024', '-n', 'size=8192', '-i', 'nrext64=1'], size: 64, blockSize: 1024 },
  { name: 'v5 without bigtime, 2 KiB blocks and 1 KiB inodes', args: ['-b', 'size=2048', '-i', 'size=1024', '-m', 'bigtime=0'], size: 64, blockSize: 2048, small: true },
];

const V4_VARIANTS: Variant[] = [
  { name: 'v4 without ftype (directory entries without types), filled by a protofile', args: ['-m', 'crc=0', '-n', 'ftype=0'], size: 32, blockSize: 4096 },
  { name: 'v4 with ftype, 1 KiB blocks, filled by a protofile', args: ['-m', 'crc=0', '-n', 'ftype=1', '-b', 'size=1024'], size: 32, blockSize: 1024 },
];

describe('xfs reader against the kernel, xfs_db and xfs_repair', () => {
  for (const v of VARIANTS) {
    test(v.name, async (t) => {
      if (!needPeers(t, ...XFS_PEERS) || !needMount(t)) return;
      const img = join(work, `${v.name.replace(/\W+/g, '-').slice(0, 40)}.img`);
      buildXfs(img, v.size, v.args, src, join(work, 'mnt'), v.small ? 'small' : 'full');
      if (v === VARIANTS[0]) writeFileSync(join(work, 'first.img'), readFileSync(img));
      const kernel = withMount(img, join(work, 'mnt'), walkKernel);
      const sb = xfsDbSb(img);
      await withFs(img, async (fs) => {
        assert.equal(fs.type, 'xfs');
        assert.deepEqual(fs.warnings, []);
        assert.equal(fs.reader.blockSize, v.blockSize);
        const seen = await walkVolume(fs);
        compareWithKernel(seen, kernel);
        t.diagnostic(`${seen.size} paths compared with the kernel's`);
        // The fixture holds what it claims: a btree-format file, a node directory, an unwritten extent.
        const ino = (p: string) => seen.get(p)!.stats.ino;
        assert.equal(xfsDbInode(img, ino('/frag-a'), 'core.format'), '3 (btree)');
        assert.ok(bmap(img, ino('/nodedir')).some(([off]) => off * v.blockSize >= 2 ** 36), 'nodedir has a free-index block (node format)');
        assert.ok(bmap(img, ino('/prealloc')).some(([, , u]) => u), 'prealloc has unwritten extents');
        assert.equal(xfsDbInode(img, ino('/remote-link'), 'core.format'), '2 (extents)', 'remote-link keeps its target in a block');
        // Attributes in a leaf block; with smaller blocks they overflow it into a dabtree (a node block first).
        const attrRoot = run('xfs_db', ['-r', '-c', `inode ${ino('/attrs')}`, '-c', 'ablock 0', '-c', 'print hdr.info.hdr.magic', img]).trim();
        assert.equal(attrRoot, `hdr.info.hdr.magic = ${v.blockSize < 4096 ? '0x3ebe' : '0x3bee'}`, 'attrs: leaf or node attribute fork');
        // Data ranges: xfs_db's written extents, clipped to the size and merged.
        for (const p of ['/frag-a', '/prealloc', '/sparse-head', '/sparse-mid', '/multi.bin']) {
          const size = seen.get(p)!.stats.size;
          const want: { offset: number; length: number }[] = [];
          for (const [off, count, unwritten] of bmap(img, ino(p))) {
            if (unwritten || off * v.blockSize >= size) continue;
            const r = { offset: off * v.blockSize, length: Math.min(size, (off + count) * v.blockSize) - off * v.blockSize };
            const last = want[want.length - 1];
            if (last && last.offset + last.length === r.offset) last.length += r.length;
            else want.push(r);
          }
          assert.deepEqual(await (await fs.open(p)).dataRanges!(), want, `${p}: data ranges`);
        }
        assert.deepEqual(await freeList(fs), xfsDbFree(img, v.blockSize, +sb.agblocks), 'free space as xfs_db freesp lists it');
      });
      rmSync(img);
    });
  }

  for (const v of V4_VARIANTS) {
    test(v.name, async (t) => {
      // The kernel no longer mounts v4 (CONFIG_XFS_SUPPORT_V4): the source tree and xfs_db are the peers.
      if (!needPeers(t, ...XFS_PEERS)) return;
      const img = join(work, 'v4.img');
      const proto = join(work, 'v4.proto');
      writeFileSync(proto, protofile(src));
      mkfsXfs(img, v.size, [...v.args, '-p', proto]);
      run('xfs_repair', ['-n', img]);
      await withFs(img, async (fs) => {
        assert.deepEqual(fs.warnings, []);
        const seen = await walkVolume(fs);
        compareWithProto(seen, src);
        const many = seen.get('/many')!.stats.ino;
        assert.notEqual(xfsDbInode(img, many, 'core.format'), '1 (local)', 'many is a block or leaf directory');
        assert.deepEqual(await freeList(fs), xfsDbFree(img, v.blockSize, +xfsDbSb(img).agblocks), 'free space as xfs_db freesp lists it');
      });
    });
  }

  test('a VHDX holding the volume in a GPT partition: vdisk get, ls -l, ls --output json and cat against the kernel', async (t) => {
    if (!needPeers(t, ...XFS_PEERS, 'sfdisk', 'qemu-img', 'diff') || !needMount(t)) return;
    // The first variant's volume (the mkfs defaults), 64 MiB.
    const fsImg = join(work, 'first.img');
    const disk = join(work, 'disk.raw');
    rmSync(disk, { force: true });
    run('truncate', ['-s', `${72 * MiB}`, disk]);
    run('sh', ['-c', `printf 'label: gpt\\nstart=2048, size=${(64 * MiB) / 512}, type=L\\n' | sfdisk -q '${disk}'`]);
    run('dd', [`if=${fsImg}`, `of=${disk}`, 'bs=1M', 'seek=1', 'conv=notrunc,sparse', 'status=none']);
    const vhdx = join(work, 'disk.vhdx');
    rmSync(vhdx, { force: true });
    run('qemu-img', ['convert', '-O', 'vhdx', disk, vhdx]);
    const mnt = join(work, 'mnt');
    await withFs(vhdx, async (fs) => {
      assert.equal(fs.name, `${vhdx} partition 1`);
      compareWithKernel(await walkVolume(fs), withMount(fsImg, mnt, walkKernel));
      assert.deepEqual(await freeList(fs), xfsDbFree(fsImg, 4096, +xfsDbSb(fsImg).agblocks));
    }, 1);
    const dest = join(work, 'get');
    rmSync(dest, { recursive: true, force: true });
    const r = vdisk(['get', '-P', '1', vhdx, '/', dest]);
    assert.equal(r.code, 0, r.stderr);
    withMount(fsImg, mnt, (m) => {
      // get skips FIFOs and device nodes; 'past' keeps its 1950 mtime.
      const diffs = compareTrees(m, dest, { modes: true, owners: true, mtimeMs: 0.001, hardlinks: true })
        .filter((l) => !/^(fifo|null-dev): missing in copy$/.test(l));
      assert.deepEqual(diffs, []);
      const plain = diffTrees(m, dest).split('\n').filter((l) => l && !/^Only in .*: (fifo|null-dev)$/.test(l) && !/^File .*(fifo|null-dev) is a /.test(l));
      assert.deepEqual(plain, []);
      assert.ok(allocatedBytes(join(dest, 'sparse-head')) < 64 * 1024, 'sparse-head stayed sparse');
      for (const dir of ['/', '/nodedir']) {
        const ours = vdisk(['ls', '-l', '-P', '1', vhdx, dir]);
        assert.equal(ours.code, 0, ours.stderr);
        const theirs = run('ls', ['-ln', '--time-style=+%Y-%m-%d %H:%M', join(m, dir)], { TZ: 'UTC' }).split('\n').slice(1).filter(Boolean);
        const norm = (l: string) => l.replace(/ +/g, ' ').replace(/^(\S{10})[.+] /, '$1 ');
        assert.deepEqual(ours.stdout.trim().split('\n').map(norm).sort(), theirs.map(norm).sort(), `${dir}: ls -l`);
      }
      const json = vdisk(['ls', '--output', 'json', '-P', '1', vhdx, '/']);
      assert.equal(json.code, 0, json.stderr);
      for (const e of JSON.parse(json.stdout) as { name: string; ino: number; size: number; mtime: string }[]) {
        const st = lstatSync(join(m, e.name), { bigint: true });
        assert.equal(e.ino, Number(st.ino), `${e.name}: ino`);
        assert.equal(e.size, Number(st.size), `${e.name}: size`);
        // Floored: a time before 1970 has a negative count of seconds and a positive fraction.
        const ns = ((st.mtimeNs % 1_000_000_000n) + 1_000_000_000n) % 1_000_000_000n;
        const sec = (st.mtimeNs - ns) / 1_000_000_000n;
        assert.equal(e.mtime, `${new Date(Number(sec) * 1000).toISOString().slice(0, 19)}.${String(ns).padStart(9, '0')}Z`, `${e.name}: mtime`);
      }
      for (const p of ['/frag-a', '/prealloc']) {
        const c = vdisk(['cat', '-P', '1', vhdx, p]);
        assert.equal(c.code, 0, c.stderr);
        assert.ok(c.stdoutBytes.equals(readFileSync(join(m, p))), `${p}: cat`);
      }
    });
  });
});

/** A 32 MiB volume holding one file, made by mkfs.xfs -p (no mount). */
async function read1(fs: Filesystem, p: string): Promise<string> {
  const f = await fs.open(p);
  const b = Buffer.alloc(f.size);
  await f.read(b, 0);
  return b.toString();
}

function oneFileVolume(img: string, name: string, text: string, args: string[] = []): void {
  const dir = `${img}.src`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  writeFileSync(join(dir, name), text);
  writeFileSync(`${img}.proto`, protofile(dir));
  mkfsXfs(img, 32, [...args, '-p', `${img}.proto`]);
}

describe('a 1 TiB XFS (sparse file)', () => {
  test('a lookup reads only the blocks on its way; free space streams and equals xfs_db freesp', async (t) => {
    if (!needPeers(t, ...XFS_PEERS)) return;
    const dir = join(work, 'tebi-src');
    mkdirSync(join(dir, 'd1', 'd2', 'd3'), { recursive: true });
    writeFileSync(join(dir, 'd1', 'd2', 'd3', 'deep.txt'), 'deep\n');
    const img = join(work, 'tebi.img');
    rmSync(img, { force: true });
    run('truncate', ['-s', '1T', img]);
    writeFileSync(`${img}.proto`, protofile(dir));
    run('mkfs.xfs', ['-q', '-f', '-K', '-p', `${img}.proto`, img]);
    const image = await openImage(img);
    try {
      const { volume, count } = countingVolume(image);
      const fs = new Filesystem(await XfsReader.open(volume, { name: img }), img);
      assert.deepEqual(fs.warnings, []);
      assert.equal(await read1(fs, '/d1/d2/d3/deep.txt'), 'deep\n');
      // Superblock, AGI, a few log probes, then the inode and directory windows on the way.
      assert.ok(count.reads <= 60 && count.bytes <= 4 * MiB, `${count.reads} reads, ${count.bytes} bytes`);
      t.diagnostic(`${count.reads} reads, ${count.bytes} bytes`);
      const sb = xfsDbSb(img);
      assert.deepEqual(await freeList(fs), xfsDbFree(img, +sb.blocksize, +sb.agblocks));
    } finally {
      await image.close();
      rmSync(img);
    }
  });
});

describe('vdisk compact over XFS', () => {
  test('the blocks of a deleted file are given back; the tree reads the same and qemu-img check passes', async (t) => {
    if (!needPeers(t, ...XFS_PEERS, 'qemu-img') || !needMount(t)) return;
    const img = join(work, 'compact.img');
    mkfsXfs(img, 64);
    const mnt = join(work, 'mnt');
    withMount(img, mnt, (m) => {
      writeFileSync(join(m, 'kept.bin'), bytes(3 * MiB, 5));
      writeFileSync(join(m, 'gone.bin'), bytes(24 * MiB, 6));
      run('sync', []);
      rmSync(join(m, 'gone.bin'));
    }, true);
    // The deleted file's bytes stay on the volume: only the free-space map says they are free.
    const vhdx = join(work, 'compact.vhdx');
    rmSync(vhdx, { force: true });
    run('qemu-img', ['convert', '-O', 'vhdx', '-o', 'block_size=1M', img, vhdx]);
    const before = lstatSync(vhdx).size;
    const r = vdisk(['compact', '--output', 'json', vhdx]);
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout) as { blocksFree: number; volumesUsed: string[] };
    assert.deepEqual(report.volumesUsed, ['the disk (xfs)']);
    assert.ok(report.blocksFree >= 20, `${report.blocksFree} free blocks dropped`);
    assert.ok(lstatSync(vhdx).size < before - 20 * MiB, 'the file shrank');
    run('qemu-img', ['check', vhdx]);
    await withFs(vhdx, async (fs) => {
      const kernel = withMount(img, mnt, walkKernel);
      compareWithKernel(await walkVolume(fs), kernel);
    });
  });
});

describe('xfs states and refusals', () => {
  test('a log left dirty by a shutdown: a warning, the image read as last written; a clean log: none', async (t) => {
    if (!needPeers(t, ...XFS_PEERS) || !needMount(t)) return;
    const img = join(work, 'dirty.img');
    oneFileVolume(img, 'kept', 'kept\n');
    const mnt = join(work, 'mnt');
    withMount(img, mnt, (m) => {
      run('xfs_io', ['-f', '-c', 'pwrite -S 0x6c 0 7', '-c', 'fsync', join(m, 'logged')]);
      // Flush the log to disk, then stop the file system as a crash would: no unmount record.
      run('xfs_io', ['-x', '-c', 'shutdown -f', m]);
    }, true);
    const before = readFileSync(img);
    await withFs(img, async (fs) => {
      assert.ok(fs.warnings.some((w) => w.includes('the log was not replayed; recent changes may be missing')), fs.warnings.join('\n'));
      const f = await fs.open('/kept');
      const b = Buffer.alloc(f.size);
      await f.read(b, 0);
      assert.equal(b.toString(), 'kept\n');
    });
    assert.ok(readFileSync(img).equals(before), 'the image is not changed');
    // xfs_repair -n agrees the log needs replaying.
    const r = run('sh', ['-c', `xfs_repair -n '${img}' 2>&1; true`]);
    assert.match(r, /log/i);
    // Mounting replays the log; afterwards the volume is clean and the file is there.
    withMount(img, mnt, () => undefined, true);
    await withFs(img, async (fs) => {
      assert.deepEqual(fs.warnings, []);
      const f = await fs.open('/logged');
      const b = Buffer.alloc(f.size);
      await f.read(b, 0);
      assert.equal(b.toString(), 'lllllll');
    });
  });

  test('ASCII case-insensitive directories (-n version=ci) look names up as xfs_db does; others do not', async (t) => {
    if (!needPeers(t, ...XFS_PEERS)) return;
    const read = read1;
    for (const ci of [true, false]) {
      const img = join(work, `ci-${ci}.img`);
      oneFileVolume(img, 'ReadMe.TXT', 'folded\n', ci ? ['-n', 'version=ci'] : []);
      // xfs_db shows the feature as the superblock's ASCII-CI bit (0x4000).
      assert.equal((parseInt(/versionnum = 0x([0-9a-f]+)/.exec(run('xfs_db', ['-r', '-c', 'sb 0', '-c', 'print versionnum', img]))![1], 16) & 0x4000) !== 0, ci);
      await withFs(img, async (fs) => {
        assert.equal(fs.reader.caseInsensitive, ci);
        assert.equal(await read(fs, '/ReadMe.TXT'), 'folded\n');
        if (ci) assert.equal(await read(fs, '/readme.txt'), 'folded\n');
        else await assert.rejects(fs.open('/readme.txt'), (e: VdiskError) => e.code === 'NOT_FOUND');
      });
      // xfs_db's lookup (libxfs, the kernel's code; current kernels no longer mount ascii-ci) agrees.
      const peer = spawnSync('xfs_db', ['-r', '-c', 'path /readme.txt', '-c', 'stack', img], { encoding: 'utf8' });
      assert.equal(/inode \d+, dir inode/.test(peer.stdout), ci, peer.stdout + peer.stderr);
    }
  });

  test('an external log is not needed to read the volume', async (t) => {
    if (!needPeers(t, ...XFS_PEERS)) return;
    const img = join(work, 'extlog.img');
    const log = join(work, 'extlog.log');
    rmSync(log, { force: true });
    run('truncate', ['-s', '16M', log]);
    oneFileVolume(img, 'data', 'on the data device\n', ['-l', `logdev=${log},size=8m`]);
    assert.match(run('xfs_db', ['-r', '-l', log, '-c', 'sb 0', '-c', 'print logstart', img]), /logstart = 0/);
    await withFs(img, async (fs) => {
      assert.deepEqual(fs.warnings, []);
      assert.equal(await read1(fs, '/data'), 'on the data device\n');
    });
  });

  test('realtime files are refused in one line; stat still works', async (t) => {
    if (!needPeers(t, ...XFS_PEERS)) return;
    const img = join(work, 'rt.img');
    oneFileVolume(img, 'rtfile', 'realtime\n');
    const ino = Number(/(\d+)\s+regular\s+\S+\s+\d+ rtfile/.exec(run('xfs_db', ['-r', '-c', 'ls /', img]))![1]);
    // The realtime flag set by xfs_db (it recomputes the inode's crc).
    run('xfs_db', ['-x', '-c', `inode ${ino}`, '-c', 'write core.realtime 1', img]);
    assert.equal(xfsDbInode(img, ino, 'core.realtime'), '1');
    await withFs(img, async (fs) => {
      assert.ok((await fs.stat('/rtfile')).flags?.includes('realtime'));
      await assert.rejects(fs.open('/rtfile'), (e: VdiskError) => e.code === 'UNSUPPORTED' && /realtime device/.test(e.message) && !e.message.includes('\n'));
    });
    const r = vdisk(['cat', img, '/rtfile']);
    assert.equal(r.code, 1);
    assert.match(r.stderr.trim(), /^vdisk: .*realtime device[^\n]*$/);
  });
});
