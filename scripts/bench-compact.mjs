#!/usr/bin/env node
// Compacting a VHDX in place against copying it: a 4 GiB dynamic VHDX whose GPT partition holds a
// 3 GiB ext4 with 1 GiB of live files and the blocks of deleted ones (BENCH_COMPACT_DELETED_MIB,
// default 1792: 2 GiB of files does not fit beside 1 GiB in a 3 GiB ext4 with its metadata). vdisk
// compact of a fresh copy, against vdisk convert -O vhdx of the same image (target at most 1.0x:
// compacting in place must not cost more than copying). BENCH_COMPACT_RUNS (default 3).
import { copyFileSync, existsSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, VDISK, WORK, compare, need, report, sh, writeVariedFile } from './bench-lib.mjs';

process.env.PATH = `${process.env.PATH}:/usr/sbin:/sbin`;
need('mkfs.ext4');
need('debugfs');
need('sfdisk');
const liveMiB = Number(process.env.BENCH_COMPACT_LIVE_MIB ?? 1024);
const deletedMiB = Number(process.env.BENCH_COMPACT_DELETED_MIB ?? 1792);
const runs = Number(process.env.BENCH_COMPACT_RUNS ?? 3);
const target = Number(process.env.BENCH_COMPACT_TARGET ?? 1.0);
const FILE = 256;

mkdirSync(WORK, { recursive: true });
const name = `compact-${liveMiB}-${deletedMiB}`;
const vhdx = join(WORK, `${name}.vhdx`);
if (!existsSync(vhdx)) {
  const src = join(WORK, `${name}-src`);
  const fs = join(WORK, `${name}.fs`);
  const raw = join(WORK, `${name}.raw`);
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'live'), { recursive: true });
  mkdirSync(join(src, 'gone'), { recursive: true });
  for (let i = 0; i * FILE < liveMiB; i++) writeVariedFile(join(src, 'live', `f${i}`), Math.min(FILE, liveMiB - i * FILE) * MiB);
  const gone = [];
  for (let i = 0; i * FILE < deletedMiB; i++) {
    writeVariedFile(join(src, 'gone', `g${i}`), Math.min(FILE, deletedMiB - i * FILE) * MiB);
    gone.push(`/gone/g${i}`);
  }
  writeFileSync(fs, '');
  sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-m', '0', '-d', src, fs, '3G']);
  rmSync(src, { recursive: true, force: true });
  for (const g of gone) sh('debugfs', ['-w', '-R', `rm ${g}`, fs]);
  writeFileSync(raw, '');
  sh('truncate', ['-s', '4G', raw]);
  spawnSync('sfdisk', ['-q', raw], { input: 'label: gpt\nstart=2048, size=6291456, type=linux\n' });
  sh('dd', [`if=${fs}`, `of=${raw}`, 'bs=4M', `seek=${MiB}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']);
  rmSync(fs, { force: true });
  sh('node', [VDISK, 'convert', '-O', 'vhdx', raw, vhdx]);
  rmSync(raw, { force: true });
}

const work = join(WORK, `${name}-work.vhdx`);
const out = join(WORK, `${name}-out.vhdx`);
const fresh = () => {
  rmSync(out, { force: true });
  copyFileSync(vhdx, work);
  spawnSync('sync');
};
const [ours, theirs] = compare([`node ${VDISK} compact -q ${work}`, `node ${VDISK} convert -O vhdx ${vhdx} ${out}`], runs, fresh);
fresh();
sh('node', [VDISK, 'compact', '-q', work]);
sh('node', [VDISK, 'convert', '-O', 'vhdx', vhdx, out]);
console.log(`  file: ${(statSync(vhdx).size / MiB).toFixed(0)} MiB before compact, ${(statSync(work).size / MiB).toFixed(0)} MiB after; a converted copy ${(statSync(out).size / MiB).toFixed(0)} MiB`);
rmSync(work, { force: true });
rmSync(out, { force: true });
const ok = report([{ name: `compact ${liveMiB} MiB live + ${deletedMiB} MiB deleted (ext4)`, ours, peer: 'vdisk convert -O vhdx', theirs, ratio: ours / theirs, target }]);
process.exitCode = ok ? 0 : 1;
