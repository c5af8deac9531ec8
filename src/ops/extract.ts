import { chmodSync, closeSync, constants, fchmodSync, fchownSync, ftruncateSync, futimesSync, lchownSync, openSync, utimesSync, writeSync } from 'node:fs';
import { link, lstat, mkdir } from 'node:fs/promises';
import { dirname, join, sep } from 'node:path';
import { VdiskError, fromSystemError } from '../errors.js';
import type { ByteRange, Filesystem, FsFile, FsStats, FsTime, PeekedFile } from '../filesystems/filesystem.js';
import { allocIoBuffer, rangeIsZero } from '../io/buffers.js';
import type { HostRange } from '../formats/image.js';
import type { FileMeta, FileOp, HostFileOp } from './host-ops.js';
import { HostWriter, SLAB_SIZE, alreadyExists, type Reservation } from './host-writer.js';
import { baseName, walkTreeBatches, type TreeEntry } from './tree.js';

export interface ExtractOptions {
  /** Called with each thing the user should know (a renamed name, a skipped device node). */
  onWarning?: (message: string) => void;
  /** Bytes copied so far and the total to copy, files so far. */
  onProgress?: (bytes: number, totalBytes: number, files: number) => void;
  /** Set owners as the volume has them (default: when running as root, as tar does). */
  owners?: boolean;
  /** Host operations queued before a worker thread is started to share them (default 256; 0: at once). */
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
  const top = !destIsDir ? dest : name === '' ? dest : join(dest, safeName(name, warn, start.path.replace(/^\/+/, '')));
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
  const total = startStats.type === 'file' ? startStats.size : 0;
  const x = new Extraction(fs, options, cx, { top, rootIntoExisting, destIsDir, total, warn });
  try {
    for await (const batch of walkTreeBatches(fs, path)) {
      for (const entry of batch) {
        x.checkFailure();
        const host = x.place(entry);
        if (host === null) continue;
        if (entry.revisited) {
          x.skipRevisited(entry);
          continue;
        }
        // The common entries are handled without a promise; the rest, and files not at hand, wait.
        const type = entry.stats.type;
        if (type === 'file') {
          if (!x.fileNow(entry, host)) await x.file(entry, host);
        } else if (type === 'directory' && entry.rel !== '') x.directory(entry, host);
        else await x.other(entry, host);
      }
    }
    await x.finish();
  } finally {
    await x.stop();
  }
  x.directoryTimes();
  return x.result;
}

/** Where an extraction goes, as extractTree worked it out. */
interface Destination {
  /** The host path of the walk's start. */
  top: string;
  /** The root's contents go into DEST, which exists. */
  rootIntoExisting: boolean;
  destIsDir: boolean;
  /** Bytes to copy when the start is a file (0 for a tree), for progress. */
  total: number;
  warn: (message: string) => void;
}

/**
 * One extraction's state and its handling of each entry of the walk. Split into small methods so
 * that the common cases (a directory, a small file at hand) are short functions without a promise:
 * one function holding every case was the largest thing V8 compiled on a tree of 20,000 files, and
 * compiled it twice.
 */
class Extraction {
  readonly result: ExtractResult = { files: 0, directories: 0, symlinks: 0, hardlinks: 0, bytes: 0, skipped: 0 };
  private readonly writer: HostWriter;
  /** Host paths of files written (once created), by inode, for hard links. */
  private readonly linked = new Map<number, Promise<string | null>>();
  // Files read the slow way are copied several at a time: one after another, each file's few system
  // calls left the disk idle between them.
  private inFlight = 0;
  private slotFreed: (() => void) | null = null;
  private failure: { err: unknown } | null = null;
  /** Directory times are set after their contents are written, deepest first. */
  private readonly dirTimes: { host: string; stats: FsStats }[] = [];
  private readonly hostOf = new Map<number, string>();
  /** Names taken in each host directory, to catch two volume names that the host would make one. */
  private readonly taken = new Map<number, Set<string>>();
  private readonly onBytes: (n: number) => void;
  /** Where the volume's bytes lie in the image file, when they lie there unchanged (a raw image). */
  private readonly hostRange: ((offset: number, length: number) => HostRange | null) | null;
  private readonly hostOp: HostFileOp = { path: '', flags: CREATE_FLAGS, perms: 0, fd: -1, position: 0, size: 0, uid: -1, gid: -1, chmod: false, atime: NaN, mtime: NaN };

