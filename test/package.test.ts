import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { needPeers, tempDir, sha256, ROOT } from './helpers/peers.js';
import { makeQemuVhdx, qemuConvertToRaw, qemuInfo, scatteredWrites } from './helpers/qemu.js';

test('npm run package builds a single-file executable that runs info, read, create and convert without the repository', async (t) => {
  if (!needPeers(t, 'qemu-img', 'qemu-io')) return;
  const built = spawnSync(process.execPath, [join(ROOT, 'scripts', 'package.mjs')], { cwd: ROOT, encoding: 'utf8' });
  assert.equal(built.status, 0, built.stderr);
  const dir = tempDir(t);
  const exe = join(dir, 'vdisk');
  copyFileSync(join(ROOT, 'build', 'vdisk'), exe);
  chmodSync(exe, 0o755);
  const img = makeQemuVhdx(dir, { name: 'p', size: '32M', options: ['block_size=1M'], io: scatteredWrites(32 * 1024 * 1024, 1024 * 1024) });
  // Run from elsewhere, with no NODE_PATH and no repository in reach.
  const env = { PATH: '/usr/bin:/bin', HOME: dir };
  const info = spawnSync(exe, ['info', '--output', 'json', img], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(info.status, 0, info.stderr);
  // A single-file executable cannot load the native locking addon: one warning line, then unlocked.
  assert.match(info.stderr, /^vdisk: warning: file locking is not available in this build [^\n]*\n$/);
  const ours = JSON.parse(info.stdout);
  const theirs = qemuInfo(img);
  assert.equal(ours['virtual-size'], theirs['virtual-size']);
  assert.equal(ours['cluster-size'], theirs['cluster-size']);
  const out = join(dir, 'out.raw');
  const read = spawnSync(exe, ['read', img, out], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(read.status, 0, read.stderr);
  const ref = join(dir, 'ref.raw');
  qemuConvertToRaw(img, ref);
  assert.equal(await sha256(out), await sha256(ref));
  const made = join(dir, 'made.vhdx');
  const create = spawnSync(exe, ['create', '-q', made, '8M'], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(create.status, 0, create.stderr);
  assert.equal(qemuInfo(made)['virtual-size'], 8 * 1024 * 1024);
  const converted = join(dir, 'converted.vhdx');
  const convert = spawnSync(exe, ['convert', '-O', 'vhdx', out, converted], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(convert.status, 0, convert.stderr);
  assert.match(spawnSync('qemu-img', ['compare', '-f', 'vhdx', '-F', 'vhdx', img, converted], { encoding: 'utf8' }).stdout, /Images are identical/);
  const bad = spawnSync(exe, ['info', join(dir, 'missing.vhdx')], { cwd: dir, env, encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /^vdisk: .*no such file\n$/);
});
