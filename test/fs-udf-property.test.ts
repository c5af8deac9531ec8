import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { needPeers, tempDir } from './helpers/peers.js';
import { needPycdlib, makePycdlibUdf, walkFs, walkHost } from './helpers/udf.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';

/** Names from several scripts, astral characters (surrogate pairs in UDF's UTF-16) included. */
const nameChar = fc.constantFrom(
  ...'abcXYZ019 -_.~'.split(''), 'é', 'ß', 'Ж', 'я', 'Ω', 'ع', 'ש', 'अ', '中', '文', 'の', '한', '😀', '𝄞', '✓',
);
const name = fc.array(nameChar, { minLength: 1, maxLength: 24 }).map((a) => a.join('')).filter((n) => n !== '.' && n !== '..' && n.trim() === n && Buffer.byteLength(n) <= 200);

type Tree = { [name: string]: Tree | { size: number; seed: number } | { link: string } };

const leaf = fc.oneof(
  fc.record({ size: fc.oneof(fc.constant(0), fc.nat({ max: 3000 }), fc.nat({ max: 300_000 })), seed: fc.nat({ max: 255 }) }),
  fc.record({ link: fc.oneof(fc.constant('../x'), fc.constant('/abs/target'), name) }),
);
const tree: fc.Arbitrary<Tree> = fc.letrec((tie) => ({
  dir: fc.dictionary(name, fc.oneof({ depthSize: 'small', withCrossShrink: true }, leaf, tie('dir')), { maxKeys: 5 }) as fc.Arbitrary<Tree>,
})).dir;

function materialise(root: string, t: Tree): void {
  mkdirSync(root, { recursive: true });
  for (const [n, v] of Object.entries(t)) {
    const p = join(root, n);
    if ('link' in v && typeof v.link === 'string') symlinkSync(v.link as string, p);
    else if ('size' in v && typeof v.size === 'number') writeFileSync(p, Buffer.alloc(v.size as number, v.seed as number));
    else materialise(p, v as Tree);
  }
}

/** A deep path, always: UDF has no depth limit of its own. */
function withDeepPath(root: string): void {
  let p = root;
  for (let i = 0; i < 12; i++) p = join(p, `level-${i}`);
  mkdirSync(p, { recursive: true });
  writeFileSync(join(p, 'bottom.txt'), 'deep\n');
}

test('random trees (names in many scripts, empty files, links, deep paths) round-trip through pycdlib and our reader', async (t) => {
  if (!needPycdlib(t)) return;
  const dir = tempDir(t);
  let run = 0;
  await fc.assert(
    fc.asyncProperty(tree, async (tr) => {
      const src = join(dir, `src-${run}`);
      const iso = join(dir, `tree-${run++}.iso`);
      materialise(src, tr);
      withDeepPath(src);
      makePycdlibUdf(src, iso);
      const image = await openImage(iso);
      try {
        const fs = await openFilesystem(image);
        const ours = await walkFs(fs);
        const host = walkHost(src);
        assert.deepEqual([...ours.keys()].sort(), [...host.keys()].sort());
        for (const [p, h] of host) {
          const o = ours.get(p);
          assert.equal(o?.type, h.type, p);
          if (h.type === 'file') assert.equal(o?.sha, h.sha, p);
          if (h.type === 'symlink') assert.equal(o?.target, h.target, p);
        }
      } finally {
        await image.close();
        rmSync(src, { recursive: true, force: true });
        rmSync(iso, { force: true });
      }
    }),
    { numRuns: 15, interruptAfterTimeLimit: 40_000 },
  );
});
