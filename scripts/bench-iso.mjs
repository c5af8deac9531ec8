#!/usr/bin/env node
// vdisk get vs xorriso -osirrox on -extract, from one ISO (Rock Ridge, Joliet) holding a large file
// and a tree of many small files. Ratios, measured in the same run. Sizes by environment:
// BENCH_ISO_FILE_MIB (default 1024), BENCH_ISO_FILES (default 20000: issue 14's sizes), BENCH_ISO_TARGET
// (default 1.0), BENCH_ISO_RUNS (default 5). Fixtures live in a temporary directory removed at the end
// (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, compare, fixtureDir, need, report, reportTreeFloor, sh, time, treeFloor, writeVariedFile } from './bench-lib.mjs';

need('xorriso');
const fileMiB = Number(process.env.BENCH_ISO_FILE_MIB ?? 1024);
const files = Number(process.env.BENCH_ISO_FILES ?? 20000);
const target = Number(process.env.BENCH_ISO_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_ISO_RUNS ?? 5);

const fixtures = fixtureDir(`iso-${fileMiB}m-${files}`);
const src = join(fixtures.dir, 'src');
const iso = join(fixtures.dir, 'bench.iso');
if (fixtures.fresh) {
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'tree'), { recursive: true });
  // The large file: incompressible-looking data, written in 4 MiB pieces.
  writeVariedFile(join(src, 'big.bin'), fileMiB * MiB);
  // The tree: 100 files to a directory, 200 bytes to 8 KiB each.
  for (let i = 0; i < files; i++) {
    const d = join(src, 'tree', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d);
    writeFileSync(join(d, `file-${i}.txt`), `${i} `.repeat(50 + ((i * 37) % 2000)));
  }
  sh('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', iso, src]);
  rmSync(src, { recursive: true, force: true });
  fixtures.done();
}

const out = join(OUT_DIR, 'vdisk-bench-iso');
const clean = () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out);
  spawnSync('sync');
};
const xorriso = (path) => `xorriso -osirrox on -indev ${iso} -extract ${path} ${out}/x >/dev/null 2>&1`;
const [oursBig, theirsBig] = compare([`node ${VDISK} get ${iso} /big.bin ${out}/x`, xorriso('/big.bin')], runs, clean);
const [oursTree, theirsTree, nodeStart] = compare([`node ${VDISK} get ${iso} /tree ${out}/x`, xorriso('/tree'), 'node -e 0'], runs, clean);
// The host side alone, from the tree as extracted (which equals the source).
clean();
time(`node ${VDISK} get ${iso} /tree ${out}/x`);
const floorTree = treeFloor(join(out, 'x'), runs);
rmSync(out, { recursive: true, force: true });
const ok = report([
  { name: `extract a ${fileMiB} MiB file from an ISO`, ours: oursBig, peer: 'xorriso -extract', theirs: theirsBig, ratio: oursBig / theirsBig, target },
  { name: `extract a ${files}-file tree from an ISO`, ours: oursTree, peer: 'xorriso -extract', theirs: theirsTree, ratio: oursTree / theirsTree, target },
]);
reportTreeFloor({ name: 'the tree', floor: floorTree, nodeStart, peer: 'xorriso -extract', theirs: theirsTree, target });
process.exitCode = ok ? 0 : 1;
