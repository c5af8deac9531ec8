import { test } from 'node:test';
import assert from 'node:assert/strict';
import { constants, lstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, symlinkSync, utimesSync, writeFileSync, linkSync, truncateSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { compareTrees } from './helpers/fs-tree.js';
import { Filesystem, modeOf, type FileType, type FsDirEntry, type FsReader, type FsStats } from '../src/filesystems/filesystem.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';
import { extractTree } from '../src/ops/extract.js';

/**
 * Extraction with the host side in a worker thread (src/ops/host-writer.ts): the same tree whether the
 * worker takes over at once, after a few operations, or never; directories before their contents
 * however the reads of small files complete; and after the first failure nothing more is written.
 */

/** A source tree with what the host writer must carry: nesting, links, holes, zero tails, old times. */
function makeSource(src: string): void {
  mkdirSync(src);
  for (let d = 0; d < 6; d++) {
    const dir = join(src, `d${d}`, `sub${d % 2}`);
    mkdirSync(dir, { recursive: true });
    for (let i = 0; i < 60; i++) {
      const p = join(dir, `f${i}`);
      const size = (d * 60 + i) % 7 === 0 ? 0 : 1 + (((d * 60 + i) * 977) % 20_000);
      const b = Buffer.alloc(size);
      for (let k = 0; k < size; k += 97) b[k] = (k + i + d) & 0xff || 1;
      writeFileSync(p, b, { mode: i % 3 === 0 ? 0o600 : 0o644 });
      utimesSync(p, 1_600_000_000 + i, 1_600_000_000 + d * 100 + i);
    }
    symlinkSync(`sub${d % 2}/f1`, join(src, `d${d}`, 'link'));
  }
  // A small file with a hole in its middle and one that ends in zeros: sparse in the copy too.
  const fd = openSync(join(src, 'holey'), 'w');
  writeSync(fd, Buffer.alloc(4096, 7), 0, 4096, 0);
  writeSync(fd, Buffer.alloc(4096, 9), 0, 4096, 512 * 1024);
  closeSync(fd);
  writeFileSync(join(src, 'zero-tail'), Buffer.concat([Buffer.alloc(5000, 3), Buffer.alloc(300_000)]));
  truncateSync(join(src, 'holey'), 900 * 1024);
  linkSync(join(src, 'd0', 'sub0', 'f2'), join(src, 'hard'));
  writeFileSync(join(src, 'old'), 'from 1960');
  // A numeric string: Node takes a negative number of seconds for "now".
  utimesSync(join(src, 'old'), '-300000000', '-300000000');
  // A file past the small-file size between small ones: written on the main thread, in order.
  writeFileSync(join(src, 'd3', 'large'), Buffer.alloc(3 * 1024 * 1024 + 5, 0x5a));
}

test('get of an ext4 tree equals the source with the worker at once, later, or never, and the CLI agrees with debugfs rdump', async (t) => {
  if (!needPeers(t, 'mkfs.ext4', 'debugfs')) return;
  const work = tempDir(t);
  const src = join(work, 'src');
  makeSource(src);
  const img = join(work, 'fs.img');
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img, '64M']);
  const image = await openImage(img);
  try {
    const fs = await openFilesystem(image);
    for (const workerAfter of [0, 37, 1_000_000]) {
      const out = join(work, `out-${workerAfter}`);
      const r = await extractTree(fs, '/', out, { workerAfter });
      assert.equal(r.files, 6 * 60 + 4, `files (${workerAfter})`);
      assert.equal(r.hardlinks, 1);
      assert.equal(r.symlinks, 6);
      assert.deepEqual(compareTrees(src, out, { modes: true, mtimeMs: 1000, hardlinks: true, ignore: ['lost+found'] }), [], `workerAfter ${workerAfter}`);
      assert.ok(lstatSync(join(out, 'holey')).blocks * 512 <= 64 * 1024, 'the hole stays a hole');
      assert.ok(lstatSync(join(out, 'zero-tail')).blocks * 512 <= 64 * 1024, 'the zero tail stays a hole');
      assert.equal(lstatSync(join(out, 'old')).mtime.getUTCFullYear(), 1960);
    }
  } finally {
    await image.close();
  }
  // The command line (its default hand-over) against the peer's own extraction of the same volume.
  const peer = join(work, 'peer');
  mkdirSync(peer);
  sh('debugfs', ['-R', `rdump / ${peer}`, img]);
  const ours = join(work, 'cli');
  const r = vdisk(['get', img, '/', ours]);
  assert.equal(r.code, 0, r.stderr);
  // Where debugfs falls short: it sets times through 32 bits without sign (1960 comes out as 2096 in
  // its copy, not in ours), and leaves its symbolic links' times at the time of the copy.
  const diff = compareTrees(peer, ours, { modes: true, mtimeMs: 1000, ignore: ['lost+found'] });
  assert.deepEqual(diff.filter((d) => !/^old: mtime 2096-.* in source, 1960-.* in copy$/.test(d) && !/^d\d\/link: mtime /.test(d)), []);
});

