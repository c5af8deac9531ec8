import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, statSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { VDISK, needPeers, sh, tempDir, vdisk } from './helpers/peers.js';
import { buildKillShim } from './helpers/crash.js';
import { MiB } from './helpers/vhd.js';
import { firstDifferentSector, readWhole, vdiskWrite, virtualSizeOf } from './helpers/vhdxlife.js';
import { commitImage, compactImage, openImage, rebaseImage, resizeImage } from '../src/index.js';
import { checkCleanOrLeaks, qemuVhd, qemuVpcSize, sparseModel, vhdAgreesWithPeers } from './helpers/vhdlife.js';

const GiB = 1024 * MiB;

/** A raw model file of `size` bytes: the first bytes `data`, the rest zeros. */
function modelOf(path: string, size: number, data: Buffer): string {
  return sparseModel(path, size, [[0, data]]);
}

test('grow and shrink a dynamic VHD made by qemu-img: qemu-img, vhdiinfo and compare agree with the model; a grow the BAT has no room for moves the blocks in the way', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const img = qemuVhd(join(dir, 'a.vhd'), '15728640', ['write -P 0x5a 0 5M', 'write -P 0xa5 13M 2M']);
  const raw = join(dir, 'a.raw');
  sh('qemu-img', ['convert', '-f', 'vpc', '-O', 'raw', img, raw]);
  const data = readFileSync(raw);
  const model = join(dir, 'model.raw');

  // 15 MiB -> 200 MiB: 100 entries fit in the BAT's one sector (128), nothing moves.
  assert.equal(vdisk(['resize', img, '200M']).code, 0);
  vhdAgreesWithPeers(img, modelOf(model, 200 * MiB, data), 200 * MiB);
  // 200 MiB -> 3 GiB + 512: 1537 entries; the blocks after the BAT move to the end of the file.
  const big = 3 * GiB + 512;
  const r = vdisk(['resize', img, `+${big - 200 * MiB}`]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(qemuVpcSize(img), big);
  const far = randomBytes(3 * MiB);
  vdiskWrite(img, 2 * GiB + 999 * 512, far);
  // The last sector, alone in a block of its own.
  vdiskWrite(img, big - 512, Buffer.alloc(512, 7));
  sparseModel(model, big, [[0, data], [2 * GiB + 999 * 512, far], [big - 512, Buffer.alloc(512, 7)]]);
  vhdAgreesWithPeers(img, model, big);

  // Shrinking: refused without --shrink and over data; zeros over the data make it harmless.
  const refused = vdisk(['resize', img, '20M']);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /^vdisk: .*--shrink.*\n$/);
  const inTheWay = vdisk(['resize', '--shrink', img, '20M']);
  assert.equal(inTheWay.code, 1);
  assert.match(inTheWay.stderr, /^vdisk: .*data at byte \d+ lies past the new size 20971520.*\n$/);
  vdiskWrite(img, 2 * GiB + 999 * 512, Buffer.alloc(3 * MiB));
  vdiskWrite(img, big - 512, Buffer.alloc(512));
  const before = statSync(img).size;
  assert.equal(vdisk(['resize', '--shrink', img, '20M']).code, 0);
  vhdAgreesWithPeers(img, modelOf(model, 20 * MiB, data), 20 * MiB);
  // The blocks past the new end are given back.
  assert.ok(statSync(img).size <= before - 3 * (2 * MiB + 512), `${before} -> ${statSync(img).size}`);
  assert.equal(firstDifferentSector(vdisk(['read', img]).stdoutBytes, readFileSync(model)), -1);
});

test('a dynamic VHD made by vdisk grows with a partial last block whose tail reads as zeros', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const img = join(dir, 'p.vhd');
  const size0 = 5 * MiB + 512 * 7;
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-o', 'force_size=on,block_size=1M', img, String(size0)]).code, 0);
  const data = randomBytes(size0);
  vdiskWrite(img, 0, data);
  assert.equal(vdisk(['resize', img, '+3M']).code, 0);
  vhdAgreesWithPeers(img, modelOf(join(dir, 'm.raw'), size0 + 3 * MiB, data), size0 + 3 * MiB);
});

