import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, vdisk, sh } from './helpers/peers.js';
import { noise, qemuCheck, qemuQcow2, writeSourceRaw } from './helpers/qcow2.js';
import { qcow2Driver } from '../src/formats/qcow2/driver.js';

/** qemu-img check finds nothing (exit 0, no leaks) and qemu-img compare finds the same disk. */
function sound(image: string, model: string): void {
  const c = qemuCheck(image);
  assert.equal(c.code, 0, `${image}: qemu-img check exit ${c.code} ${JSON.stringify(c.json)}`);
  assert.equal(c.json.leaks ?? 0, 0);
  assert.equal(c.json.corruptions ?? 0, 0);
  sh('qemu-img', ['compare', '-q', model, image]);
}

const ok = (r: { code: number; stderr: string }) => assert.equal(r.code, 0, r.stderr);

test('vdisk create -f qcow2: every option qemu-img check accepts and qemu-img info reads back', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const cases: [string[], Record<string, unknown>][] = [
    [[], { compat: '1.1', 'lazy-refcounts': false, 'extended-l2': false }],
    [['-o', 'compat=0.10'], { compat: '0.10' }],
    [['-o', 'lazy_refcounts=on,cluster_size=4k'], { compat: '1.1', 'lazy-refcounts': true }],
    [['-o', 'extended_l2=on,cluster_size=128k'], { 'extended-l2': true }],
    [['-o', 'cluster_size=512'], { 'refcount-bits': 16 }],
    [['-o', 'cluster_size=2M,compression_type=zstd'], { 'compression-type': 'zstd' }],
  ];
  for (const [i, [args, expect]] of cases.entries()) {
    const image = join(dir, `c${i}.qcow2`);
    ok(vdisk(['create', '-f', 'qcow2', ...args, image, '3G']));
    const c = qemuCheck(image);
    assert.equal(c.code, 0, `${args.join(' ')}: ${JSON.stringify(c.json)}`);
    const info = JSON.parse(sh('qemu-img', ['info', '--output', 'json', image]));
    assert.equal(info['virtual-size'], 3 * 1024 ** 3);
    for (const [k, v] of Object.entries(expect)) assert.deepEqual(info['format-specific'].data[k], v, `${args.join(' ')}: ${k}`);
  }
  const bad = vdisk(['create', '-f', 'qcow2', '-o', 'compat=0.10,lazy_refcounts=on', join(dir, 'bad.qcow2'), '1M']);
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /needs compat=1\.1/);
});

test('vdisk convert -O qcow2 (plain, v2, extended L2, 512 B clusters, compressed) passes qemu-img check and compare', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = writeSourceRaw(dir);
  const variants = ['', 'compat=0.10', 'extended_l2=on', 'cluster_size=512', 'refcount_bits=1,cluster_size=4k', 'refcount_bits=64', 'compress=on', 'compress=on,cluster_size=4k,compat=0.10', 'compress=on,compression_type=zstd'];
  for (const opts of variants) {
    const out = join(dir, `out-${opts.replace(/[=,]/g, '_') || 'plain'}.qcow2`);
    ok(vdisk(['convert', '-O', 'qcow2', ...(opts ? ['-o', opts] : []), src, out]));
    sound(out, src);
    if (opts.startsWith('compress')) {
      const info = JSON.parse(sh('qemu-img', ['check', '--output', 'json', out]));
      assert.ok(info['compressed-clusters'] > 0, 'some clusters are stored compressed');
    }
  }
  // zstd clusters are zstd frames qemu-img reads (sound() compared them), and the header says zstd.
  const z = join(dir, 'out-compress_on_compression_type_zstd.qcow2');
  assert.equal(JSON.parse(sh('qemu-img', ['info', '--output', 'json', z]))['format-specific'].data['compression-type'], 'zstd');
  // ... and the same bytes through -c, as qemu-img convert -c -o compression_type=zstd is asked.
  const zc = join(dir, 'zc.qcow2');
  ok(vdisk(['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', src, zc]));
  sound(zc, src);
  const theirs = join(dir, 'theirs-zstd.qcow2');
  sh('qemu-img', ['convert', '-c', '-O', 'qcow2', '-o', 'compression_type=zstd', src, theirs]);
  const size = (f: string) => JSON.parse(sh('qemu-img', ['check', '--output', 'json', f]))['compressed-clusters'];
  assert.equal(size(zc), size(theirs), 'as many clusters stored compressed as qemu-img stores');
});

