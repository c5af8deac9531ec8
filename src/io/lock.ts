import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { closeSync, constants, fstatSync, openSync, readFileSync, readdirSync, type Stats } from 'node:fs';
import { VdiskError } from '../errors.js';

/**
 * Image locks that QEMU honours, and that honour QEMU's.
 *
 * QEMU's file-posix driver (block/file-posix.c, raw_apply_lock_bytes / raw_check_lock_bytes) speaks
 * through shared open-file-description byte-range locks (fcntl F_OFD_SETLK, F_RDLCK) on one byte per
 * permission: byte 100+i while it holds permission i (0 CONSISTENT_READ, 1 WRITE, 2 WRITE_UNCHANGED,
 * 3 RESIZE), byte 200+i while it refuses to share permission i with anybody else. Before it goes
 * ahead it tests (F_OFD_GETLK) that nobody else holds byte 200+i for a permission it wants, nor byte
 * 100+i for a permission it does not share, and fails with `Failed to get shared "write" lock`.
 * Seen in /proc/locks, `qemu-io -f vhdx` (read-write) holds 100, 101, 103, 201 and 203; `qemu-io -r`
 * (a read-only open, as qemu-img info makes) holds 100, 201 and 203. We take the same two sets, so each
 * refuses the other.
 *
 * Node has no fcntl; fs-native-extensions gives us F_OFD_SETLK on a byte range (Linux), flock on the
 * whole file (macOS) and LockFileEx (Windows), but no F_OFD_GETLK. A test of a byte is therefore an
 * attempt to lock it exclusively, undone at once: granted only if no other open file description
 * holds any lock on it (for a byte our descriptor holds shared, the attempt is an upgrade of our own).
 *
 * Why two processes cannot both pass: each takes every shared lock of its set first and only then
 * tests. Say A and B conflict: A holds byte x, B tests x (or the other way round). If B's test comes
 * after A took x, B sees it and refuses. If it comes before, then B's own shared locks (all taken
 * before B's tests) were already there when A took x and then ran its own tests, and A's test of the
 * byte B holds finds it. Both may refuse when they start at the same instant (a test's brief
 * exclusive lock also makes the other's shared lock attempt fail, and QEMU then reports "Failed to
 * lock byte"); neither ever goes ahead blind. Our exclusive tests last microseconds.
 */

export type LockKind = 'shared' | 'exclusive';

/** The lock an open takes: shared to look, exclusive to write, none with force-share (-U). */
export function lockFor(mode: 'r' | 'rw', forceShare = false): LockKind | undefined {
  if (mode === 'rw') {
    if (forceShare) throw new VdiskError('USAGE', '-U (force-share) is only for looking: an image opened for writing is always locked');
    return 'exclusive';
  }
  return forceShare ? undefined : 'shared';
}

const PERM_BASE = 100;
const SHARED_BASE = 200;
const CONSISTENT_READ = 0;
const WRITE = 1;
const RESIZE = 3;

interface Permissions {
  /** Permissions held: byte 100+i locked shared. */
  hold: number[];
  /** Permissions refused to others: byte 200+i locked shared. */
  unshared: number[];
}

/** A look-only open as `qemu-img info`; a writer as `qemu-io` read-write (which lets WRITE_UNCHANGED be shared). */
const PERMISSIONS: Record<LockKind, Permissions> = {
  shared: { hold: [CONSISTENT_READ], unshared: [WRITE, RESIZE] },
  exclusive: { hold: [CONSISTENT_READ, WRITE, RESIZE], unshared: [WRITE, RESIZE] },
};

/** The bytes we lock shared for `kind`. */
export function heldBytes(kind: LockKind): number[] {
  const p = PERMISSIONS[kind];
  return [...p.hold.map((i) => PERM_BASE + i), ...p.unshared.map((i) => SHARED_BASE + i)];
}

