/**
 * mem:// cache get/set against lru-cache doing the same work (string keys, small JSON objects), in one run.
 * Run: `npx tsx bench/cache-mem.ts`.
 */
import { LRUCache } from 'lru-cache';
import { createCache } from '../src/core/cache/cache.js';
import { MemoryCacheDriver } from '../src/adapters/memory/cache-driver.js';

const N = 10_000;
const ROUNDS = 20;
const keys = Array.from({ length: N }, (_, i) => `user/${i}`);
const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'dev'], active: true };

async function measure(name: string, fn: () => Promise<void> | void): Promise<number> {
  for (let i = 0; i < 3; i++) await fn(); // warm-up
  const started = performance.now();
  for (let r = 0; r < ROUNDS; r++) await fn();
  const opsPerSec = (N * ROUNDS) / ((performance.now() - started) / 1000);
  console.log(`${name.padEnd(44)} ${Math.round(opsPerSec).toLocaleString('en-US').padStart(12)} ops/s`);
  return opsPerSec;
}

const cache = createCache(new MemoryCacheDriver({ maxEntries: 100_000, maxBytes: 256 * 1024 * 1024 }));
// lru-cache given the same duty as the port: a copy in and a copy out, so neither side shares objects with the caller.
const lruCopy = new LRUCache<string, string>({ max: 100_000 });
const lruRaw = new LRUCache<string, object>({ max: 100_000 });

const setOurs = await measure('stowage mem set (await, 1 at a time)', async () => {
  for (const k of keys) await cache.set(k, value);
});
const setLruCopy = await measure('lru-cache set(JSON.stringify) (await)', async () => {
  for (const k of keys) await lruCopy.set(k, JSON.stringify(value));
});
await measure('lru-cache set (object, sync)', () => {
  for (const k of keys) lruRaw.set(k, value);
});
const getOurs = await measure('stowage mem get (await, 1 at a time)', async () => {
  for (const k of keys) await cache.get(k);
});
const getLruCopy = await measure('lru-cache JSON.parse(get) (await)', async () => {
  for (const k of keys) await JSON.parse(lruCopy.get(k) as string);
});
await measure('lru-cache get (object, sync, no copy)', () => {
  for (const k of keys) lruRaw.get(k);
});
await measure('stowage mem get (100 in flight)', async () => {
  for (let i = 0; i < N; i += 100) await Promise.all(keys.slice(i, i + 100).map((k) => cache.get(k)));
});
await measure('stowage mem getMany (100 per call)', async () => {
  for (let i = 0; i < N; i += 100) await cache.getMany(keys.slice(i, i + 100));
});
console.log(`ratio vs lru-cache with copies: set ${(setOurs / setLruCopy).toFixed(2)}x, get ${(getOurs / getLruCopy).toFixed(2)}x`);
await cache.close();
