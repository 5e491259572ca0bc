/**
 * The cache port against what an application would pick instead of it: keyv (default in-memory store, and
 * `@keyv/redis`) and cache-manager v7 (its default memory store, a Redis store, and a memory + Redis
 * multi-store) on the same machine and the same Redis, with the same value and keys.
 *
 * What each side guarantees differs, and each figure's note says how:
 * - `mem://` stores a serialised copy and returns a fresh copy; keyv's default store does too (it
 *   serialises into a `Map`); cache-manager's default memory store keeps the caller's object itself, so a
 *   caller mutating what it read changes the cached value, and it has no entry or byte bound.
 * - every Stowage call validates key and value (plain JSON, no lone surrogate, size limit) and stamps the
 *   freshness that stale serving needs; the peers store whatever their serialiser accepts.
 * - `tiered://` keeps its memory tier coherent across nodes (a pub/sub invalidation on every write);
 *   cache-manager's memory + Redis multi-store has no invalidation: another node's write is not seen
 *   until the local copy expires.
 */
import { randomBytes } from 'node:crypto';
import KeyvRedis from '@keyv/redis';
import { createCache as createCacheManager, type Cache as CacheManager } from 'cache-manager';
import { Keyv } from 'keyv';
import { SchemeRegistry } from '../src/core/registry.js';
import { createCache } from '../src/core/cache/cache.js';
import { memCacheScheme } from '../src/adapters/memory/cache-driver.js';
import { redisCacheSchemes } from '../src/adapters/redis/index.js';
import { tieredCacheScheme } from '../src/adapters/tiered/index.js';
import type { Cache } from '../src/ports/cache.js';
import type { JsonValue } from '../src/ports/common.js';
import { inFlight, percentile, stats, type BenchContext, type Benchmark, type Figure, type Pair } from './lib/benchmark.js';

const KEYS = 1_000;
const keys = Array.from({ length: KEYS }, (_, i) => `user/${i}`);
const value: JsonValue = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'dev'], active: true, score: 9.5 };

/** A Stowage cache by URL, with the memory, Redis and tiered schemes registered. */
async function stowage(ctx: BenchContext, url: string): Promise<Cache> {
  const registry = new SchemeRegistry().register(memCacheScheme).register(tieredCacheScheme);
  for (const scheme of redisCacheSchemes) registry.register(scheme);
  const driver = await registry.open('cache', url, { dataDir: ctx.dir, env: process.env, logger: { warn: () => undefined, info: () => undefined, debug: () => undefined } });
  return createCache(driver);
}

function redisUrl(ctx: BenchContext): string {
  const svc = ctx.services.redis;
  if (!svc) ctx.skip('redis unavailable');
  return `${svc.url}/0`;
}

/** The peer's get and set, and how to let it go. */
interface Peer {
  readonly label: string;
  get(key: string): Promise<unknown>;
  set(key: string, v: JsonValue): Promise<unknown>;
  close(): Promise<void>;
}

function keyvPeer(label: string, keyv: Keyv): Peer {
  return { label, get: (k) => keyv.get(k), set: (k, v) => keyv.set(k, v), close: () => keyv.disconnect() };
}

function cacheManagerPeer(label: string, cm: CacheManager): Peer {
  return { label, get: (k) => cm.get(k), set: (k, v) => cm.set(k, v), close: () => cm.disconnect().then(() => undefined) };
}

type PeerKind = 'keyv-memory' | 'cm-memory' | 'keyv-redis' | 'cm-redis' | 'cm-tiered';

function openPeer(ctx: BenchContext, kind: PeerKind, tag: string): Peer {
  const redis = (): KeyvRedis<unknown> => new KeyvRedis(redisUrl(ctx).replace(/\/0$/, ''));
  switch (kind) {
    case 'keyv-memory':
      return keyvPeer('keyv (default store)', new Keyv());
    case 'cm-memory':
      return cacheManagerPeer('cache-manager (memory)', createCacheManager());
    case 'keyv-redis':
      return keyvPeer('keyv + @keyv/redis', new Keyv({ store: redis(), namespace: `kv${tag}` }));
    case 'cm-redis':
      return cacheManagerPeer('cache-manager + @keyv/redis', createCacheManager({ stores: [new Keyv({ store: redis(), namespace: `cm${tag}` })] }));
    case 'cm-tiered':
      return cacheManagerPeer('cache-manager memory + @keyv/redis', createCacheManager({ stores: [new Keyv(), new Keyv({ store: redis(), namespace: `ct${tag}` })] }));
  }
}