test('a directory name found taken in DEST stops the worker before anything is written beneath it', async (t) => {
  if (!needPeers(t, 'mkfs.ext4')) return;
  const work = tempDir(t);
  const src = join(work, 'src');
  makeSource(src);
  const img = join(work, 'fs.img');
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img, '64M']);
  // DEST exists and already holds d2 as a symbolic link to a directory elsewhere.
  const dest = join(work, 'dest');
  const elsewhere = join(work, 'elsewhere');
  mkdirSync(dest);
  mkdirSync(elsewhere);
  symlinkSync(elsewhere, join(dest, 'd2'));
  const image = await openImage(img);
  try {
    const fs = await openFilesystem(image);
    await assert.rejects(extractTree(fs, '/', dest, { workerAfter: 0 }), /d2: already exists; vdisk get writes only new files/);
  } finally {
    await image.close();
  }
  assert.deepEqual(readdirSync(elsewhere), [], 'nothing written through the link');
  assert.ok(!readdirSync(dest).includes('d3'), 'nothing after the failure');
  const r = vdisk(['get', img, '/', dest]);
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr.trim(), /^vdisk: \S+: already exists; vdisk get writes only new files$/);
  assert.deepEqual(readdirSync(elsewhere), []);
});

/** A tree in memory whose small-file reads complete after a random delay each, out of walk order. */
interface Node {
  ino: number;
  type: FileType;
  data?: Buffer;
  target?: string;
  children?: [string, Node][];
  delay: number;
}

class SlowReader implements FsReader<Node> {
  readonly type = 'mem';
  readonly blockSize = 512;
  readonly warnings: string[] = [];
  constructor(private readonly top: Node) {}
  async root() {
    return this.top;
  }
  async stat(n: Node): Promise<FsStats> {
    return { type: n.type, mode: modeOf(n.type, 0o640), uid: 0, gid: 0, nlink: 1, ino: n.ino, size: n.data?.length ?? 0, mtime: { sec: 1_700_000_000 + n.ino, nsec: 0 } };
  }
  async readdir(n: Node): Promise<FsDirEntry<Node>[]> {
    return (n.children ?? []).map(([name, node]) => ({ name, type: node.type, node }));
  }
  async readlink(n: Node) {
    return n.target ?? '';
  }
  async open(n: Node) {
    const data = n.data ?? Buffer.alloc(0);
    return {
      size: data.length,
      async read(buf: Uint8Array, pos: number) {
        if (n.delay > 0) await new Promise((r) => setTimeout(r, n.delay));
        const got = Math.max(0, Math.min(buf.length, data.length - pos));
        data.copy(buf, 0, pos, pos + got);
        return got;
      },
    };
  }
  async *freeExtents() {}
}

test('whatever order small-file reads complete in, and wherever the worker takes over, the tree comes out whole', async (t) => {
  const work = tempDir(t);
  let run = 0;
  const shape = fc.letrec((tie) => ({
    node: fc.oneof(
      { depthSize: 'small', withCrossShrink: true },
      fc.record({ kind: fc.constant('file' as const), size: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 3000 }), weight: 12 }, { arbitrary: fc.integer({ min: 900_000, max: 1_048_576 }), weight: 1 }), delay: fc.integer({ min: 0, max: 3 }) }),
      fc.record({ kind: fc.constant('link' as const), target: fc.string({ minLength: 1, maxLength: 20 }).filter((s) => !s.includes('\0')) }),
      fc.record({ kind: fc.constant('dir' as const), children: fc.array(tie('node'), { maxLength: 8 }) }),
    ),
  }));
  await fc.assert(
    fc.asyncProperty(fc.array(shape.node, { minLength: 1, maxLength: 30 }), fc.integer({ min: 0, max: 30 }), async (top, workerAfter) => {
      let ino = 1;
      const expected = new Map<string, string | Buffer | null>();
      const build = (spec: any, rel: string): Node => {
        const n: Node = { ino: ++ino, type: 'file', delay: 0 };
        if (spec.kind === 'file') {
          n.data = Buffer.alloc(spec.size, ino & 0xff || 1);
          n.delay = spec.delay;
          expected.set(rel, n.data);
        } else if (spec.kind === 'link') {
          n.type = 'symlink';
          n.target = spec.target;
          expected.set(rel, spec.target);
        } else {
          n.type = 'directory';
          n.children = spec.children.map((c: unknown, i: number) => [`e${i}`, build(c, `${rel}/e${i}`)] as [string, Node]);
          expected.set(rel, null);
        }
        return n;
      };
      const root: Node = { ino: 1, type: 'directory', delay: 0, children: top.map((c, i) => [`e${i}`, build(c, `/e${i}`)] as [string, Node]) };
      const out = join(work, `out${run++}`);
      await extractTree(new Filesystem(new SlowReader(root), 'mem.img'), '/', out, { workerAfter });
      for (const [rel, want] of expected) {
        const st = lstatSync(out + rel);
        if (want === null) assert.ok(st.isDirectory(), rel);
        else if (typeof want === 'string') assert.equal(st.isSymbolicLink() ? readlinkSync(out + rel) : null, want, rel);
        else assert.ok(readFileSync(out + rel).equals(want), rel);
      }
    }),
    { numRuns: 25 },
  );
});

