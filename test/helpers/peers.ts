import { execFileSync, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, createReadStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TestContext } from 'node:test';

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VDISK = join(ROOT, 'bin', 'vdisk');

const found = new Map<string, boolean>();

/** True when `cmd` is on PATH (sbin included: blkid, mkfs and friends live there). */
export function havePeer(cmd: string): boolean {
  if (!found.has(cmd)) {
    const r = spawnSync('sh', ['-c', `command -v ${cmd}`], {
      env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    });
    found.set(cmd, r.status === 0);
  }
  return found.get(cmd) as boolean;
}

/**
 * Skips the test when a peer tool is missing on a developer machine; in CI a missing peer fails,
 * because an interop test that did not run proves nothing.
 */
export function needPeers(t: TestContext, ...cmds: string[]): boolean {
  const missing = cmds.filter((c) => !havePeer(c));
  if (missing.length === 0) return true;
  if (process.env.CI === 'true') throw new Error(`peer tools missing in CI: ${missing.join(', ')}`);
  t.skip(`peer tools missing: ${missing.join(', ')}`);
  return false;
}

export function sh(cmd: string, args: string[], input?: Buffer): string {
  return execFileSync(cmd, args, {
    encoding: 'utf8',
    input,
    maxBuffer: 64 * 1024 * 1024,
    env: { ...process.env, PATH: `${process.env.PATH}:/usr/sbin:/sbin` },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
  stdoutBytes: Buffer;
}

export function vdisk(args: string[], opts: { input?: Buffer; env?: Record<string, string> } = {}): RunResult {
  const r = spawnSync(process.execPath, [VDISK, ...args], {
    input: opts.input,
    maxBuffer: 1024 * 1024 * 1024,
    env: { ...process.env, NO_COLOR: '1', ...opts.env },
    timeout: 120_000,
  });
  return {
    code: r.status ?? -1,
    stdout: r.stdout.toString('utf8'),
    stderr: r.stderr.toString('utf8'),
    stdoutBytes: r.stdout,
  };
}

export function tempDir(t: { after: (fn: () => void) => void }, prefix = 'vdisk-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

export function sha256(path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const h = createHash('sha256');
    createReadStream(path, { highWaterMark: 4 * 1024 * 1024 })
      .on('data', (d) => h.update(d))
      .on('end', () => resolve(h.digest('hex')))
      .on('error', reject);
  });
}

export function sha256Buffer(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}

export function readJson<T = unknown>(path: string): T {
  return JSON.parse(readFileSync(path, 'utf8')) as T;
}
