/**
 * The host side of an extraction as a list of operations: make a directory, write a file whose data
 * waits in a shared buffer, make a symbolic link. One function carries them out, on the main thread or
 * in a worker (see host-writer.ts), so both places do exactly the same thing.
 */

/**
 * A batch of operations, packed for the trip to the worker: numbers in one array, names in another
 * (a message of a few hundred small objects cost the main thread more to clone than the worker spent
 * on their system calls). Per operation, in `nums`:
 * - 0: mkdir with mode 0700 (the volume's mode is set at the end, after the contents); names: path.
 * - 1, flags, perms, at, end, size, uid, gid, chmod, atime, mtime, n, then n [file offset, length]
 *   pairs: a new file (flags: O_EXCL|O_NOFOLLOW) with permission bits `perms`, whose data lies at `at`
 *   in the batch's buffer laid out as in the file; the pairs are what is written (all-zero ranges are
 *   left out and stay holes); `end` is where the written data ends, and the length is set when it is not
 *   `size`. Owner (uid -1: left), mode (chmod 1) and times (NaN: left) are set through the descriptor.
 *   Names: path.
 * - 2, uid, gid, atime, mtime: a symbolic link, then its owner and times where the host allows.
 *   Names: path, target.
 * Times are seconds to the microsecond.
 */
export interface HostBatch {
  nums: number[];
  names: string[];
}

export function queueMkdir(b: HostBatch, path: string): void {
  b.nums.push(0);
  b.names.push(path);
}

export interface FileOp {
  path: string;
  flags: number;
  perms: number;
  at: number;
  /** [file offset, length] pairs of the data to write. */
  segs: number[];
  end: number;
  size: number;
  uid: number;
  gid: number;
  chmod: boolean;
  atime: number;
  mtime: number;
}

export function queueFile(b: HostBatch, f: FileOp): void {
  b.nums.push(1, f.flags, f.perms, f.at, f.end, f.size, f.uid, f.gid, f.chmod ? 1 : 0, f.atime, f.mtime, f.segs.length / 2, ...f.segs);
  b.names.push(f.path);
}

export function queueSymlink(b: HostBatch, path: string, target: string, uid: number, gid: number, atime: number, mtime: number): void {
  b.nums.push(2, uid, gid, atime, mtime);
  b.names.push(path, target);
}

/** The first operation that failed: enough for the main thread to word the error as everywhere else. */
export interface HostOpFailure {
  path: string;
  /** What was being done ('creating', 'writing', ...), or 'exists' for a name already taken. */
  doing: string;
  code?: string;
  message: string;
}

/** The parts of node:fs the operations use (the worker passes its own require('node:fs')). */
export interface HostFs {
  mkdirSync(path: string, mode: number): unknown;
  openSync(path: string, flags: number, mode: number): number;
  writeSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
  ftruncateSync(fd: number, len: number): void;
  fchownSync(fd: number, uid: number, gid: number): void;
  fchmodSync(fd: number, mode: number): void;
  futimesSync(fd: number, atime: number | string, mtime: number | string): void;
  closeSync(fd: number): void;
  symlinkSync(target: string, path: string): void;
  lchownSync(path: string, uid: number, gid: number): void;
  lutimesSync(path: string, atime: number | string, mtime: number | string): void;
}

/**
 * Carries out a batch's operations in order, stopping at the first failure, which it returns (null when
 * all went well). Metadata the host refuses (an owner on a file system without owners) is left as the
 * host made it, as tar does. Self-contained on purpose: the worker runs this function's own source text,
 * so it may use nothing from outside its parameters.
 */
export function applyHostOps(fs: HostFs, nums: ArrayLike<number>, names: string[], data: Uint8Array | null): HostOpFailure | null {
  const fail = (path: string, doing: string, err: unknown): HostOpFailure => {
    const e = err as { code?: string; message?: string };
    return { path, doing: e && e.code === 'EEXIST' ? 'exists' : doing, code: e && e.code, message: String((e && e.message) || err) };
  };
  const quietly = (f: () => void): void => {
    try {
      f();
    } catch {
      // left as the host made it
    }
  };
  // Node takes a negative number of seconds for "now"; a numeric string is taken as it is.
  const time = (s: number): number | string => (s < 0 ? String(s) : s);
  let i = 0;
  let n = 0;
  while (i < nums.length) {
    const kind = nums[i++];
    const path = names[n++];
    if (kind === 0) {
      try {
        fs.mkdirSync(path, 0o700);
      } catch (err) {
        return fail(path, 'creating a directory', err);
      }
    } else if (kind === 1) {
      const flags = nums[i++], perms = nums[i++], at = nums[i++], end = nums[i++], size = nums[i++];
      const uid = nums[i++], gid = nums[i++], chmod = nums[i++], atime = nums[i++], mtime = nums[i++];
      const segs = nums[i++];
      const first = i;
      i += 2 * segs;
      let fd: number;
      try {
        fd = fs.openSync(path, flags, perms & 0o777);
      } catch (err) {
        return fail(path, 'creating', err);
      }
      try {
        for (let k = first; k < i; k += 2) {
          const pos = nums[k];
          const length = nums[k + 1];
          let done = 0;
          try {
            while (done < length) done += fs.writeSync(fd, data as Uint8Array, at + pos + done, length - done, pos + done);
          } catch (err) {
            return fail(path, 'writing', err);
          }
        }
        // Trailing zeros or holes were not written: the length says where the file ends.
        if (end !== size) {
          try {
            fs.ftruncateSync(fd, size);
          } catch (err) {
            return fail(path, 'setting the length', err);
          }
        }
        // Owners first: chown clears set-id bits, and the mode set after it is the volume's.
        if (uid >= 0) quietly(() => fs.fchownSync(fd, uid, gid));
        if (chmod) quietly(() => fs.fchmodSync(fd, perms));
        if (!Number.isNaN(mtime)) quietly(() => fs.futimesSync(fd, time(atime), time(mtime)));
      } finally {
        quietly(() => fs.closeSync(fd));
      }
    } else {
      const target = names[n++];
      const uid = nums[i++], gid = nums[i++], atime = nums[i++], mtime = nums[i++];
      try {
        fs.symlinkSync(target, path);
      } catch (err) {
        return fail(path, 'creating a symbolic link', err);
      }
      if (uid >= 0) quietly(() => fs.lchownSync(path, uid, gid));
      if (!Number.isNaN(mtime)) quietly(() => fs.lutimesSync(path, time(atime), time(mtime)));
    }
  }
  return null;
}
