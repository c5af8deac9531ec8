#!/usr/bin/env node
// vdisk read vs qemu-img convert -O raw (export to a file), and vdisk read | cat vs cat of the raw
// equivalent (streaming), on a 4 GiB dynamic VHDX holding 2 GiB of data. Ratios, measured in one run.
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, compare, dataDisk, floorCopier, need, report, reportFloor } from './bench-lib.mjs';

need('qemu-img');
const exportTarget = Number(process.env.BENCH_EXPORT_TARGET ?? 0.8);
const streamTarget = Number(process.env.BENCH_STREAM_TARGET ?? 1.3);
const { raw, vhdx } = dataDisk('read-4g-2g', 4 * GiB, 2 * GiB);
const out = join(OUT_DIR, 'vdisk-bench-export.raw');
// Start every run with no dirty pages pending, so writeback of the previous run's output does not
// land on the next one.
const clean = () => {
  rmSync(out, { force: true });
  spawnSync('sync');
};

// The floor copies the raw equivalent's data extents to the same place: the same bytes out, the
// least kernel work for them.
const floor = floorCopier();
const [oursExport, qemuExport, floorExport, nodeStart] = compare(
  [
    `node ${VDISK} read ${vhdx} ${out}`,
    `qemu-img convert -f vhdx -O raw ${vhdx} ${out}`,
    floor ? `${floor} ${raw} ${out}` : 'true',
    'node -e 0',
  ],
  7,
  clean,
);
const [oursStream, catStream] = compare([`node ${VDISK} read ${vhdx} | cat >/dev/null`, `cat ${raw} | cat >/dev/null`], 7);
clean();
const ok = report([
  { name: 'export 4 GiB (2 GiB data) to a raw file', ours: oursExport, peer: 'qemu-img convert', theirs: qemuExport, ratio: oursExport / qemuExport, target: exportTarget },
  { name: 'stream 4 GiB (2 GiB data) to a pipe', ours: oursStream, peer: 'cat of the raw', theirs: catStream, ratio: oursStream / catStream, target: streamTarget },
]);
if (floor) {
  reportFloor({ name: 'export', floor: floorExport, nodeStart, peer: 'qemu-img convert', theirs: qemuExport, target: exportTarget });
}
process.exitCode = ok ? 0 : 1;
