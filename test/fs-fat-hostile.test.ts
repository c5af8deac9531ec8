import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk } from './helpers/peers.js';
import { openFat, pattern, run, sha, writeTree } from './helpers/fat.js';
import { VdiskError } from '../src/errors.js';
import { Filesystem } from '../src/filesystems/filesystem.js';
import { fatDriver } from '../src/filesystems/fat/driver.js';
import type { FatNode, FatReader } from '../src/filesystems/fat/reader.js';
import { memoryVolume } from './helpers/memory.js';
import { FsGuard } from './helpers/fs-guard.js';

const MiB = 1024 * 1024;


interface Base {
  buf: Buffer;
  /** [start, length] of the structures worth damaging: boot sector, FAT, root directory, a subdirectory. */
  hot: [number, number][];
}

/** A small volume with long names, nested directories and multi-cluster files, and where its structures are. */
function base(dir: string, name: string, size: number, mkfs: string[]): Base {
  const src = join(dir, `src-${name}`);
  writeTree(src, [
    { path: 'readme.txt', data: Buffer.from('r') },
    { path: 'A long name in a directory.txt', data: pattern(1, 9000) },
    { path: 'ünï.txt', data: pattern(2, 3) },
    { path: 'sub', dir: true },
    { path: 'sub/inner file with a long name', data: pattern(3, 3000) },
    { path: 'sub/deeper/leaf', data: pattern(4, 100) },
    { path: 'empty', data: Buffer.alloc(0) },
  ]);
  const img = join(dir, `${name}.img`);
  run('truncate', ['-s', String(size), img]);
  run('mkfs.vfat', [...mkfs, img]);
  run('mcopy', ['-s', '-m', '-i', img, ...readdirSync(src).map((n) => join(src, n)), '::/']);
  const buf = readFileSync(img);
  const bps = buf.readUInt16LE(11);
  const spc = buf[13];
  const fatAt = buf.readUInt16LE(14) * bps;
  const fatSectors = buf.readUInt16LE(22) || buf.readUInt32LE(36);
  const rootAt = fatAt + buf[16] * fatSectors * bps;
  const dataAt = rootAt + buf.readUInt16LE(17) * 32;
  const rootCluster = buf.readUInt16LE(22) === 0 ? buf.readUInt32LE(44) : 0;
  const root = rootCluster ? dataAt + (rootCluster - 2) * spc * bps : rootAt;
  // The subdirectory's first cluster, from its entry in the root.
  let sub = root;
  for (let at = root; at < root + 4096; at += 32) {
    if (buf.toString('latin1', at, at + 11) === 'SUB        ') sub = dataAt + (buf.readUInt16LE(at + 26) + (rootCluster ? buf.readUInt16LE(at + 20) * 65536 : 0) - 2) * spc * bps;
  }
  return { buf, hot: [[0, 512], [fatAt, 512], [root, 1024], [sub, 512]] };
}

const edit = fc.record({
  region: fc.nat(),
  pos: fc.nat(),
  width: fc.constantFrom(1, 2, 4),
  value: fc.oneof(
    fc.constantFrom(0, 1, 2, 3, 0xff, 0xffff, 0xfff7, 0xfff8, 0x0ffffff7, 0x0ffffff8, 0xffffffff, 0x80000000, 0x0f, 0x10, 0x41, 0x42, 0x45, 0xe5, 0x05, 0x29),
    fc.integer({ min: 0, max: 0xffffffff }),
  ),
});

/** Walks everything reachable: every directory once (by inode), every file opened and read, free extents counted. */
async function exercise(fs: Filesystem<FatNode>): Promise<void> {
  const reader = fs.reader as FatReader;
  const seen = new Set<number>();
  const pending: { node: FatNode; path: string }[] = [{ node: await reader.root(), path: '/' }];
  const chunk = Buffer.alloc(256 * 1024);
  let visited = 0;
  while (pending.length > 0 && visited < 5000) {
    const { node, path } = pending.pop()!;
    const st = await reader.stat(node);
    if (seen.has(st.ino)) continue;
    seen.add(st.ino);
    for (const e of await reader.readdir(node)) {
      visited++;
      const p = path === '/' ? `/${e.name}` : `${path}/${e.name}`;
      const s = await reader.stat(e.node);
      assert.ok(Number.isFinite(s.size) && s.size >= 0);
      // Lookups ignore case: the path in ASCII upper case finds an entry (the first of any that fold together).
      await fs.lstat(p.replace(/[a-z]/g, (c) => c.toUpperCase()));
      if (e.type === 'directory') pending.push({ node: e.node, path: p });
      else {
        const f = await reader.open(e.node);
        for (let at = 0; at < Math.min(f.size, 4 * MiB); at += chunk.length) await f.read(chunk, at);
      }
    }
  }
  let free = 0;
  for await (const r of fs.freeExtents()) free += r.length;
  assert.ok(free <= reader.layout.totalBytes);
}

const outcomes = new Map<string, number>();

function oneLineVdiskError(e: unknown, name: string): void {
  if (!(e instanceof VdiskError)) throw e;
  const kind = e.message.replace(/\d+/g, 'N').replace(/ (file|directory) \/\S*/, ' $1 P').slice(name.length + 2, name.length + 60);
  outcomes.set(kind, (outcomes.get(kind) ?? 0) + 1);
  assert.doesNotMatch(e.message, /\n/);
  assert.ok(e.message.startsWith(`${name}:`), e.message);
}

