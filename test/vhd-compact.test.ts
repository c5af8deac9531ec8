import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { VDISK, needPeers, sh, sha256, tempDir, vdisk } from './helpers/peers.js';
import { bytes } from './helpers/ext.js';
import { buildKillShim } from './helpers/crash.js';
import { MiB } from './helpers/vhd.js';
import { readWhole } from './helpers/vhdxlife.js';
import { qemuVhd, qemuVpcSize, vhdAgreesWithPeers } from './helpers/vhdlife.js';

const BLOCK = 2 * MiB; // qemu-img's VHD block
const BLOCK_BYTES = BLOCK + 512; // with its sector bitmap
const PART_AT = MiB;

interface Ext4Vhd {
  vhd: string;
  /** The kept files, by path in the file system. */
  files: Map<string, Buffer>;
  /** Ranges of the disk whose content matters: the GPT copies and what e2fsprogs says the file system uses. */
  used: [number, number][];
  diskSize: number;
}

/**
 * An ext4 of `mib` MiB built by mkfs.ext4 -d from `keep` and `gone` files, the gone ones removed with
 * debugfs -w, in a GPT partition at 1 MiB, written into a dynamic VHD by qemu-img convert -O vpc.
 */
function ext4Vhd(dir: string, mib: number, keep: Record<string, number>, gone: Record<string, number>): Ext4Vhd {
  const tree = join(dir, 'tree');
  mkdirSync(join(tree, 'd'), { recursive: true });
  const files = new Map<string, Buffer>();
  Object.entries({ ...keep, ...gone }).forEach(([name, size], k) => {
    const b = bytes(size, 101 + k);
    writeFileSync(join(tree, name), b);
    if (name in keep) files.set(name, b);
  });
  const fsImg = join(dir, 'fs.img');
  writeFileSync(fsImg, '');
  truncateSync(fsImg, mib * MiB);
  sh('mkfs.ext4', ['-q', '-b', '4096', '-d', tree, fsImg]);
  for (const name of Object.keys(gone)) sh('debugfs', ['-w', '-R', `rm /${name}`, fsImg]);
  // The partition's used 4 KiB blocks, from the free ranges dumpe2fs lists.
  const inUse = new Uint8Array((mib * MiB) / 4096).fill(1);
  for (const [, list] of sh('dumpe2fs', [fsImg]).matchAll(/^\s+Free blocks: (.+)$/gm)) {
    for (const range of list.split(', ')) {
      const [a, b = a] = range.split('-').map(Number);
      inUse.fill(0, a, b + 1);
    }
  }
  const diskSize = (mib + 2) * MiB;
  const used: [number, number][] = [[0, PART_AT], [diskSize - 33 * 512, diskSize]];
  for (let i = 0; i < inUse.length; i++) {
    if (!inUse[i]) continue;
    const at = PART_AT + i * 4096;
    const last = used[used.length - 1];
    if (last[1] === at) last[1] += 4096;
    else used.push([at, at + 4096]);
  }
  used.sort((x, y) => x[0] - y[0]);
  const raw = join(dir, 'disk.raw');
  writeFileSync(raw, '');
  truncateSync(raw, diskSize);
  sh('sfdisk', ['-q', raw], Buffer.from(`label: gpt\nstart=${PART_AT / 512}, size=${(mib * MiB) / 512}, type=linux\n`));
  sh('dd', [`if=${fsImg}`, `of=${raw}`, 'bs=1M', `seek=${PART_AT / MiB}`, 'conv=notrunc,sparse', 'status=none']);
  const vhd = join(dir, 'disk.vhd');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', 'subformat=dynamic,force_size=on', raw, vhd]);
  return { vhd, files, used, diskSize };
}

/** The disk as qemu-img reads it. */
function qemuExport(dir: string, vhd: string, name: string): Buffer {
  const out = join(dir, name);
  sh('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', vhd, out]);
  return readFileSync(out);
}

/** The used ranges of `now` equal those of `was`; names the first that does not. */
function sameWhereUsed(now: Buffer, was: Buffer, used: [number, number][], label: string): void {
  for (const [a, b] of used) assert.ok(now.subarray(a, b).equals(was.subarray(a, b)), `${label}: bytes ${a}..${b} changed`);
}

/** e2fsck -fn on the partition as qemu-img exports it, and every kept file dumped by debugfs as written. */
function ext4Intact(dir: string, disk: Buffer, made: Ext4Vhd): void {
  const part = join(dir, 'part.img');
  writeFileSync(part, disk.subarray(PART_AT, made.diskSize - MiB));
  sh('e2fsck', ['-fn', part]);
  for (const [name, data] of made.files) {
    const out = join(dir, `dump-${name.replace(/\//g, '_')}`);
    sh('debugfs', ['-R', `dump /${name} ${out}`, part]);
    assert.ok(readFileSync(out).equals(data), `${name} reads back as written`);
  }
}

