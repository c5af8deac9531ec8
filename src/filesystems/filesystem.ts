import { Readable } from 'node:stream';
import { VdiskError } from '../errors.js';
import { awaitedLater } from '../util/promises.js';
import type { VolumeReader } from './types.js';

/**
 * The file-system layer. Each reader (one folder per file system) implements `FsReader` over node
 * handles of its own choosing; `Filesystem` wraps any reader in the one fs.promises-shaped, path-based
 * API, with the one path walker, so that `..`, symlinks and loop bounds behave the same on every file
 * system and no reader can be walked out of its volume.
 */

export type FileType = 'file' | 'directory' | 'symlink' | 'block' | 'char' | 'fifo' | 'socket' | 'other';

/** A point in time as seconds and nanoseconds since the Unix epoch (negative seconds before 1970). */
export interface FsTime {
  sec: number;
  nsec: number;
}

/** What `stat` returns; fields a format lacks are absent, never invented. */
export interface FsStats {
  type: FileType;
  /** st_mode: the S_IF* type bits and the permission bits (synthesised from the format's attributes where it has no modes). */
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  /** Inode, MFT record or directory-entry position: stable within one open volume, equal for hard links. */
  ino: number;
  /** Length in bytes (for a symlink, its target's length). */
  size: number;
  /** Bytes the file occupies on the volume, where the format says. */
  allocated?: number;
  atime?: FsTime;
  mtime?: FsTime;
  ctime?: FsTime;
  birthtime?: FsTime;
  /** Format-specific flags worth showing (e.g. 'compressed', 'sparse', 'encrypted', 'hidden', 'system'). */
  flags?: string[];
  /** Named data streams besides the unnamed one (NTFS alternate data streams), readable as `path:name`. */
  streams?: { name: string; size: number }[];
  /** Block and character devices: major and minor numbers. */
  rdev?: { major: number; minor: number };
}

export interface FsDirEntry<N> {
  name: string;
  type: FileType;
  node: N;
}

/** A byte range relative to the start of the file or volume. */
export interface ByteRange {
  offset: number;
  length: number;
}

/** An open file's contents: positional reads, as everywhere in vdisk. */
export interface FsFile {
  readonly size: number;
  /**
   * Fills `buf` from file offset `position`; returns the count of bytes read, less than `buf.length`
   * only at the end of the file. Holes and bytes past the valid-data length read as zeros.
   */
  read(buf: Uint8Array, position: number): Promise<number>;
  /**
   * The ranges that hold data, in order; everything else in [0, size) is a hole that reads as zeros.
   * Absent where the format cannot tell (then the whole file is data).
   */
  dataRanges?(): Promise<ByteRange[]>;
  close?(): Promise<void>;
}

/** A file's bytes at hand (FsReader.peekFile): `length` bytes at `at` in `buf` hold the file's from `offset`. */
export interface PeekedPiece {
  offset: number;
  buf: Buffer;
  at: number;
  length: number;
}

export interface PeekedFile {
  size: number;
  pieces: PeekedPiece[];
}

