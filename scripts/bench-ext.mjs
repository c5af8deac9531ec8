#!/usr/bin/env node
// Extracting from ext4: vdisk get from the file system held in a dynamic VHDX, against debugfs rdump of
// the same file system as a raw image, measured in one run. One large file, then a tree of many small
// files, at issue 13's sizes. Sizes are settable: BENCH_EXT_FILE_MIB (default 1024), BENCH_EXT_FILES
// (default 20000); the target ratio BENCH_EXT_TARGET (default 1.0), runs BENCH_EXT_RUNS (default 5).
// Fixtures live in a temporary directory removed at the end (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, compare, fixtureDir, need, report, reportTreeFloor, sh, time, treeFloor, writeVariedFile, variedBytes } from './bench-lib.mjs';

process.env.PATH = `${process.env.PATH}:/usr/sbin:/sbin`;
need('qemu-img');
need('mkfs.ext4');
need('debugfs');
const fileMiB = Number(process.env.BENCH_EXT_FILE_MIB ?? 1024);
const files = Number(process.env.BENCH_EXT_FILES ?? 20000);
const target = Number(process.env.BENCH_EXT_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_EXT_RUNS ?? 5);

const name = `ext-${fileMiB}m-${files}f`;
const fixtures = fixtureDir(name);
const src = join(fixtures.dir, 'src');
const raw = join(fixtures.dir, `${name}.raw`);
const vhdx = join(fixtures.dir, `${name}.vhdx`);

if (fixtures.fresh) {
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'large'), { recursive: true });
  // The large file: a MiB at a time of bytes that differ from MiB to MiB (nothing compresses or dedups).
  writeVariedFile(join(src, 'large', 'file.bin'), fileMiB * MiB);
  const buf = variedBytes(MiB);
  // The tree: 100 files a directory, 1 to 16 KiB each.
  for (let i = 0; i < files; i++) {
    const dir = join(src, 'tree', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, `f${i}`), buf.subarray(i % 1000, (i % 1000) + 1024 * (1 + (i % 16))));
  }
  const sizeMiB = Math.ceil(fileMiB * 1.2 + (files * 24) / 1024 + 64);
  rmSync(raw, { force: true });
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, raw, `${sizeMiB}M`]);
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  rmSync(src, { recursive: true, force: true });
  fixtures.done();
}

const outOurs = join(OUT_DIR, 'vdisk-bench-ext-ours');
const outPeer = join(OUT_DIR, 'vdisk-bench-ext-peer');
const clean = () => {
  rmSync(outOurs, { recursive: true, force: true });
  rmSync(outPeer, { recursive: true, force: true });
  mkdirSync(outPeer);
  spawnSync('sync');
};

const [oursLarge, peerLarge] = compare(
  [`node ${VDISK} get -q ${vhdx} /large ${outOurs}`, `debugfs -R 'rdump /large ${outPeer}' ${raw} 2>/dev/null`],
  runs,
  clean,
);
const [oursTree, peerTree, nodeStart] = compare(
  [`node ${VDISK} get -q ${vhdx} /tree ${outOurs}`, `debugfs -R 'rdump /tree ${outPeer}' ${raw} 2>/dev/null`, 'node -e 0'],
  runs,
  clean,
);
// The host side alone, from the tree as extracted (which equals the source).
clean();
time(`node ${VDISK} get -q ${vhdx} /tree ${outOurs}`);
const floorTree = treeFloor(outOurs, runs);

// Peak memory of one extraction of the tree (GNU time's maximum resident set size, in KiB).
let peak = '';
if (existsSync('/usr/bin/time')) {
  clean();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', 'node', VDISK, 'get', '-q', vhdx, '/large', outOurs], { encoding: 'utf8' });
  peak = `${Math.round(Number(r.stderr.trim().split('\n').pop()) / 1024)} MiB`;
}
clean();
rmSync(outPeer, { recursive: true, force: true });

const ok = report([
  { name: `get a ${fileMiB} MiB file from ext4 in a VHDX`, ours: oursLarge, peer: 'debugfs rdump (raw)', theirs: peerLarge, ratio: oursLarge / peerLarge, target },
  { name: `get a ${files}-file tree from ext4 in a VHDX`, ours: oursTree, peer: 'debugfs rdump (raw)', theirs: peerTree, ratio: oursTree / peerTree, target },
]);
reportTreeFloor({ name: 'the tree', floor: floorTree, nodeStart, peer: 'debugfs rdump', theirs: peerTree, target });
if (peak) console.log(`  peak memory of vdisk get of the large file: ${peak}`);
process.exitCode = ok ? 0 : 1;
