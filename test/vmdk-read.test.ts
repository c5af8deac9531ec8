import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, readFileSync, readSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { qemuInfo } from './helpers/qemu.js';
import { assertReadsAsQemu, makeVariedRaw, variedFixture, mapsOf, qemuVmdk, sectorsOfMap, varied } from './helpers/vmdk.js';
import { openImage } from '../src/index.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const SIZE = 9 * MiB - 4096; // not a whole number of grains or grain tables

const SUBFORMATS: [string, string[]][] = [
  ['monolithicSparse', ['subformat=monolithicSparse']],
  ['monolithicSparse lsilogic', ['subformat=monolithicSparse', 'adapter_type=lsilogic']],
  ['monolithicFlat', ['subformat=monolithicFlat']],
  ['twoGbMaxExtentSparse', ['subformat=twoGbMaxExtentSparse']],
  ['twoGbMaxExtentFlat', ['subformat=twoGbMaxExtentFlat']],
  ['streamOptimized', ['subformat=streamOptimized']],
  ['zeroed grains', ['zeroed_grain=on']],
];

function info(image: string): Record<string, any> {
  const r = vdisk(['info', '--output', 'json', image]);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

test('QEMU-made VMDKs of every subformat read, info and map as qemu-img shows them', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  for (const [name, opts] of SUBFORMATS) {
    const sub = join(dir, name.replace(/\W/g, '_'));
    sh('mkdir', [sub]);
    const image = join(sub, 'disk.vmdk');
    qemuVmdk(raw, image, opts);
    // Zeroed grains (GTE 1) over data and over a hole.
    if (opts.includes('zeroed_grain=on')) sh('qemu-io', ['-c', 'write -z 5M 128k', '-c', 'write -z 7M 64k', image]);
    assertReadsAsQemu(sub, image, name);

    const ours = info(image);
    const theirs = qemuInfo(image) as Record<string, any>;
    for (const key of ['format', 'virtual-size', 'cluster-size', 'backing-filename', 'actual-size']) assert.deepEqual(ours[key], theirs[key], `${name}: info ${key}`);
    const [o, q] = [ours['format-specific'], theirs['format-specific']];
    assert.equal(o.type, q.type);
    for (const key of ['cid', 'parent-cid', 'create-type']) assert.deepEqual(o.data[key], q.data[key], `${name}: format-specific ${key}`);
    assert.equal(o.data.extents.length, q.data.extents.length, `${name}: extents`);
    o.data.extents.forEach((e: any, i: number) => {
      const qe = q.data.extents[i];
      for (const key of ['format', 'virtual-size', 'cluster-size', 'compressed']) assert.deepEqual(e[key], qe[key], `${name}: extent ${i} ${key}`);
      assert.equal(e.filename.split('/').pop(), qe.filename.split('/').pop(), `${name}: extent ${i} filename`);
    });

    const maps = mapsOf(image);
    const flat = name.includes('Flat'); // qemu looks for holes in a flat file; vdisk maps it all as data
    assert.deepEqual(sectorsOfMap(maps.ours, SIZE, flat), sectorsOfMap(maps.theirs, SIZE, flat), `${name}: map`);
    if (!flat && !name.startsWith('stream')) {
      // Offsets of stored data, where both name them, agree too.
      const at = (rows: typeof maps.ours) => rows.filter((r) => r.data).map((r) => [r.start, r.offset]);
      assert.deepEqual(at(maps.ours), at(maps.theirs), `${name}: map offsets`);
    }
  }
});

test('a QEMU-made snapshot child reads through its parent as qemu-img shows it', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  const base = join(dir, 'base.vmdk');
  qemuVmdk(raw, base, []);
  const child = join(dir, 'child.vmdk');
  sh('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'base.vmdk', '-F', 'vmdk', child]);
  sh('qemu-io', ['-c', 'write -P 0x5a 64k 64k', '-c', 'write -P 0x6b 3M 4k', child]);
  const grand = join(dir, 'grand.vmdk');
  sh('qemu-img', ['create', '-q', '-f', 'vmdk', '-b', 'child.vmdk', '-F', 'vmdk', grand]);
  sh('qemu-io', ['-c', 'write -P 0x7c 5M 1k', grand]);
  for (const image of [child, grand]) {
    assertReadsAsQemu(dir, image, image);
    const ours = info(image);
    const theirs = qemuInfo(image) as Record<string, any>;
    for (const key of ['backing-filename', 'backing-filename-format']) assert.equal(ours[key], theirs[key], key);
    assert.equal(ours['format-specific'].data['parent-cid'], theirs['format-specific'].data['parent-cid']);
    const maps = mapsOf(image);
    assert.deepEqual(sectorsOfMap(maps.ours, SIZE), sectorsOfMap(maps.theirs, SIZE), `${image}: map with depths`);
  }
  // convert of the child writes the whole disk as it reads (parent included), as qemu-img's does.
  const out = join(dir, 'flat.raw');
  assert.equal(vdisk(['convert', '-O', 'raw', grand, out]).code, 0);
  assert.match(sh('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', out, grand]), /identical/);
});

