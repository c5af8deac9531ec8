import { randomBytes } from 'node:crypto';
import { constants, unlinkSync, type Stats } from 'node:fs';
import { lstat, open, realpath, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { VdiskError, fromSystemError } from '../errors.js';
import { PositionalFile } from './file.js';
import { acquireLock } from './lock.js';

/**
 * Where a command's output goes. vdisk only ever makes plain files (written under a temporary name
 * and renamed into place) or writes into a device that is already there, in place; it never
 * truncates, replaces or removes a node it did not make.
 */
export type OutputPlace =
  /** An open descriptor named by path (/dev/stdout, /dev/fd/N): written in order, as a stream. */
  | { kind: 'fd'; fd: number; name: string }
  /** A regular file (`existing`) or nothing yet: a new file replaces it at the end. */
  | { kind: 'file'; path: string; existing: Stats | null }
  /** A block device: written in place, every byte, never truncated. */
  | { kind: 'block'; path: string; existing: Stats }
  /** A character device or FIFO (/dev/null, a pipe): written in order, never truncated. */
  | { kind: 'stream'; path: string; existing: Stats };

const FD_PATH = /^\/(?:dev\/fd|proc\/self\/fd)\/(\d+)$/;

/** What `path` names, following symbolic links (a link to an image is written through, not replaced). */
export async function outputPlace(path: string): Promise<OutputPlace> {
  if (path === '/dev/stdout') return { kind: 'fd', fd: 1, name: 'stdout' };
  if (path === '/dev/stderr') return { kind: 'fd', fd: 2, name: 'stderr' };
  const m = FD_PATH.exec(path);
  if (m) return { kind: 'fd', fd: Number(m[1]), name: path };
  let link: Stats;
  try {
    link = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'file', path, existing: null };
    throw fromSystemError(err, path, 'looking at the output');
  }
  let real = path;
  if (link.isSymbolicLink()) {
    try {
      real = await realpath(path);
    } catch {
      throw new VdiskError('NOT_A_FILE', `${path}: a symbolic link to nothing; name the output file itself`);
    }
  }
  const st = link.isSymbolicLink() ? await stat(real) : link;
  if (st.isFile()) return { kind: 'file', path: real, existing: st };
  if (st.isBlockDevice()) return { kind: 'block', path: real, existing: st };
  if (st.isCharacterDevice() || st.isFIFO()) return { kind: 'stream', path: real, existing: st };
  throw new VdiskError('NOT_A_FILE', `${path}: ${st.isDirectory() ? 'is a directory' : 'is not a file or device'}; cannot write an output there`);
}

/** How a node is called in messages. */
export function nodeKind(st: Stats): string {
  if (st.isBlockDevice()) return 'a block device';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isFIFO()) return 'a FIFO';
  if (st.isDirectory()) return 'a directory';
  return 'not a regular file';
}

/** Temporary files still to be removed if SIGINT or SIGTERM ends the process. */
const pending = new Set<string>();
const SIGNALS = { SIGINT: 130, SIGTERM: 143 } as const;

function onSignal(signal: keyof typeof SIGNALS): void {
  for (const p of pending) {
    try {
      unlinkSync(p);
    } catch {
      // already gone
    }
  }
  process.exit(SIGNALS[signal]);
}

function track(path: string): void {
  if (pending.size === 0) for (const s of Object.keys(SIGNALS)) process.on(s, onSignal);
  pending.add(path);
}

function untrack(path: string): void {
  pending.delete(path);
  if (pending.size === 0) for (const s of Object.keys(SIGNALS)) process.off(s, onSignal);
}

/**
 * A new file that takes OUTPUT's name only when complete: written as `.OUTPUT.vdisk-XXXXXXXX.tmp` in the
 * same directory (created exclusively), made durable, then renamed over OUTPUT and the directory
 * synced. A run cut off at any point (a signal, a kill, a power loss) leaves OUTPUT as it was, or the
 * whole new file; SIGINT and SIGTERM also remove the temporary (after SIGKILL or a power loss it
 * stays, under its dotted name). A file already at OUTPUT is locked exclusively from the start, so an
 * image another process has open is refused before anything is made.
 */
