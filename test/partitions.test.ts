import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSync, writeSync, readSync, closeSync, readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { makeBsdLabel } from './helpers/handmade.js';
import type { Partition } from '../src/index.js';

const MiB = 1024 * 1024;

interface Ours {
  scheme: string | null;
  sectorSize: number;
  partitions: Partition[];
  warnings: string[];
}

interface Listed {
  index: number;
  start: number;
  size: number;
  type: string;
  name?: string;
  uuid?: string;
  bootable?: boolean;
}

function ours(img: string): Ours {
  const r = vdisk(['partitions', '--output', 'json', img]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as Ours;
}

function zero(file: string, offset: number, length: number): void {
  const fd = openSync(file, 'r+');
  writeSync(fd, Buffer.alloc(length), 0, length, offset);
  closeSync(fd);
}

function raw(size: number, dir: string, name = 'disk.img'): string {
  const p = join(dir, name);
  sh('truncate', ['-s', String(size), p]);
  return p;
}

/** What sfdisk says, in our units: byte offsets, our type spelling. */
function sfdiskView(img: string) {
  const sector = 512;
  const j = JSON.parse(sh('sfdisk', ['--json', img])).partitiontable;
  return {
    label: j.label as string,
    partitions: (j.partitions as { node: string; start: number; size: number; type: string; bootable?: boolean; name?: string; uuid?: string }[]).map((p): Listed => ({
      index: Number(/(\d+)$/.exec(p.node)?.[1]),
      start: p.start * sector,
      size: p.size * sector,
      type: j.label === 'gpt' ? p.type.toLowerCase() : `0x${p.type.padStart(2, '0')}`,
      ...(j.label === 'gpt' ? { name: p.name ?? '', uuid: (p.uuid as string).toLowerCase() } : { bootable: p.bootable === true }),
    })),
  };
}

function pick(p: Ours['partitions'][number], gpt: boolean) {
  return gpt
    ? { index: p.index, start: p.start, size: p.size, type: p.type, name: p.name, uuid: p.uuid }
    : { index: p.index, start: p.start, size: p.size, type: p.type, bootable: p.bootable };
}

/** The same answer from the raw image and from it converted to VHDX by qemu-img. */
function sameAsVhdx(img: string, dir: string, expected: Ours): void {
  const vhdx = join(dir, 'converted.vhdx');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', img, vhdx]);
  const v = ours(vhdx);
  assert.deepEqual({ ...v, sectorSize: expected.sectorSize }, expected);
}

describe('partition tables compared with util-linux', () => {
  test('MBR primaries, boot flag, an extended partition with several logicals', (t) => {
    if (!needPeers(t, 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(100 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,10M,c,*\n,20M,83\n,,5\n,5M,83\n,5M,82\n,,8e\n'));
    const o = ours(img);
    const s = sfdiskView(img);
    assert.equal(o.scheme, 'mbr');
    assert.deepEqual(o.partitions.map((p) => pick(p, false)), s.partitions);
    assert.deepEqual(o.partitions.map((p) => p.index), [1, 2, 3, 5, 6, 7]);
    assert.deepEqual(o.warnings, []);
    sameAsVhdx(img, dir, o);
  });

  test('an 0x85 Linux extended chain', (t) => {
    if (!needPeers(t, 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,8M,83\n,,85\n,8M,83\n,8M,83\n'));
    const o = ours(img);
    assert.deepEqual(o.partitions.map((p) => pick(p, false)), sfdiskView(img).partitions);
    assert.deepEqual(o.partitions.map((p) => p.index), [1, 2, 5, 6]);
  });

  test('GPT with names and types (sgdisk)', (t) => {
    if (!needPeers(t, 'sgdisk', 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(128 * MiB, dir);
    sh('sgdisk', ['-n', '1:2048:+10M', '-t', '1:ef00', '-c', '1:EFI system', '-n', '2:0:+30M', '-t', '2:8300', '-c', '2:root fs',
      '-n', '3:0:+8M', '-t', '3:8200', '-c', '3:swap', '-n', '4:0:0', '-t', '4:0700', '-c', '4:Données ünïcode', '-A', '4:set:0', img]);
    const o = ours(img);
    const s = sfdiskView(img);
    assert.equal(o.scheme, 'gpt');
    assert.deepEqual(o.partitions.map((p) => pick(p, true)), s.partitions);
    assert.equal(o.partitions[0].description, 'EFI System');
    assert.equal(o.partitions[3].description, 'Microsoft basic data');
    assert.equal((o.partitions[3] as { attributes?: string }).attributes, '0x0000000000000001');
    assert.deepEqual(o.warnings, []);
    sameAsVhdx(img, dir, o);
  });

  test('hybrid MBR (sgdisk -h) is recognised and reported', (t) => {
    if (!needPeers(t, 'sgdisk', 'sfdisk')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('sgdisk', ['-n', '1:2048:+10M', '-t', '1:0700', '-n', '2:0:+10M', '-t', '2:8300', '-h', '1:EE', img]);
    const r = vdisk(['partitions', '--output', 'json', img]);
    const o = JSON.parse(r.stdout) as Ours;
    assert.equal(o.scheme, 'gpt');
    assert.match(o.warnings.join(' '), /hybrid MBR/);
    assert.match(r.stderr, /^vdisk: warning: .*hybrid MBR/m);
    assert.deepEqual(o.partitions.map((p) => pick(p, true)), sfdiskView(img).partitions);
  });

  test('GPT on 4096-byte sectors (fdisk -b 4096)', (t) => {
    if (!needPeers(t, 'fdisk', 'sfdisk', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('fdisk', ['-b', '4096', img], Buffer.from('g\nn\n\n\n+10M\nn\n\n\n+20M\nt\n2\n19\nw\n'));
    const o = ours(img);
    assert.equal(o.scheme, 'gpt');
    assert.equal(o.sectorSize, 4096);
    // This sfdisk has no --sector-size; fdisk -b 4096 -l lists the same facts.
    const lines = sh('fdisk', ['-b', '4096', '-l', '-o', 'Device,Start,Sectors,Type-UUID,UUID', img]).trim().split('\n');
    const rows = lines.slice(lines.findIndex((l) => l.startsWith('Device')) + 1).map((l) => l.trim().split(/\s+/));
    assert.deepEqual(
      o.partitions.map((p) => [p.index, p.start, p.size, p.type, p.uuid]),
      rows.map(([dev, start, sectors, type, uuid]) => [Number(/(\d+)$/.exec(dev)?.[1]), Number(start) * 4096, Number(sectors) * 4096, type.toLowerCase(), uuid.toLowerCase()]),
    );
  });

  for (const what of ['header', 'entry array'] as const) {
    test(`a damaged primary GPT ${what}: the backup is used, as sfdisk does`, (t) => {
      if (!needPeers(t, 'sgdisk', 'sfdisk', 'qemu-img')) return;
      const dir = tempDir(t);
      const img = raw(64 * MiB, dir);
      sh('sgdisk', ['-n', '1:2048:+10M', '-c', '1:one', '-n', '2:0:+10M', '-c', '2:two', img]);
      const before = sfdiskView(img).partitions;
      const fd = openSync(img, 'r+');
      const at = what === 'header' ? 512 + 40 : 1024 + 60; // first usable LBA / a name byte of entry 1
      const b = Buffer.alloc(1);
      readSync(fd, b, 0, 1, at);
      b[0] ^= 0x5a;
      writeSync(fd, b, 0, 1, at);
      closeSync(fd);
      const o = ours(img);
      assert.equal(o.scheme, 'gpt');
      assert.match(o.warnings.join(' '), /using the backup GPT/);
      assert.match(o.warnings.join(' '), what === 'header' ? /primary GPT header: header CRC mismatch/ : /primary GPT: partition entry array CRC mismatch/);
      assert.deepEqual(o.partitions.map((p) => pick(p, true)), before);
      assert.deepEqual(o.partitions.map((p) => pick(p, true)), sfdiskView(img).partitions, 'sfdisk falls back the same way');
      sameAsVhdx(img, dir, o);
    });
  }

  test('a BSD disklabel inside a FreeBSD slice, as partx lists it', (t) => {
    if (!needPeers(t, 'sfdisk', 'fdisk', 'partx', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,1M,83\n,40M,a5\n'));
    sh('fdisk', [img], Buffer.from('b\n2\ny\nn\na\n\n+10M\nt\na\n7\nn\nd\n30000\n+8M\nt\nd\n1\nw\nq\n'));
    const o = ours(img);
    const px = sh('partx', ['-g', '-o', 'NR,START,SECTORS', img]).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    assert.deepEqual(o.partitions.map((p) => [p.index, p.start / 512, p.size / 512]), px);
    const nested = o.partitions.filter((p) => p.scheme === 'bsd');
    assert.deepEqual(nested.map((p) => [p.parent, p.name, p.type]), [[2, 'a', '0x07'], [2, 'd', '0x01']]);
    sameAsVhdx(img, dir, o);
  });

  test('a BSD disklabel on the bare disk with absolute offsets, one entry past the end: listed as partx lists it', (t) => {
    if (!needPeers(t, 'partx', 'qemu-img')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    makeBsdLabel(img, 131072, [[0, 16, 20480, 7], [2, 0, 131072, 0], [3, 40000, 16384, 7], [6, 90000, 70000, 7]]);
    const o = ours(img);
    assert.equal(o.scheme, 'bsd');
    const px = sh('partx', ['-g', '-o', 'NR,START,SECTORS', img]).trim().split('\n').map((l) => l.trim().split(/\s+/).map(Number));
    assert.deepEqual(o.partitions.map((p) => [p.index, p.start / 512, p.size / 512]), px);
    assert.deepEqual(o.partitions.map((p) => p.name), ['a', 'd', 'g']);
    assert.match(o.warnings.join(' '), /BSD partition g .* ends past the end of the disk/);
    sameAsVhdx(img, dir, o);
  });

  test('a good primary GPT with its backup damaged, missing or not at the end: warned about as sfdisk does', (t) => {
    if (!needPeers(t, 'sgdisk', 'sfdisk')) return;
    const dir = tempDir(t);
    const base = raw(32 * MiB, dir, 'base.img');
    sh('sgdisk', ['-n', '1:2048:+4M', base]);
    const last = 32 * 2048 - 1;
    const cases: [string, (img: string) => void][] = [
      ['backup header wiped', (img) => zero(img, last * 512, 512)],
      ['backup entries wiped', (img) => zero(img, (last - 32) * 512, 32 * 512)],
      ['disk grown since', (img) => sh('truncate', ['-s', String(48 * MiB), img])],
    ];
    for (const [name, damage] of cases) {
      const img = join(dir, `${name.replace(/ /g, '-')}.img`);
      writeFileSync(img, readFileSync(base));
      damage(img);
      const peer = spawnSync('sfdisk', ['--json', img], { encoding: 'utf8', env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` } });
      const o = ours(img);
      assert.equal(o.partitions.length, 1, name);
      const theirs = peer.stderr.trim().split('\n').filter(Boolean);
      assert.ok(theirs.length > 0, `${name}: sfdisk warns`);
      // Each of sfdisk's sentences, less its own advice, is in our warnings.
      for (const line of theirs) {
        const gist = line.replace(/ will be corrected by write\.$/, '').replace(/\.$/, '').replace(/^The/, 'the').replace(/, but the primary/, '');
        const words = gist.split(/[ ,]+/).filter((w) => !/^\(?\d/.test(w));
        const text = o.warnings.join(' | ');
        for (const w of words) assert.ok(text.includes(w), `${name}: sfdisk says "${line}"; ours: ${text}`);
      }
    }
  });

  test('a looping EBR chain ends, lists each valid logical once, and warns', (t) => {
    if (!needPeers(t, 'sfdisk')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,8M,83\n,,5\n,4M,83\n,4M,83\n,4M,83\n'));
    const good = ours(img).partitions;
    // Point the second EBR's link back at the first EBR: a loop.
    const ext = good.find((p) => p.type === '0x05') as Ours['partitions'][number];
    const second = good.find((p) => p.index === 6) as Ours['partitions'][number];
    const ebr2 = second.start - 2048 * 512 < ext.start ? ext.start : second.start - 2048 * 512;
    const fd = openSync(img, 'r+');
    const link = Buffer.alloc(16);
    readSync(fd, link, 0, 16, ebr2 + 446 + 16);
    link.writeUInt32LE(0, 8); // relative to the extended partition: its first EBR
    writeSync(fd, link, 0, 16, ebr2 + 446 + 16);
    closeSync(fd);
    const started = Date.now();
    const r = vdisk(['partitions', '--output', 'json', img]);
    assert.ok(Date.now() - started < 5000);
    assert.equal(r.code, 0);
    const o = JSON.parse(r.stdout) as Ours;
    assert.deepEqual(o.partitions.map((p) => p.index), [1, 2, 5, 6]);
    assert.match(o.warnings.join(' '), /links backwards|loops/);
  });

  test('an EBR with two data entries and its link in the last slot, as DOS wrote them: every data entry, as partx lists them', (t) => {
    if (!needPeers(t, 'sfdisk', 'partx')) return;
    const dir = tempDir(t);
    const img = raw(64 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,8M,83\n,,5\n,4M,83\n,4M,83\n'));
    const ext = ours(img).partitions.find((p) => p.type === '0x05') as Ours['partitions'][number];
    const fd = openSync(img, 'r+');
    const ebr = Buffer.alloc(512);
    readSync(fd, ebr, 0, 512, ext.start);
    const link = Buffer.from(ebr.subarray(446 + 16, 446 + 32));
    // Slot 2: a second data partition, 4 MiB placed 20 MiB into the EBR's area; slot 4: the link.
    const data = Buffer.alloc(16);
    data[4] = 0x0c;
    data.writeUInt32LE(20 * 2048, 8);
    data.writeUInt32LE(4 * 2048, 12);
    data.copy(ebr, 446 + 16);
    link.copy(ebr, 446 + 48);
    writeSync(fd, ebr, 0, 512, ext.start);
    closeSync(fd);
    const o = ours(img);
    const px = sh('partx', ['-g', '-o', 'NR,START,SECTORS,TYPE', img]).trim().split('\n').map((l) => l.trim().split(/\s+/));
    assert.deepEqual(o.partitions.map((p) => [String(p.index), String(p.start / 512), String(p.size / 512), `0x${parseInt(p.type, 16).toString(16)}`]), px);
    assert.equal(o.partitions.length, 5, 'two primaries, three logicals');
    assert.deepEqual(o.warnings, []);
  });

  test('a disk without a table, and a whole-disk FAT volume, have none', (t) => {
    if (!needPeers(t, 'mkfs.vfat')) return;
    const dir = tempDir(t);
    const img = raw(32 * MiB, dir);
    assert.deepEqual(ours(img), { scheme: null, sectorSize: 512, partitions: [], warnings: [] });
    sh('mkfs.vfat', ['-F', '32', img]);
    assert.equal(ours(img).scheme, null);
  });

  test('hostile tables: counts and sizes at their maxima, entries past the end', (t) => {
    if (!needPeers(t, 'sgdisk', 'sfdisk')) return;
    const dir = tempDir(t);
    const img = raw(16 * MiB, dir);
    sh('sfdisk', ['-q', img], Buffer.from('label: dos\n,8M,83\n'));
    const fd = openSync(img, 'r+');
    const e = Buffer.alloc(16);
    e[4] = 0x83;
    e.writeUInt32LE(0xfffffff0, 8);
    e.writeUInt32LE(0xffffffff, 12);
    writeSync(fd, e, 0, 16, 446 + 16);
    closeSync(fd);
    const r = vdisk(['partitions', '--output', 'json', img]);
    assert.equal(r.code, 0);
    assert.match(JSON.parse(r.stdout).warnings.join(' '), /past the end of the disk/);

    const g = raw(16 * MiB, dir, 'g.img');
    sh('sgdisk', ['-n', '1:2048:+4M', g]);
    // Entry count 2^32-1 with a correct header CRC: refused, and the backup is used.
    const { crc32 } = require('@node-rs/crc32') as typeof import('@node-rs/crc32');
    const fd2 = openSync(g, 'r+');
    const h = Buffer.alloc(92);
    readSync(fd2, h, 0, 92, 512);
    h.writeUInt32LE(0xffffffff, 80);
    h.writeUInt32LE(0, 16);
    h.writeUInt32LE(crc32(h) >>> 0, 16);
    writeSync(fd2, h, 0, 92, 512);
    closeSync(fd2);
    const started = Date.now();
    const rg = vdisk(['partitions', '--output', 'json', g]);
    assert.ok(Date.now() - started < 5000);
    const og = JSON.parse(rg.stdout) as Ours;
    assert.equal(og.partitions.length, 1);
    assert.match(og.warnings.join(' '), /absurd.*using the backup GPT|using the backup GPT/);
  });
});

import { createRequire } from 'node:module';
const require = createRequire(import.meta.url);

test('a GPT written by our serializer is verified by sgdisk and read back by sfdisk', async (t) => {
  if (!needPeers(t, 'sgdisk', 'sfdisk')) return;
  const { serializeGpt } = await import('../src/partitions/gpt.js');
  const dir = tempDir(t);
  const img = raw(32 * MiB, dir);
  const parts = [
    { firstLba: 2048, lastLba: 10239, type: 'c12a7328-f81f-11d2-ba4b-00a0c93ec93b', uuid: '11111111-2222-4333-8444-555555555555', name: 'EFI' },
    { firstLba: 10240, lastLba: 40959, type: '0fc63daf-8483-4772-8e79-3d69d8477de4', uuid: '66666666-7777-4888-9999-aaaaaaaaaaaa', name: 'données' },
  ];
  const fd = openSync(img, 'r+');
  for (const { offset, data } of serializeGpt(32 * 2048, 512, '01234567-89ab-4cde-8f01-23456789abcd', parts)) writeSync(fd, data, 0, data.length, offset);
  closeSync(fd);
  assert.match(sh('sgdisk', ['-v', img]), /No problems found/);
  const s = sfdiskView(img);
  assert.deepEqual(s.partitions.map((p) => [p.start / 512, p.size / 512, p.type, p.uuid, p.name]), parts.map((p) => [p.firstLba, p.lastLba - p.firstLba + 1, p.type, p.uuid, p.name]));
});