/** What each file-system reader implements, over node handles of its own choosing. */
export interface FsReader<N = unknown> {
  /** The name blkid gives it: 'ext4', 'vfat', 'exfat', 'ntfs', 'iso9660', 'udf', ... */
  readonly type: string;
  readonly label?: string;
  readonly uuid?: string;
  /** The allocation unit in bytes (block, cluster, sector). */
  readonly blockSize: number;
  /** Things a user should know about the volume (a dirty journal, a checksum mismatch): shown on stderr. */
  readonly warnings: string[];
  /** Whether names compare case-insensitively (FAT, exFAT, NTFS), for the walker's messages only. */
  readonly caseInsensitive?: boolean;
  root(): Promise<N>;
  stat(node: N): Promise<FsStats>;
  /**
   * The stat when it can be had without waiting (the node's metadata already read), else null: a walk
   * of many small files then spends no promise per entry. Throws what `stat` would throw.
   */
  statNow?(node: N): FsStats | null;
  /**
   * A file's bytes when all of them are already in memory (read ahead with its neighbours); a promise
   * when they are being read (wait for it and ask again); else null: the caller then opens and reads the
   * file. The pieces are views valid only until the caller next awaits; what they leave of [0, size)
   * reads as zeros. Meant for small files: a reader may decline any file.
   */
  peekFile?(node: N): PeekedFile | Promise<unknown> | null;
  /**
   * Where a small file's bytes lie in one piece on the volume (length: the file's size), when the
   * node's metadata in memory says so without waiting; else null. Only for files whose bytes are
   * exactly those (no holes, compression, encryption, inline data): a copy may read them itself.
   */
  fileRunNow?(node: N): ByteRange | null;
  /** The directory's entries, without `.` and `..`, in on-disk order. */
  readdir(dir: N): Promise<FsDirEntry<N>[]>;
  /** One name in a directory; readers with indexes or case-insensitive names provide their own. */
  lookup?(dir: N, name: string): Promise<N | null>;
  readlink(node: N): Promise<string>;
  open(node: N, stream?: string): Promise<FsFile>;
  /** Extended attributes, names with their namespace prefix as Linux spells them ('user.x', 'security.selinux'). */
  xattrs?(node: N): Promise<{ name: string; value: Buffer }[]>;
  /** The byte ranges of the volume the file system does not use, from its own allocation map, in order. */
  freeExtents(): AsyncIterable<ByteRange>;
  close?(): Promise<void>;
}

/** Where a reader reads its volume, and how it names it in messages ("disk.vhdx partition 2"). */
export interface FsContext {
  name: string;
}

/** A row in the table of readers: which blkid types it opens, and how. */
export interface FilesystemDriver {
  types: string[];
  open(volume: VolumeReader, ctx: FsContext): Promise<FsReader<any>>;
}

/** Linux's limit on symlinks followed in one lookup (MAXSYMLINKS). */
const MAX_SYMLINKS = 40;

const S_IFMT = 0o170000;
const TYPE_BITS: Record<FileType, number> = {
  file: 0o100000,
  directory: 0o040000,
  symlink: 0o120000,
  block: 0o060000,
  char: 0o020000,
  fifo: 0o010000,
  socket: 0o140000,
  other: 0,
};

/** st_mode for a type and permission bits. */
export function modeOf(type: FileType, perms: number): number {
  return TYPE_BITS[type] | (perms & ~S_IFMT);
}

export function typeFromMode(mode: number): FileType {
  switch (mode & S_IFMT) {
    case 0o100000: return 'file';
    case 0o040000: return 'directory';
    case 0o120000: return 'symlink';
    case 0o060000: return 'block';
    case 0o020000: return 'char';
    case 0o010000: return 'fifo';
    case 0o140000: return 'socket';
    default: return 'other';
  }
}

/**
 * An inode as the Unix readers (ext, XFS) cache it: mode, owners, and times as flat seconds and
 * nanoseconds (crtime NaN when not recorded), so that a cache of many inodes holds no objects per time.
 */
export interface CachedInode {
  mode: number;
  uid: number;
  gid: number;
  atimeSec: number;
  atimeNsec: number;
  mtimeSec: number;
  mtimeNsec: number;
  ctimeSec: number;
  ctimeNsec: number;
  crtimeSec: number;
  crtimeNsec: number;
}

/** The stat of such an inode: its time objects made only here, when a stat is asked for. */
export function inodeStats(inode: CachedInode, ino: number, nlink: number, size: number, allocated: number): FsStats {
  const st: FsStats = {
    type: typeFromMode(inode.mode),
    mode: inode.mode,
    uid: inode.uid,
    gid: inode.gid,
    nlink,
    ino,
    size,
    allocated,
    atime: { sec: inode.atimeSec, nsec: inode.atimeNsec },
    mtime: { sec: inode.mtimeSec, nsec: inode.mtimeNsec },
    ctime: { sec: inode.ctimeSec, nsec: inode.ctimeNsec },
  };
  if (!Number.isNaN(inode.crtimeSec)) st.birthtime = { sec: inode.crtimeSec, nsec: inode.crtimeNsec };
  return st;
}

