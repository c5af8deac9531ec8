// The read side of a tree extraction, per file system, without the host's writes: the walk (stat and
// readdir of every entry) and the walk plus reading every file, as `vdisk get` does them, timed in CPU
// milliseconds (the process's, all threads) with a fresh reader each run. A 20,000-file tree of 1-16 KiB
// files, 100 a directory (BENCH_READSIDE_FILES), in FAT32, ISO-9660, UDF, squashfs and ext4 images made by
// their own tools (those on PATH). Runs BENCH_READSIDE_RUNS times in one process (JIT warm after the
// first: the minimum is the steady per-entry cost) and prints the first (cold) and the minimum.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fixtureDir, has, sh, ROOT } from './bench-lib.mjs';

const files = Number(process.env.BENCH_READSIDE_FILES ?? 20000);
const runs = Math.max(1, Number(process.env.BENCH_READSIDE_RUNS ?? 5));
const fixtures = fixtureDir(`readside-${files}f`);
const src = join(fixtures.dir, 'src');

if (fixtures.fresh || !existsSync(join(src, 'tree'))) {
  const b = Buffer.alloc(16384);
  for (let i = 0; i < b.length; i += 4) b.writeUInt32LE((i * 2654435761) >>> 0, i);
  for (let i = 0; i < files; i++) {
    const d = join(src, 'tree', `d${Math.floor(i / 100)}`);
    if (i % 100 === 0) mkdirSync(d, { recursive: true });
    b.writeUInt32LE(i, 0);
    writeFileSync(join(d, `f${i}.bin`), b.subarray(0, 1024 * (1 + ((i * 7919) % 16))));
  }
}

const images = [];
const make = (name, tools, build) => {
  const img = join(fixtures.dir, name);
  if (!tools.every(has)) return console.log(`${name}: skipped (needs ${tools.join(', ')})`);
  if (!existsSync(img)) build(img);
  images.push([name, img]);
};
const sizeMiB = Math.ceil((files * 24) / 1024 + 64);
make('ext4.raw', ['mkfs.ext4'], (img) => sh('mkfs.ext4', ['-q', '-F', '-b', '4096', '-d', src, img, `${sizeMiB}M`]));
make('fat32.img', ['mkfs.vfat', 'mcopy', 'truncate'], (img) => {
  sh('truncate', ['-s', `${Math.max(sizeMiB, 64)}M`, img]);
  sh('mkfs.vfat', ['-F', '32', '-n', 'BENCH', img]);
  sh('mcopy', ['-s', '-m', '-i', img, join(src, 'tree'), '::/']);
});
make('iso.iso', ['xorriso'], (img) => sh('xorriso', ['-as', 'mkisofs', '-quiet', '-R', '-J', '-o', img, src]));
make('udf.iso', ['genisoimage'], (img) => sh('genisoimage', ['-quiet', '-udf', '-o', img, src]));
make('squashfs-gzip.sqfs', ['mksquashfs'], (img) => sh('mksquashfs', [src, img, '-quiet', '-noappend', '-no-progress', '-comp', 'gzip']));
fixtures.done();

const { openImage, openFilesystem } = await import(join(ROOT, 'dist', 'src', 'index.js'));
const { walkTree } = await import(join(ROOT, 'dist', 'src', 'ops', 'tree.js'));
const buf = Buffer.allocUnsafe(1 << 20);

async function once(path, mode) {
  const img = await openImage(path, { readOnly: true });
  try {
    const fs = await openFilesystem(img);
    const c = process.cpuUsage();
    for await (const e of walkTree(fs, '/tree')) {
      if (mode === 'walk' || e.stats.type !== 'file') continue;
      const f = await fs.reader.open(e.node);
      const ranges = f.dataRanges ? await f.dataRanges() : [{ offset: 0, length: f.size }];
      for (const r of ranges) await f.read(buf.subarray(0, r.length), r.offset);
    }
    const d = process.cpuUsage(c);
    return (d.user + d.system) / 1000;
  } finally {
    await img.close();
  }
}

console.log(`${files} files; CPU ms: first run (cold) / minimum of ${runs}`);
for (const [name, path] of images) {
  const row = [];
  for (const mode of ['walk', 'read']) {
    const t = [];
    for (let i = 0; i < runs; i++) t.push(await once(path, mode));
    row.push(`${mode} ${t[0].toFixed(0)} / ${Math.min(...t).toFixed(0)}`);
  }
  console.log(`${name.padEnd(20)} ${row.join('   ')}`);
}
