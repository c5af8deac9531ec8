#!/usr/bin/env node
// Compacting a dynamic VHD in place against copying it (issue 17's bar, for VHD): the ext4 image of
// bench-compact.mjs (a 4 GiB disk, 1 GiB of live files and 1.75 GiB of deleted ones; made by that
// script when missing) written into a dynamic VHD by qemu-img convert -O vpc. vdisk compact of a
// fresh copy, against vdisk convert -O vpc of the same image (target at most 1.0x).
// BENCH_VHDLIFE_RUNS (default 3).
import { copyFileSync, existsSync, rmSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, ROOT, VDISK, WORK, compare, need, report, sh } from './bench-lib.mjs';

need('qemu-img');
const runs = Number(process.env.BENCH_VHDLIFE_RUNS ?? 3);
const target = Number(process.env.BENCH_VHDLIFE_TARGET ?? 1.0);
const vhdx = join(WORK, 'compact-1024-1792.vhdx');
if (!existsSync(vhdx)) {
  const made = spawnSync('node', [join(ROOT, 'scripts', 'bench-compact.mjs')], { stdio: 'inherit', env: { ...process.env, BENCH_COMPACT_RUNS: '1' } });
  if (!existsSync(vhdx)) throw new Error(`bench-compact.mjs did not make ${vhdx} (exit ${made.status})`);
}
const vhd = join(WORK, 'compact-1024-1792.vhd');
if (!existsSync(vhd)) sh('qemu-img', ['convert', '-f', 'vhdx', '-O', 'vpc', vhdx, vhd]);
const work = join(WORK, 'vhdlife-work.vhd');
const out = join(WORK, 'vhdlife-out.vhd');
const fresh = () => {
  rmSync(out, { force: true });
  copyFileSync(vhd, work);
  spawnSync('sync');
};
const [ours, theirs] = compare([`node ${VDISK} compact -q ${work}`, `node ${VDISK} convert -O vpc ${vhd} ${out}`], runs, fresh);
fresh();
sh('node', [VDISK, 'compact', '-q', work]);
console.log(`  file: ${(statSync(vhd).size / MiB).toFixed(0)} MiB before compact, ${(statSync(work).size / MiB).toFixed(0)} MiB after`);
rmSync(work, { force: true });
rmSync(out, { force: true });
const ok = report([{ name: 'compact a 4 GiB dynamic VHD (ext4: 1 GiB live, 1.75 GiB deleted)', ours, peer: 'vdisk convert -O vpc', theirs, ratio: ours / theirs, target }]);
process.exitCode = ok ? 0 : 1;
