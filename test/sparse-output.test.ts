import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { openSync, writeSync, closeSync, statSync } from 'node:fs';
import { needPeers, sh, tempDir, vdisk } from './helpers/peers.js';

const MiB = 1024 * 1024;
/** Host bytes a file occupies (du). */
const used = (p: string) => statSync(p).blocks * 512;

function disks(dir: string): [string, string][] {
  const one = join(dir, 'one-sector.raw');
  sh('truncate', ['-s', '1G', one]);
  const fd = openSync(one, 'r+');
  writeSync(fd, Buffer.alloc(512, 0x5a), 0, 512, 300 * MiB);
  closeSync(fd);
  // A 512 MiB disk with a few small file systems, mostly empty: the shape of a fresh VM disk.
  const parts = join(dir, 'partitions.raw');
  sh('truncate', ['-s', '512M', parts]);
  sh('sfdisk', ['-q', parts], Buffer.from('label: gpt\n,64M\n,128M\n,64M\n'));
  sh('mkfs.vfat', ['-F', '32', '--offset', '2048', parts, String(64 * 1024)]);
  sh('mkfs.ext4', ['-q', '-E', `offset=${133120 * 512}`, parts, '128M']);
  sh('mkfs.ext4', ['-q', '-O', '^has_journal', '-E', `offset=${395264 * 512}`, parts, '64M']);
  return [['one non-zero sector in 1 GiB', one], ['a 512 MiB GPT disk with FAT32 and two ext4', parts]];
}

test('VHDX output is as sparse as qemu-img’s (within 1.1x of its host blocks), from convert, create + write, and create', (t) => {
  if (!needPeers(t, 'qemu-img', 'sfdisk', 'mkfs.vfat', 'mkfs.ext4')) return;
  const dir = tempDir(t);
  for (const [name, raw] of disks(dir)) {
    const theirs = join(dir, 'qemu.vhdx');
    sh('qemu-img', ['convert', '-f', 'raw', '-O', 'vhdx', raw, theirs]);
    const converted = join(dir, 'converted.vhdx');
    assert.equal(vdisk(['convert', '-f', 'raw', '-O', 'vhdx', raw, converted]).code, 0);
    const written = join(dir, 'written.vhdx');
    assert.equal(vdisk(['create', '-q', written, String(statSync(raw).size)]).code, 0);
    const w = vdisk(['write', written, raw, '-f', 'vhdx']);
    assert.equal(w.code, 0, w.stderr);
    for (const [how, img] of [['convert', converted], ['create + write', written]]) {
      assert.equal(sh('qemu-img', ['compare', '-f', 'raw', raw, img]).trim(), 'Images are identical.');
      sh('qemu-img', ['check', img]);
      assert.ok(used(img) <= 1.1 * used(theirs), `${name}, ${how}: ${used(img)} bytes on the host against qemu-img's ${used(theirs)}`);
    }
  }
  const empty = join(dir, 'empty.vhdx');
  const qemuEmpty = join(dir, 'qemu-empty.vhdx');
  assert.equal(vdisk(['create', '-q', empty, '100G']).code, 0);
  sh('qemu-img', ['create', '-q', '-f', 'vhdx', qemuEmpty, '100G']);
  assert.ok(used(empty) <= 1.1 * used(qemuEmpty), `create: ${used(empty)} bytes against qemu-img's ${used(qemuEmpty)}`);
});
