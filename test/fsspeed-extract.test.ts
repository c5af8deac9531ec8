import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, utimesSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { Filesystem, modeOf, type FsDirEntry, type FsReader, type FsStats } from '../src/filesystems/filesystem.js';
import { extractTree } from '../src/ops/extract.js';

/**
 * The shared extraction path at the sizes where it pipelines: large files read in 4 MiB pieces several
 * at a time from a bounded pool while earlier pieces are written, holes and all-zero pieces left as
 * holes, many medium files contending for the pool, and directories listed ahead of the walk. Judged
 * against the source tree mkfs.ext4 -d was given, and against failures no volume makes on purpose.
 */
const MiB = 1024 * 1024;

function stamp(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  for (let i = 0; i + 4 <= size; i += 4) b.writeUInt32LE((i * 2654435761 + seed) >>> 0, i);
  return b;
}

function writeAt(path: string, pieces: [number, Buffer][], size: number): void {
  const fd = openSync(path, 'w');
  try {
    for (const [at, b] of pieces) writeSync(fd, b, 0, b.length, at);
  } finally {
    closeSync(fd);
  }
  sh('truncate', ['-s', String(size), path]);
}

test('get of large sparse files, a zero piece, many medium files and a small-file tree from ext4 equals the source', async (t) => {
  if (!needPeers(t, 'mkfs.ext4', 'truncate')) return;
  const work = tempDir(t);
  const src = join(work, 'src');
  mkdirSync(join(src, 'tree'), { recursive: true });
  // Data islands on both sides of 4 MiB piece boundaries, a hole between, and a tail at the very end.
  writeAt(join(src, 'sparse.bin'), [[0, stamp(100_000, 1)], [4 * MiB - 5000, stamp(10_000, 2)], [11 * MiB, stamp(3 * MiB, 3)], [17 * MiB - 10, Buffer.from('the end!!!')]], 17 * MiB);
  // A whole 4 MiB piece of written zeros between data: kept a hole in the copy, read back as zeros.
  writeAt(join(src, 'zeros-inside.bin'), [[0, stamp(4 * MiB, 4)], [4 * MiB, Buffer.alloc(4 * MiB)], [8 * MiB, stamp(MiB + 7, 5)]], 9 * MiB + 7);
  // More medium files than the large-buffer pool holds at once: copies wait for buffers, never for each other.
  for (let i = 0; i < 12; i++) writeAt(join(src, `medium-${i}.bin`), [[0, stamp(MiB + 1 + i * 300_000, 10 + i)]], MiB + 1 + i * 300_000);
  for (let d = 0; d < 6; d++) {
    mkdirSync(join(src, 'tree', `d${d}`));
    for (let i = 0; i < 40; i++) {
      const p = join(src, 'tree', `d${d}`, `f${i}`);
      writeAt(p, [[0, stamp(1 + ((d * 40 + i) * 331) % 9000, d * 40 + i)]], 1 + ((d * 40 + i) * 331) % 9000);
      utimesSync(p, 1_600_000_000 + i, 1_600_000_000 + d * 1000 + i);
    }
  }
  const img = join(work, 'fs.img');
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img, '96M']);
  const out = join(work, 'out');
  const r = vdisk(['get', img, '/', out]);
  assert.equal(r.code, 0, r.stderr);

  const names = (dir: string): string[] => readdirSync(dir, { recursive: true }).map(String).sort();
  assert.deepEqual(names(out).filter((n) => n !== 'lost+found'), names(src));
  for (const rel of names(src)) {
    const a = lstatSync(join(src, rel));
    const b = lstatSync(join(out, rel));
    if (a.isDirectory()) continue;
    assert.equal(b.size, a.size, rel);
    assert.ok(readFileSync(join(out, rel)).equals(readFileSync(join(src, rel))), `${rel}: contents`);
    assert.equal(b.mode, a.mode, `${rel}: mode`);
    // mkfs.ext4 -d keeps whole seconds.
    assert.equal(Math.floor(b.mtimeMs / 1000), Math.floor(a.mtimeMs / 1000), `${rel}: mtime`);
  }
  // Holes stay holes: the sparse file holds about 3.1 MiB of data in 17 MiB; the zero piece is not written.
  assert.ok(lstatSync(join(out, 'sparse.bin')).blocks * 512 <= 4 * MiB, 'sparse.bin stays sparse');
  assert.ok(lstatSync(join(out, 'zeros-inside.bin')).blocks * 512 <= 6 * MiB, 'the all-zero piece stays a hole');
});

/** A reader of one directory of large files whose reads can fail or come up short, for the failure paths. */
function faulty(files: { name: string; size: number; failAt?: number; shortAt?: number }[]): Filesystem<number> {
  const reader: FsReader<number> = {
    type: 'mem',
    blockSize: 512,
    warnings: [],
    async root() {
      return -1;
    },
    async stat(n: number): Promise<FsStats> {
      if (n < 0) return { type: 'directory', mode: modeOf('directory', 0o755), uid: 0, gid: 0, nlink: 2, ino: 1, size: 0 };
      return { type: 'file', mode: modeOf('file', 0o644), uid: 0, gid: 0, nlink: 1, ino: n + 2, size: files[n].size, mtime: { sec: 1_700_000_000, nsec: 0 } };
    },
    async readdir(): Promise<FsDirEntry<number>[]> {
      return files.map((f, i) => ({ name: f.name, type: 'file', node: i }));
    },
    async readlink() {
      return '';
    },
    async open(n: number) {
      const f = files[n];
      return {
        size: f.size,
        async read(buf: Uint8Array, pos: number) {
          await new Promise((r) => setTimeout(r, 1));
          if (f.failAt !== undefined && pos + buf.length > f.failAt) throw new Error(`read failed at ${pos}`);
          const stop = Math.min(f.size, f.shortAt ?? f.size, pos + buf.length);
          const got = Math.max(0, stop - pos);
          buf.fill(7, 0, got);
          return got;
        },
      };
    },
    async *freeExtents() {},
  };
  return new Filesystem(reader, 'mem.img');
}

test('a read failing inside a large file fails the get, with every read settled first; a short file keeps its length', async (t) => {
  const work = tempDir(t);
  const fs = faulty([
    { name: 'ok.bin', size: 10 * MiB },
    { name: 'short.bin', size: 12 * MiB, shortAt: 5 * MiB },
    { name: 'bad.bin', size: 30 * MiB, failAt: 13 * MiB },
    { name: 'after.bin', size: 9 * MiB },
  ]);
  await assert.rejects(extractTree(fs, '/', join(work, 'out')), /read failed at/);

  const fs2 = faulty([{ name: 'short.bin', size: 12 * MiB, shortAt: 5 * MiB }, { name: 'ok.bin', size: 10 * MiB }]);
  const res = await extractTree(fs2, '/', join(work, 'out2'));
  assert.equal(res.files, 2);
  const short = readFileSync(join(work, 'out2', 'short.bin'));
  assert.equal(short.length, 12 * MiB);
  assert.equal(short[5 * MiB - 1], 7);
  assert.equal(short[5 * MiB], 0);
  assert.ok(readFileSync(join(work, 'out2', 'ok.bin')).every((b) => b === 7));
});