test('the host writer says when its shared buffers are all taken, and when one is handed back', async (t) => {
  const { HostWriter, SLAB_SIZE } = await import('../src/ops/host-writer.js');
  const dir = tempDir(t);
  const writer = new HostWriter();
  try {
    // One reservation of a whole buffer each takes every buffer: none is left for even a byte.
    const rooms = [];
    for (let i = 0; i < 10 && writer.hasRoom(SLAB_SIZE); i++) rooms.push(writer.tryReserve(SLAB_SIZE) as NonNullable<ReturnType<typeof writer.tryReserve>>);
    assert.equal(rooms.length, 4);
    assert.equal(writer.hasRoom(1), false);
    assert.equal(writer.tryReserve(1), null);
    let freed = false;
    const waiting = writer.bufferFreed().then(() => (freed = true));
    await new Promise((r) => setImmediate(r));
    assert.equal(freed, false, 'no buffer is handed back before a file is written');
    // The first file's data goes to the host and its buffer comes back.
    rooms[0].buf.fill(5, 0, 10);
    const path = join(dir, 'first');
    writer.complete(rooms[0], { path, flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, perms: 0o644, at: rooms[0].at, segs: [0, 10], end: 10, size: 10, uid: -1, gid: -1, chmod: false, atime: NaN, mtime: NaN });
    for (const r of rooms.slice(1)) writer.complete(r, null);
    await writer.drain();
    await waiting;
    assert.equal(freed, true);
    assert.equal(writer.hasRoom(SLAB_SIZE), true);
    assert.deepEqual(readFileSync(path), Buffer.alloc(10, 5));
  } finally {
    await writer.close();
  }
});

test('files the host writer reads from the image file itself: their bytes, all-zero ones left as holes, one past the end refused', async (t) => {
  const { HostWriter } = await import('../src/ops/host-writer.js');
  const dir = tempDir(t);
  // The "image": three files one after another (the second all zeros), as a writer lays a tree out.
  const image = join(dir, 'image');
  const a = Buffer.alloc(5000, 0x41);
  const c = Buffer.alloc(3000);
  for (let i = 0; i < c.length; i++) c[i] = (i * 7 + 1) & 0xff;
  writeFileSync(image, Buffer.concat([a, Buffer.alloc(8192 - 5000), Buffer.alloc(4096), c]));
  const fd = openSync(image, 'r');
  t.after(() => closeSync(fd));
  const op = (path: string, position: number, size: number) => ({
    path, flags: constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, perms: 0o640, fd, position, size,
    uid: -1, gid: -1, chmod: false, atime: 1_500_000_000.5, mtime: 1_600_000_000.25,
  });
  for (const workerAfter of [0, 1_000_000]) {
    const out = join(dir, `out-${workerAfter}`);
    mkdirSync(out);
    const writer = new HostWriter({ workerAfter });
    try {
      writer.hostFile(op(join(out, 'a'), 0, a.length));
      writer.hostFile(op(join(out, 'zeros'), 8192, 4096));
      writer.hostFile(op(join(out, 'c'), 12288, c.length));
      await writer.drain();
    } finally {
      await writer.close();
    }
    assert.ok(readFileSync(join(out, 'a')).equals(a), `a (${workerAfter})`);
    assert.ok(readFileSync(join(out, 'c')).equals(c), `c (${workerAfter})`);
    const z = lstatSync(join(out, 'zeros'));
    assert.equal(z.size, 4096);
    assert.equal(z.blocks, 0, 'all zeros: a hole, nothing written');
    assert.equal(lstatSync(join(out, 'a')).mode & 0o777, 0o640);
    assert.equal(lstatSync(join(out, 'c')).mtimeMs, 1_600_000_000_250);
  }
  // The image ends before the file: the extraction fails, naming the file.
  const writer = new HostWriter({ workerAfter: 0 });
  try {
    writer.hostFile(op(join(dir, 'past-end'), 14000, 4096));
    await assert.rejects(writer.drain(), /past-end: reading its data from the image failed: the image ended before the file/);
  } finally {
    await writer.close();
  }
});