test('split VMDKs of several extents (twoGbMaxExtent*) read as their source, each extent opened beside the descriptor', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'big.raw');
  const size = 5 * GiB;
  const pieces: [number, number][] = [[0, 64 * 1024], [2 * GiB - 4096, 3 * 4096], [4 * GiB + 512, 5000], [size - 1024, 1024]];
  const fd = openSync(raw, 'w');
  ftruncateSync(fd, size);
  pieces.forEach(([at, len], i) => writeSync(fd, varied(len, i + 7), 0, len, at));
  closeSync(fd);
  for (const sub of ['twoGbMaxExtentSparse', 'twoGbMaxExtentFlat']) {
    const image = join(dir, `${sub}.vmdk`);
    qemuVmdk(raw, image, [`subformat=${sub}`]);
    assert.match(sh('qemu-img', ['compare', '-f', 'raw', '-F', 'vmdk', raw, image]), /identical/);
    const img = await openImage(image);
    try {
      assert.equal(img.virtualSize, size);
      assert.equal(img.otherFiles?.length, 3, `${sub}: three extents`);
      for (const [at, len] of pieces) {
        const buf = Buffer.alloc(len + 8192);
        const from = Math.max(0, Math.min(at - 4096, size - buf.length));
        await img.read(buf, from);
        const want = Buffer.alloc(buf.length);
        const rfd = openSync(raw, 'r');
        readSync(rfd, want, 0, want.length, from);
        closeSync(rfd);
        assert.ok(buf.equals(want), `${sub}: bytes around ${at}`);
      }
      if (sub.endsWith('Sparse')) {
        // Everything but the grains holding the pieces reads as a hole: the rest need not be compared.
        const data = (await img.blockStatus(0, size)).filter((e) => e.state === 'data');
        const total = data.reduce((s, e) => s + e.length, 0);
        assert.ok(total <= 8 * 64 * 1024, `${sub}: ${total} bytes of data`);
        for (const [at, len] of pieces) assert.ok(data.some((e) => e.offset <= at && at + len <= e.offset + e.length + 64 * 1024), `${sub}: piece at ${at} is data`);
      }
    } finally {
      await img.close();
    }
  }
});

