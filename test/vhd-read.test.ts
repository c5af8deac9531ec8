import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { MiB, qemuRead, standardRaw, vhdiFields, vhdiSize } from './helpers/vhd.js';

const CASES: { name: string; create: string[] }[] = [
  { name: 'dynamic', create: [] },
  { name: 'dynamic force_size', create: ['-o', 'force_size=on'] },
  { name: 'fixed', create: ['-o', 'subformat=fixed'] },
  { name: 'fixed force_size', create: ['-o', 'subformat=fixed,force_size=on'] },
];

for (const c of CASES) {
  test(`qemu-img create -f vpc ${c.name}: size, info and (empty) contents agree with qemu-img and vhdiinfo`, (t) => {
    if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
    const dir = tempDir(t);
    for (const size of ['10M', '100000000', '1G']) {
      const img = join(dir, `${c.name.replace(/ /g, '-')}-${size}.vhd`);
      sh('qemu-img', ['create', '-q', '-f', 'vpc', ...c.create, img, size]);
      const ours = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout);
      const theirs = JSON.parse(sh('qemu-img', ['info', '-f', 'vpc', '--output', 'json', img]));
      const vhdi = vhdiFields(img);
      assert.equal(ours.format, 'vpc');
      assert.equal(ours['virtual-size'], vhdiSize(vhdi), `${size}: vhdiinfo's size`);
      assert.equal(ours['format-specific'].data['disk-uuid'], vhdi.Identifier);
      assert.equal(ours['format-specific'].data['disk-type'], vhdi['Disk type'].toLowerCase());
      assert.equal(ours['virtual-size'], theirs['virtual-size']);
      assert.equal(ours['cluster-size'], theirs['cluster-size']);
      const human = vdisk(['info', img]).stdout;
      assert.match(human, /geometry: \d+\/\d+\/\d+/);
    }
  });
}

for (const sub of ['dynamic', 'fixed']) {
  test(`qemu-img convert -O vpc (${sub}) of a varied disk reads back byte for byte as qemu-img reads it`, (t) => {
    if (!needPeers(t, 'qemu-img')) return;
    const dir = tempDir(t);
    const { path } = standardRaw(dir);
    const img = join(dir, `q-${sub}.vhd`);
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${sub}`, path, img]);
    const r = vdisk(['read', '-f', 'vhd', img]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.stdoutBytes.equals(qemuRead(dir, img)));
    // map: data where qemu wrote blocks, holes elsewhere (dynamic), file offsets that hold the bytes.
    const map = JSON.parse(vdisk(['map', '--output', 'json', img]).stdout) as { start: number; length: number; data: boolean; offset?: number }[];
    const file = readFileSync(img);
    for (const m of map.filter((x) => x.data && x.offset !== undefined)) {
      assert.ok(file.subarray(m.offset!, m.offset! + m.length).equals(r.stdoutBytes.subarray(m.start, m.start + m.length)), `map extent at ${m.start}`);
    }
    if (sub === 'dynamic') {
      assert.ok(map.some((m) => !m.data), 'the hole of whole blocks is mapped as a hole');
      // qemu-img calls a block a dynamic VHD does not store "present, zero" (its vpc driver has no
      // backing files); vdisk calls it unallocated, as it does VHDX's NOT_PRESENT. The rest is the same.
      const theirs = JSON.parse(sh('qemu-img', ['map', '-f', 'vpc', '--output', 'json', img])) as { present: boolean; zero: boolean; data: boolean }[];
      assert.deepEqual(map, theirs.map((e) => (e.zero && !e.data ? { ...e, present: false } : e)), 'qemu-img map says the same');
    }
  });
}

test('an old 511-byte footer at the end of a fixed VHD is read as the footer', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const img = join(dir, 'f.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', img, '4M']);
  sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x5a 0 64k', img]);
  const full = readFileSync(img);
  const short = full.subarray(0, full.length - 1); // drop the saved-state byte: zero anyway
  const shortImg = join(dir, 'short.vhd');
  writeFileSync(shortImg, short);
  const r = vdisk(['read', '-f', 'vpc', shortImg]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(qemuRead(dir, img)));
  assert.equal(JSON.parse(vdisk(['info', '--output', 'json', shortImg]).stdout).format, 'vpc', 'probed by the trailing footer');
});

test('probe: a dynamic VHD by its footer copy, a fixed one by its trailing footer, a plain file as raw', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const d = join(dir, 'd.vhd');
  const f = join(dir, 'f.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', d, '4M']);
  sh('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed', f, '4M']);
  assert.equal(JSON.parse(vdisk(['info', '--output', 'json', d]).stdout).format, 'vpc');
  assert.equal(JSON.parse(vdisk(['info', '--output', 'json', f]).stdout).format, 'vpc');
  const bad = readFileSync(f);
  bad[bad.length - 512 + 70] ^= 1; // breaks the checksum: no longer a VHD by probe
  writeFileSync(join(dir, 'bad.vhd'), bad);
  assert.equal(JSON.parse(vdisk(['info', '--output', 'json', join(dir, 'bad.vhd')]).stdout).format, 'raw');
  const e = vdisk(['info', '-f', 'vpc', join(dir, 'bad.vhd')]);
  assert.notEqual(e.code, 0);
  assert.match(e.stderr.trim(), /^[^\n]*checksum[^\n]*$/);
});

test('vdisk reads a 2 MiB-block dynamic VHD of 1 GiB made by qemu-io writes across blocks', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = join(dir, 'big.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', img, '1G']);
  sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x11 0 4k', '-c', `write -P 0x22 ${2 * MiB - 512} 1k`, '-c', `write -P 0x33 ${700 * MiB + 1024} 3M`, img]);
  const out = join(dir, 'ours.raw');
  assert.equal(vdisk(['read', img, out]).code, 0);
  assert.ok(readFileSync(out).equals(qemuRead(dir, img)));
});
