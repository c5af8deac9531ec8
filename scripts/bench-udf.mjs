#!/usr/bin/env node
// vdisk get from a UDF volume vs 7-Zip's extraction of the same volume (the kernel here cannot mount
// UDF, so no `cp -a` from a loop mount): one large file, and a tree of many small files, from the raw
// volume and from the same volume inside a dynamic VHDX. The volume is made by genisoimage -udf.
// Sizes: UDF_BENCH_FILE_MB (default 1024), UDF_BENCH_FILES (default 20000), UDF_BENCH_RUNS (default 5).
// Fixtures live in a temporary directory removed at the end (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { mkdirSync, openSync, rmSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, compare, fixtureDir, need, report, sh, writeVariedFile } from './bench-lib.mjs';

need('genisoimage');
need('qemu-img');
const sevenZip = ['7zz', '7z'].find((c) => {
  try {
    sh('sh', ['-c', `command -v ${c}`]);
    return true;
  } catch {
    return false;
  }
});
if (!sevenZip) {
  console.error('bench: 7zz or 7z is needed (apt-get install 7zip)');
  process.exit(1);
}
const fileMb = Number(process.env.UDF_BENCH_FILE_MB ?? 1024);
const files = Number(process.env.UDF_BENCH_FILES ?? 20000);
const runs = Number(process.env.UDF_BENCH_RUNS ?? 5);
const target = Number(process.env.UDF_BENCH_TARGET ?? 1.0);

const fixtures = fixtureDir(`udf-${fileMb}m-${files}`);
const src = join(fixtures.dir, 'src');
const iso = join(fixtures.dir, 'udf.iso');
const vhdx = join(fixtures.dir, 'udf.vhdx');
if (fixtures.fresh) {
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'big'), { recursive: true });
  writeVariedFile(join(src, 'big', 'large.bin'), fileMb * MiB);
  // Small files of 100 bytes to 8 KiB, 100 to a directory.
  for (let i = 0; i < files; i++) {
    const dir = join(src, 'tree', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(dir, { recursive: true });
    const f = openSync(join(dir, `file-${i}.txt`), 'w');
    writeSync(f, Buffer.alloc(100 + ((i * 997) % 8092), i % 251));
    closeSync(f);
  }
  sh('genisoimage', ['-quiet', '-udf', '-o', iso, src]);
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', iso, vhdx]);
  rmSync(src, { recursive: true, force: true });
  fixtures.done();
}

const out = join(OUT_DIR, 'vdisk-bench-udf-out');
const clean = () => rmSync(out, { recursive: true, force: true });
const ours = (img, path) => `mkdir -p ${out} && node ${VDISK} get ${img} ${path} ${out}/x`;
const theirs = (path) => `${sevenZip} x -tudf -bso0 -bsp0 -y -o${out} ${iso} '${path.slice(1)}/*' >/dev/null`;

const [bigRaw, bigVhdx, big7z] = compare([ours(iso, '/big'), ours(vhdx, '/big'), theirs('/big')], runs, clean);
const [treeRaw, treeVhdx, tree7z] = compare([ours(iso, '/tree'), ours(vhdx, '/tree'), theirs('/tree')], runs, clean);
clean();
const ok = report([
  { name: `${fileMb} MiB file from raw UDF`, ours: bigRaw, peer: `${sevenZip} x`, theirs: big7z, ratio: bigRaw / big7z, target },
  { name: `${fileMb} MiB file from UDF in VHDX`, ours: bigVhdx, peer: `${sevenZip} x (raw)`, theirs: big7z, ratio: bigVhdx / big7z, target },
  { name: `${files}-file tree from raw UDF`, ours: treeRaw, peer: `${sevenZip} x`, theirs: tree7z, ratio: treeRaw / tree7z, target },
  { name: `${files}-file tree from UDF in VHDX`, ours: treeVhdx, peer: `${sevenZip} x (raw)`, theirs: tree7z, ratio: treeVhdx / tree7z, target },
]);
process.exitCode = ok ? 0 : 1;
