#!/usr/bin/env node
// Split VMDK output and VMDK check: converting a 4 GiB dynamic VHDX holding 2 GiB of data to
// twoGbMaxExtentSparse and twoGbMaxExtentFlat (three 2 GiB pieces), and checking the monolithicSparse
// made from it (against Node's bare start-up, as bench-check does: qemu-img's check takes a few ms, less
// than Node takes to start), measured in one run.
import { readdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, compare, dataDisk, need, report, sh } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_VMDK_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_VMDK_RUNS ?? 3);
const { vhdx } = dataDisk('read-4g-2g', 4 * GiB, 2 * GiB);
const ours = join(OUT_DIR, 'vdisk-bench-split-ours.vmdk');
const theirs = join(OUT_DIR, 'vdisk-bench-split-qemu.vmdk');
// The pieces (NAME-s001.vmdk, NAME-f001.vmdk, ...) and any temporary left by an interrupted run go too.
const clean = () => {
  for (const f of readdirSync(OUT_DIR)) if (f.includes('vdisk-bench-split-')) rmSync(join(OUT_DIR, f), { force: true });
  spawnSync('sync');
};
const convert = (sub) => [
  `node ${VDISK} convert -q -t unsafe -O vmdk -o subformat=${sub} ${vhdx} ${ours}`,
  `qemu-img convert -f vhdx -O vmdk -o subformat=${sub} ${vhdx} ${theirs}`,
];
const [vs, qs, vf, qf] = compare([...convert('twoGbMaxExtentSparse'), ...convert('twoGbMaxExtentFlat')], runs, clean);
clean();
sh('qemu-img', ['convert', '-f', 'vhdx', '-O', 'vmdk', vhdx, theirs]);
const [bare, vc, qc] = compare(['node -e 0', `node ${VDISK} check ${theirs} >/dev/null`, `qemu-img check -f vmdk ${theirs} >/dev/null`], 9);
clean();
const ok = report([
  { name: '4 GiB VHDX (2 GiB data) -> twoGbMaxExtentSparse', ours: vs, peer: 'qemu-img convert', theirs: qs, ratio: vs / qs, target },
  { name: '4 GiB VHDX (2 GiB data) -> twoGbMaxExtentFlat', ours: vf, peer: 'qemu-img convert', theirs: qf, ratio: vf / qf, target },
  { name: 'check of a 4 GiB monolithicSparse (2 GiB data)', ours: vc, peer: 'node -e 0', theirs: bare, ratio: vc / bare, target: Number(process.env.BENCH_META_TARGET ?? 2) },
]);
console.log(`(qemu-img check of the same image: ${qc.toFixed(3)}s; vdisk check / qemu-img check = ${(vc / qc).toFixed(2)})`);
process.exitCode = ok ? 0 : 1;
