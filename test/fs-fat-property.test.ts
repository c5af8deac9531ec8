import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, rmSync, readdirSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir } from './helpers/peers.js';
import { openFat, pattern, readSource, run, sha, walkAll, writeTree, type TreeFile } from './helpers/fat.js';
import { WindowCache } from '../src/filesystems/window-cache.js';

/**
 * Letters from many scripts, and the punctuation long names allow. mtools writes only the Basic
 * Multilingual Plane (it drops characters beyond it), so no emoji; and no `~`, with which mcopy can
 * write a short alias holding NUL bytes that no longer matches its long name ("aaaaaaa~a"); and no
 * ÿ, which it writes as a short name Y with the lower-case flag.
 */
const CHARS = [...'aZq09 _-.ÀéüßøñçÆΑβγδΩжЖщЯ日本語中文한국어عربيעבריתहिन्दीÕã!#$%&\'()+,;=@[]^`{}'];
const LOWER_83 = [...'abcxyz019_'];

/**
 * Whether mcopy takes a name for a pattern that matches `.` or `..`: it reads `[...]` in the names it
 * creates as character classes, so a directory named `[.]` is copied into its parent (found by this
 * test in CI: `a/[.]/a` landed as `a/a`).
 */
function mcopyReadsAsDot(n: string): boolean {
  const source = n.replace(/\[[^\]]*\]|[\s\S]/g, (m) => (m.length > 1 ? m : m.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  try {
    const re = new RegExp(`^${source}$`);
    return re.test('.') || re.test('..');
  } catch {
    return false;
  }
}

/**
 * A name FAT keeps as written: no leading or trailing blanks or trailing dots (Windows and mtools strip
 * them); not `-`, which mcopy -s copies as an empty file (it reads the name as standard input); and
 * none that mcopy reads as `.` or `..`.
 */
const longName = fc.array(fc.constantFrom(...CHARS), { minLength: 1, maxLength: 24 }).map((a) => a.join(''))
  .filter((n) => n.trim() === n && !n.endsWith('.') && n !== '.' && n !== '..' && n !== '-' && !mcopyReadsAsDot(n));
/** 8.3 names in lower case or with one part lower: stored as short names with NT case flags. */
const shortName = fc.tuple(
  fc.array(fc.constantFrom(...LOWER_83), { minLength: 1, maxLength: 8 }).map((a) => a.join('')),
  fc.array(fc.constantFrom(...LOWER_83), { minLength: 0, maxLength: 3 }).map((a) => a.join('')),
  fc.constantFrom('lower', 'upper-base', 'upper-ext'),
).map(([b, e, how]) => {
  const base = how === 'upper-base' ? b.toUpperCase() : b;
  const ext = how === 'upper-ext' ? e.toUpperCase() : e;
  return ext ? `${base}.${ext}` : base;
});
const name = fc.oneof(longName, shortName);

const size = fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 3000 }), fc.integer({ min: 3000, max: 40_000 }));

const tree = fc.array(fc.record({ dirs: fc.array(name, { maxLength: 5 }), name, size }), { minLength: 1, maxLength: 20 });

const shapes = [
  { size: 4 * 1024 * 1024, mkfs: ['-F', '12'] },
  { size: 16 * 1024 * 1024, mkfs: ['-F', '16'] },
  { size: 40 * 1024 * 1024, mkfs: ['-F', '32'] },
];

/** Names compare case-insensitively on FAT: keep the first of any that fold together, and never a file where a directory is. */
function toFiles(items: { dirs: string[]; name: string; size: number }[]): TreeFile[] {
  const kinds = new Map<string, 'dir' | 'file'>();
  const files: TreeFile[] = [];
  items.forEach((it, i) => {
    const parts = [...it.dirs, it.name];
    for (let k = 0; k < parts.length; k++) {
      const key = parts.slice(0, k + 1).join('/').toUpperCase();
      const want = k === parts.length - 1 ? 'file' : 'dir';
      const have = kinds.get(key);
      if (have !== undefined && (have !== want || want === 'file')) return;
    }
    for (let k = 0; k < parts.length; k++) kinds.set(parts.slice(0, k + 1).join('/').toUpperCase(), k === parts.length - 1 ? 'file' : 'dir');
    files.push({ path: parts.join('/'), data: pattern(i + 1, it.size) });
  });
  return files;
}

