import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import { VdiskError } from '../errors.js';
import type { Filesystem, FsStats } from '../filesystems/filesystem.js';
import { fileStream } from '../filesystems/filesystem.js';
import { baseName, walkTree } from './tree.js';

export interface TarOptions {
  onWarning?: (message: string) => void;
  onProgress?: (bytes: number, files: number) => void;
}

const TYPES: Partial<Record<FsStats['type'], 'file' | 'directory' | 'symlink' | 'block-device' | 'character-device' | 'fifo'>> = {
  file: 'file',
  directory: 'directory',
  symlink: 'symlink',
  block: 'block-device',
  char: 'character-device',
  fifo: 'fifo',
};

/**
 * The tree under PATH as a tar stream, as virt-tar-out writes it: names relative to PATH (a file
 * alone is named by its base name), modes, owners, times, symlinks, hard links as links to the first
 * name, device nodes; names or link targets too long for ustar go in pax headers (tar-stream's choice).
 */
export async function tarTree(fs: Filesystem, path: string, out: Writable, options: TarOptions = {}): Promise<{ entries: number; bytes: number }> {
  // The pack's own buffer, as the output's, holds a few MiB: small files' entries go out in large writes.
  const pack = tarStream.pack({ highWaterMark: 4 * 1024 * 1024 });
  const done = pipeline(pack, out);
  const linked = new Map<number, string>();
  let entries = 0;
  let bytes = 0;
  try {
    const start = await fs.resolve(path, true);
    const startName = baseName(start.path);
    for await (const entry of walkTree(fs, path)) {
      const { stats } = entry;
      if (entry.revisited) {
        options.onWarning?.(`/${entry.rel}: directory met twice (a loop or a linked directory); not entered again`);
        continue;
      }
      let name = entry.rel === '' ? (stats.type === 'directory' ? '.' : startName) : entry.rel;
      const type = TYPES[stats.type];
      if (!type) {
        options.onWarning?.(`/${entry.rel}: ${stats.type} node left out (tar has no type for it)`);
        continue;
      }
      if (type === 'directory' && name !== '.') name += '/';
      const header: tarStream.Headers = {
        name: name === '.' ? './' : name,
        mode: stats.mode & 0o7777,
        uid: stats.uid,
        gid: stats.gid,
        mtime: new Date((stats.mtime?.sec ?? 0) * 1000 + Math.floor((stats.mtime?.nsec ?? 0) / 1e6)),
        type,
      };
      paxOverflow(header, stats);
      if (stats.type === 'symlink') header.linkname = await fs.reader.readlink(entry.node);
      if (stats.rdev) {
        header.devmajor = stats.rdev.major;
        header.devminor = stats.rdev.minor;
      }
      if (stats.type === 'file' && stats.nlink > 1) {
        const first = linked.get(stats.ino);
        if (first !== undefined) {
          await addEntry(pack, { ...header, type: 'link', linkname: first, size: 0 });
          entries++;
          continue;
        }
        linked.set(stats.ino, name);
      }
      if (stats.type === 'file' && stats.size <= SMALL_FILE) {
        // A small file goes in as one buffer: a stream and a pipeline per file (abort signals,
        // listeners) cost several times the file's own reading on a tree of 20,000.
        const data = await smallFileBytes(fs, entry.node, stats.size, entry.rel);
        bytes += data.length;
        options.onProgress?.(bytes, entries);
        await addEntry(pack, { ...header, size: data.length }, data);
      } else if (stats.type === 'file') {
        header.size = stats.size;
        const file = await fs.reader.open(entry.node);
        const sink = pack.entry(header);
        const src = fileStream(file);
        src.on('data', (b: Buffer) => {
          bytes += b.length;
          options.onProgress?.(bytes, entries);
        });
        await pipeline(src, sink);
      } else {
        await addEntry(pack, header);
      }
      entries++;
    }
    pack.finalize();
  } catch (err) {
    pack.destroy(err as Error);
    await done.catch(() => undefined);
    throw err;
  }
  await done;
  return { entries, bytes };
}

/** ustar's numeric fields as tar-stream writes them: six octal digits for ids, a 32-bit second count. */
const MAX_ID = 0o777777;
const MAX_SECONDS = 2 ** 31 - 1;

/**
 * What ustar cannot hold goes in pax records (POSIX.1-2001), which GNU tar, bsdtar and 7-Zip read: ids
 * of a million and more, and times before 1970 or after January 2038 (tar-stream would wrap them).
 */
function paxOverflow(header: tarStream.Headers, stats: FsStats): void {
  const pax: Record<string, string> = {};
  if (stats.uid > MAX_ID) {
    pax.uid = String(stats.uid);
    header.uid = 0;
  }
  if (stats.gid > MAX_ID) {
    pax.gid = String(stats.gid);
    header.gid = 0;
  }
  const t = stats.mtime;
  if (t && (t.sec < 0 || t.sec > MAX_SECONDS)) {
    pax.mtime = t.nsec ? `${t.sec}.${String(t.nsec).padStart(9, '0')}` : String(t.sec);
    header.mtime = new Date(t.sec < 0 ? 0 : MAX_SECONDS * 1000);
  }
  // tar-stream writes `pax` records (its types do not list the field).
  if (Object.keys(pax).length) (header as tarStream.Headers & { pax?: Record<string, string> }).pax = pax;
}

/** Resolves once the entry is in the pack's output, which waits while the output is not being read. */
function addEntry(pack: tarStream.Pack, header: tarStream.Headers, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error | null) => (err ? reject(err) : resolve());
    if (data) pack.entry(header, data, done);
    else pack.entry(header, done);
  });
}

/** Files up to this size are read whole into one buffer for their entry; larger ones are streamed. */
const SMALL_FILE = 1024 * 1024;

/**
 * A small file's bytes: from the reader's read-ahead when it has them at hand (peekFile), else opened
 * and read. A file whose contents do not match its stated size is damage, refused as a stream's would be.
 */
async function smallFileBytes(fs: Filesystem, node: unknown, size: number, rel: string): Promise<Buffer> {
  let peeked = fs.reader.peekFile?.(node) ?? null;
  if (peeked instanceof Promise) {
    await peeked;
    peeked = fs.reader.peekFile?.(node) ?? null;
  }
  if (peeked && !(peeked instanceof Promise) && peeked.size === size) {
    const data = Buffer.alloc(size);
    for (const p of peeked.pieces) {
      if (p.offset >= 0 && p.length > 0 && p.offset + p.length <= size) p.buf.copy(data, p.offset, p.at, p.at + p.length);
    }
    return data;
  }
  const file = await fs.reader.open(node);
  try {
    const data = Buffer.alloc(size);
    const got = file.size === size ? await file.read(data, 0) : -1;
    if (got !== size) throw new VdiskError('CORRUPT', `${fs.name}: /${rel}: ${Math.max(0, got === -1 ? file.size : got)} bytes of content, ${size} by its metadata`);
    return data;
  } finally {
    await file.close?.();
  }
}