/** The bytes nobody else may hold for `kind`: 200+i for what we hold, 100+i for what we do not share. */
export function conflictBytes(kind: LockKind): number[] {
  const p = PERMISSIONS[kind];
  return [...p.hold.map((i) => SHARED_BASE + i), ...p.unshared.map((i) => PERM_BASE + i)];
}

/**
 * fs-native-extensions' binding: each call throws (code EAGAIN, or the platform's lock violation) when
 * another holder is in the way. `exclusive` false is a shared lock.
 */
interface Native {
  tryLock(fd: number, offset: number, length: number, exclusive: boolean): void;
  tryUpgradeLock(fd: number, offset: number, length: number): void;
  tryDowngradeLock(fd: number, offset: number, length: number): void;
  unlock(fd: number, offset: number, length: number): void;
}

/** The package's own face: booleans instead of EAGAIN. */
interface Wrapped {
  tryLock(fd: number, offset: number, length: number, opts: { shared: boolean }): boolean;
  tryUpgradeLock(fd: number, offset: number, length: number): boolean;
  tryDowngradeLock(fd: number, offset: number, length: number): boolean;
  unlock(fd: number, offset: number, length: number): void;
}

let native: Native | null | undefined;
let warned = false;

function warnOnce(why: string): void {
  if (warned) return;
  warned = true;
  process.stderr.write(`vdisk: warning: ${why}; images are not locked against other processes\n`);
}

function loadNative(): Native | null {
  if (native !== undefined) return native;
  native = null;
  let req: NodeRequire;
  try {
    // A single-file executable carries no native addons (nor import.meta.url): nothing to lock with.
    req = createRequire(import.meta.url);
  } catch {
    return null;
  }
  try {
    // The prebuilt binary itself: the package's loader (require-addon and its resolver) measured 55-70 ms
    // on every start, the binary 1 ms.
    const dir = dirname(req.resolve('fs-native-extensions/package.json'));
    native = req(join(dir, 'prebuilds', `${process.platform}-${process.arch}`, 'fs-native-extensions.node')) as Native;
  } catch {
    try {
      const w = req('fs-native-extensions') as Wrapped;
      const busy = (ok: boolean) => {
        if (!ok) throw Object.assign(new Error('locked'), { code: 'EAGAIN' });
      };
      native = {
        tryLock: (fd, o, l, exclusive) => busy(w.tryLock(fd, o, l, { shared: !exclusive })),
        tryUpgradeLock: (fd, o, l) => busy(w.tryUpgradeLock(fd, o, l)),
        tryDowngradeLock: (fd, o, l) => busy(w.tryDowngradeLock(fd, o, l)),
        unlock: (fd, o, l) => w.unlock(fd, o, l),
      };
    } catch {
      native = null;
    }
  }
  return native;
}

/** A lock attempt that found another holder answers EAGAIN (fcntl, flock) or a lock violation (Windows). */
function isConflict(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException)?.code;
  return code === 'EAGAIN' || code === 'EWOULDBLOCK' || code === 'EACCES' || code === 'EBUSY';
}

/** True when granted; false when another holder is in the way; throws anything else. */
function attempt(fn: () => void): boolean {
  try {
    fn();
    return true;
  } catch (err) {
    if (isConflict(err)) return false;
    throw err;
  }
}

/**
 * Windows byte-range locks are mandatory: a lock inside the data would make other processes' reads
 * fail. One byte far past the end of any image (4 PiB) carries the lock there instead.
 */
const WINDOWS_LOCK_BYTE = 2 ** 52;

/**
 * Takes the lock of `kind` on `fd` (the image's own descriptor: the locks live as long as it stays
 * open, and go with its close) or throws LOCKED. `writable` says whether `fd` was opened for writing;
 * a look-only descriptor cannot take the exclusive locks the tests need, see lookTester.
 */
