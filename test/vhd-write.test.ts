import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, copyFileSync, fstatSync, mkdirSync, openSync, readSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { resealVhd } from './helpers/vhd-mutate.js';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { MiB, qemuRead, standardRaw, variedRaw, vhdiFields, vhdiSize } from './helpers/vhd.js';
import { vpcDriver, azureSize } from '../src/formats/vpc/driver.js';

function qemuSize(img: string): number {
  return JSON.parse(sh('qemu-img', ['info', '-f', 'vpc', '--output', 'json', img]))['virtual-size'] as number;
}

function ourInfo(img: string): Record<string, any> {
  const r = vdisk(['info', '--output', 'json', img]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

/** The footer at the end verifies: one's complement of the byte sum, checksum field as zero. */
function footerChecksumOk(img: string): boolean {
  const fd = openSync(img, 'r');
  const f = Buffer.alloc(512);
  readSync(fd, f, 0, 512, fstatSync(fd).size - 512);
  closeSync(fd);
  let sum = 0;
  for (let i = 0; i < 512; i++) if (i < 64 || i >= 68) sum += f[i];
  return f.toString('latin1', 0, 8) === 'conectix' && (~sum >>> 0) === f.readUInt32BE(64);
}

test('vdisk create -f vpc: the sizes qemu-img create makes (CHS rounding, force_size), read alike by qemu-img and vhdiinfo', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
  const dir = tempDir(t);
  for (const size of [10 * MiB + 1, 100_000_000, 40 * 1024 * MiB + 7]) {
    for (const opts of ['', 'force_size=on', 'subformat=fixed', 'subformat=fixed,force_size=on', 'block_size=512K']) {
      const ours = join(dir, 'ours.vhd');
      const theirs = join(dir, 'theirs.vhd');
      const o = opts ? ['-o', opts] : [];
      const r = vdisk(['create', '-q', '-f', 'vpc', ...o, ours, String(size)]);
      assert.equal(r.code, 0, r.stderr);
      sh('qemu-img', ['create', '-q', '-f', 'vpc', ...(opts && opts !== 'block_size=512K' ? ['-o', opts] : []), theirs, String(size)]);
      const what = `${size} ${opts}`;
      assert.equal(ourInfo(ours)['virtual-size'], qemuSize(theirs), `${what}: our size is qemu-img's`);
      assert.equal(qemuSize(ours), qemuSize(theirs), `${what}: qemu-img reads our size as its own`);
      assert.equal(vhdiSize(vhdiFields(ours)), qemuSize(theirs), `${what}: vhdiinfo`);
      assert.ok(footerChecksumOk(ours), what);
      if (opts.includes('fixed')) assert.ok(statSync(ours).blocks * 512 < 1024 * 1024, `${what}: a fixed VHD is made sparse`);
      if (opts === 'block_size=512K') assert.equal(ourInfo(ours)['cluster-size'], 512 * 1024);
    }
  }
});

test('azure=on: a fixed VHD, its size rounded up to a whole MiB, footer verified, file = size + 512', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
  const dir = tempDir(t);
  for (const size of [10 * MiB, 100_000_000, 5 * MiB + 1]) {
    const img = join(dir, `az-${size}.vhd`);
    const r = vdisk(['create', '-q', '-f', 'vhd', '-o', 'azure=on', img, String(size)]);
    assert.equal(r.code, 0, r.stderr);
    const vs = qemuSize(img);
    assert.equal(vs, azureSize(size));
    assert.equal(vs % MiB, 0);
    assert.ok(vs >= size);
    assert.equal(statSync(img).size, vs + 512);
    assert.ok(footerChecksumOk(img));
    assert.equal(vhdiFields(img)['Disk type'], 'Fixed');
    assert.equal(vhdiSize(vhdiFields(img)), vs);
  }
  assert.notEqual(vdisk(['create', '-q', '-f', 'vpc', '-o', 'azure=on,subformat=dynamic', join(dir, 'x.vhd'), '10M']).code, 0);
});