async function pair(ctx: BenchContext, url: string, label: string, kind: PeerKind, op: 'get' | 'set', concurrency: number): Promise<Pair> {
  const tag = randomBytes(4).toString('hex');
  const cache = (await stowage(ctx, url)).withNamespace(`peer${tag}`);
  const peer = openPeer(ctx, kind, tag);
  for (const k of keys) {
    await cache.set(k, value);
    await peer.set(k, value);
  }
  const ours = op === 'get' ? (i: number) => cache.get(keys[i % KEYS] as string) : (i: number) => cache.set(keys[i % KEYS] as string, value);
  const theirs = op === 'get' ? (i: number) => peer.get(keys[i % KEYS] as string) : (i: number) => peer.set(keys[i % KEYS] as string, value);
  return {
    stowage: { label, run: (n) => inFlight(n, concurrency, ours) },
    baseline: { label: peer.label, run: (n) => inFlight(n, concurrency, theirs) },
    async teardown() {
      await cache.clear();
      await cache.close();
      await peer.close();
    },
  };
}

const MEM_NOTE = {
  'keyv-memory': 'keyv 5 with its default store: it serialises into a Map and returns a parsed copy, as mem:// does; it has no entry or byte bound and validates nothing.',
  'cm-memory': 'cache-manager 7 with its default memory store (a keyv Map): it keeps the caller\'s object itself (no copy in or out, so a caller mutating it changes the cache) and has no bound; mem:// copies both ways and validates.',
} as const;
const REDIS_NOTE =
  'Same Redis, same commands (GET, SET without TTL), same value. The peers use node-redis through @keyv/redis; Stowage adds its freshness stamp, key and value validation and a per-call deadline.';
const TIERED_NOTE: Partial<Record<PeerKind, string>> = {
  'cm-tiered':
    'tiered:// (memory in front of Redis, every write published as an invalidation to the other nodes) against cache-manager with a keyv memory store in front of the same Redis (no invalidation: other nodes keep a stale copy until it expires). Reads hit memory on both sides; writes go to both tiers.',
  'keyv-redis':
    'tiered:// (memory in front of Redis, every write published as an invalidation to the other nodes) against keyv + @keyv/redis, what a keyv user shares between nodes: keyv has no memory tier, so its reads go to Redis and are coherent without an invalidation, and its writes are one SET. Reads hit memory on the Stowage side only; writes go to Redis on both sides, and Stowage adds the memory tier and the PUBLISH.',
};

function pairBench(name: string, kind: PeerKind, op: 'get' | 'set', concurrency: number, target: 'mem' | 'redis' | 'tiered'): Benchmark {
  const requires = target === 'mem' ? undefined : (['redis'] as const);
  return {
    kind: 'pair',
    name,
    group: 'cache peers',
    adapters: [target === 'mem' ? 'memory' : target],
    unit: 'ops/s',
    ...(requires ? { requires } : {}),
    note: target === 'mem' ? MEM_NOTE[kind as 'keyv-memory' | 'cm-memory'] : target === 'redis' ? REDIS_NOTE : TIERED_NOTE[kind],
    setup(ctx) {
      const url =
        target === 'mem' ? 'mem://?maxEntries=100000' : target === 'redis' ? redisUrl(ctx) : `tiered://?remote=${encodeURIComponent(redisUrl(ctx))}`;
      return pair(ctx, url, `stowage ${target}://`, kind, op, concurrency);
    },
  };
}

/** How long a simulated loader (a database read) takes. */
const LOADER_MS = 5;
const STAMPEDE = 1_000;

/** One stampede: `STAMPEDE` concurrent reads of one missing key; returns its duration and the loader calls. */
async function stampede(getOrSet: (key: string, loader: () => Promise<JsonValue>) => Promise<unknown>, key: string): Promise<{ ms: number; calls: number }> {
  let calls = 0;
  const loader = async (): Promise<JsonValue> => {
    calls++;
    await new Promise((resolve) => setTimeout(resolve, LOADER_MS));
    return value;
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: STAMPEDE }, () => getOrSet(key, loader)));
  return { ms: performance.now() - started, calls };
}

