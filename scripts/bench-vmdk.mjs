#!/usr/bin/env node
// Converting a 4 GiB dynamic VHDX holding 2 GiB of data to VMDK: streamOptimized (every grain
// deflated) and monolithicSparse, vdisk convert against qemu-img convert, measured in one run.
// qemu-img deflates on one thread; vdisk keeps several grains in zlib's thread pool at once.
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, compare, dataDisk, need, report } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_VMDK_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_VMDK_RUNS ?? 3);
const { vhdx } = dataDisk('read-4g-2g', 4 * GiB, 2 * GiB);
const ours = join(OUT_DIR, 'vdisk-bench-ours.vmdk');
const theirs = join(OUT_DIR, 'vdisk-bench-qemu.vmdk');
const clean = () => {
  rmSync(ours, { force: true });
  rmSync(theirs, { force: true });
  spawnSync('sync');
};
const convert = (sub) => [
  `node ${VDISK} convert -q -t unsafe -O vmdk -o subformat=${sub} ${vhdx} ${ours}`,
  `qemu-img convert -f vhdx -O vmdk -o subformat=${sub} ${vhdx} ${theirs}`,
];
const [vs, qs, vm, qm] = compare([...convert('streamOptimized'), ...convert('monolithicSparse')], runs, clean);
clean();
const ok = report([
  { name: '4 GiB VHDX (2 GiB data) -> streamOptimized', ours: vs, peer: 'qemu-img convert', theirs: qs, ratio: vs / qs, target },
  { name: '4 GiB VHDX (2 GiB data) -> monolithicSparse', ours: vm, peer: 'qemu-img convert', theirs: qm, ratio: vm / qm, target },
]);
process.exitCode = ok ? 0 : 1;
