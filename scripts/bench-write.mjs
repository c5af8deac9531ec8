#!/usr/bin/env node
// Creating and filling a 1 GiB dynamic VHDX from a raw file: vdisk convert against qemu-img convert
// -f raw -O vhdx, measured in one run. Outputs go to the disk (not tmpfs), because
// the flushes that make the metadata crash-safe are part of the job. qemu-img convert defaults to
// cache=unsafe (it skips every flush), so each mode is compared with its like: flushes honoured
// (qemu-img -t writeback, vdisk's default) and flushes skipped (qemu-img's default, vdisk -t unsafe).
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, VDISK, WORK, compare, dataDisk, floorCopier, need, report, reportFloor } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_WRITE_TARGET ?? 1.0);
const { raw } = dataDisk('write-1g', GiB, GiB);
const ours = join(WORK, 'fill-vdisk.vhdx');
const theirs = join(WORK, 'fill-qemu.vhdx');
const floorOut = join(WORK, 'fill-floor.raw');
const clean = () => {
  rmSync(ours, { force: true });
  rmSync(theirs, { force: true });
  rmSync(floorOut, { force: true });
  spawnSync('sync');
};
const fill = (cache) => `node ${VDISK} convert -q -t ${cache} -O vhdx ${raw} ${ours}`;
// The floor copies the source's data extents into a plain file on the same disk, without flushes:
// less than either tool does (no VHDX metadata), so a fair lower bound for the unsafe mode.
const floor = floorCopier();
const [v, q, vu, qu, fl, nodeStart] = compare(
  [
    fill('writeback'),
    `qemu-img convert -t writeback -f raw -O vhdx ${raw} ${theirs}`,
    fill('unsafe'),
    `qemu-img convert -f raw -O vhdx ${raw} ${theirs}`,
    floor ? `${floor} ${raw} ${floorOut}` : 'true',
    'node -e 0',
  ],
  5,
  clean,
);
clean();
const ok = report([
  { name: 'create + fill 1 GiB VHDX, flushes honoured', ours: v, peer: 'qemu-img -t writeback', theirs: q, ratio: v / q, target },
  { name: 'create + fill 1 GiB VHDX, flushes skipped', ours: vu, peer: 'qemu-img (unsafe)', theirs: qu, ratio: vu / qu, target },
]);
if (floor) reportFloor({ name: 'fill, flushes skipped', floor: fl, nodeStart, peer: 'qemu-img', theirs: qu, target });
process.exitCode = ok ? 0 : 1;