for (const opts of ['subformat=dynamic', 'subformat=fixed', 'block_size=512K', 'subformat=fixed,azure=on']) {
  test(`vdisk convert -O vpc -o ${opts} reads back through qemu-img exactly, and vhdiinfo and check agree`, (t) => {
    if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
    const dir = tempDir(t);
    const { path, model } = standardRaw(dir);
    const img = join(dir, 'out.vhd');
    const r = vdisk(['convert', '-O', 'vpc', '-o', opts, path, img]);
    assert.equal(r.code, 0, r.stderr);
    const back = qemuRead(dir, img);
    assert.ok(back.subarray(0, model.length).equals(model), 'the data');
    assert.ok(back.subarray(model.length).equals(Buffer.alloc(back.length - model.length)), 'the rounding reads as zeros');
    assert.equal(vhdiSize(vhdiFields(img)), back.length);
    const c = vdisk(['check', img]);
    assert.equal(c.code, 0, c.stdout + c.stderr);
    if (!opts.includes('fixed')) {
      // Blocks only where there is data: the 2 MiB hole stays unallocated.
      const info = ourInfo(img)['format-specific'].data;
      assert.ok(info['allocated-blocks'] < info['total-blocks'], JSON.stringify(info));
    }
  });
}

test('vdisk write into qemu-made dynamic and fixed VHDs, unaligned: qemu-img reads the model', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  for (const sub of ['dynamic', 'fixed']) {
    const img = join(dir, `${sub}.vhd`);
    sh('qemu-img', ['create', '-q', '-f', 'vpc', '-o', `subformat=${sub}`, img, '12M']);
    sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x61 1M 1M', img]);
    const model = qemuRead(dir, img);
    for (const [at, n] of [[1000, 3000], [MiB + 4000, 70_000], [2 * MiB - 700, 1400], [5 * MiB + 1, MiB + 3], [model.length - 300, 300]]) {
      const data = randomBytes(n);
      writeFileSync(join(dir, 'in.bin'), data);
      const r = vdisk(['write', img, join(dir, 'in.bin'), '--offset', String(at)]);
      assert.equal(r.code, 0, r.stderr);
      data.copy(model, at);
    }
    assert.ok(qemuRead(dir, img).equals(model), sub);
    assert.equal(vdisk(['check', img]).code, 0);
  }
});

test('differencing VHD: vdisk create -b, writes; vhdimount and vdisk read the model; wrong parent is refused', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo', 'vhdimount', 'fusermount')) return;
  const dir = tempDir(t);
  const { path } = standardRaw(dir);
  const parent = join(dir, 'parent.vhd');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', path, parent]);
  const model = qemuRead(dir, parent);
  const child = join(dir, 'child.vhd');
  const c = vdisk(['create', '-q', '-f', 'vpc', '-b', parent, child]);
  assert.equal(c.code, 0, c.stderr);
  const write = (at: number, n: number) => {
    const data = randomBytes(n);
    writeFileSync(join(dir, 'in.bin'), data);
    assert.equal(vdisk(['write', child, join(dir, 'in.bin'), '--offset', String(at)]).code, 0);
    data.copy(model, at);
  };
  // Runs of sectors that end on 4 KiB: libvhdi (20210425) takes a run of set bits that ends inside a
  // bitmap byte to go on to the byte's end, and would read the rest of that byte's sectors as zeros.
  for (const [at, n] of [[4096, 8192], [3 * MiB + 512, 3584], [4 * MiB - 4096, 8192], [12 * MiB, 4096]]) write(at, n);
  const vi = vhdiFields(child);
  assert.equal(vi['Disk type'], 'Differential');
  assert.equal(vi['Parent identifier'], ourInfo(parent)['format-specific'].data['disk-uuid']);
  const mnt = join(dir, 'mnt');
  mkdirSync(mnt);
  sh('vhdimount', [child, mnt]);
  try {
    // vhdimount shows the chain parent first: the child is the last file.
    assert.ok(readFileSync(join(mnt, 'vhdi2')).equals(model), 'vhdimount reads the model');
  } finally {
    spawnSync('fusermount', ['-u', mnt]);
  }
  // Sector-granular writes anywhere: the model, as vdisk reads it.
  for (const [at, n] of [[1001, 5000], [4 * MiB - 10, 20], [model.length - 512, 512]]) write(at, n);
  assert.ok(vdisk(['read', child]).stdoutBytes.equals(model), 'vdisk reads the model through the parent');
  const info = ourInfo(child);
  assert.equal(info['full-backing-filename'], parent);
  assert.equal(info['format-specific'].data['disk-type'], 'differencing');
  const map = JSON.parse(vdisk(['map', '--output', 'json', child]).stdout) as { depth: number }[];
  assert.ok(map.some((m) => m.depth === 1) && map.some((m) => m.depth === 0), 'map shows the child and the parent');
  assert.equal(vdisk(['check', child]).code, 0);
  // Another VHD in the parent's place: its UUID differs, and the child says so in one line.
  copyFileSync(parent, join(dir, 'keep.vhd'));
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', path, parent]);
  const wrong = vdisk(['read', child]);
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr.trim(), /^[^\n]*UUID[^\n]*$/);
});

