import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { mkdirSync, openSync, closeSync, ftruncateSync, writeSync, rmSync, writeFileSync, readFileSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, tempDir, sh } from './helpers/peers.js';
import { walkOurs, walkSource, xorrisoLsdl } from './helpers/iso.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';

/** A name Rock Ridge can carry: no "/" or NUL, not "." or "..", at most 200 bytes of UTF-8. */
const name = fc
  .string({ unit: fc.oneof(fc.constantFrom('a', 'Z', '0', ' ', '.', '-', '_', 'é', 'ß', 'Ж', 'ש', 'ع', '中', '日', 'ह', '😀', '\u{1F3F3}'), fc.string({ unit: 'grapheme', minLength: 1, maxLength: 1 })), minLength: 1, maxLength: 40 })
  .filter((s) => !s.includes('/') && !s.includes('\0') && s !== '.' && s !== '..' && s !== 'always here' && Buffer.byteLength(s) <= 200);

interface FileSpec { kind: 'file'; size: number; hole: boolean }
interface DirSpec { kind: 'dir'; children: Map<string, Spec> }
type Spec = FileSpec | DirSpec;

const file: fc.Arbitrary<Spec> = fc.record({
  kind: fc.constant('file' as const),
  size: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5000 }), fc.integer({ min: 2048, max: 100_000 })),
  hole: fc.boolean(),
});

const tree = fc.letrec<{ dir: Spec }>((tie) => ({
  dir: fc
    .uniqueArray(fc.tuple(name, fc.oneof({ depthSize: 'small', withCrossShrink: true }, file, tie('dir'))), { selector: ([n]) => n, maxLength: 6 })
    .map((entries) => ({ kind: 'dir' as const, children: new Map(entries) })),
})).dir;

function build(root: string, spec: DirSpec, seed: { n: number }): void {
  for (const [n, child] of spec.children) {
    const p = join(root, n);
    if (child.kind === 'dir') {
      mkdirSync(p);
      build(p, child, seed);
      continue;
    }
    const fd = openSync(p, 'w');
    ftruncateSync(fd, child.size);
    // A sparse file keeps a hole in the middle: data at both ends only.
    const marks = child.hole ? [0, Math.max(0, child.size - 16)] : Array.from({ length: Math.ceil(child.size / 4096) }, (_, i) => i * 4096);
    for (const at of marks) {
      const b = Buffer.from(`${seed.n++}:${at}:`.padEnd(16, '#'));
      writeSync(fd, b, 0, Math.min(b.length, child.size - at), at);
    }
    closeSync(fd);
  }
}

test('random trees (names in many scripts, empty and sparse files, deep paths) round-trip through xorriso -R', async (t) => {
  if (!needPeers(t, 'xorrisofs', 'xorriso')) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(tree, async (spec) => {
      const src = join(dir, `src${run}`);
      const img = join(dir, `t${run++}.iso`);
      mkdirSync(src);
      try {
        build(src, spec as DirSpec, { n: 0 });
        // xorriso writes no image at all for an empty tree.
        writeFileSync(join(src, 'always here'), 'x');
        sh('xorrisofs', ['-quiet', '-R', '-o', img, src]);
        const image = await openImage(img);
        const ours = await (async () => {
          try {
            return await walkOurs(await openFilesystem(image));
          } finally {
            await image.close();
          }
        })();
        const source = walkSource(src);
        assert.deepEqual([...ours.keys()].sort(), [...source.keys()].sort());
        const theirs = xorrisoLsdl(img);
        assert.deepEqual([...ours.keys()].sort(), [...theirs.keys()].sort());
        for (const [p, s] of source) {
          const o = ours.get(p);
          assert.ok(o);
          assert.equal(o.type, s.type, p);
          assert.equal(o.perms, s.perms, p);
          if (s.type === 'file') {
            assert.equal(o.size, s.size, p);
            assert.ok(o.read?.equals(readFileSync(join(src, p))), `${p}: contents`);
          }
        }
      } finally {
        rmSync(src, { recursive: true, force: true });
        rmSync(img, { force: true });
      }
    }),
    { numRuns: 10 },
  );
});
