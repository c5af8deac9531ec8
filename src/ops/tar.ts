import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
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
  const pack = tarStream.pack();
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
      if (stats.type === 'file') {
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

function addEntry(pack: tarStream.Pack, header: tarStream.Headers): Promise<void> {
  return new Promise((resolve, reject) => {
    pack.entry(header, (err) => (err ? reject(err) : resolve()));
  });
}