  constructor(
    private readonly fs: Filesystem,
    private readonly options: ExtractOptions,
    private readonly cx: CopyContext,
    private readonly dest: Destination,
  ) {
    this.writer = new HostWriter({ workerAfter: options.workerAfter });
    const volume = fs.volume;
    this.hostRange = volume?.hostRange && fs.reader.fileRunNow ? volume.hostRange.bind(volume) : null;
    this.onBytes = (n: number) => {
      this.result.bytes += n;
      options.onProgress?.(this.result.bytes, dest.total, this.result.files);
    };
  }

  /** A copy that failed in the background stops the walk at once, as the host writer's failures do. */
  checkFailure(): void {
    if (this.failure) throw this.failure.err;
    this.writer.check();
  }

  /** The entry's host path: its name made safe and unique in its host directory; null when its directory was skipped. */
  place(entry: TreeEntry): string | null {
    if (entry.rel === '') return this.dest.top;
    const parentHost = this.hostOf.get(entry.parent);
    if (parentHost === undefined) return null;
    let n = safeName(entry.name, this.dest.warn, entry.rel);
    let names = this.taken.get(entry.parent);
    if (!names) this.taken.set(entry.parent, (names = new Set<string>()));
    let key = n.toLowerCase();
    if (names.has(key)) {
      let i = 2;
      while (names.has(`${n}~${i}`.toLowerCase())) i++;
      this.dest.warn(`/${entry.rel}: a name the host already has in that directory; written as ${n}~${i}`);
      n = `${n}~${i}`;
      key = n.toLowerCase();
    }
    names.add(key);
    return childPath(parentHost, n);
  }

  skipRevisited(entry: TreeEntry): void {
    this.dest.warn(`/${entry.rel}: directory met twice (a loop or a linked directory); not entered again`);
    this.result.skipped++;
  }

  /** A directory below the start: made now, before anything in it is queued. */
  directory(entry: TreeEntry, host: string): void {
    this.writer.mkdir(host);
    this.madeDirectory(entry, host);
  }

  private madeDirectory(entry: TreeEntry, host: string): void {
    if (!(entry.rel === '' && this.dest.rootIntoExisting)) this.dirTimes.push({ host, stats: entry.stats });
    this.hostOf.set(entry.id, host);
    this.result.directories++;
  }

  /**
   * A small file the reader has at hand (read ahead with its neighbours), queued here and now while
   * the host writer's thread writes the ones before; false when it is not, or the writer has no room.
   */
  fileNow(entry: TreeEntry, host: string): boolean {
    if (this.hostRange !== null && this.fromImage(entry, host, this.hostRange)) return true;
    const peeked = this.peek(entry);
    if (!peeked || peeked instanceof Promise || !this.writer.hasRoom(peeked.size)) return false;
    this.queuePeeked(peeked, entry.stats, host);
    return true;
  }

  /**
   * A small file lying in one piece of the image file, queued for the host writer to read there and
   * write: the main thread then never touches its bytes (copying them through the read-ahead windows
   * and the shared buffers was a fifth of its time on a tree of small files). False when it does not.
   */
  private fromImage(entry: TreeEntry, host: string, hostRange: (offset: number, length: number) => HostRange | null): boolean {
    const { stats } = entry;
    if (stats.nlink > 1 || stats.size > SMALL_FILE || stats.size === 0) return false;
    const run = this.fs.reader.fileRunNow?.(entry.node);
    if (!run || run.length !== stats.size) return false;
    const where = hostRange(run.offset, run.length);
    if (!where) return false;
    // One operation object, refilled for every file: the writer copies it out at once.
    const op = this.hostOp;
    op.path = host;
    op.fd = where.fd;
    op.position = where.position;
    op.size = stats.size;
    setMeta(op, stats, this.cx);
    this.writer.hostFile(op);
    this.result.files++;
    this.onBytes(stats.size);
    return true;
  }

  /**
   * The file's bytes from the reader's read-ahead (a promise while they are being read), or null when
   * it is not a small file with one link, or the reader has not them as its stat says.
   */
  private peek(entry: TreeEntry): PeekedFile | Promise<unknown> | null {
    const { stats } = entry;
    if (stats.nlink > 1 || stats.size > SMALL_FILE) return null;
    const peeked = this.fs.reader.peekFile?.(entry.node) ?? null;
    return peeked instanceof Promise || peeked?.size === stats.size ? peeked : null;
  }

  /** A file fileNow could not queue: its bytes or a buffer waited for, else opened and read. */
  async file(entry: TreeEntry, host: string): Promise<void> {
    let peeked = this.peek(entry);
    if (peeked instanceof Promise) {
      await peeked;
      peeked = this.peek(entry);
    }
    // The host side is behind when every shared buffer is full: wait for one rather than read the
    // file the slow way (which would only wait for a buffer too, at more cost per file).
    while (peeked && !(peeked instanceof Promise) && !this.writer.hasRoom(peeked.size)) {
      await this.writer.bufferFreed();
      this.writer.check();
      peeked = this.peek(entry);
    }
    if (peeked && !(peeked instanceof Promise)) this.queuePeeked(peeked, entry.stats, host);
    else await this.fileRead(entry, host);
  }

