import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Lru } from '../src/io/lru.js';
import { GenerationCache } from '../src/io/generation-cache.js';

type Op = { kind: 'set' | 'get' | 'delete'; key: number };
const ops = fc.array(fc.record({ kind: fc.constantFrom<'set' | 'get' | 'delete'>('set', 'set', 'get', 'delete'), key: fc.integer({ min: 0, max: 40 }) }), { maxLength: 400 });

test('Lru keeps exactly the most recently used entries, as a list-based model does', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 12 }), ops, (capacity, list: Op[]) => {
      const lru = new Lru<number, number>(capacity);
      // The model: keys oldest first.
      let model: number[] = [];
      for (const { kind, key } of list) {
        if (kind === 'set') {
          lru.set(key, key * 10);
          model = model.filter((k) => k !== key).concat(key);
          if (model.length > capacity) model = model.slice(model.length - capacity);
        } else if (kind === 'get') {
          const v = lru.get(key);
          assert.equal(v, model.includes(key) ? key * 10 : undefined);
          if (model.includes(key)) model = model.filter((k) => k !== key).concat(key);
        } else {
          lru.delete(key);
          model = model.filter((k) => k !== key);
        }
      }
      for (let k = 0; k <= 40; k++) assert.equal(lru.get(k) !== undefined, model.includes(k), `key ${k}`);
    }),
  );
});

test('Lru never drops a pinned entry, and drops unpinned ones down to its capacity', () => {
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 8 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 300 }), fc.array(fc.integer({ min: 0, max: 40 }), { maxLength: 6 }), (capacity, keys, pins) => {
      const pinned = new Set(pins);
      const lru = new Lru<number, number>(capacity, (k) => pinned.has(k));
      const live = new Set<number>();
      for (const key of keys) {
        lru.set(key, key);
        live.add(key);
        for (const k of [...live]) if (lru.get(k) === undefined) live.delete(k);
        for (const p of pinned) if (keys.slice(0, keys.indexOf(key) + 1).includes(p)) assert.ok(live.has(p), `pinned ${p} kept`);
        const unpinned = [...live].filter((k) => !pinned.has(k)).length;
        assert.ok(live.size <= capacity || unpinned === 0 || live.size - unpinned >= capacity, `size ${live.size}, capacity ${capacity}`);
      }
      // Unpinning lets the next set bring it back under the capacity.
      pinned.clear();
      lru.set(1000, 1000);
      let size = 0;
      for (let k = 0; k <= 1000; k++) if (lru.get(k) !== undefined) size++;
      assert.ok(size <= capacity);
    }),
  );
});

test('GenerationCache holds at most its limit and keeps the entries just used', () => {
  fc.assert(
    fc.property(fc.integer({ min: 2, max: 16 }), fc.array(fc.integer({ min: 0, max: 60 }), { maxLength: 300 }), (limit, keys) => {
      const c = new GenerationCache<number, number>(limit);
      for (const k of keys) {
        c.set(k, k);
        assert.ok(c.size <= limit);
        assert.equal(c.get(k), k);
      }
    }),
  );
});
