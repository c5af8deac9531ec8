import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { needPeers, tempDir, sha256Buffer, sh } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw } from './helpers/qemu.js';
import { readFileSync } from 'node:fs';

test('the package is importable by name and reads an image as the CLI does', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  // Self-reference through package.json "exports": exactly what a dependent project would import.
  const lib = await import('vdisk');
  const dir = tempDir(t);
  const img = makeQemuVhdx(dir, { name: 'lib', size: '8M', options: ['block_size=1M'], io: ['write -P 0x7e 1000448 70000'] });
  const ref = join(dir, 'ref.raw');
  qemuConvertToRaw(img, ref);
  const image = await lib.openImage(img);
  try {
    assert.equal(image.format, 'vhdx');
    assert.equal(image.virtualSize, 8 * 1024 * 1024);
    const buf = Buffer.alloc(100_000);
    await image.read(buf, 990_000);
    assert.equal(sha256Buffer(buf), sha256Buffer(readFileSync(ref).subarray(990_000, 1_090_000)));
    const extents = await image.blockStatus(0, image.virtualSize);
    assert.deepEqual(
      extents.filter((e) => e.state === 'data').map((e) => [e.offset, e.length]),
      [[0, 2 * 1024 * 1024]],
    );
    const info = await lib.describeImage(image);
    assert.equal(info['cluster-size'], 1024 * 1024);
  } finally {
    await image.close();
  }
  await assert.rejects(lib.openImage(join(dir, 'missing.vhdx')), (e: unknown) => e instanceof lib.VdiskError && e.code === 'NOT_FOUND');
  void sh;
});