test('damaged FAT volumes: every walk, read and free-space scan ends, or fails with a one-line VdiskError', { timeout: 240_000 }, async (t) => {
  if (!needPeers(t, 'mkfs.vfat', 'mcopy')) return;
  const dir = tempDir(t);
  const bases = [
    base(dir, 'fat12', 1440 * 1024, ['-F', '12']),
    base(dir, 'fat16', 16 * MiB, ['-F', '16', '-s', '1']),
    base(dir, 'fat32', 34 * MiB, ['-F', '32', '-s', '1']),
  ];
  const file = join(dir, 'hostile.img');
  let slowest = 0;
  const guard = new FsGuard();
  t.after(() => guard.close());
  await fc.assert(
    fc.asyncProperty(fc.integer({ min: 0, max: bases.length - 1 }), fc.array(edit, { minLength: 1, maxLength: 8 }), async (which, edits) => {
      const b = bases[which];
      const buf = Buffer.from(b.buf);
      for (const e of edits) {
        const [start, len] = b.hot[e.region % b.hot.length];
        const at = start + (e.pos % (len - 4));
        if (e.width === 1) buf[at] = e.value & 0xff;
        else if (e.width === 2) buf.writeUInt16LE(e.value & 0xffff, at);
        else buf.writeUInt32LE(e.value >>> 0, at);
      }
      const started = Date.now();
      const name = 'hostile.img';
      // First in a worker, where a loop that never yields fails as a hang and a heap past its limit as
      // unbounded memory; then, known to end, here, for the checks only FAT has (lookups ignoring case).
      try {
        await guard.exercise('vfat', buf, name, 10_000);
      } catch (e) {
        if (!(e instanceof VdiskError)) throw e;
      }
      try {
        const reader = await fatDriver.open(memoryVolume(buf), { name });
        await exercise(new Filesystem(reader as FatReader, name));
        outcomes.set('(read through)', (outcomes.get('(read through)') ?? 0) + 1);
      } catch (e) {
        oneLineVdiskError(e, name);
      }
      // The FAT12 floppy also goes through the image layer from a file, which must stay as it was.
      if (which === 0) {
        writeFileSync(file, buf);
        const before = sha(buf);
        try {
          const { fs, close } = await openFat(file);
          try {
            await exercise(fs as Filesystem<FatNode>);
          } finally {
            await close();
          }
        } catch (e) {
          if (!(e instanceof VdiskError)) throw e;
          assert.doesNotMatch(e.message, /\n/);
        }
        assert.equal(sha(readFileSync(file)), before, 'the image file is unchanged');
      }
      const took = Date.now() - started;
      slowest = Math.max(slowest, took);
      assert.ok(took < 10_000, `one damaged volume took ${took} ms`);
      assert.ok(process.memoryUsage().heapUsed < 1024 * MiB, 'memory stays bounded');
    }),
    { numRuns: 250, interruptAfterTimeLimit: 25_000, seed: Number(process.env.FC_SEED ?? 13) },
  );
  t.diagnostic(`slowest damaged volume: ${slowest} ms`);
  for (const [k, n] of [...outcomes].sort((a, b) => b[1] - a[1])) t.diagnostic(`${n} x ${k}`);
});

test('damaged FAT volumes through the command line: ls -lR, get and tar end with exit 0 or 1 and one-line messages, the image untouched', { timeout: 240_000 }, async (t) => {
  if (!needPeers(t, 'mkfs.vfat', 'mcopy')) return;
  const dir = tempDir(t);
  const b = base(dir, 'fat12', 1440 * 1024, ['-F', '12']);
  const img = join(dir, 'hostile.img');
  let run = 0;
  const codes = { ok: 0, refused: 0 };
  await fc.assert(
    fc.asyncProperty(fc.array(edit, { minLength: 1, maxLength: 6 }), async (edits) => {
      const buf = Buffer.from(b.buf);
      for (const e of edits) {
        const [start, len] = b.hot[e.region % b.hot.length];
        const at = start + (e.pos % (len - 4));
        if (e.width === 1) buf[at] = e.value & 0xff;
        else if (e.width === 2) buf.writeUInt16LE(e.value & 0xffff, at);
        else buf.writeUInt32LE(e.value >>> 0, at);
      }
      writeFileSync(img, buf);
      const before = sha(buf);
      for (const argv of [['ls', '-lR', img], ['get', img, '/', join(dir, `got${++run}`)], ['tar', img, '/']]) {
        const r = vdisk(argv);
        assert.ok(r.code === 0 || r.code === 1, `${argv[0]}: exit ${r.code}: ${r.stderr}`);
        codes[r.code === 0 ? 'ok' : 'refused']++;
        const lines = r.stderr.split('\n').filter((l) => l !== '');
        for (const l of lines) assert.match(l, /^vdisk: /, `${argv[0]}: ${r.stderr}`);
        if (r.code === 1) assert.ok(lines.length >= 1 && !lines[lines.length - 1].startsWith('vdisk: warning:'), `${argv[0]}: ${r.stderr}`);
      }
      assert.equal(sha(readFileSync(img)), before, 'the image file is unchanged');
    }),
    { numRuns: 8, seed: Number(process.env.FC_SEED ?? 17) },
  );
  t.diagnostic(`commands that succeeded: ${codes.ok}, refused in one line: ${codes.refused}`);
});
