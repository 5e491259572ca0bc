/**
 * The cache contract suite: every cache adapter runs it (see `test/contract/*-cache.test.ts`).
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Cache } from '../ports/cache.js';
import type { JsonValue } from '../ports/common.js';
import { StowageError } from '../ports/errors.js';
import { eventually, rejectsWith, runnable, skipUnless, sleep, withInstance, type ContractOptions } from './harness.js';

/** Options of {@link cacheContract}. */
export interface CacheContractOptions extends ContractOptions<Cache> {
  /**
   * Opens a second instance over the same backend data as `cache` (another connection, or another node
   * of a tiered cache), with the same namespace. Required when the adapter declares
   * `sharedAcrossProcesses` or `distributedInvalidation`; the suite closes it.
   */
  peer?: (cache: Cache) => Promise<Cache>;
  /** The TTL used by expiry tests, in milliseconds (default 150). */
  shortTtlMs?: number;
}

/** A promise with its resolve exposed, to hold a loader until the test lets it finish. */
function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/**
 * Declares the cache contract tests.
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createStowage } from 'stowage';
 * import { cacheContract } from 'stowage/testing';
 *
 * cacheContract({
 *   test: { describe, it },
 *   name: 'mem://',
 *   factory: async () => (await createStowage({ cache: 'mem://' }, { ports: ['cache'] })).cache,
 * });
 * ```
 */
