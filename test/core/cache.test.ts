import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import type { CacheCapability, CacheDriver } from '../../src/ports/cache.js';
import { StowageError } from '../../src/ports/errors.js';
import { createCache } from '../../src/core/cache/cache.js';
import { MemoryCacheDriver } from '../../src/adapters/memory/cache-driver.js';
import { rejectsWith, sleep } from '../../src/testing/harness.js';

/** A driver whose every call waits forever, like a backend that stopped answering. */
function hangingDriver(): CacheDriver {
  const never = (): Promise<never> => new Promise(() => undefined);
  return {
    backend: 'hang',
    capabilities: new Set<CacheCapability>(),
    get: never,
    getMany: never,
    set: never,
    setMany: never,
    delete: never,
    clearPrefix: never,
    ping: never,
    close: async () => undefined,
  };
}

/** A driver that records the keys it receives and keeps entries in a plain map (async only: no fast path). */
function recordingDriver(): CacheDriver & { entries: Map<string, string>; failReads: boolean; failWrites: boolean } {
  const entries = new Map<string, string>();
  const driver = {
    backend: 'rec',
    capabilities: new Set<CacheCapability>(),
    entries,
    failReads: false,
    failWrites: false,
    async get(key: string) {
      if (driver.failReads) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      return entries.get(key);
    },
    async getMany(keys: readonly string[]) {
      return keys.map((k) => entries.get(k));
    },
    async set(key: string, value: string) {
      if (driver.failWrites) throw Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
      entries.set(key, value);
    },
    async setMany(list: readonly { key: string; value: string }[]) {
      for (const e of list) entries.set(e.key, e.value);
    },
    async delete(key: string) {
      return entries.delete(key);
    },
    async clearPrefix(prefix: string) {
      for (const k of [...entries.keys()]) if (k.startsWith(prefix)) entries.delete(k);
    },
    async ping() {
      return {};
    },
    async close() {},
  };
  return driver;
}

