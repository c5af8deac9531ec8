/** A map that forgets its least recently used entries beyond `capacity`; `pinned` entries are never dropped. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  /**
   * Where eviction looks for the oldest entry: one iterator kept across calls. A Map keeps insertion
   * order with deleted slots left as holes until it is rehashed, so a fresh `keys()` per eviction
   * stepped over every hole the evictions and touches before it left at the front: a cost per call
   * that grew with the capacity (an inode cache of 4096 spent more in `set` than in parsing).
   * Entries before the iterator are all deleted, or pinned when it passed them; those are met again
   * when it runs out and starts over.
   */
  private oldest: Iterator<K> | null = null;

  constructor(private readonly capacity: number, private readonly pinned: (k: K) => boolean = () => false) {}

  /** The key used last, already the most recent: asked again (stat, then open), it is not moved again. */
  private newest: K | undefined;

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined && k !== this.newest) {
      this.map.delete(k);
      this.map.set(k, v);
      this.newest = k;
    }
    return v;
  }

  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    this.newest = k;
    if (this.map.size <= this.capacity) return;
    // At most one fresh start per call: when every entry is pinned, the map stays over capacity.
    let restarted = false;
    while (this.map.size > this.capacity) {
      const next = (this.oldest ??= this.map.keys()).next();
      if (next.done) {
        if (restarted) break;
        restarted = true;
        this.oldest = this.map.keys();
        continue;
      }
      if (!this.pinned(next.value)) this.map.delete(next.value);
    }
  }

  delete(k: K): void {
    this.map.delete(k);
    if (k === this.newest) this.newest = undefined;
  }
}
