import assert from 'node:assert/strict';
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { sh, vdisk } from './peers.js';
import { vhdiInfo } from './qemu.js';
import { vhdiSize } from './vhd.js';

/**
 * A dynamic or fixed VHD as its peers see it: qemu-img info and vhdiinfo show `size`, qemu-img
 * compare finds it equal to the raw `model` file (qemu-img check does not check VHDs: vdisk check
 * stands in, and must find nothing, not even a leak).
 */
export function vhdAgreesWithPeers(image: string, model: string, size: number): void {
  assert.equal(qemuVpcSize(image), size, 'qemu-img info');
  assert.equal(vhdiSize(vhdiInfo(image)), size, 'vhdiinfo');
  const r = spawnSync('qemu-img', ['compare', '-f', 'vpc', '-F', 'raw', image, model], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img compare: ${r.stdout}${r.stderr}`);
  const check = vdisk(['check', image]);
  assert.equal(check.code, 0, check.stdout + check.stderr);
}

/** A dynamic VHD made by qemu-img with qemu-io writes (force_size=on: the size asked for, in whole sectors). */
export function qemuVhd(path: string, size: string, io: string[] = [], options = 'force_size=on'): string {
  sh('qemu-img', ['create', '-q', '-f', 'vpc', '-o', options, path, size]);
  if (io.length) sh('qemu-io', ['-f', 'vpc', ...io.flatMap((c) => ['-c', c]), path]);
  return path;
}

/** The virtual size qemu-img info shows, told the format (a fixed VHD would probe as raw). */
export function qemuVpcSize(image: string): number {
  return JSON.parse(sh('qemu-img', ['info', '-f', 'vpc', '--output', 'json', image]))['virtual-size'] as number;
}

/**
 * What `vdisk check` finds on an image cut off mid-change: nothing, or leaked space (code 3); a
 * footer copy left behind (code 2) must be repaired by -r all, leaving at most leaks.
 */
export function checkCleanOrLeaks(image: string, label: string): void {
  const look = vdisk(['check', image]);
  if (look.code === 0 || look.code === 3) return;
  assert.equal(look.code, 2, `${label}: ${look.stdout}${look.stderr}`);
  assert.match(look.stdout, /footer copy/, label);
  vdisk(['check', '-r', 'all', image]);
  const again = vdisk(['check', image]);
  assert.ok(again.code === 0 || again.code === 3, `${label} after -r all: ${again.stdout}`);
}

/** A sparse raw model file of `size` bytes holding `pieces` ([offset, bytes]) and zeros elsewhere. */
export function sparseModel(path: string, size: number, pieces: [number, Buffer][]): string {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [at, b] of pieces) writeSync(fd, b, 0, Math.min(b.length, size - at), at);
  } finally {
    closeSync(fd);
  }
  return path;
}