test('random trees round-trip through mkfs.vfat + mcopy and the reader', async (t) => {
  if (!needPeers(t, 'mkfs.vfat', 'mcopy')) return;
  const dir = tempDir(t);
  let runNo = 0;
  await fc.assert(
    fc.asyncProperty(tree, fc.constantFrom(...shapes), async (items, shape) => {
      const src = join(dir, `src${++runNo}`);
      const img = join(dir, 'fat.img');
      rmSync(img, { force: true });
      mkdirSync(src);
      writeTree(src, toFiles(items));
      run('truncate', ['-s', String(shape.size), img]);
      run('mkfs.vfat', [...shape.mkfs, img]);
      run('mcopy', ['-s', '-m', '-i', img, ...readdirSync(src).map((n) => join(src, n)), '::/']);
      const { fs, close } = await openFat(img);
      try {
        const ours = await walkAll(fs);
        const source = readSource(src);
        assert.deepEqual(ours.map((o) => o.path).sort(), [...source.keys()].sort());
        for (const o of ours) {
          const s = source.get(o.path)!;
          assert.equal(o.stats.type, s.dir ? 'directory' : 'file', o.path);
          if (!s.dir) {
            assert.equal(sha(o.content!), sha(s.data!), o.path);
            assert.equal(o.stats.mtime!.sec, s.mtime - (s.mtime % 2), o.path);
          }
        }
      } finally {
        await close();
        rmSync(src, { recursive: true, force: true });
      }
    }),
    { numRuns: 15, interruptAfterTimeLimit: 40_000 },
  );
});

test('read windows: concurrent small and large reads anywhere return the volume bytes, with and without readInto', async () => {
  const size = 12 * 1024 * 1024 + 777;
  const bytes = pattern(9, size);
  const plain = {
    size,
    async read(offset: number, length: number) {
      const out = Buffer.alloc(length);
      // Reads finish out of order, as thread-pool reads do: a window refilled while a reader still
      // waits to copy from it would show here.
      await new Promise((r) => setTimeout(r, (offset >> 20) % 3));
      if (offset < size) bytes.copy(out, 0, offset, Math.min(size, offset + length));
      return out;
    },
  };
  const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
  const withInto = {
    ...plain,
    // As a thread-pool read: the bytes land in the buffer some time before the caller hears of it.
    async readInto(buf: Uint8Array, offset: number) {
      await sleep((offset >> 20) % 2);
      buf.fill(0);
      if (offset < size) buf.set(bytes.subarray(offset, Math.min(size, offset + buf.length)));
      await sleep(((offset >> 20) * 7) % 4);
    },
  };
  const read = fc.record({ offset: fc.integer({ min: 0, max: size + 4096 }), length: fc.oneof(fc.integer({ min: 0, max: 5000 }), fc.integer({ min: 0, max: 600_000 })) });
  await fc.assert(
    fc.asyncProperty(fc.boolean(), fc.array(fc.array(read, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 6 }), async (into, batches) => {
      const windows = new WindowCache(into ? withInto : plain, 1024 * 1024, 8, 2, 256 * 1024);
      for (const batch of batches) {
        const got = await Promise.all(batch.map(async (r) => {
          const buf = Buffer.alloc(r.length, 0xee);
          await windows.readInto(buf, r.offset);
          return buf;
        }));
        batch.forEach((r, i) => {
          const want = Buffer.alloc(r.length);
          if (r.offset < size) bytes.copy(want, 0, r.offset, Math.min(size, r.offset + r.length));
          assert.ok(got[i].equals(want), `${r.length} bytes at ${r.offset}`);
        });
      }
    }),
    { numRuns: 150 },
  );
});