describe('core cache', () => {
  it('rejects with TIMEOUT when the driver does not answer within timeoutMs', async () => {
    const cache = createCache(hangingDriver(), { drainMs: 10 });
    await rejectsWith(cache.get('k', { timeoutMs: 30 }), 'TIMEOUT');
    await rejectsWith(cache.set('k', 1, { timeoutMs: 30 }), 'TIMEOUT');
    await rejectsWith(cache.getMany(['k'], { timeoutMs: 30 }), 'TIMEOUT');
    await rejectsWith(cache.clear({ timeoutMs: 30 }), 'TIMEOUT');
    await rejectsWith(cache.getOrSet('k', async () => 1, { timeoutMs: 30 }), 'TIMEOUT');
    await cache.close();
  });

  it('rejects with CANCELLED when the signal aborts while the driver hangs', async () => {
    const cache = createCache(hangingDriver(), { drainMs: 10 });
    const controller = new AbortController();
    const pending = cache.get('k', { signal: controller.signal });
    controller.abort();
    await rejectsWith(pending, 'CANCELLED');
    await cache.close();
  });

  it('hands the driver root keys as ":key" and namespaced keys as "ns:key", nested with "/"', async () => {
    const driver = recordingDriver();
    const cache = createCache(driver);
    await cache.set('k', 1);
    await cache.withNamespace('a').set('k', 2);
    await cache.withNamespace('a').withNamespace('b').set('k', 3);
    assert.deepEqual([...driver.entries.keys()].sort(), [':k', 'a/b:k', 'a:k']);
    assert.equal(driver.entries.get(':k'), '0|1');
  });

  it('stores "<freshUntil>|<json>" and keeps the entry in the driver for TTL plus the stale window', async () => {
    let driverTtl: number | undefined;
    const driver = recordingDriver();
    const set = driver.set.bind(driver);
    driver.set = async (key, value, ttlMs, signal) => {
      driverTtl = ttlMs;
      return set(key, value, ttlMs, signal);
    };
    const cache = createCache(driver);
    const before = Date.now();
    await cache.getOrSet('k', async () => 'v', { ttlMs: 1000, staleWhileRevalidateMs: 500, staleIfErrorMs: 3000 });
    assert.equal(driverTtl, 4000);
    const [stamp, json] = (driver.entries.get(':k') ?? '').split('|');
    assert.ok(Number(stamp) >= before + 1000 && Number(stamp) <= Date.now() + 1000);
    assert.equal(json, '"v"');
  });

  it('reports an entry not in the stored form as CORRUPTED', async () => {
    const driver = recordingDriver();
    driver.entries.set(':k', 'not an envelope');
    driver.entries.set(':j', '0|{broken');
    const cache = createCache(driver);
    await rejectsWith(cache.get('k'), 'CORRUPTED');
    await rejectsWith(cache.get('j'), 'CORRUPTED');
  });

  it('getOrSet loads from the source when the cache cannot be read, and returns the value when it cannot be stored', async () => {
    const driver = recordingDriver();
    const cache = createCache(driver);
    driver.failReads = true;
    assert.equal(await cache.getOrSet('k', async () => 'from source'), 'from source');
    driver.failWrites = true;
    assert.equal(await cache.getOrSet('j', async () => 'not stored'), 'not stored');
    driver.failReads = false;
    assert.equal(await cache.get('j'), undefined);
    await rejectsWith(cache.set('k', 1), 'UNAVAILABLE');
  });

  it('a stampede on one key reads it once, and a call after a write never joins a read sent before it', async () => {
    const driver = recordingDriver();
    let reads = 0;
    let gate: Promise<void> | undefined;
    const get = driver.get.bind(driver);
    driver.get = async (key: string, signal: AbortSignal) => {
      reads++;
      const value = await get(key, signal);
      await gate;
      return value;
    };
    const cache = createCache(driver);
    let loads = 0;
    const loader = async (): Promise<{ n: number }> => {
      loads++;
      await sleep(5);
      return { n: 1 };
    };
    const values = await Promise.all(Array.from({ length: 100 }, () => cache.getOrSet('hot', loader)));
    // One read before: 100 (each call read the key before joining the one load).
    assert.deepEqual([reads, loads], [1, 1]);
    assert.deepEqual(values[0], { n: 1 });
    assert.notEqual(values[0], values[1], 'each caller gets its own copy');
    // A read held in flight; a set resolves meanwhile; a call made after it must see the new value.
    let release: () => void = () => undefined;
    gate = new Promise((resolve) => (release = resolve));
    const early = cache.getOrSet('hot', loader);
    await sleep(10);
    await cache.set('hot', { n: 2 });
    const late = cache.getOrSet('hot', loader);
    release();
    gate = undefined;
    assert.deepEqual(await late, { n: 2 });
    assert.ok((await early).n === 1 || (await early).n === 2);
    assert.equal(reads, 3);
    await cache.close();
  });

  it('single-flight is per key: different keys load in parallel', async () => {
    const cache = createCache(recordingDriver());
    const calls: string[] = [];
    const loader = (name: string) => async () => {
      calls.push(name);
      return name;
    };
    const [a, b] = await Promise.all([cache.getOrSet('a', loader('a')), cache.getOrSet('b', loader('b'))]);
    assert.deepEqual([a, b, calls.sort()], ['a', 'b', ['a', 'b']]);
  });

  it('getOrSet rejects with the loader\'s own error, not a wrapped one', async () => {
    class OriginError extends Error {}
    const cache = createCache(recordingDriver());
    const err = await cache.getOrSet('k', async () => { throw new OriginError('nope'); }).catch((e: unknown) => e);
    assert.ok(err instanceof OriginError);
    assert.ok(!StowageError.is(err));
  });

  it('a loader that never settles is given up after the deadline, so the key can load again', async () => {
    const cache = createCache(recordingDriver(), { defaultTimeoutMs: 100 });
    let aborted = false;
    const hung = (signal: AbortSignal) =>
      new Promise<never>(() => {
        signal.addEventListener('abort', () => {
          aborted = true;
        });
      });
    await rejectsWith(cache.getOrSet('k', hung), 'TIMEOUT');
    await sleep(50);
    assert.equal(aborted, true, 'the loader\'s signal was not aborted');
    assert.equal(await cache.getOrSet('k', async () => 'second'), 'second');
  });

  it('validates its options', () => {
    assert.throws(() => createCache(new MemoryCacheDriver({ maxEntries: 10, maxBytes: 1 << 20 }), { defaultTtlMs: 0 }), (e) => StowageError.is(e, 'INVALID_ARGUMENT'));
    assert.throws(() => createCache(new MemoryCacheDriver({ maxEntries: 10, maxBytes: 1 << 20 }), { maxValueBytes: -1 }), (e) => StowageError.is(e, 'INVALID_ARGUMENT'));
  });

  it('applies defaultTtlMs to writes that give no ttlMs', async () => {
    let driverTtl: number | undefined;
    const driver = recordingDriver();
    driver.set = async (_key, _value, ttlMs) => {
      driverTtl = ttlMs;
    };
    await createCache(driver, { defaultTtlMs: 5000 }).set('k', 1);
    assert.equal(driverTtl, 5000);
  });
});

describe('core cache value decoding', () => {
  it('returns strings with escapes, quotes, unicode and surrogate pairs exactly as set', async () => {
    const cache = createCache(new MemoryCacheDriver({ maxEntries: 100, maxBytes: 1 << 20 }));
    const values = ['', 'plain', 'a"b', 'back\\slash', 'line\nbreak', 'tab\t', '"', '""', 'ü€', '😀', '\u2028', '\\"', 'x'.repeat(1000)];
    for (const [i, v] of values.entries()) await cache.set(`s${i}`, v);
    for (const [i, v] of values.entries()) assert.equal(await cache.get(`s${i}`), v, JSON.stringify(v));
    for (const v of [true, false, null, 0, -0.5, 12345678901234]) {
      await cache.set('p', v);
      assert.equal(await cache.get('p'), v);
    }
  });

  it('reports a stored string that is not valid JSON as CORRUPTED', async () => {
    const driver = new MemoryCacheDriver({ maxEntries: 100, maxBytes: 1 << 20 });
    driver.setSync(':k', '0|"unterminated', undefined);
    driver.setSync(':j', '0|"a"b"', undefined);
    await rejectsWith(createCache(driver).get('k'), 'CORRUPTED');
    await rejectsWith(createCache(driver).get('j'), 'CORRUPTED');
  });
});
