import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { makeQemuVhdx, scatteredWrites } from './helpers/qemu.js';
import { assertOldOrNew, buildKillShim, cutAtEveryWrite } from './helpers/crash.js';
import { makeVariedRaw, variedFixture, varied } from './helpers/vmdk.js';
import { openImage } from '../src/index.js';

const MiB = 1024 * 1024;
const SIZE = 9 * MiB - 4096;

function qemuSame(a: string, fa: string, b: string): void {
  assert.match(sh('qemu-img', ['compare', '-f', fa, '-F', 'vmdk', a, b]), /Images are identical/, `${b}`);
}

function qemuCheckClean(image: string): void {
  assert.match(sh('qemu-img', ['check', '-f', 'vmdk', image]), /No errors were found/, image);
}

const VARIANTS: [string, string[]][] = [
  ['default', []],
  ['monolithicSparse lsilogic compat6', ['subformat=monolithicSparse', 'adapter_type=lsilogic', 'compat6=on']],
  ['streamOptimized', ['subformat=streamOptimized']],
  ['streamOptimized buslogic', ['subformat=streamOptimized', 'adapter_type=buslogic']],
  ['monolithicFlat', ['subformat=monolithicFlat', 'adapter_type=legacyESX']],
];

test('convert raw and VHDX to every VMDK subformat vdisk writes: qemu-img compare finds the same disk, qemu-img check a clean image', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const raw = join(dir, 'src.raw');
  makeVariedRaw(raw, SIZE);
  const vhdx = makeQemuVhdx(dir, { name: 'src', size: '24M', options: ['block_size=1M'], io: scatteredWrites(24 * MiB, MiB) });
  for (const [source, format] of [[raw, 'raw'], [vhdx, 'vhdx']] as const) {
    for (const [name, opts] of VARIANTS) {
      const out = join(dir, `${format}-${name.replace(/\W/g, '_')}.vmdk`);
      const r = vdisk(['convert', '-q', '-O', 'vmdk', ...opts.flatMap((o) => ['-o', o]), source, out]);
      assert.equal(r.code, 0, `${name}: ${r.stderr}`);
      qemuSame(source, format, out);
      qemuCheckClean(out);
      const info = JSON.parse(sh('qemu-img', ['info', '--output', 'json', out]));
      const want = name.startsWith('monolithicFlat') ? 'monolithicFlat' : name.startsWith('stream') ? 'streamOptimized' : 'monolithicSparse';
      assert.equal(info['format-specific'].data['create-type'], want, name);
      const adapter = opts.find((o) => o.startsWith('adapter_type='))?.split('=')[1] ?? 'ide';
      const descriptor = readFileSync(out).toString('latin1');
      assert.match(descriptor, new RegExp(`ddb.adapterType = "${adapter}"`), name);
      if (opts.includes('compat6=on')) assert.match(descriptor, /ddb.virtualHWVersion = "6"/);
      if (want !== 'monolithicFlat') assert.ok(statSync(out).blocks * 512 < 8 * MiB, `${name}: only data grains stored`);
    }
  }
});

test('a streamOptimized VMDK vdisk writes is read by 7-Zip (7zz t, and 7zz x gives the source disk) and by qemu-img', (t) => {
  if (!needPeers(t, 'qemu-img', '7zz')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  const out = join(dir, 'disk.vmdk');
  assert.equal(vdisk(['convert', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, out]).code, 0);
  const test7z = spawnSync('7zz', ['t', out], { encoding: 'utf8' });
  assert.equal(test7z.status, 0, test7z.stdout + test7z.stderr);
  const x = join(dir, 'x');
  sh('7zz', ['x', `-o${x}`, out]);
  const [extracted] = readdirSync(x);
  assert.ok(readFileSync(join(x, extracted)).equals(readFileSync(raw)), '7-Zip extracts the source disk');
  qemuSame(raw, 'raw', out);
  // And vdisk reads its own stream (footer, markers) as qemu does.
  const back = vdisk(['read', out]);
  assert.ok(back.stdoutBytes.equals(readFileSync(raw)));
  // An empty stream made by create, and a stream of an all-zero disk, are valid too.
  const empty = join(dir, 'empty.vmdk');
  assert.equal(vdisk(['create', '-q', '-f', 'vmdk', '-o', 'subformat=streamOptimized', empty, '5M']).code, 0);
  qemuCheckClean(empty);
  assert.equal(spawnSync('7zz', ['t', empty]).status, 0);
});

test('monolithicFlat: the -flat extent is made beside the descriptor, listed in otherFiles, and never replaces an existing file', async (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  const out = join(dir, 'flat.vmdk');
  assert.equal(vdisk(['convert', '-O', 'vmdk', '-o', 'subformat=monolithicFlat', raw, out]).code, 0);
  assert.ok(existsSync(join(dir, 'flat-flat.vmdk')));
  const img = await openImage(out);
  assert.deepEqual(img.otherFiles, [join(dir, 'flat-flat.vmdk')]);
  await img.close();
  const before = readFileSync(join(dir, 'flat-flat.vmdk'));
  const again = vdisk(['convert', '-O', 'vmdk', '-o', 'subformat=monolithicFlat', raw, out]);
  assert.notEqual(again.code, 0);
  assert.match(again.stderr, /flat-flat\.vmdk: already exists/);
  assert.ok(readFileSync(join(dir, 'flat-flat.vmdk')).equals(before), 'the existing extent is left as it was');
  qemuSame(raw, 'raw', out);
});

test('images vdisk creates take writes from vdisk and from qemu-io: a child of a VMDK reads through its parent as qemu reads it', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const { dir, raw } = variedFixture(t, SIZE, 'base.raw');
  const base = join(dir, 'base.vmdk');
  assert.equal(vdisk(['convert', '-O', 'vmdk', raw, base]).code, 0);
  const child = join(dir, 'child.vmdk');
  const c = vdisk(['create', '-q', '-f', 'vmdk', '-b', base, child]);
  assert.equal(c.code, 0, c.stderr);
  // vdisk writes unaligned, across grains, half over parent data; qemu-io writes too.
  const input = join(dir, 'in.bin');
  writeFileSync(input, varied(200_000, 99));
  assert.equal(vdisk(['write', child, input, '--offset', String(MiB - 7000)]).code, 0);
  sh('qemu-io', ['-c', 'write -P 0x5a 64k 64k', child]);
  const expected = readFileSync(raw);
  varied(200_000, 99).copy(expected, MiB - 7000);
  expected.fill(0x5a, 64 * 1024, 128 * 1024);
  const theirs = join(dir, 'child.raw');
  sh('qemu-img', ['convert', '-O', 'raw', child, theirs]);
  assert.ok(readFileSync(theirs).equals(expected), 'qemu reads the child as written');
  assert.ok(vdisk(['read', child]).stdoutBytes.equals(expected), 'vdisk reads it so too');
  qemuCheckClean(child);
  qemuCheckClean(base);
  const info = JSON.parse(sh('qemu-img', ['info', '--output', 'json', child]));
  assert.equal(info['backing-filename'], base);
});