export function cacheContract(options: CacheContractOptions): void {
  const { describe, it } = options.test;
  const ttl = options.shortTtlMs ?? 150;
  const run = (fn: (cache: Cache) => Promise<void>) => runnable(() => withInstance(options.factory, fn));

  describe(`cache contract: ${options.name}`, () => {
    describe('get / set / delete / has', () => {
      it('returns what was set, as a fresh copy each time', run(async (cache) => {
        const value = { name: 'Ada', tags: ['a', 'b'], nested: { n: 1, ok: true, none: null } };
        await cache.set('user/1', value);
        value.tags.push('changed after set');
        const first = await cache.get<typeof value>('user/1');
        assert.deepEqual(first, { name: 'Ada', tags: ['a', 'b'], nested: { n: 1, ok: true, none: null } });
        first?.tags.push('changed after get');
        assert.deepEqual(await cache.get('user/1'), { name: 'Ada', tags: ['a', 'b'], nested: { n: 1, ok: true, none: null } });
      }));

      it('round-trips every JSON type', run(async (cache) => {
        const values: JsonValue[] = ['text', '', 'ü€😀', 0, -1.5, 1e300, true, false, null, [], {}, [1, 'x', null], { '': 1 }];
        for (const [i, v] of values.entries()) await cache.set(`v${i}`, v);
        for (const [i, v] of values.entries()) assert.deepEqual(await cache.get(`v${i}`), v, `value ${JSON.stringify(v)}`);
      }));

      it('gives undefined for a key never set', run(async (cache) => {
        assert.equal(await cache.get('missing'), undefined);
        assert.equal(await cache.has('missing'), false);
      }));

      it('overwrites a value', run(async (cache) => {
        await cache.set('k', 1);
        await cache.set('k', 2);
        assert.equal(await cache.get('k'), 2);
      }));

      it('treats "..", "/" and "." in keys as plain characters', run(async (cache) => {
        await cache.set('a/../b', 'dots');
        await cache.set('b', 'plain');
        assert.equal(await cache.get('a/../b'), 'dots');
        assert.equal(await cache.get('b'), 'plain');
      }));

      it('delete removes the entry and says whether it was there', run(async (cache) => {
        await cache.set('k', 'v');
        assert.equal(await cache.has('k'), true);
        assert.equal(await cache.delete('k'), true);
        assert.equal(await cache.get('k'), undefined);
        assert.equal(await cache.has('k'), false);
        assert.equal(await cache.delete('k'), false);
      }));

      it('forgets an entry after its TTL for get, has and getMany', run(async (cache) => {
        await cache.set('short', 'v', { ttlMs: ttl });
        await cache.set('long', 'w', { ttlMs: 60_000 });
        assert.equal(await cache.get('short'), 'v');
        await sleep(ttl * 2 + 50);
        assert.equal(await cache.get('short'), undefined);
        assert.equal(await cache.has('short'), false);
        assert.deepEqual(await cache.getMany(['short', 'long']), [undefined, 'w']);
      }));

      it('a set without ttlMs replaces an earlier TTL', run(async (cache) => {
        await cache.set('k', 'old', { ttlMs: ttl });
        await cache.set('k', 'new');
        await sleep(ttl * 2 + 50);
        assert.equal(await cache.get('k'), 'new');
      }));
    });

    describe('bulk calls', () => {
      it('getMany returns values in the order of the keys, undefined for misses', run(async (cache) => {
        await cache.set('b', 2);
        await cache.set('a', 1);
        assert.deepEqual(await cache.getMany(['a', 'missing', 'b', 'a']), [1, undefined, 2, 1]);
        assert.deepEqual(await cache.getMany([]), []);
      }));

      it('setMany writes every entry, each with its own TTL', run(async (cache) => {
        await cache.setMany([
          { key: 'x', value: { n: 1 } },
          { key: 'y', value: [2], ttlMs: ttl },
          { key: 'z', value: 'three', ttlMs: 60_000 },
        ]);
        assert.deepEqual(await cache.getMany(['x', 'y', 'z']), [{ n: 1 }, [2], 'three']);
        await sleep(ttl * 2 + 50);
        assert.deepEqual(await cache.getMany(['x', 'y', 'z']), [{ n: 1 }, undefined, 'three']);
        await cache.setMany([]);
      }));
    });

    describe('namespaces', () => {
      it('keeps the same key apart in different namespaces', run(async (cache) => {
        const a = cache.withNamespace('a');
        const b = cache.withNamespace('b');
        await cache.set('k', 'root');
        await a.set('k', 'in a');
        await b.set('k', 'in b');
        assert.deepEqual([await cache.get('k'), await a.get('k'), await b.get('k')], ['root', 'in a', 'in b']);
        assert.equal(a.namespace, cache.namespace === '' ? 'a' : `${cache.namespace}/a`);
      }));

      it('clear() removes every entry of its namespace and none of another', run(async (cache) => {
        const a = cache.withNamespace('a');
        const ab = a.withNamespace('b');
        const b = cache.withNamespace('b');
        await cache.setMany([{ key: 'k1', value: 1 }, { key: 'k2', value: 2 }]);
        await a.setMany([{ key: 'k1', value: 'a1' }, { key: 'k2', value: 'a2' }]);
        await ab.set('k1', 'ab1');
        await b.set('k1', 'b1');
        await a.clear();
        assert.deepEqual(await a.getMany(['k1', 'k2']), [undefined, undefined]);
        assert.deepEqual(await cache.getMany(['k1', 'k2']), [1, 2]);
        assert.equal(await ab.get('k1'), 'ab1');
        assert.equal(await b.get('k1'), 'b1');
        await cache.clear();
        assert.deepEqual(await cache.getMany(['k1', 'k2']), [undefined, undefined]);
        assert.equal(await b.get('k1'), 'b1');
      }));

      it('refuses a namespace name with ":" or other characters outside [A-Za-z0-9_/-]', run(async (cache) => {
        for (const name of ['a:b', '', 'a b', 'ü', 'a\u0000']) {
          assert.throws(() => cache.withNamespace(name), (err) => StowageError.is(err, 'INVALID_ARGUMENT'), `namespace ${JSON.stringify(name)}`);
        }
      }));
    });

    describe('getOrSet', () => {
      it('returns a fresh cached value without calling the loader', run(async (cache) => {
        await cache.set('k', 'cached');
        let calls = 0;
        const value = await cache.getOrSet('k', async () => {
          calls++;
          return 'loaded';
        });
        assert.equal(value, 'cached');
        assert.equal(calls, 0);
      }));

      it('calls the loader once for 100 concurrent misses of one key; all get its value, each a copy', run(async (cache) => {
        let calls = 0;
        const gate = deferred<void>();
        const loader = async (): Promise<JsonValue> => {
          calls++;
          await gate.promise;
          return { list: [1, 2, 3] };
        };
        const all = Array.from({ length: 100 }, () => cache.getOrSet('hot', loader, { ttlMs: 60_000 }));
        // Release the loader only once it runs and the other callers have had time to join it.
        await eventually(() => calls === 1, 'the loader was called');
        await sleep(150);
        gate.resolve();
        const results = await Promise.all(all);
        assert.equal(calls, 1);
        for (const r of results) assert.deepEqual(r, { list: [1, 2, 3] });
        assert.notEqual(results[0], results[1], 'two callers received the same object');
        assert.deepEqual(await cache.get('hot'), { list: [1, 2, 3] });
      }));

      it('a loader that throws rejects every waiter with its error and caches nothing', run(async (cache) => {
        let calls = 0;
        const gate = deferred<void>();
        const failure = new Error('origin is down');
        const loader = async (): Promise<JsonValue> => {
          calls++;
          await gate.promise;
          throw failure;
        };
        const all = Array.from({ length: 10 }, () => cache.getOrSet('k', loader).then(() => 'resolved', (err: unknown) => err));
        // Release the loader only once it runs and the other callers have had time to join it.
        await eventually(() => calls === 1, 'the loader was called');
        await sleep(500); // callers arriving after the failure would rightly load again
        gate.resolve();
        const outcomes = await Promise.all(all);
        assert.equal(calls, 1);
        for (const o of outcomes) assert.equal(o, failure);
        assert.equal(await cache.has('k'), false);
        assert.equal(await cache.getOrSet('k', async () => 'second try'), 'second try');
      }));

      it('a loader result that is not JSON rejects with INVALID_ARGUMENT and caches nothing', run(async (cache) => {
        await rejectsWith(cache.getOrSet('k', async () => ({ when: new Date() }) as unknown as JsonValue), 'INVALID_ARGUMENT');
        assert.equal(await cache.has('k'), false);
      }));

      it('with staleWhileRevalidateMs, a stale hit returns the old value at once and refreshes it once', run(async (cache) => {
        const opts = { ttlMs: ttl, staleWhileRevalidateMs: 60_000 };
        await cache.getOrSet('k', async () => 'v1', opts);
        await sleep(ttl * 2 + 50);
        assert.equal(await cache.get('k'), undefined, 'a stale entry is a miss for get');
        let calls = 0;
        const gate = deferred<void>();
        const refresh = async (): Promise<JsonValue> => {
          calls++;
          await gate.promise;
          return 'v2';
        };
        // The loader is held, so these can only resolve with the stale value.
        const stale = await Promise.all(Array.from({ length: 5 }, () => cache.getOrSet('k', refresh, opts)));
        assert.deepEqual(stale, ['v1', 'v1', 'v1', 'v1', 'v1']);
        gate.resolve();
        await eventually(async () => (await cache.get('k')) === 'v2', 'the background refresh stored v2');
        assert.equal(calls, 1);
      }));

      it('with staleIfErrorMs, a stale value is returned when the loader throws', run(async (cache) => {
        await cache.getOrSet('k', async () => 'v1', { ttlMs: ttl, staleIfErrorMs: 60_000 });
        await sleep(ttl * 2 + 50);
        const failing = async (): Promise<JsonValue> => {
          throw new Error('origin is down');
        };
        assert.equal(await cache.getOrSet('k', failing, { ttlMs: ttl, staleIfErrorMs: 60_000 }), 'v1');
        await assert.rejects(cache.getOrSet('k', failing, { ttlMs: ttl }), /origin is down/);
      }));
    });

    describe('bad input changes nothing', () => {
      const badKeys: [string, unknown][] = [
        ['an empty key', ''],
        ['a key with NUL', 'a\u0000b'],
        ['a key with a lone surrogate', 'a\ud800b'],
        ['a key over 1024 bytes', 'k'.repeat(1025)],
        ['a key that is not a string', 42],
      ];
      for (const [what, key] of badKeys) {
        it(`rejects ${what} with INVALID_ARGUMENT in every call`, run(async (cache) => {
          const k = key as string;
          await rejectsWith(cache.set(k, 1), 'INVALID_ARGUMENT');
          await rejectsWith(cache.get(k), 'INVALID_ARGUMENT');
          await rejectsWith(cache.has(k), 'INVALID_ARGUMENT');
          await rejectsWith(cache.delete(k), 'INVALID_ARGUMENT');
          await rejectsWith(cache.getMany(['ok', k]), 'INVALID_ARGUMENT');
          await rejectsWith(cache.setMany([{ key: 'ok', value: 1 }, { key: k, value: 1 }]), 'INVALID_ARGUMENT');
          await rejectsWith(cache.getOrSet(k, async () => 1), 'INVALID_ARGUMENT');
          assert.equal(await cache.has('ok'), false, 'setMany wrote part of a bad batch');
        }));
      }

      const badValues: [string, unknown][] = [
        ['undefined', undefined],
        ['a function', () => 1],
        ['a Date', new Date(0)],
        ['NaN', Number.NaN],
        ['a string with a lone surrogate', '\udc00'],
        ['a Map', new Map()],
        ['a bigint', 1n],
      ];
      for (const [what, value] of badValues) {
        it(`rejects ${what} as a value with INVALID_ARGUMENT and keeps the old value`, run(async (cache) => {
          await cache.set('k', 'old');
          await rejectsWith(cache.set('k', value as JsonValue), 'INVALID_ARGUMENT');
          await rejectsWith(cache.setMany([{ key: 'other', value: 1 }, { key: 'k', value: value as JsonValue }]), 'INVALID_ARGUMENT');
          assert.equal(await cache.get('k'), 'old');
          assert.equal(await cache.has('other'), false);
        }));
      }

      it('rejects a value over maxValueBytes with RESOURCE_EXHAUSTED and keeps the old value; one at the limit fits', run(async (cache) => {
        await cache.set('k', 'old');
        const over = 'x'.repeat(cache.maxValueBytes - 1); // 2 quotes make it one byte too long
        await rejectsWith(cache.set('k', over), 'RESOURCE_EXHAUSTED');
        await rejectsWith(cache.setMany([{ key: 'k', value: over }]), 'RESOURCE_EXHAUSTED');
        assert.equal(await cache.get('k'), 'old');
        const atLimit = 'x'.repeat(cache.maxValueBytes - 2);
        await cache.set('k', atLimit);
        assert.equal(await cache.get('k'), atLimit);
      }));

      it('rejects a ttlMs that is not a positive integer', run(async (cache) => {
        for (const ttlMs of [0, -1, 1.5, Number.NaN, '10' as unknown as number]) {
          await rejectsWith(cache.set('k', 1, { ttlMs }), 'INVALID_ARGUMENT');
        }
        await rejectsWith(cache.getOrSet('k', async () => 1, { staleWhileRevalidateMs: 1000 }), 'INVALID_ARGUMENT');
        assert.equal(await cache.has('k'), false);
      }));
    });

    describe('lifecycle', () => {
      it('rejects every call after close() with CLOSED; close is idempotent', async () => {
        const cache = await options.factory();
        await cache.set('k', 1);
        await cache.close();
        await cache.close();
        assert.equal(cache.closed, true);
        await rejectsWith(cache.get('k'), 'CLOSED');
        await rejectsWith(cache.set('k', 2), 'CLOSED');
        await rejectsWith(cache.has('k'), 'CLOSED');
        await rejectsWith(cache.delete('k'), 'CLOSED');
        await rejectsWith(cache.getMany(['k']), 'CLOSED');
        await rejectsWith(cache.setMany([{ key: 'k', value: 1 }]), 'CLOSED');
        await rejectsWith(cache.clear(), 'CLOSED');
        await rejectsWith(cache.getOrSet('k', async () => 1), 'CLOSED');
        await rejectsWith(cache.withNamespace('n').get('k'), 'CLOSED');
        assert.equal((await cache.health()).ok, false);
      });

      it('rejects a call whose signal is already aborted with CANCELLED, changing nothing', run(async (cache) => {
        const signal = AbortSignal.abort();
        await rejectsWith(cache.set('k', 1, { signal }), 'CANCELLED');
        await rejectsWith(cache.get('k', { signal }), 'CANCELLED');
        await rejectsWith(cache.has('k', { signal }), 'CANCELLED');
        await rejectsWith(cache.getMany(['k'], { signal }), 'CANCELLED');
        await rejectsWith(cache.setMany([{ key: 'k', value: 1 }], { signal }), 'CANCELLED');
        await rejectsWith(cache.delete('k', { signal }), 'CANCELLED');
        await rejectsWith(cache.clear({ signal }), 'CANCELLED');
        await rejectsWith(cache.getOrSet('k', async () => 1, { signal }), 'CANCELLED');
        assert.equal(await cache.has('k'), false);
      }));

      it('health() does a round-trip and reports ok with the backend name', run(async (cache) => {
        const report = await cache.health();
        assert.equal(report.ok, true, report.error?.message);
        assert.equal(report.backend, cache.backend);
      }));
    });

    describe('capabilities', () => {
      it('declares only known capabilities, and gives a peer factory for shared ones', run(async (cache) => {
        for (const c of cache.capabilities) {
          assert.ok(['distributedInvalidation', 'sharedAcrossProcesses', 'distributedSingleFlight'].includes(c), `unknown capability ${c}`);
        }
        if (cache.capabilities.size > 0) assert.ok(options.peer, 'capabilities declared but no peer factory given to the suite');
      }));

      it('sharedAcrossProcesses: another instance sees writes, deletes and clears', run(async (cache) => {
        skipUnless(cache.capabilities.has('sharedAcrossProcesses'), 'the adapter does not declare "sharedAcrossProcesses"');
        skipUnless(options.peer !== undefined, 'no peer factory was given (options.peer)');
        const peer = await options.peer(cache);
        try {
          await cache.set('k', { from: 'first' });
          assert.deepEqual(await peer.get('k'), { from: 'first' });
          await peer.delete('k');
          // A cache with local copies (distributedInvalidation) drops them when the invalidation arrives.
          await eventually(async () => (await cache.get('k')) === undefined, 'the first instance sees the delete');
          await peer.set('j', 1);
          await cache.clear();
          await eventually(async () => (await peer.get('j')) === undefined, 'the peer sees the clear');
        } finally {
          await peer.close();
        }
      }));

      it('distributedSingleFlight: concurrent misses on two instances call the loader once', run(async (cache) => {
        skipUnless(cache.capabilities.has('distributedSingleFlight'), 'the adapter does not declare "distributedSingleFlight"');
        skipUnless(options.peer !== undefined, 'no peer factory was given (options.peer)');
        const peer = await options.peer(cache);
        try {
          let calls = 0;
          const gate = deferred<void>();
          const loader = async (): Promise<JsonValue> => {
            calls++;
            await gate.promise;
            return { loaded: calls };
          };
          const first = cache.getOrSet('k', loader, { ttlMs: 60_000 });
          await sleep(100);
          const second = peer.getOrSet('k', loader, { ttlMs: 60_000 });
          await sleep(100);
          gate.resolve();
          assert.deepEqual(await Promise.all([first, second]), [{ loaded: 1 }, { loaded: 1 }]);
          assert.equal(calls, 1);
        } finally {
          await peer.close();
        }
      }));

      it('distributedInvalidation: a write on one instance replaces the copy another holds', run(async (cache) => {
        skipUnless(cache.capabilities.has('distributedInvalidation'), 'the adapter does not declare "distributedInvalidation"');
        skipUnless(options.peer !== undefined, 'no peer factory was given (options.peer)');
        const peer = await options.peer(cache);
        try {
          await cache.set('k', 'v1');
          assert.equal(await peer.get('k'), 'v1');
          await cache.set('k', 'v2');
          await eventually(async () => (await peer.get('k')) === 'v2', 'the peer sees v2');
          await cache.delete('k');
          await eventually(async () => (await peer.get('k')) === undefined, 'the peer sees the delete');
          await cache.set('j', 'kept');
          assert.equal(await peer.get('j'), 'kept');
          await cache.clear();
          await eventually(async () => (await peer.get('j')) === undefined, 'the peer sees the clear');
        } finally {
          await peer.close();
        }
      }));
    });
  });
}
