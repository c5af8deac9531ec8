import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { FORMAT_DRIVERS, driverByName, probeDriver } from '../src/formats/drivers.js';
import { tempDir, vdisk } from './helpers/peers.js';

test('the driver table: one row a name, raw the fallback with the lowest score, names and aliases resolve', () => {
  const names = FORMAT_DRIVERS.flatMap((d) => [d.name, ...(d.aliases ?? [])]);
  assert.equal(new Set(names).size, names.length, 'a name or alias appears twice');
  const noise = Buffer.alloc(65536, 0x5a);
  assert.equal(probeDriver({ head: noise, tail: noise.subarray(0, 512), size: 1 << 20, filename: 'x' }).name, 'raw');
  for (const d of FORMAT_DRIVERS) {
    if (d.open) assert.equal(driverByName(d.name), d);
    assert.ok(d.probe({ head: Buffer.alloc(65536), tail: Buffer.alloc(512), size: 1 << 20, filename: 'x' }) <= 1, `${d.name} claims a zero-filled file`);
  }
  assert.throws(() => driverByName('nosuch'), /unknown image format 'nosuch'/);
});

test('vdisk formats lists every row with what vdisk does with it; -o help and bad names are one line', (t) => {
  const r = vdisk(['formats', '--output', 'json']);
  assert.equal(r.code, 0, r.stderr);
  const rows = JSON.parse(r.stdout).formats as { name: string; read: boolean; create: boolean }[];
  assert.deepEqual(rows.map((x) => x.name), FORMAT_DRIVERS.map((d) => d.name));
  assert.deepEqual(rows.find((x) => x.name === 'vhdx'), { ...rows.find((x) => x.name === 'vhdx'), read: true, create: true });
  const human = vdisk(['formats']);
  assert.match(human.stdout, /vhdx .*yes/);
  const help = vdisk(['create', '-f', 'vhdx', '-o', 'help']);
  assert.equal(help.code, 0);
  assert.match(help.stdout, /Supported options for vhdx:\n {2}subformat/);
  const dir = tempDir(t);
  const src = join(dir, 'src.img');
  writeFileSync(src, Buffer.alloc(65536));
  for (const args of [['info', '-f', 'nosuch', src], ['convert', '-O', 'nosuch', src, join(dir, 'out')], ['convert', '-c', '-O', 'raw', src, join(dir, 'out')]]) {
    const bad = vdisk(args);
    assert.equal(bad.code, 1, args.join(' '));
    assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
  }
});

test('create says on stderr when a format rounds the size: azure=on to a whole MiB, VHD to its CHS geometry', (t) => {
  const dir = tempDir(t);
  const azure = vdisk(['create', '-f', 'vhd', '-o', 'azure=on', join(dir, 'az.vhd'), '100000000']);
  assert.equal(azure.code, 0, azure.stderr);
  assert.match(azure.stderr, /^vdisk: note: virtual size 100663296 bytes, not 100000000: azure=on rounds the virtual size up to a whole MiB/);
  assert.match(azure.stdout, /fmt=vpc size=100663296/);
  const chs = vdisk(['create', join(dir, 'chs.vhd'), '100000000']);
  assert.match(chs.stderr, /rounded to the CHS geometry/);
  const exact = vdisk(['create', '-o', 'force_size=on', join(dir, 'exact.vhd'), '100000256']);
  assert.equal(exact.stderr, '');
  const conv = vdisk(['convert', '-O', 'vpc', '-o', 'azure=on', join(dir, 'chs.vhd'), join(dir, 'out.vhd')]);
  assert.equal(conv.code, 0, conv.stderr);
  assert.match(conv.stderr, /azure=on rounds the virtual size up/);
});