export interface ResolvedEntry<N> {
  node: N;
  /** The canonical path inside the volume, from the root, without symlinks on the way (last one kept when not followed). */
  path: string;
}

/** A path-based, fs.promises-shaped view of one volume. */
export class Filesystem<N = unknown> {
  readonly reader: FsReader<N>;
  readonly name: string;
  /** The volume the reader reads, where the opener gave it: a copy may read file runs from its host file. */
  readonly volume: VolumeReader | null;

  constructor(reader: FsReader<N>, name: string, volume: VolumeReader | null = null) {
    this.reader = reader;
    this.name = name;
    this.volume = volume;
  }

  get type(): string {
    return this.reader.type;
  }

  get warnings(): string[] {
    return this.reader.warnings;
  }

  private notFound(path: string, what = 'no such file or directory'): VdiskError {
    return new VdiskError('NOT_FOUND', `${this.name}: ${path}: ${what}`);
  }

  private async child(dir: N, name: string): Promise<N | null> {
    if (this.reader.lookup) return this.reader.lookup(dir, name);
    for (const e of await this.reader.readdir(dir)) if (e.name === name) return e.node;
    return null;
  }

  /**
   * The one path walker: `.` and `..` by the path walked so far (never above the root), symlinks resolved
   * inside the volume (absolute targets from the volume's root) with Linux's bound on how many.
   */
  async resolve(path: string, followLast = true): Promise<ResolvedEntry<N>> {
    const root: N = await this.reader.root();
    // Each element of `stack` is a directory node with its name; the path so far is their names.
    const stack: { node: N; name: string }[] = [];
    const pending = splitPath(path);
    let links = 0;
    let current: N = root;
    while (pending.length > 0) {
      const name = pending.shift() as string;
      if (name === '.') continue;
      if (name === '..') {
        stack.pop();
        current = stack.length ? stack[stack.length - 1].node : root;
        continue;
      }
      const st = await this.reader.stat(current);
      const here = '/' + stack.map((s) => s.name).join('/');
      if (st.type !== 'directory') throw this.notFound(joinPath(here, name), 'not a directory on the way');
      const next = await this.child(current, name);
      if (next === null) throw this.notFound(joinPath(here, name));
      const nst = await this.reader.stat(next);
      if (nst.type === 'symlink' && (pending.length > 0 || followLast)) {
        if (++links > MAX_SYMLINKS) throw new VdiskError('CORRUPT', `${this.name}: ${path}: too many levels of symbolic links`);
        const target = await this.reader.readlink(next);
        if (target === '') throw this.notFound(joinPath(here, name), 'empty symbolic link');
        pending.unshift(...splitPath(target));
        if (target.startsWith('/')) {
          stack.length = 0;
          current = root;
        }
        continue;
      }
      stack.push({ node: next, name });
      current = next;
    }
    return { node: current, path: '/' + stack.map((s) => s.name).join('/') };
  }

  async stat(path: string): Promise<FsStats> {
    return this.reader.stat((await this.resolve(path, true)).node);
  }

  async lstat(path: string): Promise<FsStats> {
    return this.reader.stat((await this.resolve(path, false)).node);
  }

  async readlink(path: string): Promise<string> {
    const { node } = await this.resolve(path, false);
    const st = await this.reader.stat(node);
    if (st.type !== 'symlink') throw new VdiskError('USAGE', `${this.name}: ${path}: not a symbolic link`);
    return this.reader.readlink(node);
  }