test('vdisk write into qemu-made qcow2 images (plain, compressed, with a snapshot, v2) keeps them sound', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const src = writeSourceRaw(dir);
  const patch = join(dir, 'patch.bin');
  writeFileSync(patch, noise(200000, 9));
  const images: [string, string[]][] = [['plain', []], ['compressed', ['-c']], ['v2', ['-o', 'compat=0.10']], ['extl2', ['-o', 'extended_l2=on']], ['snap', []]];
  for (const [name, args] of images) {
    const image = qemuQcow2(dir, src, name, args);
    if (name === 'snap') sh('qemu-img', ['snapshot', '-c', 's1', image]);
    const model = join(dir, `${name}.raw`);
    copyFileSync(src, model);
    for (const offset of [1000, 4 * 1024 * 1024 + 7, 7 * 1024 * 1024]) {
      ok(vdisk(['write', '--offset', String(offset), image, patch]));
      const m = readFileSync(model);
      readFileSync(patch).copy(m, offset);
      writeFileSync(model, m);
    }
    sound(image, model);
    if (name === 'snap') {
      // The snapshot still holds the disk as it was.
      const snapRaw = join(dir, 'snap-s1.raw');
      sh('qemu-img', ['convert', '-O', 'raw', '-l', 'snapshot.name=s1', image, snapRaw]);
      assert.ok(readFileSync(snapRaw).equals(readFileSync(src)));
    }
  }
});

test('vdisk write into a qcow2 with an external data file puts clusters at their guest offsets there', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = writeSourceRaw(dir);
  const image = qemuQcow2(dir, src, 'df', ['-o', `data_file=${join(dir, 'df.data')}`]);
  const patch = join(dir, 'patch.bin');
  writeFileSync(patch, noise(200000, 9));
  const m = readFileSync(src);
  for (const offset of [1000, 3_000_000, 7_000_000]) {
    ok(vdisk(['write', '--offset', String(offset), image, patch]));
    readFileSync(patch).copy(m, offset);
  }
  const model = join(dir, 'model.raw');
  writeFileSync(model, m);
  sound(image, model);
  for (const e of JSON.parse(sh('qemu-img', ['map', '--output', 'json', image])) as { start: number; offset?: number }[]) {
    if (e.offset !== undefined) assert.equal(e.offset, e.start);
  }
});

test('a write that outgrows the refcount table (512-byte clusters, 64 GiB disk) moves it, as qemu-img check sees', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const image = join(dir, 'grow.qcow2');
  ok(vdisk(['create', '-f', 'qcow2', '-o', 'cluster_size=512', image, '64G']));
  const before = readFileSync(image).readBigUInt64BE(48);
  ok(vdisk(['write', '--offset', '60000000000', image], { input: Buffer.alloc(8 * 1024 * 1024, 0x5a) }));
  assert.notEqual(readFileSync(image).readBigUInt64BE(48), before, 'the refcount table moved');
  const c = qemuCheck(image);
  assert.equal(c.code, 0, JSON.stringify(c.json));
  sh('qemu-io', ['-c', 'read -P 0x5a 60000000000 8M', '-c', 'read -P 0 0 1M', image]);
});

test('a child made by vdisk create -b copies on write from its backing image', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const src = writeSourceRaw(dir);
  qemuQcow2(dir, src, 'base');
  const child = join(dir, 'child.qcow2');
  ok(vdisk(['create', '-f', 'qcow2', '-b', 'base.qcow2', '-F', 'qcow2', child]));
  const info = JSON.parse(sh('qemu-img', ['info', '--output', 'json', child]));
  assert.equal(info['backing-filename'], 'base.qcow2');
  assert.equal(info['backing-filename-format'], 'qcow2');
  const patch = join(dir, 'patch.bin');
  writeFileSync(patch, noise(3000, 7));
  ok(vdisk(['write', '--offset', '70000', child, patch]));
  const m = readFileSync(src);
  readFileSync(patch).copy(m, 70000);
  const model = join(dir, 'model.raw');
  writeFileSync(model, m);
  sound(child, model);
  // Only the written cluster is in the child.
  const map = JSON.parse(sh('qemu-img', ['map', '--output', 'json', child])) as { depth: number; length: number }[];
  assert.equal(map.filter((e) => e.depth === 0).reduce((a, e) => a + e.length, 0), 65536);
});

test('measure for qcow2 matches qemu-img measure, by size and for a raw source', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const measure = qcow2Driver.measure as NonNullable<typeof qcow2Driver.measure>;
  for (const [size, options] of [[1e9, {}], [12345678901, { cluster_size: '512' }], [5e9, { extended_l2: 'on' }], [1e12, { cluster_size: '2M', refcount_bits: '64' }], [0, {}]] as const) {
    const o = Object.entries(options).map(([k, v]) => `${k}=${v}`).join(',');
    const theirs = JSON.parse(sh('qemu-img', ['measure', '-O', 'qcow2', ...(o ? ['-o', o] : []), '--size', String(size), '--output', 'json']));
    const ours = measure({ size, options, path: 'x.qcow2', creator: 'test' }, 0);
    assert.deepEqual({ required: ours.required, 'fully-allocated': ours.fullyAllocated }, theirs, `${size} ${o}`);
  }
  const src = writeSourceRaw(dir);
  const size = statSync(src).size;
  const theirs = JSON.parse(sh('qemu-img', ['measure', '-O', 'qcow2', '-f', 'raw', src, '--output', 'json']));
  const ours = measure({ size, options: {}, path: 'x.qcow2', creator: 'test' }, size);
  assert.deepEqual({ required: ours.required, 'fully-allocated': ours.fullyAllocated }, theirs);
});