test('a fixed VHD grows and shrinks fixed: the footer moves to the new end', (t) => {
  if (!needPeers(t, 'qemu-img', 'vhdiinfo')) return;
  const dir = tempDir(t);
  const img = join(dir, 'f.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', img, '8M']).code, 0);
  const data = randomBytes(6 * MiB);
  vdiskWrite(img, 0, data);
  assert.equal(vdisk(['resize', img, '24M']).code, 0);
  assert.equal(statSync(img).size, 24 * MiB + 512);
  vhdAgreesWithPeers(img, modelOf(join(dir, 'm.raw'), 24 * MiB, data), 24 * MiB);
  assert.match(vdisk(['info', img]).stdout, /disk-type: fixed/);
  assert.equal(vdisk(['resize', '--shrink', img, '6M']).code, 0);
  assert.equal(statSync(img).size, 6 * MiB + 512);
  vhdAgreesWithPeers(img, modelOf(join(dir, 'm2.raw'), 6 * MiB, data), 6 * MiB);
  // A size that is no whole number of sectors is refused in one line.
  const odd = vdisk(['resize', img, '+1000']);
  assert.equal(odd.code, 1);
  assert.match(odd.stderr, /^vdisk: .*not a multiple of the 512-byte sector\n$/);
});

test('a differencing VHD is refused in one line', (t) => {
  const dir = tempDir(t);
  const base = join(dir, 'base.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', base, '4M']).code, 0);
  const child = join(dir, 'child.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', base, child]).code, 0);
  const r = vdisk(['resize', child, '8M']);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^vdisk: .*differencing.*\n$/);
});

for (const [kind, target, shrink] of [['dynamic', '3G', false], ['dynamic', '4M', true], ['fixed', '40M', false], ['fixed', '4M', true]] as const) {
  test(`a ${kind} VHD ${shrink ? 'shrink' : 'grow'} to ${target} cut off at every one of its writes opens at the old or the new size with its data`, async (t) => {
    if (!needPeers(t, 'qemu-img', 'qemu-io', 'cc')) return;
    const dir = tempDir(t);
    const shim = buildKillShim(dir);
    const base = join(dir, 'base.vhd');
    if (kind === 'fixed') {
      assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-o', 'subformat=fixed,force_size=on', base, '16M']).code, 0);
    } else {
      // For a shrink, blocks of zeros past the new end come first in the file: the kept blocks after
      // them move down into their space.
      qemuVhd(base, '16M', shrink ? ['write -P 0 4M 12M'] : []);
    }
    // Data below 4 MiB (kept by a shrink), and for a grow data in every block.
    const data = randomBytes(shrink ? 4 * MiB : 16 * MiB);
    vdiskWrite(base, 0, data);
    const oldSize = 16 * MiB;
    const newSize = target === '3G' ? 3 * GiB : target === '40M' ? 40 * MiB : 4 * MiB;
    const keep = Math.min(oldSize, newSize);
    let cuts = 0;
    for (let n = 0; n < 200; n++) {
      const img = join(dir, `cut-${n}.vhd`);
      copyFileSync(base, img);
      const args = ['resize', ...(shrink ? ['--shrink'] : []), img, target];
      const r = spawnSync(process.execPath, [VDISK, ...args], {
        env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(n) },
        stdio: 'ignore',
      });
      if (r.signal !== 'SIGKILL') {
        assert.equal(await virtualSizeOf(img), newSize, 'the completed resize');
        // A completed dynamic shrink keeps only the two blocks of data (moved down) and the metadata.
        if (shrink && kind === 'dynamic') assert.ok(statSync(img).size <= 2 * (2 * MiB + 512) + 4096, `file of ${statSync(img).size} bytes`);
        break;
      }
      cuts++;
      const size = await virtualSizeOf(img);
      assert.ok(size === oldSize || size === newSize, `n=${n}: size ${size}`);
      assert.equal(firstDifferentSector(await readWhole(img, keep), data.subarray(0, keep)), -1, `n=${n}`);
      // QEMU opens it too (at the size of the footer copy at offset 0, which it reads first: cut off
      // between the two footers, the other one) and reads the same data.
      const q = qemuVpcSize(img);
      assert.ok(q === oldSize || q === newSize, `n=${n}: qemu-img info says ${q}`);
      const out = join(dir, `q-${n}.raw`);
      sh('qemu-img', ['dd', '-f', 'vpc', '-O', 'raw', `if=${img}`, `of=${out}`, 'bs=1M', `count=${keep / MiB}`]);
      assert.equal(firstDifferentSector(readFileSync(out), data.subarray(0, keep)), -1, `n=${n}: read by qemu-img`);
      checkCleanOrLeaks(img, `n=${n}`);
    }
    // A fixed grow writes the footer and the zeros over the old one; a fixed shrink only the footer.
    assert.ok(cuts >= (kind === 'fixed' ? (shrink ? 1 : 2) : 6), `cut at ${cuts} points`);
  });
}

