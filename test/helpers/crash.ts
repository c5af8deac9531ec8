import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { existsSync } from 'node:fs';
import { ROOT, sh } from './peers.js';

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
