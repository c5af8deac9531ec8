#!/usr/bin/env node
// Pulling files out of NTFS: `vdisk get` from a dynamic VHDX holding the volume vs ntfscat (one large
// file) and an ntfs-3g FUSE mount + `cp -a` (a many-file tree) of the same raw volume. Ratios, in one run.
// Sizes: NTFS_BENCH_FILE_MB (default 1024) and NTFS_BENCH_FILES (default 20000: issue 14's sizes), runs
// NTFS_BENCH_RUNS (default 5). Fixtures live in a temporary directory removed at the end
// (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, compare, fixtureDir, need, report, sh, writeVariedFile, variedBytes } from './bench-lib.mjs';

for (const cmd of ['mkntfs', 'ntfs-3g', 'ntfscat', 'qemu-img']) need(cmd);
const fileMiB = Number(process.env.NTFS_BENCH_FILE_MB ?? 1024);
const files = Number(process.env.NTFS_BENCH_FILES ?? 20000);
const target = Number(process.env.BENCH_NTFS_TARGET ?? 1.0);
const runs = Number(process.env.NTFS_BENCH_RUNS ?? 5);

const fixtures = fixtureDir(`ntfs-${fileMiB}m-${files}`);
const raw = join(fixtures.dir, 'ntfs.raw');
const vhdx = join(fixtures.dir, 'ntfs.vhdx');
const mnt = join(fixtures.dir, 'mnt');
mkdirSync(mnt, { recursive: true });

if (fixtures.fresh) {
  rmSync(raw, { force: true });
  const size = (fileMiB + Math.ceil((files * 12 * 1024) / MiB) + 64) * MiB;
  sh('truncate', ['-s', String(size), raw]);
  sh('mkntfs', ['-q', '-F', '-f', '-L', 'bench', raw]);
  sh('ntfs-3g', [raw, mnt]);
  try {
    writeVariedFile(join(mnt, 'big.bin'), fileMiB * MiB);
    const buf = variedBytes(4 * MiB);
    // The tree: 100 directories of small files from 100 bytes to 8 KiB (resident and not).
    for (let i = 0; i < files; i++) {
      const d = join(mnt, 'tree', `dir${i % 100}`);
      if (i < 100) mkdirSync(d, { recursive: true });
      writeFileSync(join(d, `file ${i}.dat`), buf.subarray(i * 8, i * 8 + 100 + ((i * 97) % 8000)));
    }
  } finally {
    spawnSync('umount', [mnt]);
  }
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  fixtures.done();
}

const outFile = join(OUT_DIR, 'vdisk-bench-ntfs.bin');
const outTree = join(OUT_DIR, 'vdisk-bench-ntfs-tree');
const clean = () => {
  rmSync(outFile, { force: true });
  rmSync(outTree, { recursive: true, force: true });
  spawnSync('sync');
};

const [oursFile, catFile] = compare([`node ${VDISK} get ${vhdx} /big.bin ${outFile}`, `ntfscat ${raw} /big.bin > ${outFile}`], runs, clean);
const [oursTree, cpTree] = compare(
  [`node ${VDISK} get ${vhdx} /tree ${outTree}`, `ntfs-3g -o ro ${raw} ${mnt} && cp -a ${mnt}/tree ${outTree}; r=$?; umount ${mnt}; exit $r`],
  runs,
  clean,
);
clean();
const ok = report([
  { name: `get a ${fileMiB} MiB file from NTFS in a VHDX`, ours: oursFile, peer: 'ntfscat of the raw', theirs: catFile, ratio: oursFile / catFile, target },
  { name: `get a ${files}-file tree from NTFS in a VHDX`, ours: oursTree, peer: 'ntfs-3g mount + cp -a', theirs: cpTree, ratio: oursTree / cpTree, target },
]);
process.exitCode = ok ? 0 : 1;
