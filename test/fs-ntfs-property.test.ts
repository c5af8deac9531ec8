import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { chmodSync, closeSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, utimesSync, writeSync } from 'node:fs';
import fc from 'fast-check';
import { needPeers, sh, tempDir } from './helpers/peers.js';
import { compareTrees } from './helpers/fs-tree.js';
import { mountNtfs, unmount, noiseBytes } from './helpers/ntfs.js';
import { openImage } from '../src/formats/open.js';
import { openFilesystem } from '../src/filesystems/open.js';
import { extractTree } from '../src/ops/extract.js';

/**
 * Random trees (names in many scripts, empty files, deep paths, sparse files) copied onto a fresh mkntfs
 * volume by ntfs-3g (`cp -a`), then pulled back out through the reader: the copy equals the source.
 */

type Node = { kind: 'file'; size: number; seed: number; sparse: boolean } | { kind: 'dir'; children: [string, Node][] };

const pieces = ['a', 'Z', 'é', 'Ω', 'ж', '日本', '🎉', 'ش', ' ', '.', '-', 'x1', 'ß', 'İ', 'ǅ', '\u00a0'];
const name = fc
  .array(fc.constantFrom(...pieces), { minLength: 1, maxLength: 12 })
  .map((p) => p.join(''))
  .filter((n) => n !== '.' && n !== '..');

const file = fc.record({ kind: fc.constant('file' as const), size: fc.oneof(fc.constant(0), fc.nat(3000), fc.nat(40_000)), seed: fc.nat(), sparse: fc.boolean() });
const tree = fc.letrec<{ dir: Node; node: Node }>((tie) => ({
  dir: fc
    .uniqueArray(fc.tuple(name, tie('node')), { maxLength: 8, selector: ([n]) => n })
    .map((children) => ({ kind: 'dir' as const, children })),
  node: fc.oneof({ depthSize: 'small', withCrossShrink: true }, file, tie('dir')),
})).dir;

function build(root: string, node: Node): void {
  if (node.kind === 'file') {
    const fd = openSync(root, 'w');
    if (node.sparse && node.size > 0) {
      // Data a little past 1 MiB, a hole before it.
      writeSync(fd, noiseBytes(Math.min(node.size, 5000), node.seed), 0, Math.min(node.size, 5000), 1024 * 1024 + (node.seed % 4096));
      ftruncateSync(fd, 1024 * 1024 + 8192 + node.size);
    } else if (node.size > 0) writeSync(fd, noiseBytes(node.size, node.seed));
    closeSync(fd);
    chmodSync(root, 0o755);
    utimesSync(root, 1_400_000_000 + (node.seed % 1_000_000) + 0.5, 1_400_000_000 + (node.seed % 1_000_000) + 0.25);
    return;
  }
  mkdirSync(root, { recursive: true, mode: 0o755 });
  for (const [n, child] of node.children) build(join(root, n), child);
  chmodSync(root, 0o755);
}

test('random trees round-trip through mkntfs + ntfs-3g and the reader', async (t) => {
  if (!needPeers(t, 'mkntfs', 'ntfs-3g')) return;
  const dir = tempDir(t, 'vdisk-ntfs-prop-');
  let run = 0;
  await fc.assert(
    fc.asyncProperty(tree, async (root) => {
      const base = join(dir, `run${run++}`);
      const src = join(base, 'src');
      const img = join(base, 'ntfs.img');
      const mnt = join(base, 'mnt');
      const out = join(base, 'out');
      build(src, root);
      sh('truncate', ['-s', String(16 * 1024 * 1024), img]);
      sh('mkntfs', ['-q', '-F', '-f', img]);
      mountNtfs(img, mnt, 'rw');
      try {
        sh('cp', ['-a', `${src}/.`, `${mnt}/`]);
      } finally {
        unmount(mnt);
      }
      const image = await openImage(img);
      try {
        const fs = await openFilesystem(image);
        mkdirSync(out);
        await extractTree(fs, '/', out);
        // The root directory's own mtime changed as cp filled it; everything below must be equal.
        assert.deepEqual(compareTrees(src, out, { modes: true, mtimeMs: 0.001 }), []);
        // Whole reads too (holes included: get skips them, a reader must still give zeros).
        const files = (readdirSync(src, { recursive: true }) as string[]).filter((p) => statSync(join(src, p)).isFile());
        for (const p of files) {
          const f = await fs.open(`/${p}`);
          const got = Buffer.alloc(f.size);
          await f.read(got, 0);
          assert.ok(got.equals(readFileSync(join(src, p))), `${p}: contents`);
        }
      } finally {
        await image.close();
      }
      rmSync(base, { recursive: true, force: true });
    }),
    { numRuns: 20, interruptAfterTimeLimit: 25_000 },
  );
  t.diagnostic(`${run} trees`);
});
