import assert from 'node:assert/strict';
import fc from 'fast-check';
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { vdisk } from './peers.js';
import { openImage, describeImage, mapImage, VdiskError, type Filesystem } from '../../src/index.js';

const MiB = 1024 * 1024;

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) => setTimeout(() => reject(new Error(`${what} took over ${ms} ms`)), ms).unref()),
  ]);
}

/** Runs `fn`; a failure must be a one-line VdiskError, and nothing may take over `ms`. */
export async function typedOrFine(fn: () => Promise<unknown>, ms: number, what: string): Promise<void> {
  try {
    await withTimeout(fn(), ms, what);
  } catch (err) {
    assert.ok(err instanceof VdiskError, `${what}: untyped error ${(err as Error)?.stack ?? String(err)}`);
    assert.doesNotMatch(err.message, /\n/, 'one-line message');
  }
}

/**
 * Every look the commands take at an image, in process: open, describe, map, reads of the first and
 * last MiB; `thorough` adds block status over the first 64 MiB (extents must tile it) and a read in
 * the middle.
 */
export async function lookEverywhere(file: string, thorough = false): Promise<void> {
  const img = await openImage(file);
  try {
    await describeImage(img);
    let mapped = 0;
    await mapImage(img, (e) => void (mapped += e.length));
    assert.equal(mapped, img.virtualSize, 'the map tiles the disk');
    const size = img.virtualSize;
    const reads = [[0, MiB], [Math.max(0, size - MiB), MiB]];
    if (thorough) {
      const span = Math.min(size, 64 * MiB);
      for (const from of span > 0 ? [0, size - span] : []) {
        let at = from;
        for (const e of await img.blockStatus(from, span)) {
          assert.equal(e.offset, at, 'block status extents follow each other');
          at += e.length;
        }
        assert.equal(at, from + span, 'block status covers the range asked for');
      }
      reads.push([Math.floor(size / 3), 70_000]);
    }
    for (const [o, l] of reads) {
      const len = Math.min(l, size - o);
      if (len > 0) await img.read(Buffer.alloc(len), o);
    }
  } finally {
    await img.close();
  }
}

/** One edit of a mutated structure: a field (by index) or any position, as a byte, u32 or u64. */
export function editArbitrary(u32s: number[], u64s: bigint[]) {
  return fc.record({
    onField: fc.boolean(),
    field: fc.nat(),
    pos: fc.nat(),
    kind: fc.constantFrom('byte', 'u32', 'u64'),
    byte: fc.integer({ min: 0, max: 255 }),
    u32: fc.oneof(fc.constantFrom(...u32s), fc.integer({ min: 0, max: 0xffffffff })),
    u64: fc.oneof(fc.constantFrom(...u64s), fc.bigInt({ min: 0n, max: (1n << 64n) - 1n })),
  });
}

/**
 * Everything a user can do with a file system: walk the tree, stat, read every file (up to `readCap`
 * bytes each), list data ranges, xattrs and links, and the free space, with the walk bounded by
 * `entryCap` entries and each directory entered once (a volume whose directories loop still ends).
 */
export async function exerciseFilesystem(fs: Filesystem, readCap = 2 * MiB, entryCap = 5000): Promise<void> {
  let entries = 0;
  const visited = new Set<number>();
  const visit = async (path: string): Promise<void> => {
    const st = await fs.lstat(path);
    await fs.xattrs(path);
    if (st.type === 'symlink') await fs.readlink(path);
    if (st.type === 'file') {
      const f = await fs.open(path);
      await f.dataRanges?.();
      const buf = Buffer.alloc(Math.min(256 * 1024, Math.max(1, f.size)));
      for (let pos = 0; pos < Math.min(f.size, readCap); pos += buf.length) await f.read(buf, pos);
      // The end too: a size that lies must not make a reader read (or allocate) all of it.
      if (f.size > readCap) await f.read(buf, f.size - buf.length);
    }
    if (st.type === 'directory') {
      if (visited.has(st.ino)) return;
      visited.add(st.ino);
      for (const e of await fs.readdir(path)) {
        if (++entries > entryCap) return;
        // Names with '/' cannot be walked by path; they are still listed.
        if (e.name.includes('/') || e.name === '' || e.name === '.' || e.name === '..') continue;
        await visit(path === '/' ? `/${e.name}` : `${path}/${e.name}`);
      }
    }
  };
  await visit('/');
  let n = 0;
  for await (const r of fs.freeExtents()) {
    assert.ok(r.length > 0 && r.offset >= 0, 'free extents are non-empty ranges');
    if (++n > 1_000_000) throw new Error('free extents do not end');
  }
}

/**
 * Runs each command line on a damaged image: it succeeds or fails with exit 1, its stderr holds
 * one-line warnings and, on failure, the error as the one last line; the image is unchanged after all.
 */
export function cliOnDamaged(name: string, img: string, commands: string[][]): void {
  const hash = () => createHash('sha256').update(readFileSync(img)).digest('hex');
  const before = hash();
  for (const args of commands) {
    const r = vdisk(args);
    assert.ok(r.code === 0 || r.code === 1, `${name}: ${args[0]} exit ${r.code}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n').filter(Boolean);
    const errors = lines.filter((l) => !l.startsWith('vdisk: warning: '));
    assert.equal(errors.length, r.code === 1 ? 1 : 0, `${name}: ${args[0]}: ${r.stderr}`);
    if (r.code === 1) assert.match(lines[lines.length - 1], /^vdisk: /);
  }
  assert.equal(hash(), before, `${name}: image changed`);
}


/**
 * cliOnDamaged over damaged copies of one image: each case damages its own copy of `base` in `dir`, and
 * `commands` says what to run on it (`slug`: the case's name, made safe for file names).
 */
export function cliOnDamagedCopies(dir: string, base: Buffer, cases: [string, (b: Buffer) => void][], commands: (img: string, slug: string) => string[][]): void {
  for (const [name, damage] of cases) {
    const slug = name.replace(/\W+/g, '-');
    const img = join(dir, `cli-${slug}.img`);
    const b = Buffer.from(base);
    damage(b);
    writeFileSync(img, b);
    cliOnDamaged(name, img, commands(img, slug));
  }
}
