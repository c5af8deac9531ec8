/**
 * The host side of an extraction as a list of operations: write a file whose data waits in a shared
 * buffer or lies in the image file, make a symbolic link. Each lands in a directory already made, so
 * batches do not depend on each other. One function carries them out, on the main thread or in a
 * worker (see host-writer.ts), so both places do exactly the same thing.
 */

/**
 * A batch of operations, packed for the trip to the worker: numbers in one array, names in another
 * (a message of a few hundred small objects cost the main thread more to clone than the worker spent
 * on their system calls). Per operation, in `nums`:
 * - 1, flags, perms, at, end, size, uid, gid, chmod, atime, mtime, n, then n [file offset, length]
 *   pairs: a new file (flags: O_EXCL|O_NOFOLLOW) with permission bits `perms`, whose data lies at `at`
 *   in the batch's buffer laid out as in the file; the pairs are what is written (all-zero ranges are
 *   left out and stay holes); `end` is where the written data ends, and the length is set when it is not
 *   `size`. Owner (uid -1: left), mode (chmod 1) and times (NaN: left) are set through the descriptor.
 *   Names: path.
 * - 2, uid, gid, atime, mtime: a symbolic link, then its owner and times where the host allows.
 *   Names: path, target.
 * - 3, flags, perms, fd, position, size, uid, gid, chmod, atime, mtime: a new file as for 1, whose
 *   `size` bytes are read here from `position` of the host file open as `fd` (the image: see
 *   DiskImage.hostRange); all zeros, they are not written and stay a hole. Names: path.
 * Times are seconds to the microsecond.
 */
export interface HostBatch {
  nums: number[];
  names: string[];
}

/** How a new file gets the volume's owner, mode and times: owner (uid -1: left), chmod, times (NaN: left). */
export interface FileMeta {
  perms: number;
  chmod: boolean;
  uid: number;
  gid: number;
  atime: number;
  mtime: number;
}

/** What every new file's operation says: where, how it is opened, how long it is, its metadata. */
interface NewFile extends FileMeta {
  path: string;
  flags: number;
  size: number;
}

/** A file whose data lies at `at` in the batch's buffer (op 1). */
export interface FileOp extends NewFile {
  at: number;
  /** [file offset, length] pairs of the data to write. */
  segs: number[];
  end: number;
}

export function queueFile(b: HostBatch, f: FileOp): void {
  b.nums.push(1, f.flags, f.perms, f.at, f.end, f.size, f.uid, f.gid, f.chmod ? 1 : 0, f.atime, f.mtime, f.segs.length / 2, ...f.segs);
  b.names.push(f.path);
}

/** A file whose bytes lie in one piece of a host file (op 3). */
export interface HostFileOp extends NewFile {
  fd: number;
  position: number;
}

