import type { Filesystem, FsStats } from '../filesystems/filesystem.js';

/** One entry met on a walk: its path relative to the walk's start ('' for the start itself). */
export interface TreeEntry<N = unknown> {
  rel: string;
  /** The entry's own name as the volume has it ('' for the start), and its directory's `id` (-1 for the start). */
  name: string;
  id: number;
  parent: number;
  node: N;
  stats: FsStats;
  /** A directory met a second time (a hard-linked directory or a loop in a damaged volume): not entered. */
  revisited?: boolean;
}

/**
 * Walks the tree under `path` in pre-order, directories before their contents, using the reader's node
 * handles (no path is resolved twice). Each directory is entered once: a volume whose directories link
 * back to an ancestor yields a finite walk, and the repeat is flagged for the caller to warn about.
 */
export async function* walkTree<N>(fs: Filesystem<N>, path: string): AsyncGenerator<TreeEntry<N>> {
  const start = await fs.resolve(path, true);
  const reader = fs.reader;
  const seen = new Set<number>();
  // Entries are told apart by number, not by path: a damaged volume's names may hold a '/'.
  let ids = 0;
  const stack: { rel: string; name: string; parent: number; node: N }[] = [{ rel: '', name: '', parent: -1, node: start.node }];
  while (stack.length > 0) {
    const { rel, name, parent, node } = stack.pop() as { rel: string; name: string; parent: number; node: N };
    const id = ids++;
    const stats = await reader.stat(node);
    if (stats.type === 'directory') {
      if (seen.has(stats.ino)) {
        yield { rel, name, id, parent, node, stats, revisited: true };
        continue;
      }
      seen.add(stats.ino);
    }
    yield { rel, name, id, parent, node, stats };
    if (stats.type !== 'directory') continue;
    const entries = await reader.readdir(node);
    // Pushed in reverse so that entries come out in the directory's own order.
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      stack.push({ rel: rel === '' ? e.name : `${rel}/${e.name}`, name: e.name, parent: id, node: e.node });
    }
  }
}

/** The last component of a path inside a volume ('' for the root). */
export function baseName(path: string): string {
  const parts = path.split('/').filter((s) => s !== '' && s !== '.');
  return parts.length ? parts[parts.length - 1] : '';
}
