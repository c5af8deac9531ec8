import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, readFileSync, writeFileSync, symlinkSync, linkSync, openSync, writeSync, closeSync } from 'node:fs';
import { execFileSync, spawnSync } from 'node:child_process';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk, sh, sha256 } from './helpers/peers.js';
import { noise } from './helpers/iso.js';
import { SquashfsReader, type SquashNode } from '../src/filesystems/squashfs/reader.js';
import { Filesystem } from '../src/filesystems/filesystem.js';
import { VdiskError } from '../src/errors.js';
import { memoryVolume } from './helpers/memory.js';
import { lz4DecodeBlock } from '../src/filesystems/squashfs/lz4.js';
import { lzoDecodeBlock } from '../src/filesystems/squashfs/lzo.js';
import { xzDecodeBlock } from '../src/filesystems/squashfs/xz.js';
import { editArbitrary, withTimeout } from './helpers/hostile-look.js';
import { FsGuard } from './helpers/fs-guard.js';

/** The largest read a reader may ask for: a 1 MiB data block (its stored form is never larger). */
const MAX_READ = 1024 * 1024;

/** Every operation a user can ask for: walk the whole tree, stat, readlink, xattrs, read every file (bounded), freeExtents. */
async function exercise(buf: Buffer): Promise<void> {
  const reader = await SquashfsReader.open(memoryVolume(buf, MAX_READ), { name: 'mutant.sqfs' });
  const fs = new Filesystem(reader, 'mutant.sqfs');
  const seen = new Set<number>();
  const pending: SquashNode[] = [await reader.root()];
  let entries = 0;
  while (pending.length) {
    const dir = pending.pop() as SquashNode;
    const st = await reader.stat(dir);
    if (seen.has(st.ino)) continue;
    seen.add(st.ino);
    await reader.xattrs(dir);
    for (const e of await reader.readdir(dir)) {
      if (++entries > 20000) throw new Error('more entries than the image can hold');
      const est = await reader.stat(e.node);
      await reader.xattrs(e.node);
      if (est.type === 'directory') pending.push(e.node);
      else if (est.type === 'symlink') await reader.readlink(e.node);
      else if (est.type === 'file') {
        const f = await reader.open(e.node);
        await f.dataRanges?.();
        const chunk = Buffer.alloc(256 * 1024);
        // The start, and the end: a lying size must not make us read (or allocate) it all.
        await f.read(chunk, 0);
        if (f.size > chunk.length) await f.read(chunk, f.size - chunk.length);
      }
    }
  }
  await fs.readdir('/');
  for await (const r of fs.freeExtents()) assert.ok(r.offset >= 0 && r.length > 0 && r.offset + r.length <= buf.length);
}

interface Region {
  name: string;
  at: number;
  size: number;
  /** Offsets (absolute) of fields worth aiming at. */
  fields: number[];
}

/** Metadata block headers from `start` to `end`, as mksquashfs lays them one after another. */
function blockHeaders(buf: Buffer, start: number, end: number): number[] {
  const out: number[] = [];
  for (let at = start; at + 2 <= end && out.length < 1000;) {
    out.push(at, at + 1);
    at += 2 + (buf.readUInt16LE(at) & 0x7fff);
  }
  return out;
}

/** The superblock's fields, and each table with the headers of its metadata blocks and its index. */
function regions(buf: Buffer): Region[] {
  const u64 = (at: number) => Number(buf.readBigUInt64LE(at));
  const inodes = u64(64);
  const dirs = u64(72);
  const frags = u64(80);
  const ids = u64(48);
  const xattrs = buf.readBigUInt64LE(56) === 0xffffffffffffffffn ? null : u64(56);
  const used = u64(40);
  const out: Region[] = [
    { name: 'superblock', at: 0, size: 96, fields: [4, 12, 16, 20, 22, 24, 26, 28, 32, 34, 40, 48, 56, 64, 72, 80, 88] },
    { name: 'data blocks', at: 96, size: inodes - 96, fields: [] },
    { name: 'inode table', at: inodes, size: dirs - inodes, fields: blockHeaders(buf, inodes, dirs) },
    { name: 'directory table', at: dirs, size: frags - dirs, fields: blockHeaders(buf, dirs, frags) },
    { name: 'fragment table', at: frags, size: 8, fields: [frags, frags + 4] },
    { name: 'id table', at: ids, size: 8, fields: [ids, ids + 4, u64(ids), u64(ids) + 1, u64(ids) + 2] },
  ];
  out.push({ name: 'fragment entries', at: u64(frags), size: frags - u64(frags), fields: [] });
  if (xattrs !== null) {
    const kv = u64(xattrs);
    out.push({ name: 'xattr table', at: kv, size: xattrs + 24 - kv, fields: [xattrs, xattrs + 8, xattrs + 16, ...blockHeaders(buf, kv, xattrs)] });
  }
  return out.filter((r) => r.size > 0 && r.at + r.size <= used);
}

