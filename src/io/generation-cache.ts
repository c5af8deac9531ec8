/**
 * A bounded cache that keeps what was used recently: two generations of at most limit/2 entries each.
 * A hit in the older generation moves the entry to the younger; when the younger fills, it becomes the
 * older and the oldest generation is dropped. Nearly what a least-recently-used list keeps, at the cost
 * of one Map lookup per hit (a strict LRU re-inserts on every hit, which showed in profiles of tree walks).
 * At most `limit` entries are held however large the volume, so memory stays bounded on any image.
 */
export class GenerationCache<K, V> {
  private young = new Map<K, V>();
  private old = new Map<K, V>();
  private readonly half: number;

  constructor(limit: number) {
    this.half = Math.max(1, Math.floor(limit / 2));
  }

  get(key: K): V | undefined {
    const v = this.young.get(key);
    if (v !== undefined) return v;
    const o = this.old.get(key);
    if (o !== undefined) {
      this.old.delete(key);
      this.put(key, o);
    }
    return o;
  }

  set(key: K, value: V): void {
    this.old.delete(key);
    this.put(key, value);
  }

  private put(key: K, value: V): void {
    this.young.set(key, value);
    if (this.young.size >= this.half) {
      this.old = this.young;
      this.young = new Map();
    }
  }

  delete(key: K): void {
    this.young.delete(key);
    this.old.delete(key);
  }

  get size(): number {
    return this.young.size + this.old.size;
  }
}