export function queueHostFile(b: HostBatch, f: HostFileOp): void {
  b.nums.push(3, f.flags, f.perms, f.fd, f.position, f.size, f.uid, f.gid, f.chmod ? 1 : 0, f.atime, f.mtime);
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
  readSync(fd: number, buf: Uint8Array, offset: number, length: number, position: number): number;
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
 * What an executor keeps from batch to batch for the files it reads itself (op 3): a buffer holding
 * bytes [from, to) of descriptor `fd`, and zeros to compare with. Empty at first: newHostScratch().
 */
export interface HostScratch {
  buf: Buffer | null;
  fd: number;
  from: number;
  to: number;
  zeros: Buffer | null;
}

export function newHostScratch(): HostScratch {
  return { buf: null, fd: -1, from: 0, to: 0, zeros: null };
}

/**
 * Carries out a batch's operations in order, stopping at the first failure, which it returns (null when
 * all went well). Metadata the host refuses (an owner on a file system without owners) is left as the
 * host made it, as tar does. Self-contained on purpose: the worker runs this function's own source text,
 * so it may use nothing from outside its parameters.
 */
export function applyHostOps(fs: HostFs, nums: ArrayLike<number>, names: string[], data: Uint8Array | null, scratch: HostScratch): HostOpFailure | null {
  // The most read of a host file at once (op 3): the scratch buffers stay this small.
  const hostRead = 1024 * 1024;
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
  const writeAll = (fd: number, buf: Uint8Array, at: number, length: number, pos: number): void => {
    let done = 0;
    while (done < length) done += fs.writeSync(fd, buf, at + done, length - done, pos + done);
  };
  const isZero = (buf: Buffer, at: number, length: number): boolean => {
    // Most data shows a non-zero byte at once; only then is the whole piece compared.
    for (let k = at; k < at + Math.min(16, length); k++) if (buf[k] !== 0) return false;
    if (!scratch.zeros) scratch.zeros = Buffer.alloc(hostRead);
    return buf.subarray(at, at + length).equals(scratch.zeros.subarray(0, length));
  };
  /**
   * Where `length` (at most hostRead) bytes at `position` of `fd` lie in scratch.buf, -1 when the file
   * ends first. Writers lay a tree's small files out one after another: a file is read together with
   * those of the batch that follow it closely (up to `runEnd`, within hostRead), and they then come from
   * memory, one read for many files instead of one each.
   */
  const readHost = (fd: number, position: number, length: number, runEnd: number): number => {
    if (scratch.fd === fd && position >= scratch.from && position + length <= scratch.to) return position - scratch.from;
    const buf = (scratch.buf ??= Buffer.allocUnsafeSlow(hostRead));
    const want = Math.max(length, Math.min(hostRead, runEnd - position));
    scratch.fd = -1;
    let got = 0;
    while (got < want) {
      const r = fs.readSync(fd, buf, got, want - got, position + got);
      if (r <= 0) break;
      got += r;
    }
    scratch.fd = fd;
    scratch.from = position;
    scratch.to = position + got;
    return got >= length ? 0 : -1;
  };
  // Where each file read from a host file (op 3) ends, and where the run of the batch's files lying
  // close after one another from it ends: read ahead that far. Ops are walked once forwards to find the
  // op 3s, and their runs backwards.
  const hostEnds: number[] = [];
  for (let k = 0; k < nums.length;) {
    const kind = nums[k];
    if (kind === 3) hostEnds.push(nums[k + 4], nums[k + 4] + nums[k + 5]);
    k += kind === 1 ? 12 + 2 * nums[k + 11] : kind === 2 ? 5 : 11;
  }
  const runEnds: number[] = new Array(hostEnds.length / 2);
  for (let j = hostEnds.length / 2 - 1; j >= 0; j--) {
    const end = hostEnds[2 * j + 1];
    const gap = j + 1 < runEnds.length ? hostEnds[2 * j + 2] - end : -1;
    runEnds[j] = gap >= 0 && gap < 65536 ? Math.max(end, runEnds[j + 1]) : end;
  }
  let hostOp = 0;
  let i = 0;
  let n = 0;
  while (i < nums.length) {
    const kind = nums[i++];
    const path = names[n++];
    if (kind === 2) {
      const target = names[n++];
      const uid = nums[i++], gid = nums[i++], atime = nums[i++], mtime = nums[i++];
      try {
        fs.symlinkSync(target, path);
      } catch (err) {
        return fail(path, 'creating a symbolic link', err);
      }
      if (uid >= 0) quietly(() => fs.lchownSync(path, uid, gid));
      if (!Number.isNaN(mtime)) quietly(() => fs.lutimesSync(path, time(atime), time(mtime)));
      continue;
    }
    // A file: op 1 (data in the batch's buffer) or op 3 (data in a host file).
    const flags = nums[i++], perms = nums[i++];
    const at = nums[i++], end1 = nums[i++], size = nums[i++];
    const uid = nums[i++], gid = nums[i++], chmod = nums[i++], atime = nums[i++], mtime = nums[i++];
    const first = i;
    if (kind === 1) i += 1 + 2 * nums[i];
    let fd: number;
    try {
      fd = fs.openSync(path, flags, perms & 0o777);
    } catch (err) {
      return fail(path, 'creating', err);
    }
    try {
      let end = 0;
      if (kind === 1) {
        try {
          for (let k = first + 1; k < i; k += 2) writeAll(fd, data as Uint8Array, at + nums[k], nums[k + 1], nums[k]);
        } catch (err) {
          return fail(path, 'writing', err);
        }
        end = end1;
      } else {
        // Op 3: `at` is the descriptor to read and `end1` the position in it.
        const runEnd = runEnds[hostOp++];
        for (let pos = 0; pos < size; pos += hostRead) {
          const want = Math.min(hostRead, size - pos);
          let from: number;
          try {
            from = readHost(at, end1 + pos, want, runEnd);
          } catch (err) {
            return fail(path, 'reading its data from the image', err);
          }
          if (from < 0) return fail(path, 'reading its data from the image', { code: 'EIO', message: 'the image ended before the file' });
          const buf = scratch.buf as Buffer;
          if (isZero(buf, from, want)) continue;
          try {
            writeAll(fd, buf, from, want, pos);
          } catch (err) {
            return fail(path, 'writing', err);
          }
          end = pos + want;
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
  }
  return null;
}