test('hand-made descriptors: ESXi vmfs + -flat pair, FLAT with an offset, ZERO extents, mixed sparse and flat', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const dir = tempDir(t);
  const flat = join(dir, 'esx-flat.vmdk');
  writeFileSync(flat, Buffer.concat([varied(MiB, 3), Buffer.alloc(MiB), varied(MiB, 4)]));
  const esx = join(dir, 'esx.vmdk');
  writeFileSync(esx, '# Disk DescriptorFile\nversion=1\nCID=fffffffe\nparentCID=ffffffff\ncreateType="vmfs"\n\n# Extent description\nRW 6144 VMFS "esx-flat.vmdk"\n\n# The Disk Data Base\n#DDB\nddb.adapterType = "lsilogic"\nddb.geometry.cylinders = "1"\nddb.geometry.heads = "255"\nddb.geometry.sectors = "63"\n');
  assertReadsAsQemu(dir, esx, 'esx');
  assert.equal(info(esx)['format-specific'].data['create-type'], 'vmfs');

  const offsets = join(dir, 'offsets.vmdk');
  writeFileSync(offsets, [
    '# Disk DescriptorFile', 'version=1', 'CID=12345678', 'parentCID=ffffffff', 'createType="twoGbMaxExtentFlat"', '# Extent description',
    'RW 2048 FLAT "esx-flat.vmdk" 2048', // the flat file's second and third MiB
    'RW 1024 FLAT "esx-flat.vmdk" 0', '',
  ].join('\r\n'));
  assertReadsAsQemu(dir, offsets, 'flat extents with offsets');

  // QEMU skips ZERO lines (they name no file) and mixes no sparse extents into a flat disk, so this
  // one is judged against the bytes of its pieces: the flat file's, zeros, and qemu's reading of the sparse one.
  const sparse = join(dir, 'piece.vmdk');
  const raw = join(dir, 'piece.raw');
  makeVariedRaw(raw, 8 * MiB);
  qemuVmdk(raw, sparse, []);
  sh('qemu-img', ['convert', '-O', 'raw', sparse, join(dir, 'piece-qemu.raw')]);
  const mixed = join(dir, 'mixed.vmdk');
  writeFileSync(mixed, [
    '# Disk DescriptorFile', 'version=1', 'CID=12345678', 'parentCID=ffffffff', 'createType="custom"', '',
    'RW 2048 FLAT "esx-flat.vmdk" 2048',
    'RW 4096 ZERO',
    'RDONLY 16384 SPARSE "piece.vmdk"',
    'RW 1024 FLAT "esx-flat.vmdk" 0', '',
  ].join('\r\n'));
  const f = readFileSync(flat);
  const want = Buffer.concat([f.subarray(MiB, 2 * MiB), Buffer.alloc(2 * MiB), readFileSync(join(dir, 'piece-qemu.raw')), f.subarray(0, MiB / 2)]);
  const r = vdisk(['read', mixed]);
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.stdoutBytes.equals(want), 'mixed extents read as their pieces');
  const i = info(mixed);
  assert.equal(i['virtual-size'], want.length);
  assert.deepEqual(i['format-specific'].data.extents.map((e: any) => e.format), ['FLAT', 'ZERO', 'SPARSE', 'FLAT']);
});

test('formats vdisk does not read are refused in one line by name: COWD, SESPARSE, VMFSSPARSE', (t) => {
  const dir = tempDir(t);
  const cowd = join(dir, 'cowd.vmdk');
  const b = Buffer.alloc(4096);
  b.write('COWD', 0, 'latin1');
  writeFileSync(cowd, b);
  for (const [file, text] of [[cowd, null], [join(dir, 'se.vmdk'), 'RW 2048 SESPARSE "x.vmdk"'], [join(dir, 'vs.vmdk'), 'RW 2048 VMFSSPARSE "x.vmdk"']] as const) {
    if (text) writeFileSync(file, `# Disk DescriptorFile\nversion=1\nCID=1\nparentCID=ffffffff\ncreateType="x"\n${text}\n`);
    const r = vdisk(['info', file]);
    assert.notEqual(r.code, 0);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, /COWD|SESPARSE|VMFSSPARSE/);
    assert.doesNotMatch(r.stderr, /\n\s+at /);
  }
});

test('check agrees with qemu-img check: clean QEMU-made images are clean, a grain past the end of the file is found by both', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  for (const sub of ['monolithicSparse', 'streamOptimized', 'twoGbMaxExtentSparse']) {
    const image = join(dir, `${sub}.vmdk`);
    qemuVmdk(raw, image, [`subformat=${sub}`]);
    assert.match(sh('qemu-img', ['check', image]), /No errors/);
    const r = vdisk(['check', '--output', 'json', image]);
    assert.equal(r.code, 0, `${sub}: ${r.stdout}${r.stderr}`);
    const report = JSON.parse(r.stdout);
    // qemu-img check prints no counts for VMDK: its map says how many grains hold data.
    const grains = (JSON.parse(sh('qemu-img', ['map', '--output', 'json', image])) as { data: boolean; length: number }[])
      .filter((m) => m.data).reduce((n, m) => n + Math.ceil(m.length / 65536), 0);
    assert.equal(report['allocated-blocks'], grains, `${sub}: allocated grains`);
  }
  const bad = join(dir, 'monolithicSparse.vmdk');
  const b = readFileSync(bad);
  const gt = b.readUInt32LE(Number(b.readBigUInt64LE(56)) * 512);
  b.writeUInt32LE(999_999, gt * 512 + 4 * 5);
  writeFileSync(bad, b);
  assert.notEqual(spawnSync('qemu-img', ['check', bad]).status, 0, 'qemu-img check finds it');
  const r = vdisk(['check', bad]);
  assert.equal(r.code, 2, r.stdout + r.stderr);
  assert.match(r.stdout, /grain 5 is stored at sector 999999, past the end of the file/);
});