export async function acquireLock(fd: number, path: string, writable: boolean, kind: LockKind): Promise<void> {
  const n = loadNative();
  if (!n) return warnOnce('file locking is not available in this build (fs-native-extensions did not load)');
  try {
    if (process.platform === 'linux') return lockLinux(n, fd, path, writable, kind);
    if (process.platform === 'win32') {
      if (!attempt(() => n.tryLock(fd, WINDOWS_LOCK_BYTE, 1, kind === 'exclusive'))) throw inUse(path, null);
      return;
    }
    // macOS and the BSDs: flock on the whole file, between vdisk processes only (QEMU takes no lock
    // there without OFD locks).
    if (!attempt(() => n.tryLock(fd, 0, 0, kind === 'exclusive'))) throw inUse(path, null);
  } catch (err) {
    if (err instanceof VdiskError) throw err;
    // A file system without byte-range locks (some network and FUSE ones answer ENOLCK or EINVAL).
    warnOnce(`${path}: cannot lock (${(err as Error).message})`);
  }
}

function lockLinux(n: Native, fd: number, path: string, writable: boolean, kind: LockKind): void {
  const held = heldBytes(kind);
  const release = () => {
    try {
      n.unlock(fd, PERM_BASE, SHARED_BASE + 8 - PERM_BASE);
    } catch {
      // Closing the descriptor releases them anyway.
    }
  };
  for (const b of held) {
    // Refused only while another vdisk is testing that byte: in use, at that instant.
    if (!attempt(() => n.tryLock(fd, b, 1, false))) {
      release();
      throw inUse(path, describeHolder(fd, [b]));
    }
  }
  const tester = writable ? ownTester(n, fd, held) : lookTester(n, fd, path);
  let busy: number[];
  try {
    busy = conflictBytes(kind).filter((b) => !tester.free(b));
  } finally {
    tester.close();
  }
  if (busy.length > 0) {
    release();
    throw inUse(path, describeHolder(fd, busy));
  }
}

interface Tester {
  /** Whether no other open file description holds a lock on byte `b`. */
  free(b: number): boolean;
  close(): void;
}

/** On the image's own descriptor, open for writing: an exclusive lock on the byte, undone at once. */
function ownTester(n: Native, fd: number, held: number[]): Tester {
  return {
    free(b) {
      if (held.includes(b)) {
        // We hold it shared: an upgrade, then back.
        if (!attempt(() => n.tryUpgradeLock(fd, b, 1))) return false;
        n.tryDowngradeLock(fd, b, 1);
        return true;
      }
      if (!attempt(() => n.tryLock(fd, b, 1, true))) return false;
      n.unlock(fd, b, 1);
      return true;
    },
    close() {},
  };
}

/**
 * A look-only descriptor may not take an exclusive lock (EBADF), and a look tests only bytes it does
 * not hold. For a regular file a second descriptor opened for writing, on the same inode and used for
 * nothing but these tests, does it (our own shared locks are on other bytes, so they cannot answer).
 * A block device is not opened for writing for a look (closing such a descriptor makes udev probe the
 * device again), nor can a file we may not write be: there /proc/locks tells, once it shows our own
 * locks on the file (so that its device and inode numbers are the ones we know). Where neither works
 * the tests are skipped: our shared locks still keep writers out, which is what protects the data.
 */
function lookTester(n: Native, fd: number, path: string): Tester {
  const st = fstatSync(fd);
  let probe = -1;
  if (st.isFile()) {
    try {
      probe = openSync(path, constants.O_RDWR | constants.O_NOFOLLOW);
      const ps = fstatSync(probe);
      if (ps.dev !== st.dev || ps.ino !== st.ino) {
        closeSync(probe);
        probe = -1;
      }
    } catch {
      // Not writable by us, or gone: ask /proc/locks.
    }
  }
  if (probe >= 0) {
    const p = probe;
    return {
      free(b) {
        if (!attempt(() => n.tryLock(p, b, 1, true))) return false;
        n.unlock(p, b, 1);
        return true;
      },
      close: () => closeSync(p),
    };
  }
  const locks = procLocks(st);
  const ours = heldBytes('shared');
  const readable = locks !== null && ours.every((o) => locks.some((l) => l.start <= o && o <= l.end));
  return {
    free: (b) => !readable || !locks.some((l) => l.start <= b && b <= l.end),
    close() {},
  };
}

