import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { parseSize } from '../src/util/size.js';
import { FORMAT_DRIVERS } from '../src/formats/drivers.js';

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');

test('sizes take qemu-img’s spellings: lower-case suffixes, b, hexadecimal', () => {
  assert.equal(parseSize('10g', 'x'), 10 * 1024 ** 3);
  assert.equal(parseSize('512m', 'x'), 512 * 1024 ** 2);
  assert.equal(parseSize('4k', 'x'), 4096);
  assert.equal(parseSize('4KiB', 'x'), 4096);
  assert.equal(parseSize('100b', 'x'), 100);
  assert.equal(parseSize('0x100000', 'x'), 1024 * 1024);
  assert.equal(parseSize('1P', 'x'), 1024 ** 5);
  assert.throws(() => parseSize('0x1.8', 'x'), /not a size/);
  assert.throws(() => parseSize('1.5b', 'x'), /whole number/);
});

test('images in formats vdisk does not read are refused by their signature, by every command, untouched', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const all: [string, string[], string][] = [
    ['qcow', ['-f', 'qcow'], 'qcow'],
    ['qcow2', ['-f', 'qcow2'], 'qcow2'],
    ['qed', ['-f', 'qed'], 'qed'],
    ['parallels', ['-f', 'parallels'], 'parallels'],
  ];
  // The formats the driver table recognises without reading them; a format that gained a reader is
  // proven by its own tests instead.
  const cases = all.filter(([, , shown]) => FORMAT_DRIVERS.some((d) => d.name === shown && !d.open));
  assert.ok(cases.length > 0);
  for (const [name, args, shown] of cases) {
    const img = join(dir, `disk.${name}`);
    sh('qemu-img', ['create', '-q', ...args, img, '4M']);
    const before = sha(img);
    const input = join(dir, 'sector');
    writeFileSync(input, Buffer.alloc(512, 0x41));
    const out = join(dir, 'out');
    const commands = [['info', img], ['read', img, out, '--length', '512'], ['map', img], ['check', img], ['partitions', img],
      ['mount-detect', img], ['ls', img], ['write', img, input], ['compare', img, img]];
    for (const argv of commands) {
      const r = vdisk(argv);
      assert.notEqual(r.code, 0, `${name}: ${argv.join(' ')} succeeded`);
      assert.match(r.stderr, new RegExp(`unsupported format ${shown}\\b`), `${name}: ${argv.join(' ')}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    }
    assert.equal(sha(img), before, `${name} was changed`);
    // -f raw still reads it as plain bytes.
    const raw = vdisk(['info', '-f', 'raw', '--output', 'json', img]);
    assert.equal(raw.code, 0, raw.stderr);
    assert.equal(JSON.parse(raw.stdout).format, 'raw');
  }
});

test('a write never changes the first sector of an image probed as raw, unless -f raw says so', (t) => {
  const dir = tempDir(t);
  const img = join(dir, 'disk.img');
  writeFileSync(img, Buffer.alloc(1024 * 1024));
  const patch = join(dir, 'patch');
  writeFileSync(patch, Buffer.alloc(512, 0x51));
  const refused = vdisk(['write', img, patch]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /refusing to change the first sector .* probed as raw; say -f raw/);
  assert.ok(readFileSync(img).subarray(0, 512).every((b) => b === 0));
  assert.equal(vdisk(['write', img, patch, '--offset', '4k']).code, 0);
  assert.equal(readFileSync(img)[4096], 0x51);
  const forced = vdisk(['write', '-f', 'raw', img, patch]);
  assert.equal(forced.code, 0, forced.stderr);
  assert.equal(readFileSync(img)[0], 0x51);
  // The same bytes again change nothing, and are let through.
  assert.equal(vdisk(['write', img, patch]).code, 0);
});

test('create picks raw for .img and .raw names and says which format it made; check of raw is qemu-img’s', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const img = join(dir, 'disk.img');
  const r = vdisk(['create', img, '10m']);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, `Formatting '${img}', fmt=raw size=10485760\n`);
  assert.equal(statSync(img).size, 10 * 1024 * 1024);
  assert.equal(JSON.parse(sh('qemu-img', ['info', '--output', 'json', img])).format, 'raw');
  const vhdx = join(dir, 'disk.vhdx');
  assert.equal(vdisk(['create', '-q', vhdx, '0x4000000']).code, 0);
  assert.equal(JSON.parse(sh('qemu-img', ['info', '--output', 'json', vhdx]))['virtual-size'], 64 * 1024 * 1024);
  const forced = join(dir, 'other.img');
  assert.equal(vdisk(['create', '-q', '-f', 'vhdx', forced, '64M']).code, 0);
  assert.equal(JSON.parse(sh('qemu-img', ['info', '--output', 'json', forced])).format, 'vhdx');
  const check = vdisk(['check', img]);
  const peer = (() => {
    try {
      sh('qemu-img', ['check', img]);
      return 0;
    } catch (e) {
      return (e as { status: number }).status;
    }
  })();
  assert.equal(check.code, peer);
  assert.equal(check.code, 63);
  assert.match(check.stderr, /This image format does not support checks/);
});

test('vdisk alone lists the commands', () => {
  const r = vdisk([]);
  assert.equal(r.code, 1);
  for (const c of ['info', 'create', 'convert', 'check', 'ls', 'get', 'tar']) assert.match(r.stdout, new RegExp(`\\b${c}\\b`));
});
