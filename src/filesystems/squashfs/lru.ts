/** A map that keeps its `limit` most recently used entries: metadata blocks, inodes, fragment blocks. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  private readonly limit: number;

  constructor(limit: number) {
    this.limit = limit;
  }

  get(key: K): V | undefined {
    const v = this.map.get(key);
    if (v !== undefined) {
      this.map.delete(key);
      this.map.set(key, v);
    }
    return v;
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.limit) this.map.delete(this.map.keys().next().value as K);
  }

  delete(key: K): void {
    this.map.delete(key);
  }
}

/** The promise a cache holds for `key`, made by `make` once; a failed one is dropped so the next asks again. */
export function cached<K, V>(lru: Lru<K, Promise<V>>, key: K, make: () => Promise<V>): Promise<V> {
  let p = lru.get(key);
  if (!p) {
    p = make();
    lru.set(key, p);
    p.catch(() => lru.delete(key));
  }
  return p;
}