test('a differencing VHD over a raw parent reads through it and writes partial sectors from it', (t) => {
  const dir = tempDir(t);
  const parent = join(dir, 'p.raw');
  const model = variedRaw(parent, 6 * MiB, [[0, 6 * MiB]]);
  const child = join(dir, 'c.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', parent, '-F', 'raw', child]).code, 0);
  const data = randomBytes(777);
  writeFileSync(join(dir, 'in.bin'), data);
  assert.equal(vdisk(['write', child, join(dir, 'in.bin'), '--offset', '2097000']).code, 0);
  data.copy(model, 2097000);
  assert.ok(vdisk(['read', child]).stdoutBytes.equals(model));
});

test('measure -O vpc: the file sizes qemu-img convert -O vpc writes', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const { path, model } = standardRaw(dir);
  const allocated = 5 * 2 * MiB; // the blocks the standard disk's data touches
  for (const sub of ['dynamic', 'fixed']) {
    const out = join(dir, `${sub}.vhd`);
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${sub}`, path, out]);
    const m = vpcDriver.measure!({ size: model.length, options: { subformat: sub }, path: out, creator: 'test' }, allocated);
    assert.equal(m.required, statSync(out).size, `${sub}: required`);
    const full = join(dir, `${sub}-full.raw`);
    variedRaw(full, model.length, [[0, model.length]]);
    const fullOut = join(dir, `${sub}-full.vhd`);
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vpc', '-o', `subformat=${sub}`, full, fullOut]);
    assert.equal(m.fullyAllocated, statSync(fullOut).size, `${sub}: fully allocated`);
  }
});

test('a differencing VHD finds its parent by a "MacX" file URL locator, and says so in one line when none leads there', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  mkdirSync(join(dir, 'sub'));
  const parent = join(dir, 'sub', 'parent.vhd');
  sh('qemu-img', ['create', '-q', '-f', 'vpc', parent, '4M']);
  sh('qemu-io', ['-f', 'vpc', '-c', 'write -P 0x3c 0 1M', parent]);
  const child = join(dir, 'child.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', parent, child]).code, 0);
  const want = qemuRead(dir, parent);
  const b = readFileSync(child);
  // Entry 0 (W2ku) becomes MacX holding the parent's file URL; entry 1 (W2ru) is dropped.
  const url = Buffer.from(pathToFileURL(parent).href, 'utf8');
  const dataAt = Number(b.readBigUInt64BE(512 + 576 + 16));
  assert.ok(url.length <= b.readUInt32BE(512 + 576 + 4), 'the URL fits the locator space');
  b.write('MacX', 512 + 576, 'latin1');
  b.writeUInt32BE(url.length, 512 + 576 + 8);
  b.fill(0, dataAt, dataAt + b.readUInt32BE(512 + 576 + 4));
  url.copy(b, dataAt);
  b.fill(0, 512 + 600, 512 + 624);
  resealVhd(b, 512, 1024, 36);
  writeFileSync(child, b);
  const r = vdisk(['read', child]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(want));
  // No locator leads anywhere (and the parent is not beside the child): one line naming what was tried.
  b.fill(0, 512 + 576, 512 + 600);
  resealVhd(b, 512, 1024, 36);
  writeFileSync(child, b);
  const missing = vdisk(['read', child]);
  assert.notEqual(missing.code, 0);
  assert.equal(missing.stderr.trim().split('\n').length, 1);
  assert.match(missing.stderr, /parent was not found/);
});
