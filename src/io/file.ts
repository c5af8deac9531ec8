import { open, stat, type FileHandle } from 'node:fs/promises';
import { constants } from 'node:fs';
import { VdiskError, fromSystemError } from '../errors.js';
import { acquireLock, type LockKind } from './lock.js';

/** Read-only access to bytes at file offsets: what every parser needs, and what a log overlay provides too. */
export interface ByteSource {
  readonly path: string;
  /** The current length in bytes. */
  size(): number;
  /**
   * Fills `buf` from `position`. Bytes past the end of the source read as zeros and the count of real
   * bytes is returned, so callers decide whether a short read is an error (`readExact`) or expected.
   */
  readAt(buf: Uint8Array, position: number): Promise<number>;
}

export type OpenMode = 'r' | 'rw';

export interface FileOpenOptions {
  /**
   * Lock the image as QEMU does (see lock.ts) before anything is read: 'shared' to look, 'exclusive'
   * to change it (needs mode 'rw'). The lock lives as long as the descriptor, released by close().
   */
  lock?: LockKind;
}

/** Where a copy reads or writes bytes: a file by path, or an open descriptor (stdin, stdout, a pipe). */
export type FileOrFd = { kind: 'file'; path: string } | { kind: 'fd'; fd: number; name?: string };

/**
 * One positional file handle: reads and writes at offsets, never a seeking stream, so that concurrent
 * requests cannot disturb each other.
 */
export class PositionalFile implements ByteSource {
  readonly path: string;
  readonly mode: OpenMode;
  private handle: FileHandle;
  private length: number;
  /**
   * 'unsafe' makes flush() a no-op, as qemu-img's cache=unsafe does: much faster, and a crash may
   * then lose or tear what was written. Only for an explicit request.
   */
  cache: 'writeback' | 'unsafe' = 'writeback';
  /**
   * Bytes after which a background flush is started (0: never). A new output is flushed whole before
   * it takes its name; started as the copy goes, the disk writes while the copy runs instead of all at
   * once at the end (measured: the last fsync of a 2 GiB convert went from 0.9 s to almost nothing).
   */
  writebackEvery = 0;
  private unsynced = 0;
  private syncing: Promise<void> | null = null;
  private syncError: unknown = null;

  private constructor(path: string, mode: OpenMode, handle: FileHandle, length: number) {
    this.path = path;
    this.mode = mode;
    this.handle = handle;
    this.length = length;
  }

  static async open(path: string, mode: OpenMode = 'r', options: FileOpenOptions = {}): Promise<PositionalFile> {
    let st;
    try {
      st = await stat(path);
    } catch (err) {
      throw fromSystemError(err, path, 'opening');
    }
    if (st.isDirectory()) throw new VdiskError('NOT_A_FILE', `${path}: is a directory, not an image`);
    if (!st.isFile() && !st.isBlockDevice()) {
      throw new VdiskError('NOT_A_FILE', `${path}: not a regular file or block device`);
    }
    let handle: FileHandle;
    try {
      handle = await open(path, mode === 'rw' ? constants.O_RDWR : constants.O_RDONLY);
    } catch (err) {
      throw fromSystemError(err, path, 'opening');
    }
    try {
      if (options.lock) await acquireLock(handle.fd, path, mode === 'rw', options.lock);
      let length = st.size;
      if (st.isBlockDevice()) {
        // A block device reports size 0 in stat; the kernel tells its size through a read at the end.
        length = await probeDeviceSize(handle);
      } else if (options.lock) {
        // Another writer may have grown it between our stat and our lock.
        length = (await handle.stat()).size;
      }
      return new PositionalFile(path, mode, handle, length);
    } catch (err) {
      await handle.close().catch(() => undefined);
      throw err;
    }
  }

  /**
   * Creates (or truncates) a file for writing. `name`, when given, is what messages call it (a
   * temporary file is named for the output it becomes).
   */
  static async create(path: string, exclusive = false, name = path): Promise<PositionalFile> {
    let handle: FileHandle;
    try {
      const flags = constants.O_RDWR | constants.O_CREAT | (exclusive ? constants.O_EXCL : constants.O_TRUNC);
      handle = await open(path, flags, 0o644);
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      if (e?.code === 'EEXIST') throw new VdiskError('IO', `${path}: already exists`);
      // An output, not an image: fromSystemError's wording for EISDIR would mislead here.
      if (e?.code === 'EISDIR') throw new VdiskError('NOT_A_FILE', `${name}: is a directory; cannot create a file there`);
      throw fromSystemError(err, name, 'creating');
    }
    return new PositionalFile(name, 'rw', handle, 0);
  }

