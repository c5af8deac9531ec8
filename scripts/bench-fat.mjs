#!/usr/bin/env node
// Extracting from FAT32: one large file and a many-file tree, `vdisk get` vs `mcopy -s` of the same
// image, and the reader alone (scripts/fat-extract.mjs: the library, several files in flight, plain
// writes) to tell the reader's cost from the command's. Ratios, measured in one run.
// BENCH_FAT_BIG_MIB (default 1024) and BENCH_FAT_FILES (default 20000, issue 13's sizes) set the sizes,
// BENCH_FAT_RUNS (default 5) the runs. Fixtures live in a temporary directory removed at the end
// (VDISK_BENCH_KEEP=1 keeps them for reuse).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { MiB, OUT_DIR, ROOT, VDISK, compare, fixtureDir, need, report, reportTreeFloor, sh, time, treeFloor } from './bench-lib.mjs';

need('mkfs.vfat');
need('mcopy');
const bigMiB = Number(process.env.BENCH_FAT_BIG_MIB ?? 1024);
const files = Number(process.env.BENCH_FAT_FILES ?? 20000);
const target = Number(process.env.BENCH_FAT_TARGET ?? 1.0);
const runs = Number(process.env.BENCH_FAT_RUNS ?? 5);

/** A FAT32 image with /big.bin and /tree (files of 1-16 KiB in directories of 100), built once. */
function fixture() {
  const fixtures = fixtureDir(`fat32-${bigMiB}m-${files}`);
  const img = join(fixtures.dir, 'fat32.img');
  if (!fixtures.fresh) return img;
  const src = join(fixtures.dir, 'src');
  rmSync(src, { recursive: true, force: true });
  mkdirSync(join(src, 'tree'), { recursive: true });
  const big = Buffer.alloc(MiB);
  for (let i = 0; i < big.length; i += 4) big.writeUInt32LE((i * 2654435761) >>> 0, i);
  const fd = join(src, 'big.bin');
  writeFileSync(fd, Buffer.alloc(0));
  for (let i = 0; i < bigMiB; i++) {
    big.writeUInt32LE(i, 0);
    writeFileSync(fd, big, { flag: 'a' });
  }
  for (let i = 0; i < files; i++) {
    const d = join(src, 'tree', `directory ${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d);
    writeFileSync(join(d, `file number ${i}.dat`), big.subarray(i % 4096, (i % 4096) + 1024 * (1 + (i % 16))));
  }
  const size = Math.ceil((bigMiB + files * 20 / 1024) * 1.2 + 64) * MiB;
  sh('truncate', ['-s', String(size), img]);
  sh('mkfs.vfat', ['-F', '32', '-n', 'BENCH', img]);
  sh('mcopy', ['-s', '-m', '-i', img, join(src, 'big.bin'), join(src, 'tree'), '::/']);
  rmSync(src, { recursive: true, force: true });
  fixtures.done();
  return img;
}

const img = fixture();
const out = join(OUT_DIR, 'vdisk-bench-fat');
const clean = () => {
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  spawnSync('sync');
};
const extract = join(ROOT, 'scripts', 'fat-extract.mjs');
const [getBig, readerBig, mcopyBig, nodeStart] = compare([
  `node ${VDISK} get ${img} /big.bin ${out}/big.bin`,
  `node ${extract} ${img} /big.bin ${out}/big.bin`,
  `mcopy -n -m -i ${img} ::/big.bin ${out}/big.bin`,
  'node -e 0',
], runs, clean);
const [getTree, readerTree, mcopyTree] = compare([
  `node ${VDISK} get ${img} /tree ${out}/tree`,
  `node ${extract} ${img} /tree ${out}/tree`,
  `mcopy -s -n -m -i ${img} ::/tree ${out}/`,
], runs, clean);
// The host side alone, from the tree as extracted (which equals the source).
clean();
time(`node ${VDISK} get ${img} /tree ${out}/tree`);
const floorTree = treeFloor(join(out, 'tree'), runs);
clean();
const ok = report([
  { name: `FAT32: vdisk get of a ${bigMiB} MiB file`, ours: getBig, peer: 'mcopy', theirs: mcopyBig, ratio: getBig / mcopyBig, target },
  { name: `FAT32: vdisk get of a tree of ${files} files`, ours: getTree, peer: 'mcopy -s', theirs: mcopyTree, ratio: getTree / mcopyTree, target },
]);
report([
  { name: `  reader alone: the ${bigMiB} MiB file`, ours: readerBig, peer: 'mcopy', theirs: mcopyBig, ratio: readerBig / mcopyBig, target },
  { name: `  reader alone: the ${files}-file tree`, ours: readerTree, peer: 'mcopy -s', theirs: mcopyTree, ratio: readerTree / mcopyTree, target },
]);
/**
 * CPU seconds (user + system) of one run, where /usr/bin/time is there: on a machine shared with other
 * work, wall time follows the share of the CPU a command gets, and CPU time tells what it asked for.
 */
function cpu(script) {
  if (!existsSync('/usr/bin/time')) return null;
  clean();
  const r = spawnSync('/usr/bin/time', ['-f', '%U %S', 'sh', '-c', script], { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  const m = /([\d.]+) ([\d.]+)\s*$/.exec(r.stderr ?? '');
  return m ? Number(m[1]) + Number(m[2]) : null;
}
const cpuRows = [
  ['vdisk get, the file', `node ${VDISK} get ${img} /big.bin ${out}/big.bin`],
  ['reader alone, the file', `node ${extract} ${img} /big.bin ${out}/big.bin`],
  ['mcopy, the file', `mcopy -n -m -i ${img} ::/big.bin ${out}/big.bin`],
  ['vdisk get, the tree', `node ${VDISK} get ${img} /tree ${out}/tree`],
  ['reader alone, the tree', `node ${extract} ${img} /tree ${out}/tree`],
  ['mcopy -s, the tree', `mcopy -s -n -m -i ${img} ::/tree ${out}/`],
  ['node -e 0', 'node -e 0'],
].map(([name, script]) => [name, cpu(script)]);
clean();
if (cpuRows.every(([, s]) => s !== null)) console.log(`  CPU seconds: ${cpuRows.map(([n, s]) => `${n} ${s.toFixed(2)}`).join(', ')}`);
// Node's bare start is a fixed cost mcopy (a small C program) does not pay: it bounds what any ratio can reach.
console.log(`  node -e 0 alone: ${nodeStart.toFixed(3)}s = ${(nodeStart / mcopyBig).toFixed(2)}x mcopy of the file, ${(nodeStart / mcopyTree).toFixed(2)}x mcopy -s of the tree`);
reportTreeFloor({ name: 'the tree', floor: floorTree, nodeStart, peer: 'mcopy -s', theirs: mcopyTree, target });
process.exitCode = ok ? 0 : 1;
