import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { ROOT, sh, vdisk } from './peers.js';
import { makeQemuVhdx } from './qemu.js';

/** Builds the LD_PRELOAD shim that SIGKILLs a process at its Nth file write. */
export function buildKillShim(dir: string): string {
  const so = join(dir, 'kill-after-writes.so');
  if (!existsSync(so)) {
    sh('cc', ['-shared', '-fPIC', '-O2', '-o', so, join(ROOT, 'test', 'fixtures', 'kill-after-writes.c'), '-ldl']);
  }
  return so;
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
