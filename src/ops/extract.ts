import { closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, openSync, writeSync } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, symlink, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { VdiskError, fromSystemError } from '../errors.js';
import type { Filesystem, FsFile, FsStats, FsTime } from '../filesystems/filesystem.js';
import { allocIoBuffer, isZero } from '../io/buffers.js';
import { baseName, walkTree } from './tree.js';

export interface ExtractOptions {
  /** Called with each thing the user should know (a renamed name, a skipped device node). */
  onWarning?: (message: string) => void;
  /** Bytes copied so far and the total to copy, files so far. */
  onProgress?: (bytes: number, totalBytes: number, files: number) => void;
  /** Set owners as the volume has them (default: when running as root, as tar does). */
  owners?: boolean;
}

export interface ExtractResult {
  files: number;
  directories: number;
  symlinks: number;
  hardlinks: number;
  bytes: number;
  skipped: number;
}

const CHUNK = 4 * 1024 * 1024;
/** Files up to this size are read whole into a buffer of their own size. */
const SMALL_FILE = 1024 * 1024;
/** Files copied at once: enough to keep the host file system busy, few enough to bound memory (a chunk each). */
const PARALLEL_FILES = 16;

/**
 * Copies PATH of the volume to the host, as virt-copy-out does: into DEST when DEST is an existing
 * directory (DEST/NAME; the root's contents go straight into DEST), else to DEST itself, which must not
 * exist. Nothing that exists is ever overwritten, and nothing is written outside DEST: every name is
 * made safe, every file is created with O_EXCL|O_NOFOLLOW, and the walk only descends into directories
 * it has just created, so no symlink from the volume can redirect a later write.
 */
