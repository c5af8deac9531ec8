import { GenerationCache } from '../io/generation-cache.js';
import { typeFromMode, type FileType, type FsDirEntry } from './filesystem.js';

/** A directory entry as an inode-numbered file system stores it: name (decoded by the parser), inode, type when the entry says. */
export interface RawListedEntry {
  name: string;
  ino: number;
  /** null when the inode must be read to know it (no file-type field in the entry). */
  type: FileType | null;
}

/** One directory's entries, with lookup maps built the first time a lookup needs them. */
interface Listing {
  entries: RawListedEntry[];
  byName?: Map<string, number>;
  byFolded?: Map<string, number>;
}

/**
 * The directory listings of a reader whose nodes are inode numbers (ext, XFS): the last few
 * directories parsed, kept so that a path walk and a readdir of the same directory parse it once.
 * A directory of more than `maxEntries` names is not kept (memory stays bounded by both limits).
 */
export class ListingCache {
  private readonly listings: GenerationCache<number, Listing>;

  constructor(
    limit: number,
    private readonly maxEntries: number,
    private readonly load: (dir: number) => Promise<RawListedEntry[]>,
    private readonly modeOf: (ino: number) => Promise<number>,
  ) {
    this.listings = new GenerationCache(limit);
  }

  private async listing(dir: number): Promise<Listing> {
    const hit = this.listings.get(dir);
    if (hit) return hit;
    const raw = await this.load(dir);
    const listing: Listing = { entries: raw };
    if (listing.entries.length <= this.maxEntries) this.listings.set(dir, listing);
    return listing;
  }

  /** The entries, the type of each from its inode where the entry does not say it. */
  async readdir(dir: number): Promise<FsDirEntry<number>[]> {
    const out: FsDirEntry<number>[] = [];
    for (const e of (await this.listing(dir)).entries) {
      const type = e.type ?? typeFromMode(await this.modeOf(e.ino));
      out.push({ name: e.name, type, node: e.ino });
    }
    return out;
  }

  /** The inode of `name` (the first entry of a name wins), or null. */
  async lookup(dir: number, name: string): Promise<number | null> {
    const listing = await this.listing(dir);
    if (!listing.byName) {
      listing.byName = new Map();
      for (const e of listing.entries) if (!listing.byName.has(e.name)) listing.byName.set(e.name, e.ino);
    }
    return listing.byName.get(name) ?? null;
  }

  /** The inode of the first entry whose name folds (by `fold`, one folding per cache) as `name` does, or null. */
  async lookupFolded(dir: number, name: string, fold: (s: string) => string): Promise<number | null> {
    const listing = await this.listing(dir);
    if (!listing.byFolded) {
      listing.byFolded = new Map();
      for (const e of listing.entries) if (!listing.byFolded.has(fold(e.name))) listing.byFolded.set(fold(e.name), e.ino);
    }
    return listing.byFolded.get(fold(name)) ?? null;
  }
}
