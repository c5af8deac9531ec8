import { Lru } from '../../io/lru.js';

export { Lru };

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
