#!/usr/bin/env node
// `npm run demo`: makes a sample VHDX with vdisk itself and runs the main commands on it, so that a
// fresh clone shows what the tool does without any other software installed.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VDISK = join(ROOT, 'bin', 'vdisk');
const dir = join(ROOT, 'demo');
mkdirSync(dir, { recursive: true });
const sample = join(dir, 'sample.vhdx');
rmSync(sample, { force: true });

function run(args, { show = true } = {}) {
  if (show) console.log(`\n$ vdisk ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [VDISK, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0) {
    console.error(`demo: vdisk ${args[0]} failed with exit code ${r.status}`);
    process.exit(1);
  }
}

run(['create', '-o', 'block_size=1M,log_size=1M', sample, '256M']);
run(['info', sample]);
run(['info', '--output', 'json', sample]);
const raw = join(dir, 'sample.raw');
run(['read', sample, raw]);
const st = statSync(raw);
console.log(`demo: exported ${st.size} bytes to ${raw}, ${st.blocks * 512} bytes allocated (a sparse file)`);
run(['create', '-o', 'subformat=fixed,logical_sector_size=4096', join(dir, 'fixed-4k.vhdx'), '1G']);
run(['info', join(dir, 'fixed-4k.vhdx')]);
console.log('\ndemo: done; the images are in demo/');
