#!/usr/bin/env node
// Getting files out of exFAT: vdisk get vs exfat-fuse (mount read-only on a loop device, cp -a, unmount:
// what a Linux user without the kernel driver does; 7-Zip does not read exFAT). A large file and a tree
// of small files, from a raw image and (for vdisk) from the same volume in a GPT partition of a VHDX.
// Ratios measured in one run. Sizes: BENCH_EXFAT_FILE_MIB (default 1024), BENCH_EXFAT_FILES (default 20000).
// Fixtures live in a temporary directory removed at the end (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { mkdirSync, openSync, rmSync, writeSync, closeSync, utimesSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, compare, fixtureDir, need, report, sh, writeVariedFile, variedBytes } from './bench-lib.mjs';

for (const cmd of ['mkfs.exfat', 'mount.exfat-fuse', 'losetup', 'qemu-img', 'sfdisk']) need(cmd);
const fileMiB = Number(process.env.BENCH_EXFAT_FILE_MIB ?? 1024);
const files = Number(process.env.BENCH_EXFAT_FILES ?? 20000);
const runs = Number(process.env.BENCH_RUNS ?? 5);
const target = Number(process.env.BENCH_EXFAT_TARGET ?? 1.0);

const name = `exfat-${fileMiB}m-${files}f`;
const fixtures = fixtureDir(name);
const img = join(fixtures.dir, `${name}.img`);
const vhdx = join(fixtures.dir, `${name}.vhdx`);
const mnt = join(fixtures.dir, 'mnt');
mkdirSync(mnt, { recursive: true });

/** Runs `fn` with the image mounted through exfat-fuse on a loop device; unmounted and detached after. */
function mounted(image, opts, fn) {
  const dev = sh('losetup', ['-f', '--show', image]).trim();
  try {
    sh('mount.exfat-fuse', [...opts, dev, mnt]);
    try {
      return fn();
    } finally {
      sh('umount', [mnt]);
    }
  } finally {
    spawnSync('losetup', ['-d', dev]);
  }
}

if (fixtures.fresh) {
  const src = join(fixtures.dir, 'src');
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'tree'), { recursive: true });
  // The large file: varied bytes, so nothing downstream can shortcut zeros.
  writeVariedFile(join(src, 'big.bin'), fileMiB * MiB);
  const buf = variedBytes(16 * 1024);
  // The tree: 50 directories of small files, 1-16 KiB.
  let treeBytes = 0;
  for (let i = 0; i < files; i++) {
    const d = join(src, 'tree', `dir ${i % 50}`);
    if (i < 50) mkdirSync(d);
    const size = 1024 + ((i * 7919) % (15 * 1024));
    const p = join(d, `file ${i}.dat`);
    const f = openSync(p, 'w');
    writeSync(f, buf, 0, size);
    closeSync(f);
    utimesSync(p, 1_600_000_000 + i, 1_600_000_000 + i);
    treeBytes += size;
  }
  // exfatprogs picks 32 KiB clusters for volumes of this size: room for each small file's cluster.
  const volume = Math.ceil((fileMiB * MiB + files * 32 * 1024 + treeBytes + 64 * MiB) / MiB) * MiB;
  rmSync(img, { force: true });
  sh('truncate', ['-s', String(volume), img]);
  sh('mkfs.exfat', ['-L', 'BENCH', img]);
  mounted(img, [], () => sh('cp', ['-a', `${src}/.`, `${mnt}/`]));
  rmSync(src, { recursive: true, force: true });
  // The same volume in partition 1 of a GPT disk, as a dynamic VHDX.
  const raw = join(fixtures.dir, `${name}-disk.raw`);
  sh('truncate', ['-s', String(volume + 2 * MiB), raw]);
  spawnSync('sfdisk', ['-q', raw], { input: `label: gpt\nstart=2048, size=${volume / 512}\n` });
  sh('dd', [`if=${img}`, `of=${raw}`, 'bs=4M', 'seek=1M', 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  rmSync(vhdx, { force: true });
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
  rmSync(raw, { force: true });
  fixtures.done();
}

const out = join(OUT_DIR, 'vdisk-bench-exfat-out');
const clean = () => {
  rmSync(out, { recursive: true, force: true });
  spawnSync('sync');
};
// The peer's whole job: attach, mount, copy, unmount, detach (so FUSE's page cache starts cold each run, as ours does).
const fuse = (what) =>
  `dev=$(losetup -f --show -r ${img}) && mount.exfat-fuse -o ro $dev ${mnt} && cp -a '${mnt}/${what}' ${out}; r=$?; umount ${mnt}; losetup -d $dev; exit $r`;

const [oursFile, oursFileVhdx, fuseFile] = compare(
  [`node ${VDISK} get ${img} /big.bin ${out}`, `node ${VDISK} get ${vhdx} /big.bin ${out}`, fuse('big.bin')],
  runs,
  clean,
);
const [oursTree, oursTreeVhdx, fuseTree] = compare(
  [`node ${VDISK} get ${img} /tree ${out}`, `node ${VDISK} get ${vhdx} /tree ${out}`, fuse('tree')],
  runs,
  clean,
);
clean();
const ok = report([
  { name: `${fileMiB} MiB file from raw`, ours: oursFile, peer: 'exfat-fuse cp -a', theirs: fuseFile, ratio: oursFile / fuseFile, target },
  { name: `${fileMiB} MiB file from VHDX (GPT)`, ours: oursFileVhdx, peer: 'exfat-fuse cp -a (raw)', theirs: fuseFile, ratio: oursFileVhdx / fuseFile, target },
  { name: `${files}-file tree from raw`, ours: oursTree, peer: 'exfat-fuse cp -a', theirs: fuseTree, ratio: oursTree / fuseTree, target },
  { name: `${files}-file tree from VHDX (GPT)`, ours: oursTreeVhdx, peer: 'exfat-fuse cp -a (raw)', theirs: fuseTree, ratio: oursTreeVhdx / fuseTree, target },
]);
process.exitCode = ok ? 0 : 1;