  size(): number {
    return this.length;
  }

  get fd(): number {
    return this.handle.fd;
  }

  async readAt(buf: Uint8Array, position: number): Promise<number> {
    let done = 0;
    const want = buf.length;
    const available = Math.max(0, Math.min(want, this.length - position));
    try {
      while (done < available) {
        const { bytesRead } = await this.handle.read(buf, done, available - done, position + done);
        if (bytesRead === 0) break; // the file shrank under us: what is missing reads as zeros
        done += bytesRead;
      }
    } catch (err) {
      throw fromSystemError(err, this.path, `reading at offset ${position}`);
    }
    if (done < want) buf.fill(0, done);
    return done;
  }

  async writeAt(buf: Uint8Array, position: number): Promise<void> {
    if (this.mode !== 'rw') throw new VdiskError('IO', `${this.path}: opened read-only`);
    // One write in flight per file, in the order asked: Linux takes a file's inode lock for each
    // buffered write, so writes issued together only queued in the kernel, the waiting threads spinning
    // on the lock (four 4 MiB writers to one tmpfs file took 2.3x the CPU of one, and longer). Reads and
    // other files' writes still run beside it.
    const prev = this.writeTail;
    let release!: () => void;
    this.writeTail = new Promise<void>((r) => (release = r));
    await prev;
    try {
      await this.writeNow(buf, position);
    } finally {
      release();
    }
  }

  private writeTail: Promise<void> = Promise.resolve();

  private async writeNow(buf: Uint8Array, position: number): Promise<void> {
    let done = 0;
    try {
      while (done < buf.length) {
        const { bytesWritten } = await this.handle.write(buf, done, buf.length - done, position + done);
        done += bytesWritten;
      }
    } catch (err) {
      throw fromSystemError(err, this.path, `writing at offset ${position}`);
    }
    if (position + buf.length > this.length) this.length = position + buf.length;
    if (this.writebackEvery > 0) this.startWriteback(buf.length);
  }

  private startWriteback(written: number): void {
    this.unsynced += written;
    if (this.unsynced < this.writebackEvery || this.syncing) return;
    this.unsynced = 0;
    this.syncing = this.handle
      .datasync()
      .catch((err: unknown) => {
        this.syncError ??= fromSystemError(err, this.path, 'flushing');
      })
      .finally(() => {
        this.syncing = null;
      });
  }

  /** Waits for a background flush, and throws what it failed with. */
  async settleWriteback(): Promise<void> {
    await this.syncing;
    if (this.syncError) throw this.syncError;
  }

  async truncate(length: number): Promise<void> {
    try {
      await this.handle.truncate(length);
    } catch (err) {
      throw fromSystemError(err, this.path, `resizing to ${length} bytes`);
    }
    this.length = length;
  }

  /** Makes everything written so far durable; the ordering of metadata updates relies on it. */
  async flush(): Promise<void> {
    await this.settleWriteback();
    if (this.cache === 'unsafe') return;
    try {
      await this.handle.datasync();
    } catch (err) {
      throw fromSystemError(err, this.path, 'flushing');
    }
  }

  async close(): Promise<void> {
    await this.syncing;
    await this.handle.close().catch(() => undefined);
  }
}

/** Reads exactly `length` bytes at `position`, failing with TRUNCATED if the source ends first. */
export async function readExact(src: ByteSource, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  const got = await src.readAt(buf, position);
  if (got < length) {
    throw new VdiskError(
      'TRUNCATED',
      `${src.path}: file ends at ${src.size()} bytes, inside the ${what} (bytes ${position}..${position + length})`,
    );
  }
  return buf;
}

async function probeDeviceSize(handle: FileHandle): Promise<number> {
  // Binary search for the last readable byte; block devices have no cheaper portable size query in Node.
  const one = Buffer.alloc(1);
  let lo = 0;
  let hi = 1;
  while ((await handle.read(one, 0, 1, hi - 1)).bytesRead === 1 && hi < 2 ** 52) hi *= 2;
  while (lo < hi) {
    const mid = Math.floor((lo + hi + 1) / 2);
    if ((await handle.read(one, 0, 1, mid - 1)).bytesRead === 1) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}
