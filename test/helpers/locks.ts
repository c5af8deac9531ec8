import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { VDISK } from './peers.js';

/** Whether some process holds a lock on byte `byte` of `path`, as /proc/locks shows (the kernel's own view). */
export function lockedByte(path: string, byte: number): boolean {
  const ino = statSync(path).ino;
  return readFileSync('/proc/locks', 'utf8')
    .split('\n')
    .filter((l) => !l.includes('->'))
    .some((l) => {
      const f = l.trim().split(/\s+/);
      if (f.length < 8 || Number(f[5].split(':')[2]) !== ino) return false;
      const end = f[7] === 'EOF' ? Infinity : Number(f[7]);
      return Number(f[6]) <= byte && byte <= end;
    });
}

export async function waitFor(what: string, cond: () => boolean, ms = 15_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export interface Held {
  child: ChildProcess;
  /** Writes to the child's stdin. */
  send(data: Buffer | string): void;
  /** Ends stdin and waits for the exit: code, stdout, stderr. */
  finish(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** A process kept running with its stdin a pipe: `vdisk write IMG` fed slowly, or `qemu-io IMG`. */
export function hold(cmd: string, args: string[]): Held {
  const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    send: (data) => void child.stdin?.write(data),
    finish: async () => {
      child.stdin?.end();
      const code = await exited;
      return { code, stdout, stderr };
    },
  };
}

export function holdVdisk(args: string[]): Held {
  return hold(process.execPath, [VDISK, ...args]);
}
