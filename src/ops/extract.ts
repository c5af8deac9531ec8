import { constants } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, open, symlink, utimes, type FileHandle } from 'node:fs/promises';
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
  // Host paths of files already written, by inode, for hard links.
  const linked = new Map<number, string>();
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
          try {
            await link(first, host);
            result.hardlinks++;
            break;
          } catch {
            // A host without hard links: fall through to a copy.
          }
        }
        const file = await fs.reader.open(entry.node);
        try {
          await copyFile(file, host, (n) => {
            result.bytes += n;
            options.onProgress?.(result.bytes, total, result.files);
          });
        } finally {
          await file.close?.();
        }
        await applyMeta(host, stats, owners, false);
        if (stats.nlink > 1) linked.set(stats.ino, host);
        result.files++;
        options.onProgress?.(result.bytes, total, result.files);
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

/** Writes only the file's data: holes and all-zero chunks stay holes, the length is set at the end. */
async function copyFile(file: FsFile, host: string, onBytes: (n: number) => void): Promise<void> {
  let out: FileHandle;
  try {
    out = await open(host, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new VdiskError('USAGE', `${host}: already exists; vdisk get writes only new files`);
    throw fromSystemError(err, host, 'creating');
  }
  try {
    const ranges = file.dataRanges ? await file.dataRanges() : [{ offset: 0, length: file.size }];
    const buf = allocIoBuffer(Math.min(CHUNK, Math.max(1, file.size)));
    for (const r of ranges) {
      const end = Math.min(file.size, r.offset + r.length);
      for (let pos = r.offset; pos < end; ) {
        const want = Math.min(buf.length, end - pos);
        const view = buf.subarray(0, want);
        const got = await file.read(view, pos);
        if (got <= 0) break;
        const data = view.subarray(0, got);
        if (!isZero(data)) {
          try {
            let done = 0;
            while (done < got) done += (await out.write(data, done, got - done, pos + done)).bytesWritten;
          } catch (err) {
            throw fromSystemError(err, host, 'writing');
          }
        }
        pos += got;
        onBytes(got);
      }
    }
    await out.truncate(file.size).catch((err) => {
      throw fromSystemError(err, host, 'setting the length');
    });
  } finally {
    await out.close().catch(() => undefined);
  }
}

function seconds(t: FsTime): number {
  return t.sec + t.nsec / 1e9;
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