  /**
   * A small file whose bytes the reader has at hand, queued without waiting (the caller has seen that
   * the writer has room): the pieces are copied where they lie in the file, the rest stays a hole.
   */
  private queuePeeked(peeked: PeekedFile, stats: FsStats, host: string): void {
    const room = this.writer.tryReserve(peeked.size) as Reservation;
    const segs: number[] = [];
    let end = 0;
    let op: FileOp | null = null;
    try {
      for (const p of peeked.pieces) {
        if (p.offset < 0 || p.length <= 0 || p.offset + p.length > peeked.size) continue;
        p.buf.copy(room.buf, p.offset, p.at, p.at + p.length);
        end = addSegment(room.buf, p.offset, p.length, segs, end);
        this.onBytes(p.length);
      }
      op = fileOp(host, stats, this.cx, room.at, segs, end, peeked.size);
    } finally {
      this.writer.complete(room, op);
    }
    this.result.files++;
    this.options.onProgress?.(this.result.bytes, this.dest.total, this.result.files);
  }

  /** A file opened and read: large ones in pieces here, small ones into the writer's buffers; hard links kept. */
  private async fileRead(entry: TreeEntry, host: string): Promise<void> {
    const { stats, rel } = entry;
    const first = stats.nlink > 1 ? this.linked.get(stats.ino) : undefined;
    if (first !== undefined) {
      const target = await first;
      if (target !== null) {
        // The first copy must be on the host before a link can name it.
        await this.writer.drain();
        try {
          await link(target, host);
          this.result.hardlinks++;
          return;
        } catch {
          // A host without hard links: fall through to a copy.
        }
      }
    }
    let created!: (path: string | null) => void;
    if (stats.nlink > 1 && first === undefined) this.linked.set(stats.ino, new Promise((r) => (created = r)));
    const node = entry.node;
    const small = stats.size <= SMALL_FILE;
    const { fs, cx, writer, onBytes } = this;
    await this.spawn(async () => {
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
      this.result.files++;
      this.options.onProgress?.(this.result.bytes, this.dest.total, this.result.files);
    });
  }

  /** The start directory, symlinks, and what the host cannot hold. */
  async other(entry: TreeEntry, host: string): Promise<void> {
    const { stats } = entry;
    switch (stats.type) {
      case 'directory':
        await this.rootDirectory(host);
        this.madeDirectory(entry, host);
        break;
      case 'symlink': {
        const target = await this.fs.reader.readlink(entry.node);
        const owners = this.cx.owners;
        this.writer.symlink(host, target, owners ? stats.uid : -1, owners ? stats.gid : -1, hostAtime(stats), hostMtime(stats));
        this.result.symlinks++;
        break;
      }
      default:
        this.dest.warn(`/${entry.rel}: ${stats.type} node not copied (the host would need mknod)`);
        this.result.skipped++;
    }
  }

  /** The start directory, made here (not queued): a name already taken stops the extraction before anything is written. */
  private async rootDirectory(host: string): Promise<void> {
    if (this.dest.rootIntoExisting) return;
    try {
      await mkdir(host, { mode: 0o700 });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && !this.dest.destIsDir) {
        await mkdir(host, { recursive: true, mode: 0o700 }).catch((e) => {
          throw fromSystemError(e, host, 'creating a directory');
        });
      } else if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
        throw alreadyExists(host);
      } else throw fromSystemError(err, host, 'creating a directory');
    }
  }

  private async spawn(job: () => Promise<void>): Promise<void> {
    this.writer.check();
    this.inFlight++;
    void this.run(job);
    // A free slot is waited for with one promise, not a race over every copy in flight per file.
    while (this.inFlight >= PARALLEL_FILES) await new Promise<void>((r) => (this.slotFreed = r));
    this.slotFreed = null;
    if (this.failure) throw this.failure.err;
  }

  private async run(job: () => Promise<void>): Promise<void> {
    try {
      await job();
    } catch (err) {
      this.failure ??= { err };
    } finally {
      this.inFlight--;
      this.slotFreed?.();
    }
  }

  private async settle(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((r) => (this.slotFreed = r));
  }

  /** After the walk: every copy done and every queued operation carried out, or the first failure thrown. */
  async finish(): Promise<void> {
    await this.settle();
    if (this.failure) throw this.failure.err;
    await this.writer.drain();
  }

  /** Always, last: on a failure the copies in flight are let finish before the host writer stops. */
  async stop(): Promise<void> {
    await this.settle();
    await this.writer.close();
  }

  /** Directory modes, owners and times, deepest first, once their contents are written. */
  directoryTimes(): void {
    const d = this.dirTimes;
    for (let i = d.length - 1; i >= 0; i--) directoryMeta(d[i].host, d[i].stats, this.cx.owners);
  }
}