export async function extractTree(fs: Filesystem, path: string, dest: string, options: ExtractOptions = {}): Promise<ExtractResult> {
  const warn = options.onWarning ?? (() => undefined);
  const owners = options.owners ?? (typeof process.getuid === 'function' && process.getuid() === 0);
  const start = await fs.resolve(path, true);
  const startStats = await fs.reader.stat(start.node);

  let destIsDir = false;
  try {
    destIsDir = (await lstat(dest)).isDirectory();
    if (!destIsDir) throw new VdiskError('USAGE', `${dest}: already exists; vdisk get writes only new files`);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, dest, 'looking at the destination');
  }
  const name = baseName(start.path);
  // The root has no name of its own: its contents go into DEST, which is then made if missing.
  const top = !destIsDir ? dest : name === '' ? dest : join(dest, safeName(name, warn, start.path));
  const rootIntoExisting = destIsDir && name === '';

  const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, skipped: 0 };
  // Host paths of files written (once created), by inode, for hard links.
  const linked = new Map<number, Promise<string | null>>();
  // Files are copied several at a time: one after another, each file's few system calls (open, write,
  // chmod, utimes, close) left the disk idle between them, and a tree of small files took 5-10x the
  // time of the peers' extractors.
  const inFlight = new Set<Promise<void>>();
  let failure: { err: unknown } | null = null;
  const spawn = async (job: () => Promise<void>) => {
    const p: Promise<void> = job()
      .catch((err) => {
        failure ??= { err };
      })
      .finally(() => inFlight.delete(p));
    inFlight.add(p);
    if (inFlight.size >= PARALLEL_FILES) await Promise.race(inFlight);
    if (failure) throw failure.err;
  };
  // Directory times are set after their contents are written, deepest first.
  const dirTimes: { host: string; stats: FsStats }[] = [];
  const hostOf = new Map<number, string>();
  // Names taken in each host directory, to catch two volume names that the host would make one.
  const taken = new Map<string, Set<string>>();
  const total = startStats.type === 'file' ? startStats.size : 0;

  for await (const entry of walkTree(fs, path)) {
    const { rel, stats } = entry;
    let host: string;
    if (rel === '') host = top;
    else {
      const parentHost = hostOf.get(entry.parent);
      if (parentHost === undefined) continue; // its directory was skipped
      let n = safeName(entry.name, warn, `/${rel}`);
      const names = taken.get(parentHost) ?? new Set<string>();
      taken.set(parentHost, names);
      if (names.has(n.toLowerCase())) {
        let i = 2;
        while (names.has(`${n}~${i}`.toLowerCase())) i++;
        warn(`/${rel}: a name the host already has in that directory; written as ${n}~${i}`);
        n = `${n}~${i}`;
      }
      names.add(n.toLowerCase());
      host = join(parentHost, n);
    }
    if (entry.revisited) {
      warn(`/${rel}: directory met twice (a loop or a linked directory); not entered again`);
      result.skipped++;
      continue;
    }
    switch (stats.type) {
      case 'directory':
        if (!(rel === '' && rootIntoExisting)) {
          try {
            await mkdir(host, { mode: 0o700 });
          } catch (err) {
            if (rel === '' && (err as NodeJS.ErrnoException).code === 'ENOENT' && !destIsDir) {
              await mkdir(host, { recursive: true, mode: 0o700 }).catch((e) => {
                throw fromSystemError(e, host, 'creating a directory');
              });
            } else if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
              throw new VdiskError('USAGE', `${host}: already exists; vdisk get writes only new files`);
            } else throw fromSystemError(err, host, 'creating a directory');
          }
          dirTimes.push({ host, stats });
        }
        hostOf.set(entry.id, host);
        result.directories++;
        break;
      case 'file': {
        const first = stats.nlink > 1 ? linked.get(stats.ino) : undefined;
        if (first !== undefined) {
          const target = await first;
          if (target !== null) {
            try {
              await link(target, host);
              result.hardlinks++;
              break;
            } catch {
              // A host without hard links: fall through to a copy.
            }
          }
        }
        let created!: (path: string | null) => void;
        if (stats.nlink > 1 && first === undefined) linked.set(stats.ino, new Promise((r) => (created = r)));
        const node = entry.node;
        await spawn(async () => {
          try {
            const file = await fs.reader.open(node);
            try {
              await copyFile(file, host, stats, owners, () => created?.(host), (n) => {
                result.bytes += n;
                options.onProgress?.(result.bytes, total, result.files);
              });
            } finally {
              await file.close?.();
            }
          } finally {
            created?.(null);
          }
          result.files++;
          options.onProgress?.(result.bytes, total, result.files);
        });
        break;
      }
      case 'symlink': {
        const target = await fs.reader.readlink(entry.node);
        try {
          await symlink(target, host);
        } catch (err) {
          throw fromSystemError(err, host, 'creating a symbolic link');
        }
        await applyMeta(host, stats, owners, true);
        result.symlinks++;
        break;
      }
      default:
        warn(`/${rel}: ${stats.type} node not copied (the host would need mknod)`);
        result.skipped++;
    }
  }
  await Promise.all(inFlight);
  if (failure) throw (failure as { err: unknown }).err;
  for (let i = dirTimes.length - 1; i >= 0; i--) await applyMeta(dirTimes[i].host, dirTimes[i].stats, owners, false);
  return result;
}

/** A name the host can hold without meaning a path: no `/` or NUL, not `.` or `..`, not empty. */
function safeName(name: string, warn: (m: string) => void, where: string): string {
  let safe = name.replace(/[/\0]/g, '_');
  if (safe === '' || safe === '.' || safe === '..') safe = `_${safe}`;
  if (safe !== name) warn(`${where}: name unsafe on the host; written as ${safe}`);
  return safe;
}

/**
 * Writes only the file's data: holes and all-zero chunks stay holes, the length is set at the end; then
 * the mode, owner and times through the open handle, before it is closed.
 */