test('compact gives back the deleted files of an ext4 in a GPT disk of a dynamic VHD made by qemu-img: only blocks holding used space stay', async (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo', 'mkfs.ext4', 'debugfs', 'dumpe2fs', 'e2fsck', 'sfdisk')) return;
  const dir = tempDir(t);
  const keep: Record<string, number> = { keep: 3 * MiB + 5, 'd/mid': 700_000 };
  for (let i = 1; i <= 20; i++) keep[`d/f${i}`] = i * 3001;
  const made = ext4Vhd(dir, 48, keep, { big: 16 * MiB, 'd/big2': 11 * MiB + 77 });
  const before = statSync(made.vhd).size;
  const hash = await sha256(made.vhd);
  const was = qemuExport(dir, made.vhd, 'before.raw');

  const dry = vdisk(['compact', '--dry-run', '--output', 'json', made.vhd]);
  assert.equal(dry.code, 0, dry.stderr);
  assert.equal(await sha256(made.vhd), hash, '--dry-run changes nothing');
  const r = vdisk(['compact', '--output', 'json', made.vhd]);
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.fileBytesAfter, JSON.parse(dry.stdout).fileBytesAfter, 'the dry run predicted the result');
  assert.deepEqual(report.volumesUsed, ['partition 1 (ext4)']);
  const after = statSync(made.vhd).size;
  assert.equal(report.bytesGivenBack, before - after);

  // The bound: the metadata (footer copy, header, BAT, footer), and a block for every block that
  // holds used bytes; no more than used bytes, metadata and a block per used run.
  const blocks = made.diskSize / BLOCK;
  const meta = 512 + 1024 + Math.ceil((blocks * 4) / 512) * 512 + 512;
  const touched = new Set<number>();
  for (const [a, b] of made.used) for (let k = Math.floor(a / BLOCK); k * BLOCK < b; k++) touched.add(k);
  const usedBytes = made.used.reduce((n, [a, b]) => n + b - a, 0);
  t.diagnostic(`before ${before}, after ${after}, ideal ${meta + touched.size * BLOCK_BYTES} (used ${usedBytes} in ${made.used.length} runs)`);
  assert.ok(after <= meta + touched.size * BLOCK_BYTES, `after ${after} > ${touched.size} blocks`);
  assert.ok(after <= meta + usedBytes + made.used.length * BLOCK_BYTES);
  assert.ok(after < before - 20 * MiB, `${before} -> ${after}`);

  assert.equal(qemuVpcSize(made.vhd), made.diskSize);
  const check = vdisk(['check', made.vhd]);
  assert.equal(check.code, 0, check.stdout);
  sh('vhdiinfo', [made.vhd]);
  const now = qemuExport(dir, made.vhd, 'after.raw');
  sameWhereUsed(now, was, made.used, 'read by qemu-img');
  ext4Intact(dir, now, made);
  const again = JSON.parse(vdisk(['compact', '--output', 'json', made.vhd]).stdout);
  assert.equal(again.bytesGivenBack, 0);
});

test('--zeros-only drops the blocks qemu-io filled with zeros and moves the rest down; qemu-img compare finds the disk unchanged', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const img = qemuVhd(join(dir, 'z.vhd'), '24M', ['write -P 0x11 0 3M', 'write -P 0 4M 6M', 'write -P 0x22 12M 1M', 'write -P 0 16M 2M', 'write -P 0x33 22M 2M']);
  const model = join(dir, 'model.raw');
  sh('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', img, model]);
  const before = statSync(img).size;
  const r = JSON.parse(vdisk(['compact', '--zeros-only', '--output', 'json', img]).stdout);
  assert.equal(r.blocksStored, 8);
  assert.equal(r.blocksZero, 4);
  assert.equal(r.blocksFree, 0);
  assert.ok(r.blocksMoved >= 2, JSON.stringify(r));
  assert.equal(statSync(img).size, before - 4 * BLOCK_BYTES);
  vhdAgreesWithPeers(img, model, 24 * MiB);
});

test('fixed and differencing VHDs are refused in one line', (t) => {
  const dir = tempDir(t);
  const fixed = join(dir, 'f.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', fixed, '4M']).code, 0);
  const child = join(dir, 'c.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', fixed, child]).code, 0);
  for (const [img, why] of [[fixed, /fixed VHD keeps every block/], [child, /differencing/]] as const) {
    const r = vdisk(['compact', img]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, new RegExp(`^vdisk: .*${why.source}.*\\n$`));
  }
});

test('a VHD compact cut off at every one of its writes opens, and reads the same wherever the file system is used, through vdisk and qemu-img', async (t) => {
  if (!needPeers(t, 'qemu-img', 'mkfs.ext4', 'debugfs', 'dumpe2fs', 'e2fsck', 'sfdisk', 'cc')) return;
  const dir = tempDir(t);
  const shim = buildKillShim(dir);
  const made = ext4Vhd(dir, 20, { a: 2 * MiB + 100, b: 1500 * 1024 }, { big: 7 * MiB, big2: 3 * MiB });
  const original = await readWhole(made.vhd);
  const base = join(dir, 'base.vhd');
  copyFileSync(made.vhd, base);
  let cuts = 0;
  for (let n = 0; n < 100; n++) {
    copyFileSync(base, made.vhd);
    const r = spawnSync(process.execPath, [VDISK, 'compact', made.vhd], {
      env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
      stdio: 'ignore',
    });
    if (r.signal !== 'SIGKILL') break;
    cuts++;
    sameWhereUsed(await readWhole(made.vhd), original, made.used, `n=${n}`);
    sameWhereUsed(qemuExport(dir, made.vhd, 'cut.raw'), original, made.used, `n=${n}, read by qemu-img`);
    const look = vdisk(['check', made.vhd]);
    assert.ok(look.code === 0 || look.code === 3, `n=${n}: ${look.stdout}`);
  }
  assert.ok(cuts >= 5, `cut at ${cuts} points`);
  ext4Intact(dir, qemuExport(dir, made.vhd, 'done.raw'), made);
  assert.ok(statSync(made.vhd).size < statSync(base).size - 8 * MiB);
});