/**
 * DEST/.../NAME for a name safeName has passed. On POSIX a plain concatenation: path.join's normalizing
 * was a measurable part of each file's cost in a tree of 20,000, and a safe name has nothing to normalize.
 */
function childPath(dir: string, name: string): string {
  if (sep !== '/') return join(dir, name);
  return dir.endsWith('/') ? dir + name : `${dir}/${name}`;
}

/** A name the host can hold without meaning a path: no `/` or NUL, not `.` or `..`, not empty (`rel`: where it is in the volume, for the warning). */
function safeName(name: string, warn: (m: string) => void, rel: string): string {
  // Nearly every name is safe as it is: looked at without a regular expression or a new string.
  if (name !== '' && name !== '.' && name !== '..' && !name.includes('/') && !name.includes('\0')) return name;
  let safe = name.replace(/[/\0]/g, '_');
  if (safe === '' || safe === '.' || safe === '..') safe = `_${safe}`;
  if (safe !== name) warn(`/${rel}: name unsafe on the host; written as ${safe}`);
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

/** Sets `m` for a file of stat `st`: only the calls the host needs. Fills an object rather than making one: it runs for every file. */
function setMeta(m: FileMeta, st: FsStats, cx: CopyContext): void {
  // The file is created with its permission bits: when the umask keeps them all, no chmod is needed.
  const perms = st.mode & 0o7777;
  const chown = cx.owners && (cx.inheritsGroup || st.uid !== cx.uid || st.gid !== cx.gid);
  m.perms = perms;
  m.chmod = chown || (perms & 0o777 & ~cx.umask) !== perms;
  m.uid = chown ? st.uid : -1;
  m.gid = chown ? st.gid : -1;
  m.atime = hostAtime(st);
  m.mtime = hostMtime(st);
}

/** The times to set, as seconds to the microsecond (NaN: none, the host's are left); no atime: the mtime. */
function hostAtime(st: FsStats): number {
  return st.mtime ? hostSeconds(st.atime ?? st.mtime) : NaN;
}

function hostMtime(st: FsStats): number {
  return st.mtime ? hostSeconds(st.mtime) : NaN;
}

/**
 * Notes `length` bytes at `offset` of a file laid out in `buf` as a [offset, length] segment to write,
 * unless they are all zeros (they stay a hole). Returns where the data to write now ends.
 */
function addSegment(buf: Buffer, offset: number, length: number, segs: number[], end: number): number {
  if (length <= 0 || rangeIsZero(buf, offset, offset + length)) return end;
  segs.push(offset, length);
  return offset + length;
}

/** The host writer's operation for a file whose data lies at `at` in its buffer, `segs` to be written. */
function fileOp(host: string, st: FsStats, cx: CopyContext, at: number, segs: number[], end: number, size: number): FileOp {
  const op: FileOp = { path: host, flags: CREATE_FLAGS, perms: 0, at, segs, end, size, uid: -1, gid: -1, chmod: false, atime: NaN, mtime: NaN };
  setMeta(op, st, cx);
  return op;
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
      end = addSegment(room.buf, r.offset, got, segs, end);
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
  const meta: FileMeta = { perms: 0, chmod: false, uid: -1, gid: -1, atime: NaN, mtime: NaN };
  setMeta(meta, st, cx);
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
    if (!Number.isNaN(meta.mtime)) ignore(() => futimesSync(fd, seconds(meta.atime), seconds(meta.mtime)));
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

/**
 * A directory's owner, mode and times, as the volume has them. Synchronous: a few metadata calls per
 * directory, and a trip through the thread pool for each made 600 round trips one after another at
 * the end of a 200-directory tree (about 20 ms), while nothing else was left to do.
 */
function directoryMeta(host: string, st: FsStats, owners: boolean): void {
  // Owners first: chown clears set-id bits, and the mode set after it is the volume's.
  if (owners) ignore(() => lchownSync(host, st.uid, st.gid));
  ignore(() => chmodSync(host, st.mode & 0o7777));
  if (st.mtime) {
    const m = seconds(st.mtime);
    const a = st.atime ? seconds(st.atime) : m;
    ignore(() => utimesSync(host, a, m));
  }
}