/** How much a new output holds unflushed before a background flush starts (see writebackEvery). */
const WRITEBACK_EVERY = 64 * 1024 * 1024;

export class ReplacingOutput {
  private done = false;

  private constructor(
    /** The name the file gets at the end. */
    readonly target: string,
    readonly tempPath: string,
    /** The temporary file, open for writing and locked; the writer closes it (before or after commit). */
    readonly file: PositionalFile,
    private readonly tempIno: number,
    private readonly old: PositionalFile | null,
  ) {}

  static async begin(target: string, existing: Stats | null): Promise<ReplacingOutput> {
    const old = existing ? await PositionalFile.open(target, 'rw', { lock: 'exclusive' }) : null;
    try {
      for (let tries = 0; ; tries++) {
        const tempPath = join(dirname(target), `.${basename(target)}.vdisk-${randomBytes(4).toString('hex')}.tmp`);
        let file: PositionalFile;
        // Tracked before it exists: a signal that arrives while it is being made still removes it.
        track(tempPath);
        try {
          file = await PositionalFile.create(tempPath, true, target);
        } catch (err) {
          untrack(tempPath);
          if (tries < 8 && err instanceof VdiskError && /already exists/.test(err.message)) continue;
          if (err instanceof VdiskError && err.code === 'NOT_FOUND') {
            throw new VdiskError('NOT_FOUND', `${target}: no such directory ${dirname(target)}`);
          }
          throw err;
        }
        try {
          await acquireLock(file.fd, target, true, 'exclusive');
          const st = await stat(tempPath);
          file.writebackEvery = WRITEBACK_EVERY;
          return new ReplacingOutput(target, tempPath, file, st.ino, old);
        } catch (err) {
          await file.close();
          await unlink(tempPath).catch(() => undefined);
          untrack(tempPath);
          throw err;
        }
      }
    } catch (err) {
      await old?.close();
      throw err;
    }
  }

  /** Makes the new file durable, gives it OUTPUT's name, and makes the name durable. */
  async commit(): Promise<void> {
    // A background flush that failed is reported by no later fsync (the error was seen): thrown here.
    await this.file.settleWriteback();
    const handle = await open(this.tempPath, constants.O_RDONLY | constants.O_NOFOLLOW).catch((err) => {
      throw fromSystemError(err, this.tempPath, 'opening the new file again');
    });
    try {
      if ((await handle.stat()).ino !== this.tempIno) {
        throw new VdiskError('IO', `${this.tempPath}: replaced by another file while being written; ${this.target} left as it was`);
      }
      // Always, whatever -t says: without it a crash after the rename could leave OUTPUT short.
      await handle.sync();
    } catch (err) {
      throw fromSystemError(err, this.tempPath, 'flushing');
    } finally {
      await handle.close();
    }
    try {
      await rename(this.tempPath, this.target);
    } catch (err) {
      throw fromSystemError(err, this.target, 'renaming the new file into place');
    }
    this.done = true;
    untrack(this.tempPath);
    await syncDirectory(dirname(this.target));
    await this.old?.close();
  }

  /** Removes the temporary file (and nothing else): OUTPUT stays as it was. */
  async abort(): Promise<void> {
    if (this.done) return;
    this.done = true;
    await this.file.close();
    await unlink(this.tempPath).catch(() => undefined);
    untrack(this.tempPath);
    await this.old?.close();
  }
}

async function syncDirectory(dir: string): Promise<void> {
  // Windows cannot open a directory for syncing; the rename there is as durable as NTFS makes it.
  if (process.platform === 'win32') return;
  const handle = await open(dir, constants.O_RDONLY);
  try {
    await handle.sync();
  } catch (err) {
    // Some file systems refuse fsync on a directory (EINVAL); the rename is done either way.
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw fromSystemError(err, dir, 'flushing the directory');
  } finally {
    await handle.close();
  }
}
