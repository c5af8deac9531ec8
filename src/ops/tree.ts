import type { Filesystem, FsDirEntry, FsStats } from '../filesystems/filesystem.js';

/** Entries of the walk's stack looked at for directories to list early, and how many of them are listed ahead. */
const LOOKAHEAD = 64;
const LISTINGS_AHEAD = 4;

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

/** Entries handed over at most in one batch of `walkTreeBatches`. */
const BATCH = 256;

/**
 * Walks the tree under `path` in pre-order, directories before their contents, using the reader's node
 * handles (no path is resolved twice). Each directory is entered once: a volume whose directories link
 * back to an ancestor yields a finite walk, and the repeat is flagged for the caller to warn about.
 */
export async function* walkTree<N>(fs: Filesystem<N>, path: string): AsyncGenerator<TreeEntry<N>> {
  for await (const batch of walkTreeBatches(fs, path)) yield* batch;
}

/**
 * walkTree's entries, in the same order, in batches: a promise per batch rather than per entry. A batch
 * is handed over when full and before the walk waits for a directory's listing, so that the caller
 * works on what is there meanwhile. Stats come without waiting where the reader has them (statNow).
 */
export async function* walkTreeBatches<N>(fs: Filesystem<N>, path: string): AsyncGenerator<TreeEntry<N>[]> {
  const start = await fs.resolve(path, true);
  const reader = fs.reader;
  const seen = new Set<number>();
  // Entries are told apart by number, not by path: a damaged volume's names may hold a '/'.
  let ids = 0;
  type Item = { rel: string; name: string; parent: number; node: N; type?: FsDirEntry<N>['type']; listing?: Promise<FsDirEntry<N>[]> };
  // Every item has the same fields from the start (none added later): one shape, or the walk's
  // optimized code is thrown away each time it meets another.
  const stack: Item[] = [{ rel: '', name: '', parent: -1, node: start.node, type: undefined, listing: undefined }];
  // Where the directories are on the stack, in stack order: the look-ahead below finds them without
  // stepping over the files between (a directory of 100 files had every entry scan 64 of them).
  const dirsAt: number[] = [];
  let batch: TreeEntry<N>[] = [];
  while (stack.length > 0) {
    const item = stack.pop() as Item;
    if (dirsAt.length > 0 && dirsAt[dirsAt.length - 1] === stack.length) dirsAt.pop();
    const { rel, name, parent, node } = item;
    const id = ids++;
    // The next directories of the walk are listed while this entry is handled: a walk that waits for
    // each directory's blocks in turn spends most of a tree of small files waiting for the volume.
    for (let d = dirsAt.length - 1, started = 0; d >= 0 && started < LISTINGS_AHEAD && dirsAt[d] >= stack.length - LOOKAHEAD; d--, started++) {
      const next = stack[dirsAt[d]];
      if (!next.listing) {
        next.listing = reader.readdir(next.node);
        // Its failure is reported when the walk gets there (or never, if the walk skips it).
        next.listing.catch(() => undefined);
      }
    }
    let stats: FsStats | null = null;
    try {
      stats = reader.statNow?.(node) ?? null;
    } catch {
      // stat below words the same failure, after the entries before it are handed over.
    }
    if (!stats) {
      // What is there goes first: the caller works on it while the volume is read, and has it all
      // should this stat fail.
      if (batch.length > 0) {
        yield batch;
        batch = [];
      }
      stats = await reader.stat(node);
    }
    if (stats.type === 'directory') {
      if (seen.has(stats.ino)) {
        batch.push({ rel, name, id, parent, node, stats, revisited: true });
        continue;
      }
      seen.add(stats.ino);
    }
    batch.push({ rel, name, id, parent, node, stats, revisited: false });
    if (stats.type === 'directory' || batch.length >= BATCH) {
      yield batch;
      batch = [];
    }
    if (stats.type !== 'directory') continue;
    const entries = await (item.listing ?? reader.readdir(node));
    // Pushed in reverse so that entries come out in the directory's own order.
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      if (e.type === 'directory') dirsAt.push(stack.length);
      stack.push({ rel: rel === '' ? e.name : `${rel}/${e.name}`, name: e.name, parent: id, node: e.node, type: e.type, listing: undefined });
    }
  }
  if (batch.length > 0) yield batch;
}

/** The last component of a path inside a volume ('' for the root). */
export function baseName(path: string): string {
  const parts = path.split('/').filter((s) => s !== '' && s !== '.');
  return parts.length ? parts[parts.length - 1] : '';
}
