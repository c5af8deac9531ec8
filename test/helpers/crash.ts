import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { copyFileSync, existsSync } from 'node:fs';
import { ROOT, VDISK, sh, vdisk } from './peers.js';
import { makeQemuVhdx } from './qemu.js';

/** Builds the LD_PRELOAD shim that SIGKILLs a process at its Nth file write. */
export function buildKillShim(dir: string): string {
  const so = join(dir, 'kill-after-writes.so');
  if (!existsSync(so)) {
    sh('cc', ['-shared', '-fPIC', '-O2', '-o', so, join(ROOT, 'test', 'fixtures', 'kill-after-writes.c'), '-ldl']);
  }
  return so;
}

/** Runs vdisk with the shim (a plain or torn cut); returns true when it was cut off before finishing. */
export function vdiskCutOff(shim: string, args: string[], afterWrites: number, torn: boolean): boolean {
  const r = spawnSync(process.execPath, [VDISK, ...args], {
    env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(afterWrites), KILL_TORN: torn ? '1' : '0' },
    stdio: 'ignore',
  });
  return r.signal === 'SIGKILL';
}

/**
 * Copies `base` to `cut-N<ext>` and runs `vdisk write INPUT --offset OFFSET` on the copy cut off at
 * its Nth write, for N = 0, 1, ... until a run completes; `check` looks at each cut copy. Returns how
 * many cuts there were.
 */
export function cutAtEveryWrite(
  shim: string, dir: string, base: string, write: { input: string; offset: number; torn: boolean },
  check: (img: string, n: number) => void, max = 200,
): number {
  let cuts = 0;
  for (let n = 0; n < max; n++) {
    const img = join(dir, `cut-${n}${base.slice(base.lastIndexOf('.'))}`);
    copyFileSync(base, img);
    if (!vdiskCutOff(shim, ['write', img, write.input, '--offset', String(write.offset)], n, write.torn)) break;
    cuts++;
    check(img, n);
  }
  return cuts;
}

/** Runs qemu-io with the shim; returns true when the process was cut off (killed) before finishing. */
export function qemuIoCutOff(shim: string, image: string, commands: string[], afterWrites: number): boolean {
  const r = spawnSync('qemu-io', ['-f', 'vhdx', ...commands.flatMap((c) => ['-c', c]), image], {
    env: { ...process.env, LD_PRELOAD: shim, KILL_AFTER_WRITES: String(afterWrites) },
    stdio: 'ignore',
  });
  return r.signal === 'SIGKILL';
}

/**
 * A 16 MiB QEMU image (1 MiB blocks) left with a pending log: QEMU is cut off at its 1st, 2nd, ...
 * write of `commands` until a cut leaves the log pending. Empty when no cut point does.
 */
export function makeDirtyQemuVhdx(dir: string, shim: string, commands: string[]): string {
  for (let n = 1; n <= 20; n++) {
    const candidate = makeQemuVhdx(dir, { name: `d-${n}`, size: '16M', options: ['block_size=1M'] });
    qemuIoCutOff(shim, candidate, commands, n);
    if (JSON.parse(vdisk(['info', '--output', 'json', candidate]).stdout)['dirty-flag']) return candidate;
  }
  return '';
}

/** Fails unless every 512-byte sector of `now` holds its old or its new content. */
export function assertOldOrNew(now: Buffer, oldContent: Buffer, newContent: Buffer, label: string): void {
  if (now.length !== oldContent.length) throw new Error(`${label}: the disk is ${now.length} bytes, not ${oldContent.length}`);
  for (let s = 0; s < now.length; s += 512) {
    const sector = now.subarray(s, s + 512);
    if (!sector.equals(oldContent.subarray(s, s + 512)) && !sector.equals(newContent.subarray(s, s + 512))) {
      throw new Error(`${label}: sector ${s / 512} holds neither its old nor its new content`);
    }
  }
}
