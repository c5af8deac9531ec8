#!/usr/bin/env node
// check and info of an empty 64 TiB dynamic VHDX against Node's bare start-up (`node -e 0`) and
// qemu-img check, measured in one run: metadata commands should cost a small multiple of start-up.
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { VDISK, WORK, compare, need, report, sh } from './bench-lib.mjs';
import { mkdirSync } from 'node:fs';

need('qemu-img');
const target = Number(process.env.BENCH_META_TARGET ?? 2);
mkdirSync(WORK, { recursive: true });
const img = join(WORK, 'empty-64t.vhdx');
rmSync(img, { force: true });
sh('node', [VDISK, 'create', '-q', img, '64T']);
const [bare, check, info, qcheck] = compare(
  ['node -e 0', `node ${VDISK} check ${img} >/dev/null`, `node ${VDISK} info ${img} >/dev/null`, `qemu-img check ${img} >/dev/null`],
  9,
);
const ok = report([
  { name: 'check of an empty 64 TiB VHDX', ours: check, peer: 'node -e 0', theirs: bare, ratio: check / bare, target },
  { name: 'info of an empty 64 TiB VHDX', ours: info, peer: 'node -e 0', theirs: bare, ratio: info / bare, target },
]);
console.log(`(qemu-img check of the same image: ${qcheck.toFixed(3)}s; vdisk check / qemu-img check = ${(check / qcheck).toFixed(2)})`);
process.exitCode = ok ? 0 : 1;
