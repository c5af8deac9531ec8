import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needPeers, sh, sha256, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { bytes } from './helpers/ext.js';
import { buildKillShim } from './helpers/crash.js';
import { vdiskWrite, readWhole } from './helpers/vhdxlife.js';

const MiB = 1024 * 1024;
const PART = MiB; // the partition's start on the disk
const META = 4 * MiB; // header section, log, BAT and metadata regions of a VHDX vdisk makes

interface Made {
  vhdx: string;
  files: Map<string, Buffer>;
  /** Used ranges of the partition as e2fsprogs sees them (complement of dumpe2fs's free blocks). */
  used: [number, number][];
  partSize: number;
  /** Where the file system starts on the disk: in a GPT partition at 1 MiB, or 0 for a whole-disk one (WSL's ext4.vhdx). */
  start: number;
}

/**
 * ext4 made by mkfs.ext4 -d from a tree of `keep` files and `gone` files, the gone ones then removed
 * by debugfs, in a GPT partition of a raw disk, converted to a dynamic VHDX with 1 MiB blocks.
 */
function makeDisk(dir: string, mib: number, keep: Record<string, number>, gone: Record<string, number>, wholeDisk = false): Made {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'd'), { recursive: true });
  const files = new Map<string, Buffer>();
  let seed = 1;
  for (const [name, size] of Object.entries({ ...keep, ...gone })) {
    const b = bytes(size, seed++);
    writeFileSync(join(tree, name), b);
    if (name in keep) files.set(name, b);
  }
  const partSize = mib * MiB;
  const fs = join(dir, 'fs.img');
  writeFileSync(fs, '');
  truncateSync(fs, partSize);
  sh('mkfs.ext4', ['-q', '-b', '4096', '-d', tree, fs]);
  for (const name of Object.keys(gone)) sh('debugfs', ['-w', '-R', `rm /${name}`, fs]);
  const free: [number, number][] = [];
  for (const m of sh('dumpe2fs', [fs]).matchAll(/^\s+Free blocks: (.+)$/gm)) {
    for (const r of m[1].split(', ')) {
      const [a, b] = r.split('-').map(Number);
      free.push([a * 4096, ((b ?? a) + 1) * 4096]);
    }
  }
  free.sort((x, y) => x[0] - y[0]);
  const used: [number, number][] = [];
  let at = 0;
  for (const [a, b] of free) {
    if (a > at) used.push([at, a]);
    at = b;
  }
  if (at < partSize) used.push([at, partSize]);
  const raw = join(dir, 'disk.raw');
  const start = wholeDisk ? 0 : PART;
  if (wholeDisk) copyFileSync(fs, raw);
  else {
    writeFileSync(raw, '');
    truncateSync(raw, partSize + 2 * MiB);
    sh('sfdisk', ['-q', raw], Buffer.from(`label: gpt\nstart=${PART / 512}, size=${partSize / 512}, type=linux\n`));
    sh('dd', [`if=${fs}`, `of=${raw}`, 'bs=1M', `seek=${PART / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  }
  const vhdx = join(dir, 'disk.vhdx');
  assert.equal(vdisk(['convert', '-O', 'vhdx', '-o', 'block_size=1M', raw, vhdx]).code, 0);
  return { vhdx, files, used, partSize, start };
}

/** e2fsck -fn on the exported partition, and every kept file dumped by debugfs equals what was written. */
function fsIntact(dir: string, made: Made): void {
  const back = join(dir, 'back.raw');
  assert.equal(vdisk(['convert', '-O', 'raw', made.vhdx, back]).code, 0);
  const part = join(dir, 'part.img');
  sh('dd', [`if=${back}`, `of=${part}`, 'bs=1M', `skip=${made.start / MiB}`, `count=${made.partSize / MiB}`, 'status=none']);
  sh('e2fsck', ['-fn', part]);
  for (const [name, data] of made.files) {
    const out = join(dir, `dump-${name.replace(/\//g, '_')}`);
    sh('debugfs', ['-R', `dump /${name} ${out}`, part]);
    assert.ok(readFileSync(out).equals(data), `${name} reads back as written`);
  }
}

test('compact gives back the space of deleted files in an ext4 inside a GPT disk: at most used space, metadata and a block per fragment', async (t) => {
  if (!needPeers(t, 'qemu-img', 'mkfs.ext4', 'debugfs', 'dumpe2fs', 'e2fsck', 'sfdisk')) return;
  const dir = tempDir(t);
  const keep: Record<string, number> = { keep: 3 * MiB + 5, 'd/mid': 700_000 };
  for (let i = 1; i <= 30; i++) keep[`d/f${i}`] = i * 3001;
  const made = makeDisk(dir, 40, keep, { big: 14 * MiB, 'd/big2': 9 * MiB + 77 });
  const before = statSync(made.vhdx).size;
  const hash = await sha256(made.vhdx);

  const dry = vdisk(['compact', '--dry-run', '--output', 'json', made.vhdx]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(await sha256(made.vhdx), hash, '--dry-run changes nothing');
  const r = vdisk(['compact', '--output', 'json', made.vhdx]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  const predicted = JSON.parse(dry.stdout);
  assert.equal(report.fileBytesAfter, predicted.fileBytesAfter, 'the dry run predicted the result');
  assert.deepEqual(report.volumesUsed, ['partition 1 (ext4)']);
  const after = statSync(made.vhdx).size;
  assert.equal(report.bytesGivenBack, before - after);

  // The bound: used bytes, the metadata, one block per used run (partition runs and the two GPT copies).
  const usedBytes = made.used.reduce((n, [a, b]) => n + b - a, 0);
  const fragments = made.used.length + 2;
  const ideal = META + usedBytes;
  t.diagnostic(`before ${before}, after ${after}, ideal ${ideal} (used ${usedBytes} in ${made.used.length} runs)`);
  assert.ok(after <= ideal + fragments * MiB, `after ${after} > ${ideal} + ${fragments} blocks`);
  assert.ok(after < before - 20 * MiB);
  sh('qemu-img', ['check', '-f', 'vhdx', made.vhdx]);
  const check = vdisk(['check', made.vhdx]);
  assert.equal(check.code, 0, check.stdout);
  fsIntact(dir, made);
  // Nothing left to give back.
  const again = JSON.parse(vdisk(['compact', '--output', 'json', made.vhdx]).stdout);
  assert.equal(again.bytesGivenBack, 0);
});

test('a whole-disk ext4 (as WSL\'s ext4.vhdx) gives back its free space too', async (t) => {
  if (!needPeers(t, 'qemu-img', 'mkfs.ext4', 'debugfs', 'dumpe2fs', 'e2fsck')) return;
  const dir = tempDir(t);
  const made = makeDisk(dir, 24, { keep: MiB + 3, 'd/x': 9000 }, { big: 12 * MiB }, true);
  const before = statSync(made.vhdx).size;
  const r = JSON.parse(vdisk(['compact', '--output', 'json', made.vhdx]).stdout);
  assert.deepEqual(r.volumesUsed, ['the disk (ext4)']);
  assert.ok(r.blocksFree >= 11, JSON.stringify(r));
  assert.ok(statSync(made.vhdx).size <= before - 11 * MiB);
  sh('qemu-img', ['check', '-f', 'vhdx', made.vhdx]);
  fsIntact(dir, made);
});

test('--zeros-only drops blocks of zeros and keeps free space; qemu-img compare finds the disk unchanged', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'z.vhdx');
  assert.equal(vdisk(['create', '-q', '-o', 'block_size=1M', img, '24M']).code, 0);
  const model = Buffer.alloc(24 * MiB);
  const data = bytes(4 * MiB, 9);
  for (const at of [0, 6 * MiB, 20 * MiB]) {
    vdiskWrite(img, at, data);
    data.copy(model, at);
  }
  vdiskWrite(img, 6 * MiB, Buffer.alloc(4 * MiB)); // stored blocks of zeros now, in the middle
  model.fill(0, 6 * MiB, 10 * MiB);
  const before = statSync(img).size;
  const r = JSON.parse(vdisk(['compact', '--zeros-only', '--output', 'json', img]).stdout);
  assert.equal(r.blocksZero, 4);
  assert.equal(r.blocksFree, 0);
  assert.equal(statSync(img).size, before - 4 * MiB);
  const raw = join(dir, 'model.raw');
  writeFileSync(raw, model);
  sh('qemu-img', ['check', '-f', 'vhdx', img]);
  const c = spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'raw', img, raw], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stdout + c.stderr);
});

test('a compact cut off at every one of its writes leaves an image that opens and reads the same wherever the file system is used', async (t) => {
  if (!needPeers(t, 'qemu-img', 'mkfs.ext4', 'debugfs', 'dumpe2fs', 'sfdisk', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const made = makeDisk(dir, 20, { a: 2 * MiB + 100, b: 1500 * 1024 }, { big: 6 * MiB, big2: 2 * MiB });
  const original = await readWhole(made.vhdx);
  const base = join(dir, 'base.vhdx');
  copyFileSync(made.vhdx, base);
  let cuts = 0;
  for (let n = 0; n < 400; n++) {
    copyFileSync(base, made.vhdx);
    const r = spawnSync(process.execPath, [VDISK, 'compact', made.vhdx], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') break;
    cuts++;
    const now = await readWhole(made.vhdx);
    for (const [a, b] of made.used) {
      assert.ok(now.subarray(PART + a, PART + b).equals(original.subarray(PART + a, PART + b)), `n=${n}: used bytes ${a}..${b} changed`);
    }
    assert.ok(now.subarray(0, PART).equals(original.subarray(0, PART)), `n=${n}: the GPT changed`);
  }
  assert.ok(cuts >= 10, `cut at ${cuts} points`);
  fsIntact(dir, made);
});