for (const torn of [false, true]) {
  test(`a monolithicSparse write cut off at every one of its writes${torn ? ', torn mid-sector' : ''} leaves each sector old or new, as qemu-img reads it`, (t) => {
    if (!needPeers(t, 'qemu-img', 'cc')) return;
    const dir = tempDir(t);
    const shim = buildKillShim(dir);
    const base = join(dir, 'base.vmdk');
    assert.equal(vdisk(['create', '-q', '-f', 'vmdk', base, '8M']).code, 0);
    const first = join(dir, 'first.bin');
    writeFileSync(first, varied(MiB, 5));
    assert.equal(vdisk(['write', base, first, '--offset', String(2 * MiB)]).code, 0);
    const oldContent = vdisk(['read', base]).stdoutBytes;
    const input = join(dir, 'in.bin');
    const data = varied(2 * MiB + 777, 6);
    writeFileSync(input, data);
    const offset = 2_500_000; // over allocated grains and new ones, unaligned
    const newContent = Buffer.from(oldContent);
    data.copy(newContent, offset);
    const cuts = cutAtEveryWrite(shim, dir, base, { input, offset, torn }, (img, n) => {
      const raw = join(dir, `cut-${n}.raw`);
      sh('qemu-img', ['convert', '-O', 'raw', img, raw]);
      const now = readFileSync(raw);
      assertOldOrNew(now, oldContent, newContent, `n=${n}`);
      assert.ok(vdisk(['read', img]).stdoutBytes.equals(now), `n=${n}: vdisk reads it as qemu does`);
    }, 100);
    assert.ok(cuts >= 3, `the write was cut at ${cuts} points`);
  });
}

test('bad creation options are refused before anything is made', (t) => {
  const dir = tempDir(t);
  for (const o of ['subformat=nope', 'adapter_type=scsi', 'compat6=maybe']) {
    const out = join(dir, 'x.vmdk');
    const r = vdisk(['create', '-f', 'vmdk', '-o', o, out, '1M']);
    assert.notEqual(r.code, 0, o);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.ok(!existsSync(out), o);
  }
});

test('vdisk writes into QEMU-made split sparse and flat VMDKs as qemu reads them back; a stream is refused, unchanged', (t) => {
  if (!needPeers(t, 'qemu-img')) return;
  const { dir, raw } = variedFixture(t, SIZE);
  const input = join(dir, 'in.bin');
  const data = varied(300_000, 77);
  writeFileSync(input, data);
  const offset = 3 * MiB - 1234;
  const expected = readFileSync(raw);
  data.copy(expected, offset);
  for (const sub of ['twoGbMaxExtentSparse', 'twoGbMaxExtentFlat', 'monolithicSparse']) {
    const image = join(dir, `${sub}.vmdk`);
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', `subformat=${sub}`, raw, image]);
    const w = vdisk(['write', image, input, '--offset', String(offset)]);
    assert.equal(w.code, 0, `${sub}: ${w.stderr}`);
    const back = join(dir, `${sub}.raw`);
    sh('qemu-img', ['convert', '-O', 'raw', image, back]);
    assert.ok(readFileSync(back).equals(expected), `${sub}: qemu reads what vdisk wrote`);
    if (sub.endsWith('Sparse')) qemuCheckClean(image);
  }
  const stream = join(dir, 'stream.vmdk');
  sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vmdk', '-o', 'subformat=streamOptimized', raw, stream]);
  const before = readFileSync(stream);
  const r = vdisk(['write', stream, input]);
  assert.notEqual(r.code, 0);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /streamOptimized/);
  assert.ok(readFileSync(stream).equals(before));
});
