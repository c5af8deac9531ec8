import type { Filesystem, FsDirEntry, FsReader, FsStats } from '../filesystems/filesystem.js';

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
  const walk = new TreeWalk(fs.reader, start.node);
  for (;;) {
    const step = walk.fill();
    if (step === STEP_FULL) {
      yield walk.take();
      continue;
    }
    if (step === STEP_DONE) {
      if (walk.batch.length > 0) yield walk.take();
      return;
    }
    const item = walk.item as WalkItem<N>;
    const id = walk.itemId;
    if (step === STEP_STAT) {
      // What is there goes first: the caller works on it while the volume is read, and has it all
      // should this stat fail.
      if (walk.batch.length > 0) yield walk.take();
      if (!walk.add(item, id, await fs.reader.stat(item.node))) continue;
    }
    // A directory: its entry goes out before the walk waits for its listing.
    yield walk.take();
    walk.expand(item, id, await (item.listing ?? fs.reader.readdir(item.node)));
  }
}

/** An entry waiting on the walk's stack. Every item has all the fields from the start (none added later): one shape. */
interface WalkItem<N> {
  rel: string;
  name: string;
  parent: number;
  node: N;
  type: FsDirEntry<N>['type'] | undefined;
  listing: Promise<FsDirEntry<N>[]> | undefined;
}

/** What TreeWalk.fill stopped for. */
const STEP_DONE = 0;
const STEP_FULL = 1;
/** `item` needs a stat that must wait. */
const STEP_STAT = 2;
/** `item` is a directory whose entries must be listed. */
const STEP_DIRECTORY = 3;

/**
 * The walk's state, and the part of it that never waits: `fill` takes entries off the stack for as
 * long as their stats are at hand. The generator above does only the waiting; kept apart, the loop
 * V8 optimizes is this small one rather than the generator's whole state machine.
 */
class TreeWalk<N> {
  private readonly seen = new Set<number>();
  // Entries are told apart by number, not by path: a damaged volume's names may hold a '/'.
  private ids = 0;
  private readonly stack: WalkItem<N>[];
  // Where the directories are on the stack, in stack order: the look-ahead finds them without
  // stepping over the files between (a directory of 100 files had every entry scan 64 of them).
  private readonly dirsAt: number[] = [];
  batch: TreeEntry<N>[] = [];
  /** The item `fill` stopped at (STEP_STAT, STEP_DIRECTORY), and its id. */
  item: WalkItem<N> | null = null;
  itemId = -1;

  constructor(private readonly reader: FsReader<N>, root: N) {
    this.stack = [{ rel: '', name: '', parent: -1, node: root, type: undefined, listing: undefined }];
  }

  take(): TreeEntry<N>[] {
    const b = this.batch;
    this.batch = [];
    return b;
  }

  fill(): number {
    const { stack, dirsAt, reader } = this;
    while (stack.length > 0) {
      const item = stack.pop() as WalkItem<N>;
      if (dirsAt.length > 0 && dirsAt[dirsAt.length - 1] === stack.length) dirsAt.pop();
      const id = this.ids++;
      this.listAhead();
      let stats: FsStats | null = null;
      try {
        stats = reader.statNow ? reader.statNow(item.node) : null;
      } catch {
        // stat words the same failure, after the entries before it are handed over.
      }
      this.item = item;
      this.itemId = id;
      if (!stats) return STEP_STAT;
      if (this.add(item, id, stats)) return STEP_DIRECTORY;
      if (this.batch.length >= BATCH) return STEP_FULL;
    }
    return STEP_DONE;
  }

  /**
   * The next directories of the walk are listed while this entry is handled: a walk that waits for
   * each directory's blocks in turn spends most of a tree of small files waiting for the volume.
   */
  private listAhead(): void {
    const { stack, dirsAt } = this;
    for (let d = dirsAt.length - 1, started = 0; d >= 0 && started < LISTINGS_AHEAD && dirsAt[d] >= stack.length - LOOKAHEAD; d--, started++) {
      const next = stack[dirsAt[d]];
      if (!next.listing) {
        next.listing = this.reader.readdir(next.node);
        // Its failure is reported when the walk gets there (or never, if the walk skips it).
        next.listing.catch(() => undefined);
      }
    }
  }

  /** Puts the entry in the batch; true for a directory to be entered (met for the first time). */
  add(item: WalkItem<N>, id: number, stats: FsStats): boolean {
    const { rel, name, parent, node } = item;
    if (stats.type === 'directory' && this.seen.has(stats.ino)) {
      this.batch.push({ rel, name, id, parent, node, stats, revisited: true });
      return false;
    }
    this.batch.push({ rel, name, id, parent, node, stats, revisited: false });
    if (stats.type !== 'directory') return false;
    this.seen.add(stats.ino);
    return true;
  }

  /** A directory's entries onto the stack, in reverse so that they come out in the directory's own order. */
  expand(item: WalkItem<N>, id: number, entries: FsDirEntry<N>[]): void {
    const { stack, dirsAt } = this;
    const rel = item.rel;
    for (let i = entries.length - 1; i >= 0; i--) {
      const e = entries[i];
      if (e.type === 'directory') dirsAt.push(stack.length);
      stack.push({ rel: rel === '' ? e.name : `${rel}/${e.name}`, name: e.name, parent: id, node: e.node, type: e.type, listing: undefined });
    }
  }
}

/** The last component of a path inside a volume ('' for the root). */
export function baseName(path: string): string {
  const parts = path.split('/').filter((s) => s !== '' && s !== '.');
  return parts.length ? parts[parts.length - 1] : '';
}