async function stampedeFigures(ctx: BenchContext, target: 'mem' | 'redis' | 'tiered'): Promise<Figure> {
  const tag = randomBytes(4).toString('hex');
  const url = target === 'mem' ? 'mem://' : target === 'redis' ? redisUrl(ctx) : `tiered://?remote=${encodeURIComponent(redisUrl(ctx))}`;
  const cache = await stowage(ctx, url);
  const redis = target === 'mem' ? undefined : new KeyvRedis(redisUrl(ctx).replace(/\/0$/, ''));
  const remote = redis ? [new Keyv({ store: redis, namespace: `st${tag}` })] : [];
  // tiered://'s peer is cache-manager's memory + Redis multi-store, as in the tiered rows.
  const cm = createCacheManager(redis ? { stores: target === 'tiered' ? [new Keyv(), ...remote] : remote } : {});
  const rounds = ctx.quick ? 5 : 20;
  const ours: number[] = [];
  const theirs: number[] = [];
  let ourCalls = 0;
  let theirCalls = 0;
  for (let r = 0; r < rounds; r++) {
    // Alternate which side goes first, so both see the same load.
    const runOurs = async (): Promise<void> => {
      const s = await stampede((k, l) => cache.getOrSet(k, l, { ttlMs: 60_000 }), `st${tag}/${r}`);
      ours.push(s.ms);
      ourCalls += s.calls;
    };
    const runTheirs = async (): Promise<void> => {
      const s = await stampede((k, l) => cm.wrap(k, l, 60_000), `st${tag}/${r}`);
      theirs.push(s.ms);
      theirCalls += s.calls;
    };
    if (r % 2 === 0) {
      await runOurs();
      await runTheirs();
    } else {
      await runTheirs();
      await runOurs();
    }
  }
  await cache.clear();
  await cache.close();
  await cm.disconnect();
  return {
    name: `${target} cache getOrSet, ${STAMPEDE.toLocaleString('en-US')}-miss stampede`,
    unit: 'ms',
    higherIsBetter: false,
    stowage: stats(ours),
    stowageLabel: `stowage ${target}://`,
    baseline: { label: `cache-manager wrap${target === 'tiered' ? ', memory + @keyv/redis' : redis ? ' + @keyv/redis' : ' (memory)'}`, stats: stats(theirs) },
    note:
      `${STAMPEDE.toLocaleString('en-US')} concurrent getOrSet/wrap calls on one missing key, a loader taking ${LOADER_MS} ms; time until all resolved (p90 ours ${percentile(ours, 90).toFixed(1)} ms, theirs ${percentile(theirs, 90).toFixed(1)} ms). ` +
      `Loader calls per stampede: Stowage ${(ourCalls / rounds).toFixed(1)}, cache-manager ${(theirCalls / rounds).toFixed(1)}. ` +
      'Both coalesce concurrent misses in one process; Stowage also hands each caller its own parsed copy and bounds the loader with a deadline. ' +
      (target === 'mem' ? '' : 'Across processes, redis:// and tiered:// can also make every process wait for one load (?lock=true on the Redis URL); that is off here, as cache-manager has nothing like it.'),
  };
}

/** The peer cache benchmarks. */
export const benchmarks: Benchmark[] = [
  pairBench('mem cache get vs keyv', 'keyv-memory', 'get', 1, 'mem'),
  pairBench('mem cache set vs keyv', 'keyv-memory', 'set', 1, 'mem'),
  pairBench('mem cache get vs cache-manager', 'cm-memory', 'get', 1, 'mem'),
  pairBench('mem cache set vs cache-manager', 'cm-memory', 'set', 1, 'mem'),
  pairBench('redis cache get vs keyv (1 at a time)', 'keyv-redis', 'get', 1, 'redis'),
  pairBench('redis cache get vs keyv (100 in flight)', 'keyv-redis', 'get', 100, 'redis'),
  pairBench('redis cache set vs keyv (1 at a time)', 'keyv-redis', 'set', 1, 'redis'),
  pairBench('redis cache set vs keyv (100 in flight)', 'keyv-redis', 'set', 100, 'redis'),
  pairBench('redis cache get vs cache-manager (1 at a time)', 'cm-redis', 'get', 1, 'redis'),
  pairBench('redis cache get vs cache-manager (100 in flight)', 'cm-redis', 'get', 100, 'redis'),
  pairBench('redis cache set vs cache-manager (1 at a time)', 'cm-redis', 'set', 1, 'redis'),
  pairBench('redis cache set vs cache-manager (100 in flight)', 'cm-redis', 'set', 100, 'redis'),
  pairBench('tiered cache get vs cache-manager tiers (1 at a time)', 'cm-tiered', 'get', 1, 'tiered'),
  pairBench('tiered cache get vs cache-manager tiers (100 in flight)', 'cm-tiered', 'get', 100, 'tiered'),
  pairBench('tiered cache set vs cache-manager tiers (1 at a time)', 'cm-tiered', 'set', 1, 'tiered'),
  pairBench('tiered cache set vs cache-manager tiers (100 in flight)', 'cm-tiered', 'set', 100, 'tiered'),
  pairBench('tiered cache get vs keyv (1 at a time)', 'keyv-redis', 'get', 1, 'tiered'),
  pairBench('tiered cache get vs keyv (100 in flight)', 'keyv-redis', 'get', 100, 'tiered'),
  pairBench('tiered cache set vs keyv (1 at a time)', 'keyv-redis', 'set', 1, 'tiered'),
  pairBench('tiered cache set vs keyv (100 in flight)', 'keyv-redis', 'set', 100, 'tiered'),
  { kind: 'measure', name: 'mem cache getOrSet stampede', group: 'cache peers', adapters: ['memory'], measure: async (ctx) => [await stampedeFigures(ctx, 'mem')] },
  { kind: 'measure', name: 'redis cache getOrSet stampede', group: 'cache peers', adapters: ['redis'], requires: ['redis'], measure: async (ctx) => [await stampedeFigures(ctx, 'redis')] },
  { kind: 'measure', name: 'tiered cache getOrSet stampede', group: 'cache peers', adapters: ['tiered'], requires: ['redis'], measure: async (ctx) => [await stampedeFigures(ctx, 'tiered')] },
];
