#!/usr/bin/env node
// `npm run demo`: builds a sample disk — a GPT (written by vdisk's own serializer) with a FAT32 and an
// ext4 partition (made by mkfs.vfat and mkfs.ext4 where installed, holding a few files) — writes it into
// a new VHDX with `vdisk write`, runs info, partitions, mount-detect and check on it, and lists, reads
// and copies out the files inside. Nothing else is needed:
// without the mkfs tools the partitions are left empty and the demo says so.
import { spawnSync } from 'node:child_process';
import { mkdirSync, rmSync, openSync, writeSync, closeSync, ftruncateSync, readFileSync, readdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomUUID } from 'node:crypto';

const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
const VDISK = join(ROOT, 'bin', 'vdisk');
const { serializeGpt } = await import(join(ROOT, 'dist', 'src', 'partitions', 'gpt.js'));
const dir = join(ROOT, 'demo');
rmSync(dir, { recursive: true, force: true });
mkdirSync(dir, { recursive: true });

const MiB = 1024 * 1024;
const SIZE = 160 * MiB;
// A few files for the file systems to hold, so that ls, cat and get have something to show.
const tree = join(dir, 'tree');
mkdirSync(join(tree, 'etc'), { recursive: true });
writeFileSync(join(tree, 'etc', 'hostname'), 'vdisk-demo\n');
writeFileSync(join(tree, 'etc', 'motd'), 'Files read straight out of a VHDX: no loop device, no mount, no VM.\n');
symlinkSync('hostname', join(tree, 'etc', 'name'));
const efi = join(dir, 'efi');
mkdirSync(join(efi, 'EFI', 'BOOT'), { recursive: true });
writeFileSync(join(efi, 'EFI', 'BOOT', 'bootx64.efi'), Buffer.alloc(4096, 0x90));
writeFileSync(join(efi, 'Read me first.txt'), 'A long name, as VFAT keeps it.\n');

const parts = [
  { name: 'EFI system', type: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', first: 2048, mib: 64, mkfs: ['mkfs.vfat', '-F', '32', '-n', 'DEMO-EFI'], fill: (img) => has('mcopy') && spawnSync('mcopy', ['-s', '-i', img, join(efi, 'EFI'), join(efi, 'Read me first.txt'), '::/']).status === 0 },
  { name: 'root', type: '0fc63daf-8483-4772-8e79-3d69d8477de4', first: 2048 + 64 * 2048, mib: 80, mkfs: ['mkfs.ext4', '-q', '-L', 'demo-root', '-d', tree], fill: () => true },
];

function run(args, { show = true } = {}) {
  if (show) console.log(`\n$ vdisk ${args.join(' ')}`);
  const r = spawnSync(process.execPath, [VDISK, ...args], { stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0 && !(args[0] === 'check' && r.status === 3)) {
    console.error(`demo: vdisk ${args[0]} failed with exit code ${r.status}`);
    process.exit(1);
  }
}

const has = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } }).status === 0;

// The raw disk: GPT first, then each file system made in a file of its own and copied into place.
const raw = join(dir, 'sample.raw');
const fd = openSync(raw, 'w');
ftruncateSync(fd, SIZE);
const gpt = serializeGpt(SIZE / 512, 512, randomUUID(), parts.map((p) => ({ firstLba: p.first, lastLba: p.first + p.mib * 2048 - 1, type: p.type, uuid: randomUUID(), name: p.name })));
for (const { offset, data } of gpt) writeSync(fd, data, 0, data.length, offset);
for (const p of parts) {
  if (!has(p.mkfs[0])) {
    console.log(`demo: ${p.mkfs[0]} is not installed; partition "${p.name}" stays empty`);
    continue;
  }
  const piece = join(dir, `${p.name.replace(/\W/g, '')}.img`);
  const f = openSync(piece, 'w');
  ftruncateSync(f, p.mib * MiB);
  closeSync(f);
  const r = spawnSync(p.mkfs[0], [...p.mkfs.slice(1), piece], { stdio: 'ignore', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  if (r.status !== 0) {
    console.log(`demo: ${p.mkfs[0]} failed; partition "${p.name}" stays empty`);
    continue;
  }
  const filled = p.fill(piece);
  const data = readFileSync(piece);
  writeSync(fd, data, 0, data.length, p.first * 512);
  rmSync(piece);
  p.filled = filled;
}
closeSync(fd);

const sample = join(dir, 'sample.vhdx');
run(['create', '-o', 'block_size=1M', sample, String(SIZE)]);
run(['write', sample, raw]);
run(['info', sample]);
run(['partitions', sample]);
run(['mount-detect', sample]);
run(['check', sample]);
run(['map', sample]);
run(['read', sample, join(dir, 'roundtrip.raw')]);
// Into the file systems: list, read and copy out files, through the VHDX, without mounting anything.
if (parts[0].filled) {
  run(['ls', '-l', '-R', '-P', '1', sample, '/']);
  run(['cat', '-P', '1', sample, '/Read me first.txt']);
}
if (parts[1].filled && has(parts[1].mkfs[0])) {
  run(['ls', '-l', '-P', '2', sample, '/etc']);
  run(['cat', '-P', '2', sample, '/etc/motd']);
  run(['get', '-P', '2', sample, '/etc', join(dir, 'etc-copy')]);
  console.log(`(copied to demo/etc-copy: ${readdirSync(join(dir, 'etc-copy')).sort().join(', ')})`);
}
// The same disk in one step, as qemu-img convert would make it, with another block size.
const converted = join(dir, 'converted.vhdx');
run(['convert', '-O', 'vhdx', '-o', 'block_size=2M', raw, converted]);
run(['read', converted, join(dir, 'roundtrip2.raw')], { show: false });
const written = readFileSync(raw);
const same = readFileSync(join(dir, 'roundtrip.raw')).equals(written) && readFileSync(join(dir, 'roundtrip2.raw')).equals(written);
console.log(`\ndemo: both images read back ${same ? 'identical to' : 'DIFFERENT FROM'} what was written; the files are in demo/`);
process.exitCode = same ? 0 : 1;