const INTERESTING = [0, 1, 2, 3, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x1000000, 0x7fffffff, 0xffffffff];
const edit = editArbitrary(INTERESTING, [0n, 96n, 0xffffffffffffffffn, 1n << 48n, 1n << 63n]);

function makeSource(dir: string): string {
  const src = join(dir, 'src');
  mkdirSync(join(src, 'd1', 'd2'), { recursive: true });
  mkdirSync(join(src, 'many'));
  writeFileSync(join(src, 'a.txt'), 'a');
  writeFileSync(join(src, 'b.bin'), noise(70000, 2));
  writeFileSync(join(src, 'd1', 'd2', 'deep'), 'deep');
  writeFileSync(join(src, 'N'.repeat(200)), 'long name');
  for (let i = 0; i < 300; i++) writeFileSync(join(src, 'many', `e${i}-${'y'.repeat(i % 30)}`), String(i));
  const fd = openSync(join(src, 'sparse'), 'w');
  writeSync(fd, Buffer.from('start'), 0, 5, 0);
  writeSync(fd, Buffer.from('end'), 0, 3, 300000);
  closeSync(fd);
  linkSync(join(src, 'a.txt'), join(src, 'd1', 'hard'));
  symlinkSync('x/'.repeat(120) + 'y', join(src, 'longlink'));
  symlinkSync('/abs/target', join(src, 'abs'));
  spawnSync('mkfifo', [join(src, 'fifo')]);
  spawnSync('mknod', [join(src, 'null'), 'c', '1', '3']);
  spawnSync('setfattr', ['-n', 'user.one', '-v', 'x'.repeat(500), join(src, 'a.txt')]);
  spawnSync('setfattr', ['-n', 'user.one', '-v', 'x'.repeat(500), join(src, 'b.bin')]);
  spawnSync('setfattr', ['-n', 'user.two', '-v', 'dir', join(src, 'd1')]);
  return src;
}

function makeBases(dir: string): Buffer[] {
  const src = makeSource(dir);
  const variants = [
    ['-noI', '-noD', '-noF', '-noX', '-b', '4K'],
    ['-comp', 'gzip', '-b', '4K'],
    ['-comp', 'lz4', '-always-use-fragments', '-b', '8K'],
    ['-comp', 'zstd', '-no-fragments', '-b', '4K'],
    ['-comp', 'lzo', '-b', '4K'],
    ['-comp', 'xz', '-b', '4K'],
  ];
  return variants.map((opts, i) => {
    const img = join(dir, `base${i}.sqfs`);
    sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', ...opts]);
    return readFileSync(img);
  });
}

