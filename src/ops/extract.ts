import { closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, openSync, writeSync } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, utimes } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { VdiskError, fromSystemError } from '../errors.js';
import type { ByteRange, Filesystem, FsFile, FsStats, FsTime, PeekedFile } from '../filesystems/filesystem.js';
import { allocIoBuffer, rangeIsZero } from '../io/buffers.js';
import type { FileOp } from './host-ops.js';
import { HostWriter, SLAB_SIZE, alreadyExists } from './host-writer.js';
import { baseName, walkTreeBatches } from './tree.js';

export interface ExtractOptions {
  /** Called with each thing the user should know (a renamed name, a skipped device node). */
  onWarning?: (message: string) => void;
  /** Bytes copied so far and the total to copy, files so far. */
  onProgress?: (bytes: number, totalBytes: number, files: number) => void;
  /** Set owners as the volume has them (default: when running as root, as tar does). */
  owners?: boolean;
  /** Host operations done on the main thread before a worker thread takes them over (default 2048; 0: at once). */
  workerAfter?: number;
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
const S_ISGID = 0o2000;
/** Files up to this size are read whole into the host writer's shared buffers and written by its thread. */
const SMALL_FILE = 1024 * 1024;
const CREATE_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
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
    if (!destIsDir) throw alreadyExists(dest);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw fromSystemError(err, dest, 'looking at the destination');
  }
  const name = baseName(start.path);
  // The root has no name of its own: its contents go into DEST, which is then made if missing.
  const top = !destIsDir ? dest : name === '' ? dest : join(dest, safeName(name, warn, start.path));
  const rootIntoExisting = destIsDir && name === '';

  // Files made under a set-group-ID directory take its group: then the owner is always set. Our own
  // directories get their modes only at the end, so the directory DEST or the new top lands in decides.
  const holder = destIsDir ? dest : dirname(dest);
  const inheritsGroup = await lstat(holder).then((s) => (s.mode & S_ISGID) !== 0, () => true);
  const cx: CopyContext = {
    owners,
    large: new BufferPool(CHUNK, LARGE_BUFFERS),
    umask: process.umask(),
    uid: typeof process.geteuid === 'function' ? process.geteuid() : -1,
    gid: typeof process.getegid === 'function' ? process.getegid() : -1,
    inheritsGroup,
  };
  const result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, skipped: 0 };
  // Host paths of files written (once created), by inode, for hard links.
  const linked = new Map<number, Promise<string | null>>();
  // Files are copied several at a time: one after another, each file's few system calls (open, write,
  // chmod, utimes, close) left the disk idle between them, and a tree of small files took 5-10x the
  // time of the peers' extractors.
  let inFlight = 0;
  let slotFreed: (() => void) | null = null;
  let failure: { err: unknown } | null = null;
  const writer = new HostWriter({ workerAfter: options.workerAfter });
  const run = async (job: () => Promise<void>) => {
    try {
      await job();
    } catch (err) {
      failure ??= { err };
    } finally {
      inFlight--;
      slotFreed?.();
    }
  };
  const spawn = async (job: () => Promise<void>) => {
    writer.check();
    inFlight++;
    void run(job);
    // A free slot is waited for with one promise, not a race over every copy in flight per file.
    while (inFlight >= PARALLEL_FILES) await new Promise<void>((r) => (slotFreed = r));
    slotFreed = null;
    if (failure) throw failure.err;
  };
  // Directory times are set after their contents are written, deepest first.
  const dirTimes: { host: string; stats: FsStats }[] = [];
  const hostOf = new Map<number, string>();
  // Names taken in each host directory, to catch two volume names that the host would make one.
  const taken = new Map<number, Set<string>>();
  const total = startStats.type === 'file' ? startStats.size : 0;

  try {
    const onBytes = (n: number) => {
      result.bytes += n;
      options.onProgress?.(result.bytes, total, result.files);
    };
    for await (const batch of walkTreeBatches(fs, path)) for (const entry of batch) {
      // A copy that failed in the background stops the walk at once, as the host writer's failures do.
      if (failure) throw (failure as { err: unknown }).err;
      writer.check();
      const { rel, stats } = entry;
      let host: string;
      if (rel === '') host = top;
      else {
        const parentHost = hostOf.get(entry.parent);
        if (parentHost === undefined) continue; // its directory was skipped
        let n = safeName(entry.name, warn, `/${rel}`);
        let names = taken.get(entry.parent);
        if (!names) taken.set(entry.parent, (names = new Set<string>()));
        if (names.has(n.toLowerCase())) {
          let i = 2;
          while (names.has(`${n}~${i}`.toLowerCase())) i++;
          warn(`/${rel}: a name the host already has in that directory; written as ${n}~${i}`);
          n = `${n}~${i}`;
        }
        names.add(n.toLowerCase());
        host = childPath(parentHost, n);
      }
      if (entry.revisited) {
        warn(`/${rel}: directory met twice (a loop or a linked directory); not entered again`);
        result.skipped++;
        continue;
      }
      switch (stats.type) {
        case 'directory':
          if (rel !== '') writer.mkdir(host);
          else if (!rootIntoExisting) {
            try {
              await mkdir(host, { mode: 0o700 });
            } catch (err) {
              if (rel === '' && (err as NodeJS.ErrnoException).code === 'ENOENT' && !destIsDir) {
                await mkdir(host, { recursive: true, mode: 0o700 }).catch((e) => {
                  throw fromSystemError(e, host, 'creating a directory');
                });
              } else if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
                throw alreadyExists(host);
              } else throw fromSystemError(err, host, 'creating a directory');
            }
          }
          if (!(rel === '' && rootIntoExisting)) dirTimes.push({ host, stats });
          hostOf.set(entry.id, host);
          result.directories++;
          break;
        case 'file': {
          // Most small files of a tree are read ahead with their neighbours: queued here and now, with
          // no promise, while the host writer's thread writes the ones before.
          let peeked = stats.nlink <= 1 && stats.size <= SMALL_FILE ? fs.reader.peekFile?.(entry.node) : null;
          if (peeked instanceof Promise) {
            await peeked;
            peeked = fs.reader.peekFile?.(entry.node);
          }
          // The host side is behind when every shared buffer is full: wait for one rather than read
          // the file the slow way (which would only wait for a buffer too, at more cost per file).
          while (peeked && !(peeked instanceof Promise) && peeked.size === stats.size && !writer.hasRoom(peeked.size)) {
            await writer.bufferFreed();
            writer.check();
            peeked = fs.reader.peekFile?.(entry.node);
          }
          if (peeked && !(peeked instanceof Promise) && queuePeeked(peeked, host, stats, cx, writer, onBytes)) {
            result.files++;
            options.onProgress?.(result.bytes, total, result.files);
            break;
          }
          const first = stats.nlink > 1 ? linked.get(stats.ino) : undefined;
          if (first !== undefined) {
            const target = await first;
            if (target !== null) {
              // The first copy must be on the host before a link can name it.
              await writer.drain();
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
          const small = stats.size <= SMALL_FILE;
          // A large file is written here, on the main thread, in pieces: its directory must exist first.
          if (!small) await writer.drain();
          await spawn(async () => {
            try {
              const file = await fs.reader.open(node);
              try {
                if (!small) await copyFile(file, host, stats, cx, onBytes);
                else if (file.size <= SLAB_SIZE) await queueSmall(file, host, stats, cx, writer, onBytes);
                // Only a damaged volume's file is larger open than its stat says, and by this much.
                else throw new VdiskError('CORRUPT', `${fs.name}: /${rel}: ${file.size} bytes open, ${stats.size} by its inode`);
                created?.(host);
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
          const times = hostTimes(stats);
          writer.symlink(host, target, owners ? stats.uid : -1, owners ? stats.gid : -1, times.atime, times.mtime);
          result.symlinks++;
          break;
        }
        default:
          warn(`/${rel}: ${stats.type} node not copied (the host would need mknod)`);
          result.skipped++;
      }
    }
    while (inFlight > 0) await new Promise<void>((r) => (slotFreed = r));
    if (failure) throw (failure as { err: unknown }).err;
    await writer.drain();
  } finally {
    // On a failure, the copies in flight are let finish before the host writer stops.
    while (inFlight > 0) await new Promise<void>((r) => (slotFreed = r));
    await writer.close();
  }
  for (let i = dirTimes.length - 1; i >= 0; i--) await applyMeta(dirTimes[i].host, dirTimes[i].stats, owners, false);
  return result;
}

/**
 * DEST/.../NAME for a name safeName has passed. On POSIX a plain concatenation: path.join's normalizing
 * was a measurable part of each file's cost in a tree of 20,000, and a safe name has nothing to normalize.
 */
function childPath(dir: string, name: string): string {
  if (sep !== '/') return join(dir, name);
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** A name the host can hold without meaning a path: no `/` or NUL, not `.` or `..`, not empty. */
function safeName(name: string, warn: (m: string) => void, where: string): string {
  let safe = name.replace(/[/\0]/g, '_');
  if (safe === '' || safe === '.' || safe === '..') safe = `_${safe}`;
  if (safe !== name) warn(`${where}: name unsafe on the host; written as ${safe}`);
  return safe;
}

/** Large buffers shared by every copy of one extraction: bounds memory however many large files are in flight. */
class BufferPool {
  private readonly free: Buffer[] = [];
  private readonly waiting: ((b: Buffer) => void)[] = [];
  private made = 0;

  constructor(private readonly size: number, private readonly max: number) {}

  /** A buffer now, or null when all `max` are in use. */
  tryAcquire(): Buffer | null {
    const b = this.free.pop();
    if (b) return b;
    if (this.made < this.max) {
      this.made++;
      return allocIoBuffer(this.size);
    }
    return null;
  }

  /** Waits for a buffer: only for a caller that holds none, or two copies could wait on each other. */
  acquire(): Promise<Buffer> {
    const b = this.tryAcquire();
    return b ? Promise.resolve(b) : new Promise((resolve) => this.waiting.push(resolve));
  }

  release(b: Buffer): void {
    const next = this.waiting.shift();
    if (next) next(b);
    else this.free.push(b);
  }
}

/** What every copy of one extraction shares: the buffers, and the host facts that spare system calls. */
interface CopyContext {
  owners: boolean;
  large: BufferPool;
  /** The process's umask, and its effective ids where owners are set (a file it creates is already theirs). */
  umask: number;
  uid: number;
  gid: number;
  /** Files inherit their group from a set-group-ID destination: then the owner is always set. */
  inheritsGroup: boolean;
}

/** How a new file gets the volume's owner and mode: only the calls the host needs. */
function fileMeta(st: FsStats, cx: CopyContext): { perms: number; chmod: boolean; uid: number; gid: number } {
  // The file is created with its permission bits: when the umask keeps them all, no chmod is needed.
  const perms = st.mode & 0o7777;
  const chown = cx.owners && (cx.inheritsGroup || st.uid !== cx.uid || st.gid !== cx.gid);
  return { perms, chmod: chown || (perms & 0o777 & ~cx.umask) !== perms, uid: chown ? st.uid : -1, gid: chown ? st.gid : -1 };
}

/** The times to set, as seconds to the microsecond (NaN: none, the host's are left). */
function hostTimes(st: FsStats): { atime: number; mtime: number } {
  if (!st.mtime) return { atime: NaN, mtime: NaN };
  return { atime: hostSeconds(st.atime ?? st.mtime), mtime: hostSeconds(st.mtime) };
}

/**
 * A small file whose bytes the reader has at hand (peekFile), queued without waiting: false when they are
 * not, or no shared buffer is free, and the caller reads it the usual way.
 */
function queuePeeked(peeked: PeekedFile, host: string, st: FsStats, cx: CopyContext, writer: HostWriter, onBytes: (n: number) => void): boolean {
  if (peeked.size !== st.size) return false;
  const room = writer.tryReserve(peeked.size);
  if (!room) return false;
  let op: FileOp | null = null;
  try {
    const segs: number[] = [];
    let end = 0;
    for (const p of peeked.pieces) {
      if (p.offset < 0 || p.length <= 0 || p.offset + p.length > peeked.size) continue;
      p.buf.copy(room.buf, p.offset, p.at, p.at + p.length);
      if (!rangeIsZero(room.buf, p.offset, p.offset + p.length)) {
        segs.push(p.offset, p.length);
        end = p.offset + p.length;
      }
      onBytes(p.length);
    }
    op = fileOp(host, st, cx, room.at, segs, end, peeked.size);
  } finally {
    writer.complete(room, op);
  }
  return true;
}

/** The host writer's operation for a file whose data lies at `at` in its buffer, `segs` to be written. */
function fileOp(host: string, st: FsStats, cx: CopyContext, at: number, segs: number[], end: number, size: number): FileOp {
  const meta = fileMeta(st, cx);
  const times = hostTimes(st);
  return { path: host, flags: CREATE_FLAGS, perms: meta.perms, at, segs, end, size, uid: meta.uid, gid: meta.gid, chmod: meta.chmod, atime: times.atime, mtime: times.mtime };
}

/**
 * A small file: its data ranges are read straight into the host writer's shared buffer, where they lie
 * as in the file; what is not all zeros is queued for writing, the rest stays a hole.
 */
async function queueSmall(file: FsFile, host: string, st: FsStats, cx: CopyContext, writer: HostWriter, onBytes: (n: number) => void): Promise<void> {
  const ranges = file.dataRanges ? await file.dataRanges() : [{ offset: 0, length: file.size }];
  const room = await writer.reserve(file.size);
  let op: FileOp | null = null;
  try {
    const segs: number[] = [];
    let end = 0;
    for (const r of ranges) {
      const length = Math.min(file.size, r.offset + r.length) - r.offset;
      if (length <= 0 || r.offset < 0) continue;
      const got = Math.max(0, await file.read(room.buf.subarray(r.offset, r.offset + length), r.offset));
      if (got > 0 && !rangeIsZero(room.buf, r.offset, r.offset + got)) {
        segs.push(r.offset, got);
        end = r.offset + got;
      }
      onBytes(got);
      if (got < length) break; // the file ended early: what is left reads as nothing
    }
    op = fileOp(host, st, cx, room.at, segs, end, file.size);
  } finally {
    writer.complete(room, op);
  }
}

/** Pieces of a large file in flight at once (read ahead, or being written). */
const DEPTH = 3;
/** Large buffers in one extraction: DEPTH for each of two large files at once. */
const LARGE_BUFFERS = 2 * DEPTH;

/**
 * A large file, on the main thread: writes only the file's data (holes and all-zero chunks stay holes),
 * sets the length at the end, then the mode, owner and times through the open handle, before it is closed.
 */
async function copyFile(file: FsFile, host: string, st: FsStats, cx: CopyContext, onBytes: (n: number) => void): Promise<void> {
  const meta = fileMeta(st, cx);
  let fd: number;
  try {
    fd = openSync(host, CREATE_FLAGS, meta.perms & 0o777);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw alreadyExists(host);
    throw fromSystemError(err, host, 'creating');
  }
  try {
    const ranges = file.dataRanges ? await file.dataRanges() : [{ offset: 0, length: file.size }];
    const end = await copyLarge(file, fd, host, ranges, cx, onBytes);
    // Trailing zeros or holes were not written: the length says where the file ends.
    if (end !== file.size) {
      try {
        ftruncateSync(fd, file.size);
      } catch (err) {
        throw fromSystemError(err, host, 'setting the length');
      }
    }
    // Owners first: chown clears set-id bits, and the mode set after it is the volume's.
    if (meta.uid >= 0) ignore(() => fchownSync(fd, meta.uid, meta.gid));
    if (meta.chmod) ignore(() => fchmodSync(fd, meta.perms));
    const times = hostTimes(st);
    if (!Number.isNaN(times.mtime)) ignore(() => futimesSync(fd, seconds(times.atime), seconds(times.mtime)));
  } finally {
    ignore(() => closeSync(fd));
  }
}

/**
 * A large file in CHUNK pieces, DEPTH of them in flight: while one piece is written (synchronously: the
 * write is a copy into the page cache, and a trip through the thread pool only queued it behind the
 * reads), the next ones are being read in the thread pool, so the volume and the host are busy side by
 * side. Every read is waited for before the caller closes the descriptor. Returns where the data written ends.
 */
async function copyLarge(file: FsFile, fd: number, host: string, ranges: ByteRange[], cx: CopyContext, onBytes: (n: number) => void): Promise<number> {
  const pieces: [number, number][] = [];
  for (const r of ranges) {
    const stop = Math.min(file.size, r.offset + r.length);
    for (let pos = r.offset; pos < stop; pos += CHUNK) pieces.push([pos, Math.min(CHUNK, stop - pos)]);
  }
  const reads: { pos: number; length: number; buf: Buffer; got: Promise<number> }[] = [];
  let end = 0;
  let next = 0;
  try {
    while (next < pieces.length || reads.length > 0) {
      while (reads.length < DEPTH && next < pieces.length) {
        // Waiting for a buffer only when holding none: two copies then never wait on each other.
        const buf = reads.length === 0 ? await cx.large.acquire() : cx.large.tryAcquire();
        if (!buf) break;
        const [pos, length] = pieces[next++];
        const got = file.read(buf.subarray(0, length), pos);
        got.catch(() => undefined);
        reads.push({ pos, length, buf, got });
      }
      const piece = reads[0];
      const got = await piece.got;
      reads.shift();
      const data = piece.buf.subarray(0, Math.max(0, got));
      try {
        if (data.length > 0 && !rangeIsZero(data, 0, data.length)) {
          try {
            let done = 0;
            while (done < data.length) done += writeSync(fd, data, done, data.length - done, piece.pos + done);
          } catch (err) {
            throw fromSystemError(err, host, 'writing');
          }
          end = piece.pos + data.length;
        }
      } finally {
        cx.large.release(piece.buf);
      }
      onBytes(data.length);
      if (got < piece.length) next = pieces.length; // the file ended early: what is left reads as nothing
    }
  } finally {
    // No read may still fill a buffer once it is back in the pool.
    for (const r of reads) {
      await r.got.catch(() => undefined);
      cx.large.release(r.buf);
    }
  }
  return end;
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
function hostSeconds(t: FsTime): number {
  return t.sec + (Math.round(t.nsec / 1000) + 0.5) / 1e6;
}

/** hostSeconds for utimes/futimes: before 1970 as a numeric string, for Node takes a negative number for "now". */
function seconds(t: FsTime | number): number | string {
  const s = typeof t === 'number' ? t : hostSeconds(t);
  return s < 0 ? String(s) : s;
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
