import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, truncateSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir, vdisk } from './helpers/peers.js';
import { compareTrees } from './helpers/fs-tree.js';
import { EXFAT_PEERS, fillExfat, mkfsExfat, patternBytes } from './helpers/exfat.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';

const MiB = 1024 * 1024;

/** Characters from many scripts (astral ones as surrogate pairs), and the punctuation exFAT allows in names. */
const CHARS = [
  ...'abcXYZ019 -_+=,;!#$%&()[]{}~\'@',
  ...'αβγΔΣωЖжЯяשׁاﻻबिँ中文字日本語한글ไทยéÈüÖßçÅ',
  '😀', '𝄞', '𠜎',
];

const nameArb = fc
  .array(fc.constantFrom(...CHARS), { minLength: 1, maxLength: 60, size: 'max' })
  .map((cs) => cs.join(''))
  // Leading or trailing spaces and dots are trimmed by some exFAT implementations; '.' and '..' are not names.
  .filter((n) => !/^[ .]|[ .]$/.test(n) && Buffer.byteLength(n) <= 255 && n.length <= 255);

interface Entry {
  path: string[];
  kind: 'file' | 'dir';
  size: number;
  sparse: boolean;
  mtime: number;
  seed: number;
}

const entryArb: fc.Arbitrary<Entry> = fc.record({
  path: fc.array(nameArb, { minLength: 1, maxLength: 6 }),
  kind: fc.constantFrom<'file' | 'dir'>('file', 'file', 'file', 'dir'),
  size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 5000, max: 300_000 })),
  sparse: fc.boolean(),
  mtime: fc.integer({ min: 631_152_000, max: 4_102_444_798 }), // 1990 to 2099, whole seconds
  seed: fc.nat(),
});

/**
 * Makes the host tree; drops entries that clash with earlier ones, under exFAT's case folding (compared
 * here conservatively by both JavaScript case mappings) or as a file where a directory is needed.
 */
function buildTree(root: string, entries: Entry[]): number {
  const kinds = new Map<string, 'file' | 'dir'>();
  const key = (parts: string[]) => parts.map((p) => `${p.toUpperCase()}|${p.toLowerCase()}`).join('/');
  const taken = new Map<string, string>(); // folded path -> real path
  let made = 0;
  const times: [string, number][] = [];
  for (const e of entries) {
    const real = e.path.join('/');
    let ok = true;
    for (let i = 1; i <= e.path.length; i++) {
      const k = key(e.path.slice(0, i));
      const r = e.path.slice(0, i).join('/');
      const want = i < e.path.length ? 'dir' : e.kind;
      if (taken.has(k) && (taken.get(k) !== r || kinds.get(r) !== want)) ok = false;
    }
    if (!ok) continue;
    for (let i = 1; i <= e.path.length; i++) {
      taken.set(key(e.path.slice(0, i)), e.path.slice(0, i).join('/'));
      kinds.set(e.path.slice(0, i).join('/'), i < e.path.length ? 'dir' : e.kind);
    }
    const p = join(root, real);
    if (e.kind === 'dir') mkdirSync(p, { recursive: true });
    else {
      mkdirSync(join(p, '..'), { recursive: true });
      if (e.sparse && e.size > 0) {
        // A hole, then data at the end: the source is sparse; exFAT holds it as zeros.
        writeFileSync(p, '');
        truncateSync(p, e.size);
        const tail = patternBytes(Math.min(100, e.size), e.seed);
        writeFileSync(p, tail, { flag: 'r+' });
      } else writeFileSync(p, patternBytes(e.size, e.seed));
      times.push([p, e.mtime]);
    }
    made++;
  }
  for (const [p, t] of times) utimesSync(p, t, t);
  return made;
}

test('random trees (many scripts, empty and sparse files, deep paths) round-trip through mkfs.exfat, exfat-fuse and vdisk get', async (t) => {
  if (!needPeers(t, ...EXFAT_PEERS)) return;
  const dir = tempDir(t);
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(fc.array(entryArb, { minLength: 1, maxLength: 25, size: 'max' }), fc.constantFrom(512, 4096, 32768), async (entries, clusterSize) => {
      runs++;
      const src = join(dir, 'src');
      const out = join(dir, 'out');
      const img = join(dir, 'fs.img');
      rmSync(src, { recursive: true, force: true });
      rmSync(out, { recursive: true, force: true });
      rmSync(img, { force: true });
      mkdirSync(src);
      buildTree(src, entries);
      mkfsExfat(img, 24 * MiB, { clusterSize });
      fillExfat(img, src, join(dir, 'mnt'));
      const r = vdisk(['get', img, '/', out]);
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stderr, '');
      assert.deepEqual(compareTrees(src, out, { mtimeMs: 0 }), []);
      // Every name is found again through the up-case table in upper case, as exFAT compares names.
      const image = await openImage(img);
      try {
        const fs = await openFilesystem(image);
        for (const e of entries.slice(0, 5)) {
          const upper = `/${e.path.map((p) => p.toUpperCase()).join('/')}`;
          const exact = `/${e.path.join('/')}`;
          const found = await fs.lstat(exact).then(() => true, () => false);
          if (found && [...upper].length === [...exact].length) {
            assert.equal((await fs.lstat(upper)).ino, (await fs.lstat(exact)).ino, upper);
          }
        }
      } finally {
        await image.close();
      }
    }),
    { numRuns: 12, seed: Number(process.env.FC_SEED ?? 20261122), endOnFailure: true },
  );
  assert.equal(runs, 12);
});
