#!/usr/bin/env node
// VHD conversion speed against qemu-img, measured in one run: a 4 GiB dynamic VHDX holding 2 GiB of
// data converted to a fixed VHD, and that fixed VHD converted back to raw. Each mode compared with its
// like: qemu-img convert skips flushes by default (cache=unsafe), so the VHD output is timed with
// vdisk -t unsafe too; raw export honours the same defaults as bench-read. Outputs go to tmpfs when
// there is one (OUT_DIR), so the tools are measured rather than the disk's writeback.
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, compare, dataDisk, need, report } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_VHD_TARGET ?? 1.0);
const { vhdx } = dataDisk('read-4g-2g', 4 * GiB, 2 * GiB);
const ours = join(OUT_DIR, 'vdisk-bench-fixed.vhd');
const theirs = join(OUT_DIR, 'qemu-bench-fixed.vhd');
const rawOut = join(OUT_DIR, 'vdisk-bench-vhd.raw');
const clean = () => {
  rmSync(ours, { force: true });
  rmSync(theirs, { force: true });
  rmSync(rawOut, { force: true });
  spawnSync('sync');
};
const [toVhd, qemuToVhd] = compare(
  [
    `node ${VDISK} convert -q -t unsafe -O vpc -o subformat=fixed ${vhdx} ${ours}`,
    `qemu-img convert -f vhdx -O vpc -o subformat=fixed ${vhdx} ${theirs}`,
  ],
  5,
  clean,
);
// The source of the second comparison: one fixed VHD, made once by qemu-img, read by both.
const source = join(OUT_DIR, 'bench-source-fixed.vhd');
rmSync(source, { force: true });
spawnSync('qemu-img', ['convert', '-f', 'vhdx', '-O', 'vpc', '-o', 'subformat=fixed', vhdx, source]);
const [toRaw, qemuToRaw] = compare(
  [`node ${VDISK} convert -q -f vpc -O raw ${source} ${rawOut}`, `qemu-img convert -f vpc -O raw ${source} ${rawOut}`],
  5,
  clean,
);
clean();
rmSync(source, { force: true });
const ok = report([
  { name: 'convert 4 GiB VHDX (2 GiB data) to fixed VHD', ours: toVhd, peer: 'qemu-img convert', theirs: qemuToVhd, ratio: toVhd / qemuToVhd, target },
  { name: 'convert 4 GiB fixed VHD to raw', ours: toRaw, peer: 'qemu-img convert', theirs: qemuToRaw, ratio: toRaw / qemuToRaw, target },
]);
process.exitCode = ok ? 0 : 1;