  /** Entries of a directory with their types, as `fs.readdir(path, { withFileTypes: true })`. */
  async readdir(path: string): Promise<{ name: string; type: FileType }[]> {
    const { node } = await this.resolve(path, true);
    const st = await this.reader.stat(node);
    if (st.type !== 'directory') throw new VdiskError('USAGE', `${this.name}: ${path}: not a directory`);
    return (await this.reader.readdir(node)).map((e) => ({ name: e.name, type: e.type }));
  }

  /** Opens a file for positional reads; `stream` names an alternate data stream where the format has them. */
  async open(path: string, stream?: string): Promise<FsFile> {
    const { node } = await this.resolve(path, true);
    const st = await this.reader.stat(node);
    if (st.type === 'directory') throw new VdiskError('USAGE', `${this.name}: ${path}: is a directory`);
    if (st.type !== 'file') throw new VdiskError('USAGE', `${this.name}: ${path}: not a regular file`);
    return this.reader.open(node, stream);
  }

  /** The file's bytes as a stream, read in large positional chunks. */
  async createReadStream(path: string, options: { start?: number; end?: number; chunk?: number } = {}): Promise<Readable> {
    return fileStream(await this.open(path), options);
  }

  async xattrs(path: string): Promise<{ name: string; value: Buffer }[]> {
    const { node } = await this.resolve(path, false);
    return this.reader.xattrs ? this.reader.xattrs(node) : [];
  }

  freeExtents(): AsyncIterable<ByteRange> {
    return this.reader.freeExtents();
  }

  async close(): Promise<void> {
    await this.reader.close?.();
  }
}

/** Chunks a file stream reads ahead of the one its consumer takes. */
const STREAM_AHEAD = 2;

/**
 * A readable over an open file: [start, end] inclusive as fs.createReadStream takes them. The next
 * chunks are read while the consumer takes this one (a read at a time left the volume idle while
 * stdout drained, and readers grew read-ahead of their own that `get`, which pipelines itself, paid
 * for twice). A short read ends the stream; the file is closed once no read is in flight.
 */
export function fileStream(file: FsFile, options: { start?: number; end?: number; chunk?: number } = {}): Readable {
  const chunk = options.chunk ?? 1024 * 1024;
  let next = options.start ?? 0;
  const stop = Math.min(file.size, options.end === undefined ? file.size : options.end + 1);
  const reads: { buf: Buffer; got: Promise<number> }[] = [];
  const fill = () => {
    while (reads.length <= STREAM_AHEAD && next < stop) {
      const buf = Buffer.allocUnsafe(Math.min(chunk, stop - next));
      // Awaited in order below; a failure of a read further on is not reported before its turn.
      reads.push({ buf, got: awaitedLater(file.read(buf, next)) });
      next += buf.length;
    }
  };
  // Once, whichever comes first: the end, a failure, or the consumer destroying the stream.
  let finished: Promise<void> | null = null;
  const finish = () =>
    (finished ??= (async () => {
      next = stop;
      await Promise.allSettled(reads.splice(0).map((r) => r.got));
      await file.close?.();
    })());
  return new Readable({
    highWaterMark: chunk,
    async read() {
      try {
        fill();
        const r = reads.shift();
        if (!r) {
          await finish();
          this.push(null);
          return;
        }
        const n = await r.got;
        if (n <= 0) {
          await finish();
          this.push(null);
          return;
        }
        // The file ended early: what was asked past it reads as nothing.
        if (n < r.buf.length) {
          await finish();
          this.push(r.buf.subarray(0, n));
          this.push(null);
          return;
        }
        this.push(r.buf);
        fill();
      } catch (err) {
        await finish().catch(() => undefined);
        this.destroy(err as Error);
      }
    },
    destroy(err, callback) {
      finish().then(() => callback(err), (e) => callback(err ?? e));
    },
  });
}

function splitPath(p: string): string[] {
  return p.split('/').filter((s) => s !== '');
}

function joinPath(dir: string, name: string): string {
  return dir === '/' ? `/${name}` : `${dir}/${name}`;
}
