#!/usr/bin/env node
// VDI against qemu-img, in one run: filling a 4 GiB dynamic VDI holding 2 GiB of data (vdisk convert
// -O vdi against qemu-img convert -O vdi, flushes honoured and skipped alike), and reading it back
// into a raw file (vdisk read against qemu-img convert -f vdi -O raw). The fill reads a VHDX: from a
// raw file qemu-img skips the holes (SEEK_DATA) and vdisk, which Node gives no SEEK_DATA, reads them.
import { rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { GiB, OUT_DIR, VDISK, WORK, compare, dataDisk, need, report, sh } from './bench-lib.mjs';

need('qemu-img');
const target = Number(process.env.BENCH_VDI_TARGET ?? 1.5);
const { raw, vhdx } = dataDisk('vdi-4g', 4 * GiB, 2 * GiB);
const ours = join(WORK, 'fill-vdisk.vdi');
const theirs = join(WORK, 'fill-qemu.vdi');
const clean = () => {
  rmSync(ours, { force: true });
  rmSync(theirs, { force: true });
  spawnSync('sync');
};
const [w, q, wu, qu] = compare(
  [
    `node ${VDISK} convert -q -t writeback -O vdi ${vhdx} ${ours}`,
    `qemu-img convert -t writeback -f vhdx -O vdi ${vhdx} ${theirs}`,
    `node ${VDISK} convert -q -t unsafe -O vdi ${vhdx} ${ours}`,
    `qemu-img convert -f vhdx -O vdi ${vhdx} ${theirs}`,
  ],
  3,
  clean,
);
const source = join(WORK, 'vdi-4g.vdi');
sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vdi', raw, source]);
const outOurs = join(OUT_DIR, 'vdi-read-vdisk.raw');
const outTheirs = join(OUT_DIR, 'vdi-read-qemu.raw');
const [r, qr] = compare([`node ${VDISK} read ${source} ${outOurs}`, `qemu-img convert -f vdi -O raw ${source} ${outTheirs}`], 3, () => {
  rmSync(outOurs, { force: true });
  rmSync(outTheirs, { force: true });
});
rmSync(outOurs, { force: true });
rmSync(outTheirs, { force: true });
clean();
const ok = report([
  { name: 'convert -O vdi, 4 GiB (2 GiB data), writeback', ours: w, peer: 'qemu-img -t writeback', theirs: q, ratio: w / q, target },
  { name: 'convert -O vdi, 4 GiB (2 GiB data), unsafe', ours: wu, peer: 'qemu-img convert', theirs: qu, ratio: wu / qu, target },
  { name: 'read 4 GiB VDI (2 GiB data) to raw', ours: r, peer: 'qemu-img convert', theirs: qr, ratio: r / qr, target },
]);
process.exit(ok ? 0 : 1);