test('mutated superblocks, inode, directory, fragment, id and xattr tables and data blocks: a VdiskError or an answer, never a hang', async (t) => {
  if (!needPeers(t, 'mksquashfs')) return;
  const dir = tempDir(t);
  const bases = makeBases(dir);
  const maps = bases.map((b) => regions(b));
  for (const b of bases) await exercise(b); // the clean images read without complaint
  const guard = new FsGuard();
  t.after(() => guard.close());
  for (const b of bases) await guard.exercise('squashfs', b, 'base.sqfs', 10_000, MAX_READ);
  // The uncompressed base is where mutations reach the structures themselves: weigh it more.
  const pick = (bi: number) => (bi % 7 < 2 ? 0 : (bi % 7) - 1);
  const started = Date.now();
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.nat(), fc.nat(), fc.array(edit, { minLength: 1, maxLength: 6 }), async (bi, ri, edits) => {
      if (Date.now() - started > 20_000) return; // the time budget: stop mutating, keep what ran
      runs++;
      const base = pick(bi);
      const region = maps[base][ri % maps[base].length];
      const buf = Buffer.from(bases[base]);
      for (const e of edits) {
        const at = e.onField && region.fields.length ? region.fields[e.field % region.fields.length] : region.at + (e.pos % region.size);
        if (e.kind === 'byte' || at + 8 > buf.length) buf[Math.min(at, buf.length - 1)] = e.byte;
        else if (e.kind === 'u64') buf.writeBigUInt64LE(e.u64, at);
        // The u32 arbitrary's low half serves for the many 16-bit fields too.
        else if (e.u32 & 1) buf.writeUInt16LE(e.u32 & 0xffff, at);
        else buf.writeUInt32LE(e.u32 >>> 0, at);
      }
      try {
        // In a worker: a loop that never yields fails as a hang, a heap past its limit as unbounded memory.
        await guard.exercise('squashfs', buf, 'mutant.sqfs', 5000, MAX_READ);
      } catch (err) {
        if (!(err instanceof VdiskError)) throw new Error(`${region.name}: ${(err as Error)?.message ?? err}`);
        assert.ok(!err.message.includes('\n'), err.message);
        assert.match(err.message, /^mutant\.sqfs: /);
      }
      assert.ok(process.resourceUsage().maxRSS < 1024 * 1024, `peak memory ${process.resourceUsage().maxRSS} KiB`);
    }),
    { numRuns: 1500 },
  );
  assert.ok(runs > 100, `only ${runs} mutations ran`);

  // Through the command line, on a file: one line, a non-zero exit, and the image untouched.
  const bad = Buffer.from(bases[0]);
  bad.writeUInt16LE(99, Number(bad.readBigUInt64LE(64)) + 2); // the first inode's type
  const file = join(dir, 'bad.sqfs');
  writeFileSync(file, bad);
  const before = await sha256(file);
  const r = vdisk(['ls', '-R', file, '/']);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /^vdisk: .*bad\.sqfs: \/N+: inode at block 0 offset 0: unknown inode type 99\n$/);
  assert.equal(await sha256(file), before);
});

async function refusal(buf: Buffer): Promise<VdiskError> {
  try {
    await withTimeout(exercise(buf), 5000, 'hand-made case');
  } catch (err) {
    assert.ok(err instanceof VdiskError, String((err as Error)?.stack ?? err));
    assert.ok(!err.message.includes('\n'));
    return err;
  }
  assert.fail('no error');
}

