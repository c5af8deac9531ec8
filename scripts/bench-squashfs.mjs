#!/usr/bin/env node
// vdisk get vs unsquashfs -d, from one squashfs image holding a large file and a tree of many small
// files. Ratios, measured in the same run. unsquashfs decompresses on every core; so do we, through
// zlib's thread pool (gzip). Sizes by environment: BENCH_SQFS_FILE_MIB (default 512),
// BENCH_SQFS_FILES (default 5000), BENCH_SQFS_COMP (default gzip), BENCH_SQFS_TARGET (default 1.0).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, WORK, compare, need, report, sh, writeVariedFile } from './bench-lib.mjs';

need('mksquashfs');
need('unsquashfs');
const fileMiB = Number(process.env.BENCH_SQFS_FILE_MIB ?? 512);
const files = Number(process.env.BENCH_SQFS_FILES ?? 5000);
const comp = process.env.BENCH_SQFS_COMP ?? 'gzip';
const target = Number(process.env.BENCH_SQFS_TARGET ?? 1.0);

const src = join(WORK, `sqfs-src-${fileMiB}m-${files}`);
const img = join(WORK, `sqfs-${fileMiB}m-${files}-${comp}.sqfs`);
if (!existsSync(img)) {
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'tree'), { recursive: true });
  writeVariedFile(join(src, 'big.bin'), fileMiB * MiB);
  // The tree: 100 files to a directory, 200 bytes to 8 KiB each.
  for (let i = 0; i < files; i++) {
    const d = join(src, 'tree', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d);
    writeFileSync(join(d, `file-${i}.txt`), `${i} `.repeat(50 + ((i * 37) % 2000)));
  }
  sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', comp]);
  rmSync(src, { recursive: true, force: true });
}

const out = join(OUT_DIR, 'vdisk-bench-sqfs');
const clean = () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  spawnSync('sync');
};
const unsquashfs = (path) => `unsquashfs -q -no-progress -d ${out}/x ${img} ${path} >/dev/null 2>&1`;
const [oursBig, theirsBig] = compare([`node ${VDISK} get ${img} /big.bin ${out}/x`, unsquashfs('/big.bin')], 5, clean);
const [oursTree, theirsTree] = compare([`node ${VDISK} get ${img} /tree ${out}/x`, unsquashfs('/tree')], 5, clean);
rmSync(out, { recursive: true, force: true });
const ok = report([
  { name: `extract a ${fileMiB} MiB file from a ${comp} squashfs`, ours: oursBig, peer: 'unsquashfs -d', theirs: theirsBig, ratio: oursBig / theirsBig, target },
  { name: `extract a ${files}-file tree from a ${comp} squashfs`, ours: oursTree, peer: 'unsquashfs -d', theirs: theirsTree, ratio: oursTree / theirsTree, target },
]);
process.exitCode = ok ? 0 : 1;
