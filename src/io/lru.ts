/** A map that forgets its least recently used entries beyond `capacity`; `pinned` entries are never dropped. */
export class Lru<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number, private readonly pinned: (k: K) => boolean = () => false) {}

  get(k: K): V | undefined {
    const v = this.map.get(k);
    if (v !== undefined) {
      this.map.delete(k);
      this.map.set(k, v);
    }
    return v;
  }

  set(k: K, v: V): void {
    this.map.delete(k);
    this.map.set(k, v);
    if (this.map.size <= this.capacity) return;
    for (const key of this.map.keys()) {
      if (this.map.size <= this.capacity) break;
      if (!this.pinned(key)) this.map.delete(key);
    }
  }

  delete(k: K): void {
    this.map.delete(k);
  }
}