interface LockRange {
  start: number;
  end: number;
}

/** The Linux kernel's device number split as /proc/locks prints it (major:minor in hex). */
function devParts(dev: number): [number, number] {
  const big = BigInt(dev);
  const major = Number(((big >> 8n) & 0xfffn) | ((big >> 32n) & ~0xfffn));
  const minor = Number((big & 0xffn) | ((big >> 12n) & ~0xffn));
  return [major, minor];
}

/** Lines `1: OFDLCK ADVISORY  READ -1 fe:00:2146690 100 101` on this file (blocked waiters left out). */
function parseLockLines(text: string, st: Stats, prefix = ''): LockRange[] | null {
  const [major, minor] = devParts(st.dev);
  const out: LockRange[] = [];
  for (const raw of text.split('\n')) {
    let line = raw.startsWith(prefix) ? raw.slice(prefix.length) : null;
    if (line === null || line.includes('->')) continue;
    line = line.trim();
    const f = line.split(/\s+/);
    if (f.length < 8) continue;
    const id = f[5].split(':');
    if (id.length !== 3) continue;
    if (parseInt(id[0], 16) !== major || parseInt(id[1], 16) !== minor || Number(id[2]) !== st.ino) continue;
    const start = Number(f[6]);
    const end = f[7] === 'EOF' ? Infinity : Number(f[7]);
    if (Number.isFinite(start)) out.push({ start, end });
  }
  return out;
}

function procLocks(st: Stats): LockRange[] | null {
  try {
    return parseLockLines(readFileSync('/proc/locks', 'utf8'), st);
  } catch {
    return null;
  }
}

/** Caps on the search for a holder: it only names, so it gives up rather than take long. */
const MAX_PROCESSES = 4096;
const MAX_DESCRIPTORS = 65536;
const MAX_MILLISECONDS = 500;

/**
 * "pid N, COMMAND" of a process holding a lock on one of `bytes` of the file behind `fd`, or null.
 * OFD locks show pid -1 in /proc/locks, so the holder is found the other way round: the `lock:` lines
 * of each process's descriptors in /proc/PID/fdinfo. Bounded in processes, descriptors and time.
 */
export function describeHolder(fd: number, bytes: number[]): string | null {
  if (process.platform !== 'linux') return null;
  let st: Stats;
  try {
    st = fstatSync(fd);
  } catch {
    return null;
  }
  const started = Date.now();
  let descriptors = 0;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p) && Number(p) !== process.pid).slice(0, MAX_PROCESSES);
  } catch {
    return null;
  }
  for (const pid of pids) {
    if (Date.now() - started > MAX_MILLISECONDS || descriptors > MAX_DESCRIPTORS) return null;
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const n of fds) {
      if (++descriptors > MAX_DESCRIPTORS) return null;
      try {
        // fdinfo, not a stat of the descriptor: a stat would reach into the file's file system (a hung
        // network or FUSE mount would hang us); fdinfo's lock lines carry the device and inode.
        const locks = parseLockLines(readFileSync(`/proc/${pid}/fdinfo/${n}`, 'utf8'), st, 'lock:');
        if (!locks?.some((l) => bytes.some((b) => l.start <= b && b <= l.end))) continue;
        let comm = '';
        try {
          comm = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
        } catch {
          // gone meanwhile
        }
        return comm ? `pid ${pid}, ${comm}` : `pid ${pid}`;
      } catch {
        // a descriptor closed or a process gone while we looked
      }
    }
  }
  return null;
}

function inUse(path: string, holder: string | null): VdiskError {
  return new VdiskError('LOCKED', `${path}: in use by another process${holder ? ` (${holder})` : ''}`);
}