test('from the library: resizeImage, compactImage, commitImage and rebaseImage on VHDs, and the hooks on an open image', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const dir = tempDir(t);
  const img = qemuVhd(join(dir, 'l.vhd'), '8M', ['write -P 0x11 0 1M', 'write -P 0 4M 2M']);
  assert.deepEqual(await resizeImage(img, { sign: '+', bytes: 8 * MiB }), { oldSize: 8 * MiB, newSize: 16 * MiB });
  assert.equal(qemuVpcSize(img), 16 * MiB);
  const c = await compactImage(img, { zerosOnly: true });
  assert.equal(c.blocksZero, 1);
  const open = await openImage(img, { mode: 'rw' });
  try {
    assert.ok(open.resize && open.compact && open.commit && open.rebase);
    await open.resize(10 * MiB);
    assert.equal(open.virtualSize, 10 * MiB);
    const b = Buffer.alloc(MiB);
    await open.read(b, 0);
    assert.ok(b.equals(Buffer.alloc(MiB, 0x11)));
  } finally {
    await open.close();
  }
  assert.equal(qemuVpcSize(img), 10 * MiB);
  const child = join(dir, 'c.vhd');
  assert.equal(vdisk(['create', '-q', '-f', 'vpc', '-b', img, child]).code, 0);
  vdiskWrite(child, 512, Buffer.alloc(1024, 0x22));
  const other = qemuVhd(join(dir, 'o.vhd'), '10M');
  await rebaseImage(child, other);
  const r = await commitImage(child);
  // The safe rebase copied the old parent's first MiB (where the new one differs) into the child.
  assert.deepEqual(r, { parent: other, bytes: MiB });
  const back = await readWhole(other, MiB);
  assert.ok(back.subarray(0, 512).equals(Buffer.alloc(512, 0x11)) && back.subarray(512, 1536).equals(Buffer.alloc(1024, 0x22)));
});

test('a VHD whose creator QEMU sizes by CHS geometry ("qemu") reads at the size asked for after a resize: the geometry multiplies out to it, or is the maximum one', (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io', 'vhdiinfo')) return;
  const dir = tempDir(t);
  // 1032192 sectors = 1024 x 16 x 63: a size calculateGeometry covers exactly; 12345 sectors: none does.
  for (const [i, size] of [1032192 * 512, 12345 * 512].entries()) {
    const img = qemuVhd(join(dir, `chs-${i}.vhd`), '10M', ['write -P 0x6b 1M 2M'], 'subformat=dynamic');
    const data = readFileSync(sparseModel(join(dir, `d-${i}.raw`), 10 * MiB, [])).fill(0x6b, MiB, 3 * MiB);
    assert.equal(vdisk(['resize', '--shrink', img, String(size)]).code, 0);
    vhdAgreesWithPeers(img, sparseModel(join(dir, `m-${i}.raw`), size, [[0, data]]), size);
    const geometry = JSON.parse(vdisk(['info', '--output', 'json', img]).stdout)['format-specific'].data;
    assert.equal(geometry['geometry-size'], i === 0 ? size : 65535 * 16 * 255 * 512, JSON.stringify(geometry));
  }
});
