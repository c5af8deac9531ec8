import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, mkdirSync, openSync, statSync, truncateSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needPeers, sh, sha256, tempDir, vdisk, VDISK } from './helpers/peers.js';
import { mountNtfs, noiseBytes, textBytes, unmount } from './helpers/ntfs.js';
import { buildKillShim } from './helpers/crash.js';
import { readWhole } from './helpers/vhdxlife.js';

/**
 * Compaction judged on NTFS (issue 17): an NTFS made by mkntfs and filled and emptied through ntfs-3g,
 * in a dynamic VHDX qemu-img makes. What is "used" comes from ntfs-3g's own reading of $Bitmap
 * (ntfscat), never from vdisk's NTFS reader, and the result is judged by ntfsfix, ntfscat and qemu-img.
 */

const MiB = 1024 * 1024;
const PART = MiB; // the partition's start on a GPT disk
const CLUSTER = 4096;
const PEERS = ['qemu-img', 'mkntfs', 'ntfs-3g', 'ntfscat', 'ntfsfix', 'ntfsinfo', 'setfattr'];

interface Made {
  vhdx: string;
  /** Kept files (NTFS path without the leading slash) and their contents. */
  files: Map<string, Buffer>;
  /** Used byte ranges of the volume, from the $Bitmap ntfscat reads (plus the tail no cluster covers). */
  used: [number, number][];
  volSize: number;
  /** Where the volume starts on the disk: 0 for a whole-disk NTFS, 1 MiB in a GPT partition. */
  start: number;
}

/** Used runs of the volume from the cluster bitmap: bit set = cluster in use. */
function usedFromBitmap(bitmap: Buffer, volSize: number, cluster: number): [number, number][] {
  // mkntfs gives the volume all its sectors but the last (the backup boot sector) and whole clusters of them.
  const clusters = Math.floor((volSize / 512 - 1) / (cluster / 512));
  const used: [number, number][] = [];
  let from = -1;
  for (let c = 0; c <= clusters; c++) {
    const inUse = c < clusters && ((bitmap[c >> 3] >> (c & 7)) & 1) === 1;
    if (inUse && from < 0) from = c;
    else if (!inUse && from >= 0) {
      used.push([from * cluster, c * cluster]);
      from = -1;
    }
  }
  // The backup boot sector sits past the last cluster, in the volume's last sector.
  const tail = clusters * cluster;
  if (tail < volSize) {
    if (used.length && used[used.length - 1][1] === tail) used[used.length - 1][1] = volSize;
    else used.push([tail, volSize]);
  }
  return used;
}

/**
 * An NTFS of `mib` MiB: mkntfs -Q, then through an ntfs-3g mount a tree of kept files (large noise,
 * many small ones, a compressed one, a sparse one) and `gone` files, which a second mount deletes.
 * Placed whole on the disk or in a GPT partition, then made a dynamic VHDX (1 MiB blocks) by qemu-img.
 */
