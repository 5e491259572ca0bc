/**
 * mem:// cache get/set against lru-cache doing the same duty (a copy in, a copy out: JSON.stringify on set,
 * JSON.parse on get), in one run. The two sides alternate in short rounds and each keeps its best round,
 * so a busy machine slows both alike. Run: `npx tsx bench/cache-mem.ts` (`BENCH_N`, `BENCH_ROUNDS` set the
 * round size and count; on a busy machine many short rounds, e.g. 500 × 300, give steadier figures).
 */
import { LRUCache } from 'lru-cache';
import { createCache } from '../src/core/cache/cache.js';
import { MemoryCacheDriver } from '../src/adapters/memory/cache-driver.js';

const N = Number(process.env.BENCH_N ?? 5_000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const keys = Array.from({ length: N }, (_, i) => `user/${i}`);
const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'dev'], active: true };

const cache = createCache(new MemoryCacheDriver({ maxEntries: 100_000, maxBytes: 256 * 1024 * 1024 }));
const lru = new LRUCache<string, string>({ max: 100_000 });
const lruObjects = new LRUCache<string, object>({ max: 100_000 });

async function best(fn: () => Promise<void> | void): Promise<number> {
  const started = performance.now();
  await fn();
  return N / ((performance.now() - started) / 1000);
}

async function compare(name: string, ours: () => Promise<void> | void, theirs: () => Promise<void> | void): Promise<void> {
  let a = 0;
  let b = 0;
  for (let r = 0; r < ROUNDS; r++) {
    a = Math.max(a, await best(ours));
    b = Math.max(b, await best(theirs));
  }
  const fmt = (n: number): string => Math.round(n).toLocaleString('en-US').padStart(10);
  console.log(`${name.padEnd(34)} stowage ${fmt(a)} ops/s   lru-cache ${fmt(b)} ops/s   ${(a / b).toFixed(2)}x`);
}

await compare(
  'set (await, one at a time)',
  async () => {
    for (const k of keys) await cache.set(k, value);
  },
  async () => {
    for (const k of keys) await lru.set(k, JSON.stringify(value));
  },
);
await compare(
  'get (await, one at a time)',
  async () => {
    for (const k of keys) await cache.get(k);
  },
  async () => {
    for (const k of keys) await JSON.parse(lru.get(k) as string);
  },
);
await compare(
  'getOrSet hit vs get (await)',
  async () => {
    for (const k of keys) await cache.getOrSet(k, async () => value);
  },
  async () => {
    for (const k of keys) await JSON.parse(lru.get(k) as string);
  },
);
await compare(
  'getMany (100 per call)',
  async () => {
    for (let i = 0; i < N; i += 100) await cache.getMany(keys.slice(i, i + 100));
  },
  async () => {
    for (let i = 0; i < N; i += 100) await keys.slice(i, i + 100).map((k) => JSON.parse(lru.get(k) as string));
  },
);
await compare(
  'get vs lru-cache without copies (sync)',
  async () => {
    for (const k of keys) await cache.get(k);
  },
  () => {
    for (const k of keys) lruObjects.set(k, value);
    for (const k of keys) lruObjects.get(k);
  },
);
await cache.close();
