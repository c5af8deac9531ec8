import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, openSync, closeSync, ftruncateSync, writeSync, rmSync, writeFileSync, readFileSync, symlinkSync, chmodSync, linkSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { unsquashfsListing, walkSquash } from './helpers/squashfs.js';
import { withFs } from './helpers/fs-tree.js';

/** A name squashfs can carry: no "/" or NUL, not "." or "..", at most 255 bytes of UTF-8. */
const name = fc
  .string({ unit: fc.oneof(fc.constantFrom('a', 'Z', '0', ' ', '.', '-', '_', 'é', 'ß', 'Ж', 'ש', '中', '😀'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 40 })
  .filter((s) => !s.includes('/') && !s.includes('\0') && s !== '.' && s !== '..' && s !== 'always here' && Buffer.byteLength(s) <= 255);

interface FileSpec { kind: 'file'; size: number; hole: boolean; mode: number }
interface LinkSpec { kind: 'symlink'; target: string }
interface DirSpec { kind: 'dir'; children: Map<string, Spec> }
type Spec = FileSpec | LinkSpec | DirSpec;

const file: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant('file' as const),
  size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 4096, max: 300_000 })),
  hole: fc.boolean(),
  mode: fc.constantFrom(0o644, 0o600, 0o755, 0o4711, 0o1777),
});
const link: fc.Arbitrary<Spec> = fc.record({ kind: fc.constant('symlink' as const), target: fc.string({ minLength: 1, maxLength: 300 }).filter((s) => !s.includes('\0')) });

const tree = fc.letrec<{ dir: Spec }>((tie) => ({
  dir: fc
    .uniqueArray(fc.tuple(name, fc.oneof({ depthSize: 'small', withCrossShrink: true }, file, link, tie('dir'))), { selector: ([n]) => n, maxLength: 7 })
    .map((entries) => ({ kind: 'dir' as const, children: new Map(entries) })),
})).dir;

function build(root: string, spec: DirSpec, seed: { n: number }, files: string[]): void {
  for (const [n, child] of spec.children) {
    const p = join(root, n);
    if (child.kind === 'dir') {
      mkdirSync(p);
      build(p, child, seed, files);
      continue;
    }
    if (child.kind === 'symlink') {
      symlinkSync(child.target, p);
      continue;
    }
    const fd = openSync(p, 'w');
    ftruncateSync(fd, child.size);
    // A sparse file keeps zeros in the middle: data at both ends only.
    const marks = child.hole ? [0, Math.max(0, child.size - 16)] : Array.from({ length: Math.ceil(child.size / 4096) }, (_, i) => i * 4096);
    for (const at of marks) {
      const b = Buffer.from(`${seed.n++}:${at}:`.padEnd(16, '#'));
      writeSync(fd, b, 0, Math.min(b.length, child.size - at), at);
    }
    closeSync(fd);
    chmodSync(p, child.mode);
    files.push(p);
  }
}

test('random trees (names in many scripts, empty, sparse and multi-block files, symlinks, hard links) round-trip through mksquashfs (gzip, lz4, lzo, xz, zstd) as unsquashfs lists them', async (t) => {
  if (!needPeers(t, 'mksquashfs', 'unsquashfs')) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(tree, fc.constantFrom('gzip', 'lz4', 'lzo', 'xz', 'zstd'), fc.constantFrom('4K', '32K', '128K'), fc.boolean(), async (spec, comp, bs, hardlink) => {
      const src = join(dir, `src${run}`);
      const img = join(dir, `t${run++}.sqfs`);
      mkdirSync(src);
      try {
        const files: string[] = [];
        build(src, spec as DirSpec, { n: 0 }, files);
        writeFileSync(join(src, 'always here'), 'x');
        if (hardlink && files.length) linkSync(files[0], join(src, 'hard link'));
        sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', comp, '-b', bs]);
        const ours = await withFs(img, (fs) => walkSquash(fs));
        const theirs = unsquashfsListing(img);
        assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
        for (const [p, u] of theirs) {
          const o = ours.get(p);
          assert.ok(o, p);
          assert.equal(o.type, u.type, p);
          assert.equal(o.perms, u.perms, p);
          assert.equal(o.size, u.size, p);
          assert.equal(o.mtime, u.mtime, p);
          assert.equal(o.target, u.target, p);
          if (o.type === 'file') assert.ok(o.read?.equals(readFileSync(join(src, p))), `${p}: contents`);
        }
        if (hardlink && files.length) {
          const rel = files[0].slice(src.length);
          assert.equal(ours.get(rel)?.ino, ours.get('/hard link')?.ino, 'hard links share an inode');
          assert.equal(ours.get('/hard link')?.nlink, 2);
        }
      } finally {
        rmSync(src, { recursive: true, force: true });
        rmSync(img, { force: true });
      }
    }),
    { numRuns: 10 },
  );
});
