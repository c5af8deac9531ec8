#!/usr/bin/env node
// Extracting from XFS: vdisk get from the file system held in a dynamic VHDX, against the kernel (a
// read-only loop mount of the raw image and cp -a, mount and unmount included), measured in one run.
// One large file, a fragmented file, then a tree of many small files. Needs root (loop mounts).
// Sizes: BENCH_XFS_FILE_MIB (default 256), BENCH_XFS_FILES (default 5000); target ratio BENCH_XFS_TARGET
// (default 1.5), runs BENCH_XFS_RUNS (default 3).
import { existsSync, mkdirSync, rmSync, writeFileSync, openSync, writeSync, fsyncSync, closeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, VDISK, WORK, compare, need, report, sh, writeVariedFile, variedBytes } from './bench-lib.mjs';

process.env.PATH = `${process.env.PATH}:/usr/sbin:/sbin`;
need('qemu-img');
need('mkfs.xfs');
need('mount');
const fileMiB = Number(process.env.BENCH_XFS_FILE_MIB ?? 256);
const files = Number(process.env.BENCH_XFS_FILES ?? 5000);
const target = Number(process.env.BENCH_XFS_TARGET ?? 1.5);
const runs = Number(process.env.BENCH_XFS_RUNS ?? 3);

const name = `xfs-${fileMiB}m-${files}f`;
const raw = join(WORK, `${name}.raw`);
const vhdx = join(WORK, `${name}.vhdx`);
const mnt = join(WORK, `${name}-mnt`);
mkdirSync(mnt, { recursive: true });

if (!existsSync(vhdx)) {
  const sizeMiB = Math.max(320, Math.ceil(fileMiB * 1.4 + (files * 24) / 1024 + 64));
  rmSync(raw, { force: true });
  sh('truncate', ['-s', `${sizeMiB}M`, raw]);
  sh('mkfs.xfs', ['-q', '-f', raw]);
  sh('mount', ['-o', 'loop', raw, mnt]);
  try {
    mkdirSync(join(mnt, 'large'));
    writeVariedFile(join(mnt, 'large', 'file.bin'), fileMiB * MiB);
    // Two files written in alternating 64 KiB pieces with a sync after each: thousands of extents (a BMBT).
    mkdirSync(join(mnt, 'frag'));
    const piece = variedBytes(64 * 1024);
    const a = openSync(join(mnt, 'frag', 'a'), 'w');
    const b = openSync(join(mnt, 'frag', 'b'), 'w');
    for (let i = 0; i < (fileMiB * 16) / 4; i++) {
      writeSync(a, piece);
      fsyncSync(a);
      writeSync(b, piece);
      fsyncSync(b);
    }
    closeSync(a);
    closeSync(b);
    const buf = variedBytes(MiB);
    for (let i = 0; i < files; i++) {
      const dir = join(mnt, 'tree', `d${Math.floor(i / 100)}`);
      if (i % 100 === 0) mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, `f${i}`), buf.subarray(i % 1000, (i % 1000) + 1024 * (1 + (i % 16))));
    }
  } finally {
    sh('umount', [mnt]);
  }
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, vhdx]);
}

const outOurs = join(OUT_DIR, 'vdisk-bench-xfs-ours');
const outPeer = join(OUT_DIR, 'vdisk-bench-xfs-peer');
const clean = () => {
  rmSync(outOurs, { recursive: true, force: true });
  rmSync(outPeer, { recursive: true, force: true });
  mkdirSync(outPeer);
  spawnSync('sync');
};
const kernel = (path) => `mount -o loop,ro ${raw} ${mnt} && cp -a ${mnt}${path} ${outPeer}; umount ${mnt}`;

const rows = [];
for (const [path, what] of [['/large', `a ${fileMiB} MiB file`], ['/frag', `two fragmented ${fileMiB / 4} MiB files`], ['/tree', `a ${files}-file tree`]]) {
  const [ours, theirs] = compare([`node ${VDISK} get -q ${vhdx} ${path} ${outOurs}`, kernel(path)], runs, clean);
  rows.push({ name: `get ${what} from XFS in a VHDX`, ours, peer: 'kernel mount + cp -a (raw)', theirs, ratio: ours / theirs, target });
}
clean();
rmSync(outPeer, { recursive: true, force: true });
process.exitCode = report(rows) ? 0 : 1;