test('hand-made damage in mksquashfs images: each refused with its own one-line message; a directory that lists itself ends', async (t) => {
  if (!needPeers(t, 'mksquashfs')) return;
  const dir = tempDir(t);
  const [plain] = makeBases(dir);
  const u64 = (b: Buffer, at: number) => Number(b.readBigUInt64LE(at));
  const inodes = u64(plain, 64);
  const dirs = u64(plain, 72);

  // bytes_used past the end of the volume.
  {
    const b = Buffer.from(plain);
    b.writeBigUInt64LE(BigInt(b.length + 1), 40);
    assert.match((await refusal(b)).message, /bytes_used \d+ runs past the end of the volume/);
  }
  // A table start past bytes_used.
  {
    const b = Buffer.from(plain);
    b.writeBigUInt64LE(0x7fffffffffffn, 48);
    assert.match((await refusal(b)).message, /id table start \d+ is outside the image/);
  }
  // A metadata block whose stored length is 0.
  {
    const b = Buffer.from(plain);
    b.writeUInt16LE(0x8000, inodes);
    assert.match((await refusal(b)).message, /metadata block at byte \d+: stored length 0 is not 1 to 8192/);
  }
  // The id table's block pointer pointing into its own index.
  {
    const b = Buffer.from(plain);
    const ids = u64(b, 48);
    b.writeBigUInt64LE(BigInt(ids), ids);
    assert.match((await refusal(b)).message, /id table: block pointer 0 \(\d+\) is not between/);
  }
  // A directory whose only listing run says 1000 entries.
  {
    const b = Buffer.from(plain);
    b.writeUInt32LE(999, dirs + 2);
    assert.match((await refusal(b)).message, /1000 entries after one header \(at most 256\)/);
  }
  // A directory entry that points at the directory holding it: the walk of `vdisk get` ends.
  {
    const b = Buffer.from(plain);
    const root = u64(b, 32);
    // The root's listing is the last in the directory table; its first run's first entry becomes the root itself.
    const reader = await SquashfsReader.open(memoryVolume(b), { name: 'x' });
    const rootInode = await (reader as unknown as { inodeOf(n: SquashNode): Promise<{ dir: { block: number; offset: number }; ino: number }> }).inodeOf(await reader.root());
    const listing = dirs + 2 + rootInode.dir.block + rootInode.dir.offset;
    b.writeUInt32LE(Math.floor(root / 65536), listing + 4);
    b.writeUInt16LE(root % 65536, listing + 12);
    b.writeUInt16LE(1, listing + 16); // a directory
    const file = join(dir, 'loop.sqfs');
    writeFileSync(file, b);
    const out = join(dir, 'loop-out');
    const r = vdisk(['get', file, '/', out]);
    // The entry is not entered again; the run's other entries now name inodes in the wrong block, which
    // may end the copy with one line.
    assert.match(r.stderr, /NNNN: directory met twice \(a loop or a linked directory\); not entered again\n/);
    assert.ok(r.stderr.split('\n').filter((l) => l && !l.startsWith('vdisk: warning:')).length <= 1, r.stderr);
  }
  // A file whose size claims 2^40 bytes: refused by the length of its block list, nothing allocated by it.
  {
    const b = Buffer.from(plain);
    const reader = await SquashfsReader.open(memoryVolume(b), { name: 'x' });
    const node = (await reader.readdir(await reader.root())).find((e) => e.name === 'b.bin')?.node as SquashNode;
    const at = inodes + 2 + Math.floor(node.ref / 65536) + (node.ref % 65536);
    assert.equal(b.readUInt16LE(at), 9, 'b.bin has an extended file inode (it has xattrs)');
    b.writeBigUInt64LE(2n ** 40n, at + 16 + 8);
    assert.match((await refusal(b)).message, /b\.bin: inode at block \d+ offset \d+: a file of 1099511627776 bytes needs \d+ block sizes, more than the inode table holds/);
  }
});

test('the lz4, lzo and xz block decoders: random and mutated input ends in an Error of their own or a bounded output', () => {
  const decoders = [lz4DecodeBlock, lzoDecodeBlock, xzDecodeBlock];
  fc.assert(
    fc.property(fc.constantFrom(0, 1, 2), fc.uint8Array({ maxLength: 2000 }), fc.integer({ min: 0, max: 70000 }), (which, input, limit) => {
      const out = new Uint8Array(limit);
      try {
        const n = decoders[which](input, out);
        assert.ok(n >= 0 && n <= limit);
      } catch (err) {
        assert.ok(err instanceof Error && /^(lz4|lzo|xz) block|^xz filter /.test(err.message), String(err));
      }
    }),
    { numRuns: 3000 },
  );
});

test('the xz decoder on mutated xz streams (LZMA2 chunks, range coder, matches): an Error of its own or a bounded output', (t) => {
  if (!needPeers(t, 'xz')) return;
  const plain = Buffer.concat([noise(20000, 5), Buffer.from('squashfs '.repeat(3000)), noise(3000, 6)]);
  const packed = execFileSync('xz', ['--format=xz', '--check=crc32', '-c'], { input: plain });
  const out = new Uint8Array(plain.length);
  assert.equal(xzDecodeBlock(packed, out), plain.length);
  assert.ok(Buffer.from(out).equals(plain), 'the clean stream decodes to what xz packed');
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { minLength: 1, maxLength: 4 }), fc.boolean(), (edits, short) => {
      const b = Buffer.from(packed);
      // After the stream and block headers: the LZMA2 data.
      for (const [at, v] of edits) b[24 + (at % (b.length - 24))] = v;
      const limit = short ? plain.length >> 1 : plain.length;
      try {
        assert.ok(xzDecodeBlock(b, new Uint8Array(limit)) <= limit);
      } catch (err) {
        assert.ok(err instanceof Error && /^xz block/.test(err.message), String(err));
      }
    }),
    { numRuns: 1500 },
  );
});