async function copyFile(file: FsFile, host: string, st: FsStats, owners: boolean, onCreated: () => void, onBytes: (n: number) => void): Promise<void> {
  // The host side is done with synchronous calls: each asynchronous one is a trip through libuv's four
  // worker threads, and a tree of small files spent its time in those trips (5,000 files: 0.85 s
  // against mcopy's 0.07 s), not in the kernel. A synchronous call on a local file takes microseconds.
  let fd: number;
  try {
    fd = openSync(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VdiskError('USAGE', `${host}: already exists; vdisk get writes only new files`);
    throw fromSystemError(err, host, 'creating');
  }
  onCreated();
  try {
    const ranges = file.dataRanges ? await file.dataRanges() : [{ offset: 0, length: file.size }];
    // The pieces to copy, in order; the next one is read while this one is written (two buffers).
    const pieces: [number, number][] = [];
    for (const r of ranges) {
      const stop = Math.min(file.size, r.offset + r.length);
      for (let pos = r.offset; pos < stop; pos += CHUNK) pieces.push([pos, Math.min(CHUNK, stop - pos)]);
    }
    const size = Math.max(1, Math.min(CHUNK, file.size));
    const bufs = file.size <= SMALL_FILE ? [Buffer.allocUnsafe(size)] : [allocIoBuffer(size), allocIoBuffer(size)];
    const readPiece = (k: number) => {
      const view = bufs[k % bufs.length].subarray(0, pieces[k][1]);
      return file.read(view, pieces[k][0]).then((got) => view.subarray(0, Math.max(0, got)));
    };
    let end = 0;
    let next = pieces.length ? readPiece(0) : null;
    for (let k = 0; k < pieces.length; k++) {
      const data = await (next as Promise<Buffer>);
      next = k + 1 < pieces.length && bufs.length > 1 ? readPiece(k + 1) : null;
      const pos = pieces[k][0];
      if (data.length > 0 && !isZero(data)) {
        try {
          let done = 0;
          while (done < data.length) done += writeSync(fd, data, done, data.length - done, pos + done);
        } catch (err) {
          throw fromSystemError(err, host, 'writing');
        }
        end = pos + data.length;
      }
      onBytes(data.length);
      if (data.length < pieces[k][1]) break; // the file ended early: what is left reads as nothing
      if (next === null && k + 1 < pieces.length) next = readPiece(k + 1);
    }
    await next?.catch(() => undefined);
    // Trailing zeros or holes were not written: the length says where the file ends.
    if (end !== file.size) {
      try {
        ftruncateSync(fd, file.size);
      } catch (err) {
        throw fromSystemError(err, host, 'setting the length');
      }
    }
    if (owners) ignore(() => fchownSync(fd, st.uid, st.gid));
    ignore(() => fchmodSync(fd, st.mode & 0o7777));
    if (st.mtime) ignore(() => futimesSync(fd, seconds(st.atime ?? st.mtime as FsTime), seconds(st.mtime as FsTime)));
  } finally {
    ignore(() => closeSync(fd));
  }
}

/** Metadata the host may refuse (an owner on a file system without them): the copy goes on without it. */
function ignore(f: () => void): void {
  try {
    f();
  } catch {
    // left as the host made it
  }
}

/**
 * A time as the seconds Node's utimes takes. libuv turns that double into whole seconds and nanoseconds
 * and then drops all but whole microseconds, so the value aims at the middle of the wanted microsecond:
 * the double's rounding error (a quarter of a microsecond in this century) cannot then fall into the one
 * before. Times keep microsecond precision on every host; coarser ones (FAT, exFAT, ISO) stay exact.
 */
function seconds(t: FsTime): number {
  return t.sec + (Math.round(t.nsec / 1000) + 0.5) / 1e6;
}

async function applyMeta(host: string, st: FsStats, owners: boolean, isLink: boolean): Promise<void> {
  // Owners first: chown clears set-id bits, and the mode set after it is the volume's.
  if (owners) await lchown(host, st.uid, st.gid).catch(() => undefined);
  if (!isLink) await chmod(host, st.mode & 0o7777).catch(() => undefined);
  if (st.mtime) {
    const m = seconds(st.mtime);
    const a = st.atime ? seconds(st.atime) : m;
    await (isLink ? lutimes(host, a, m) : utimes(host, a, m)).catch(() => undefined);
  }
}
