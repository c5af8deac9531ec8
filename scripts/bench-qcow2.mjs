#!/usr/bin/env node
// qcow2 convert speed: a 4 GiB disk holding 2 GiB of data (32 MiB extents, every other one), as a
// qcow2 converted to VHDX and as a VHDX converted to qcow2, vdisk against qemu-img convert doing the
// same. Both skip flushes (qemu-img convert's default, vdisk -t unsafe), and the outputs go to tmpfs
// (OUT_DIR) as in the other benchmarks: vdisk flushes a new output whole before it takes its name
// (issue 11), which on a disk is the disk's write speed, not the tool's.
import { rmSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, WORK, compare, dataDisk, need, report, sh } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_QCOW2_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_RUNS ?? 3);
const { raw, vhdx } = dataDisk('qcow2-4g', 4 * GiB, 2 * GiB);
const qcow2 = join(WORK, 'qcow2-4g.qcow2');
if (!existsSync(qcow2)) sh('qemu-img', ['convert', '-f', 'raw', '-O', 'qcow2', raw, qcow2]);
const outs = ['to-vhdx-vdisk.vhdx', 'to-vhdx-qemu.vhdx', 'to-qcow2-vdisk.qcow2', 'to-qcow2-qemu.qcow2'].map((n) => join(OUT_DIR, `vdisk-bench-${n}`));
const clean = () => {
  for (const o of outs) rmSync(o, { force: true });
  spawnSync('sync');
};
const [v1, q1, v2, q2] = compare(
  [
    `node ${VDISK} convert -q -t unsafe -O vhdx ${qcow2} ${outs[0]}`,
    `qemu-img convert -f qcow2 -O vhdx ${qcow2} ${outs[1]}`,
    `node ${VDISK} convert -q -t unsafe -O qcow2 ${vhdx} ${outs[2]}`,
    `qemu-img convert -f vhdx -O qcow2 ${vhdx} ${outs[3]}`,
  ],
  runs,
  clean,
);
clean();
const ok = report([
  { name: 'convert 4 GiB qcow2 (2 GiB data) -> VHDX', ours: v1, peer: 'qemu-img convert', theirs: q1, ratio: v1 / q1, target },
  { name: 'convert 4 GiB VHDX (2 GiB data) -> qcow2', ours: v2, peer: 'qemu-img convert', theirs: q2, ratio: v2 / q2, target },
]);
process.exitCode = ok ? 0 : 1;