function makeDisk(dir: string, mib: number, keep: Record<string, Buffer>, gone: Record<string, number>, inPartition: boolean, compressed = true, cluster = CLUSTER): Made {
  const volSize = mib * MiB;
  const fs = join(dir, 'fs.img');
  writeFileSync(fs, '');
  truncateSync(fs, volSize);
  sh('mkntfs', ['-q', '-Q', '-F', '-c', String(cluster), ...(inPartition ? ['-p', String(PART / 512)] : []), '-L', 'compact', fs]);
  const mnt = join(dir, 'mnt');
  const files = new Map<string, Buffer>();
  mountNtfs(fs, mnt, 'rw');
  try {
    mkdirSync(join(mnt, 'd'));
    let seed = 100;
    for (const [name, size] of Object.entries(gone)) writeFileSync(join(mnt, name), noiseBytes(size, seed++));
    for (const [name, data] of Object.entries(keep)) {
      writeFileSync(join(mnt, name), data);
      files.set(name, data);
    }
    if (compressed) {
      // Files made in a directory with the compressed attribute are compressed by ntfs-3g.
      mkdirSync(join(mnt, 'packed'));
      sh('setfattr', ['-n', 'system.ntfs_attrib_be', '-v', '0x00000810', join(mnt, 'packed')]);
      const packed = Buffer.concat([textBytes(300_000, 1), noiseBytes(50_000, 2), Buffer.alloc(200_000), textBytes(7000, 3)]);
      writeFileSync(join(mnt, 'packed', 'text.txt'), packed);
      files.set('packed/text.txt', packed);
    }
    // A sparse file: two islands of data in 3 MiB of holes.
    const fd = openSync(join(mnt, 'sparse.bin'), 'w');
    const islandA = noiseBytes(20_000, 4);
    const islandB = textBytes(5000, 5);
    writeSync(fd, islandA, 0, islandA.length, MiB);
    writeSync(fd, islandB, 0, islandB.length, 2 * MiB + 7);
    closeSync(fd);
    const sparse = Buffer.alloc(2 * MiB + 7 + islandB.length);
    islandA.copy(sparse, MiB);
    islandB.copy(sparse, 2 * MiB + 7);
    files.set('sparse.bin', sparse);
  } finally {
    unmount(mnt);
  }
  // Deleted through a fresh mount, as a user would: their clusters are free but still hold their bytes.
  mountNtfs(fs, mnt, 'rw');
  try {
    for (const name of Object.keys(gone)) unlinkSync(join(mnt, name));
  } finally {
    unmount(mnt);
  }
  const flags = sh('ntfsinfo', ['-F', '/packed/text.txt', fs]);
  if (compressed) assert.match(flags, /COMPRESSED/, 'ntfs-3g stored packed/text.txt compressed');
  const bitmap = execBuffer('ntfscat', [fs, '$Bitmap']);
  const used = usedFromBitmap(bitmap, volSize, cluster);

  // A whole-disk volume is the raw disk itself (a copy would write out every hole).
  const raw = inPartition ? join(dir, 'disk.raw') : fs;
  const start = inPartition ? PART : 0;
  if (inPartition) {
    writeFileSync(raw, '');
    truncateSync(raw, volSize + 2 * MiB);
    sh('sfdisk', ['-q', raw], Buffer.from(`label: gpt\nstart=${PART / 512}, size=${volSize / 512}, type=EBD0A0A2-B9E5-4433-87C0-68B6B72699C7\n`));
    sh('dd', [`if=${fs}`, `of=${raw}`, 'bs=1M', `seek=${PART / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  }
  const vhdx = join(dir, 'disk.vhdx');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', raw, vhdx]);
  return { vhdx, files, used, volSize, start };
}

function execBuffer(cmd: string, args: string[]): Buffer {
  const r = spawnSync(cmd, args, { maxBuffer: 64 * MiB, env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}

/** The file size of an empty dynamic VHDX qemu-img makes for this disk: what metadata alone costs. */
function metadataBytes(dir: string, diskSize: number): number {
  const empty = join(dir, 'empty.vhdx');
  sh('qemu-img', ['create', '-q', '-f', 'vhdx', '-o', 'subformat=dynamic,block_size=1M', empty, String(diskSize)]);
  return statSync(empty).size;
}

/** The volume exported by qemu-img: ntfsfix -n finds nothing to fix, ntfscat reads every kept file as written. */
function fsIntact(dir: string, made: Made): void {
  const back = join(dir, 'back.raw');
  sh('qemu-img', ['convert', '-f', 'vhdx', '-O', 'raw', made.vhdx, back]);
  const vol = made.start === 0 ? back : join(dir, 'vol.img');
  if (made.start !== 0) sh('dd', [`if=${back}`, `of=${vol}`, 'bs=1M', `skip=${made.start / MiB}`, `count=${made.volSize / MiB}`, 'status=none']);
  const fix = spawnSync('ntfsfix', ['-n', vol], { encoding: 'utf8' });
  assert.equal(fix.status, 0, fix.stdout + fix.stderr);
  assert.match(fix.stdout, /Checking the alternate boot sector... OK/, fix.stdout);
  assert.match(fix.stdout, /processed successfully/, fix.stdout);
  assert.doesNotMatch(fix.stdout, /(FAILED|corrupt|error)/i, fix.stdout);
  for (const [name, data] of made.files) {
    assert.ok(execBuffer('ntfscat', [vol, `/${name}`]).equals(data), `${name} reads back as written`);
  }
}

function keepTree(): Record<string, Buffer> {
  const keep: Record<string, Buffer> = { keep: noiseBytes(5 * MiB + 3, 7), 'd/mid': noiseBytes(900_000, 8) };
  for (let i = 1; i <= 40; i++) keep[`d/f${i}`] = noiseBytes(i * 2001, 10 + i);
  return keep;
}

async function compactAndJudge(t: { diagnostic: (m: string) => void }, dir: string, made: Made, where: string, gone: number): Promise<void> {
  const before = statSync(made.vhdx).size;
  const hash = await sha256(made.vhdx);
  const dry = vdisk(['compact', '--dry-run', '--output', 'json', made.vhdx]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(await sha256(made.vhdx), hash, '--dry-run changes nothing');
  const r = vdisk(['compact', '--output', 'json', made.vhdx]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.fileBytesAfter, JSON.parse(dry.stdout).fileBytesAfter, 'the dry run predicted the result');
  assert.deepEqual(report.volumesUsed, [`${where} (ntfs)`]);
  assert.deepEqual(report.volumesSkipped, []);
  const after = statSync(made.vhdx).size;
  assert.equal(report.bytesGivenBack, before - after);

  // The bound: used bytes, the metadata, one block per used run (and the two GPT copies on a partitioned disk).
  const usedBytes = made.used.reduce((n, [a, b]) => n + b - a, 0);
  const fragments = made.used.length + (made.start ? 2 : 0);
  const meta = metadataBytes(dir, made.volSize + (made.start ? 2 * MiB : 0));
  const ideal = meta + usedBytes;
  t.diagnostic(`${where}: before ${before}, after ${after}, ideal ${ideal} (metadata ${meta}, used ${usedBytes} in ${made.used.length} runs)`);
  assert.ok(after <= ideal + fragments * MiB, `after ${after} > ideal ${ideal} + ${fragments} blocks`);
  assert.ok(after <= before - gone + 2 * MiB, `after ${after}: the ${gone} deleted bytes were not given back from ${before}`);
  const qc = spawnSync('qemu-img', ['check', '-f', 'vhdx', made.vhdx], { encoding: 'utf8' });
  assert.equal(qc.status, 0, qc.stdout + qc.stderr);
  fsIntact(dir, made);
  const again = JSON.parse(vdisk(['compact', '--output', 'json', made.vhdx]).stdout);
  assert.equal(again.bytesGivenBack, 0, 'nothing is left to give back');
}

test('compact gives back the deleted files of an NTFS in a GPT partition: at most used space, metadata and a block per fragment', async (t) => {
  if (!needPeers(t, ...PEERS, 'sfdisk')) return;
  const dir = tempDir(t);
  const gone = { big: 14 * MiB, 'd/big2': 9 * MiB + 77, other: 6 * MiB };
  const made = makeDisk(dir, 64, keepTree(), gone, true);
  await compactAndJudge(t, dir, made, 'partition 1', 27 * MiB);
});

test('compact gives back the deleted files of a whole-disk NTFS', async (t) => {
  if (!needPeers(t, ...PEERS)) return;
  const dir = tempDir(t);
  const made = makeDisk(dir, 48, keepTree(), { big: 16 * MiB, big2: 7 * MiB }, false);
  await compactAndJudge(t, dir, made, 'the disk', 21 * MiB);
});

test('a 4200 MiB NTFS of 512-byte clusters (a $Bitmap read in several pieces) gives back its deleted files too', async (t) => {
  if (!needPeers(t, ...PEERS)) return;
  const dir = tempDir(t);
  const made = makeDisk(dir, 4200, keepTree(), { big: 12 * MiB, 'd/big2': 5 * MiB }, false, true, 512);
  await compactAndJudge(t, dir, made, 'the disk', 17 * MiB);
});

test('a compact of an NTFS disk cut off at every one of its writes leaves an image whose used space reads the same', async (t) => {
  if (!needPeers(t, ...PEERS, 'sfdisk', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const made = makeDisk(dir, 16, { a: noiseBytes(2 * MiB + 100, 1), b: noiseBytes(1500 * 1024, 2) }, { big: 5 * MiB, big2: 2 * MiB }, true, false);
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
    if (r.signal !== 'SIGKILL') {
      assert.equal(r.status, 0, `n=${n}: the uncut compact failed`);
      break;
    }
    cuts++;
    const now = await readWhole(made.vhdx);
    for (const [a, b] of made.used) {
      assert.ok(now.subarray(PART + a, PART + b).equals(original.subarray(PART + a, PART + b)), `n=${n}: used bytes ${a}..${b} changed`);
    }
    assert.ok(now.subarray(0, PART).equals(original.subarray(0, PART)), `n=${n}: the GPT changed`);
    assert.ok(now.subarray(PART + made.volSize).equals(original.subarray(PART + made.volSize)), `n=${n}: the backup GPT changed`);
  }
  assert.ok(cuts >= 10, `cut at ${cuts} points`);
  t.diagnostic(`cut at ${cuts} writes`);
  assert.ok(statSync(made.vhdx).size < statSync(base).size - 6 * MiB, 'the uncut run gave the deleted files back');
  const qc = spawnSync('qemu-img', ['check', '-f', 'vhdx', made.vhdx], { encoding: 'utf8' });
  assert.equal(qc.status, 0, qc.stdout + qc.stderr);
  fsIntact(dir, made);
});
