/**
 * The config contract suite: every config adapter runs it (`test/contract/<adapter>-config.test.ts`), and a
 * third-party adapter can run it too.
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { JsonValue } from '../ports/common.js';
import type { ConfigEvent, ConfigStore } from '../ports/config.js';
import { StowageError } from '../ports/errors.js';
import { eventually, rejectsWith, runnable, skipUnless, sleep, withInstance, type ContractOptions } from './harness.js';

/** Options of {@link configContract}. */
export interface ConfigContractOptions extends ContractOptions<ConfigStore> {
  /**
   * The TTL used by lease tests, in milliseconds (at least 1000). Backends with coarse lease clocks (etcd
   * rounds up to whole seconds) may need more.
   *
   * @defaultValue 1000
   */
  leaseTtlMs?: number;
}

/**
 * How long a watch test waits for the events it expects before failing: under the 5 s default test timeout of
 * vitest and jest, so a watch that misses events fails with what it missed, not with the runner's bare timeout.
 */
const WATCH_WAIT_MS = 4_000;

/** Said when a watch given `afterRevision` misses the changes already made after it. */
const IGNORED_AFTER_REVISION =
  ': the changes were made before the watch started, after its afterRevision — a driver that ignores afterRevision (watching only new changes) delivers none of them';

/**
 * Reads `count` events from `iterable`, failing when they do not arrive within `timeoutMs`; then stops the
 * watch (the caller's abort controller ends it).
 */
async function take(iterable: AsyncIterable<ConfigEvent>, count: number, timeoutMs = WATCH_WAIT_MS, hint = ''): Promise<ConfigEvent[]> {
  const events: ConfigEvent[] = [];
  if (count === 0) return events;
  const iterator = iterable[Symbol.asyncIterator]();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`watch delivered ${events.length} of ${count} events within ${timeoutMs} ms${hint}`)), timeoutMs);
  });
  try {
    while (events.length < count) {
      const step = await Promise.race([iterator.next(), timeout]);
      if (step.done) assert.fail(`watch ended after ${events.length} of ${count} events`);
      events.push(step.value);
    }
    return events;
  } finally {
    clearTimeout(timer);
    void iterator.return?.();
  }
}

/** Waits a little and asserts that no further event arrives on an open iterator. */
async function assertNoMoreEvents(iterator: AsyncIterator<ConfigEvent>, waitMs: number): Promise<void> {
  const next = iterator.next();
  const result = await Promise.race([next, sleep(waitMs).then(() => 'quiet' as const)]);
  if (result !== 'quiet' && !result.done) assert.fail(`unexpected extra event ${JSON.stringify(result.value)}`);
}

function summary(events: readonly ConfigEvent[]): string[] {
  return events.map((e) => (e.type === 'put' ? `put ${e.key}=${JSON.stringify(e.value)}` : `delete ${e.key}`));
}

async function keysOf(store: ConfigStore): Promise<string[]> {
  return (await store.list('')).entries.map((e) => `${e.key}@${e.revision}`);
}

/**
 * Runs the config contract against `factory()`'s stores.
 *
 * Tested for every adapter: get/put/list/delete, store-wide increasing revisions, compare-and-set, input
 * validation (nothing changed on bad input), the closed state and cancellation. Tested when declared:
 * `watch` (ordered, gap-free, repeat-free delivery from a revision) and `leases` (expiry and revoke delete
 * the keys; watchers see it); asserted UNSUPPORTED when not declared.
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createStowage } from 'stowage';
 * import { configContract } from 'stowage/testing';
 *
 * configContract({
 *   test: { describe, it },
 *   name: 'mem://',
 *   factory: async () => (await createStowage({ config: 'mem://' }, { ports: ['config'] })).config,
 * });
 * ```
 */
export function configContract(options: ConfigContractOptions): void {
  const { test, name, factory } = options;
  const leaseTtlMs = options.leaseTtlMs ?? 1000;
  const { describe, it } = test;
  const using = (fn: (store: ConfigStore) => Promise<void>) => runnable(() => withInstance(factory, fn));

  describe(`config contract: ${name}`, () => {
    describe('get, put, list, delete', () => {
      it('get of a missing key resolves undefined', using(async (store) => {
        assert.equal(await store.get('missing/key'), undefined);
      }));

      it('put then get returns the value with its revision and create revision', using(async (store) => {
        const value = { port: 8080, hosts: ['a', 'b'], nested: { on: true, ratio: 0.5, none: null } };
        const { revision } = await store.put('app/server', value);
        assert.ok(Number.isInteger(revision) && revision > 0, `revision ${revision} is a positive integer`);
        const entry = await store.get('app/server');
        assert.deepEqual(entry?.value, value);
        assert.equal(entry?.key, 'app/server');
        assert.equal(entry?.revision, revision);
        assert.equal(entry?.createRevision, revision);
      }));

      it('stores scalars, arrays, empty objects and unicode exactly', using(async (store) => {
        const values: JsonValue[] = ['', 'héllo 🌍', 0, -1.25, 1e21, true, false, null, [], {}, [1, [2, [3]]], { 'k é': 'v' }];
        for (const [i, value] of values.entries()) await store.put(`v/${i}`, value);
        for (const [i, value] of values.entries()) assert.deepEqual((await store.get(`v/${i}`))?.value, value, `value ${i}`);
      }));

      it('keeps what was written even if the caller mutates its object afterwards', using(async (store) => {
        const value = { list: [1, 2] };
        await store.put('mut/key', value);
        value.list.push(3);
        assert.deepEqual((await store.get('mut/key'))?.value, { list: [1, 2] });
      }));

      it('rewriting a key raises its revision and keeps its create revision', using(async (store) => {
        const first = await store.put('app/x', 1);
        const second = await store.put('app/x', 2);
        assert.ok(second.revision > first.revision);
        const entry = await store.get('app/x');
        assert.equal(entry?.value, 2);
        assert.equal(entry?.revision, second.revision);
        assert.equal(entry?.createRevision, first.revision);
      }));

      it('revisions increase store-wide across keys, puts and deletes', using(async (store) => {
        const seen: number[] = [];
        seen.push((await store.put('r/a', 1)).revision);
        seen.push((await store.put('r/b', 1)).revision);
        seen.push((await store.delete('r/a')).revision);
        seen.push((await store.put('r/a', 2)).revision);
        for (let i = 1; i < seen.length; i++) assert.ok(seen[i]! > seen[i - 1]!, `revisions ${seen.join(', ')} increase`);
        const recreated = await store.get('r/a');
        assert.equal(recreated?.createRevision, seen[3], 'a key deleted and written again has a new create revision');
      }));

      it('list returns the keys under a prefix in key order, with a revision covering them', using(async (store) => {
        await store.put('svc/b', 2);
        await store.put('svc/a', 1);
        await store.put('svc/c/d', 3);
        await store.put('svcx', 'outside');
        await store.put('other/a', 'outside');
        const snapshot = await store.list('svc/');
        assert.deepEqual(snapshot.entries.map((e) => e.key), ['svc/a', 'svc/b', 'svc/c/d']);
        assert.deepEqual(snapshot.entries.map((e) => e.value), [1, 2, 3]);
        for (const e of snapshot.entries) assert.ok(snapshot.revision >= e.revision);
        assert.deepEqual((await store.list('')).entries.map((e) => e.key), ['other/a', 'svc/a', 'svc/b', 'svc/c/d', 'svcx']);
        assert.deepEqual((await store.list('svc/', { limit: 2 })).entries.map((e) => e.key), ['svc/a', 'svc/b']);
        assert.deepEqual((await store.list('nothing/')).entries, []);
      }));

      it('delete removes a key and reports whether it existed', using(async (store) => {
        await store.put('d/key', 'v');
        const first = await store.delete('d/key');
        assert.equal(first.deleted, true);
        assert.equal(await store.get('d/key'), undefined);
        const second = await store.delete('d/key');
        assert.equal(second.deleted, false);
        assert.deepEqual((await store.list('d/')).entries, []);
      }));

      it('health reports a successful round-trip', using(async (store) => {
        const report = await store.health();
        assert.equal(report.ok, true, report.error?.message);
        assert.equal(report.backend, store.backend);
      }));
      it('list orders keys by Unicode code point, on every adapter (astral after high BMP characters)', using(async (store) => {
        await store.put('u/\u{1F600}', 'astral');
        await store.put('u/\uFF5E', 'bmp');
        await store.put('u/z', 'ascii');
        assert.deepEqual((await store.list('u/')).entries.map((e) => e.value), ['ascii', 'bmp', 'astral']);
      }));
    });

    describe('compare-and-set', () => {
      it('put with the current revision succeeds; with a stale one gives CONFLICT and changes nothing', using(async (store) => {
        const first = await store.put('cas/key', 'one');
        const second = await store.put('cas/key', 'two', { ifRevision: first.revision });
        const err = await rejectsWith(store.put('cas/key', 'three', { ifRevision: first.revision }), 'CONFLICT');
        assert.equal(
          err.details['revision'],
          second.revision,
          `CONFLICT must carry the key's current revision as details.revision (got details ${JSON.stringify(err.details)})`,
        );
        const entry = await store.get('cas/key');
        assert.equal(entry?.value, 'two');
        assert.equal(entry?.revision, second.revision);
      }));

      it('ifRevision 0 creates only: it succeeds for an absent key and gives CONFLICT for an existing one', using(async (store) => {
        const created = await store.put('cas/new', 'first', { ifRevision: 0 });
        await rejectsWith(store.put('cas/new', 'second', { ifRevision: 0 }), 'CONFLICT');
        const entry = await store.get('cas/new');
        assert.equal(entry?.value, 'first');
        assert.equal(entry?.revision, created.revision);
      }));

      it('put with ifRevision on an absent key gives CONFLICT and creates nothing', using(async (store) => {
        await rejectsWith(store.put('cas/absent', 1, { ifRevision: 5 }), 'CONFLICT');
        assert.equal(await store.get('cas/absent'), undefined);
      }));

      it('delete with a stale ifRevision gives CONFLICT and keeps the key; with the current one deletes it', using(async (store) => {
        const first = await store.put('cas/del', 1);
        const second = await store.put('cas/del', 2);
        await rejectsWith(store.delete('cas/del', { ifRevision: first.revision }), 'CONFLICT');
        assert.equal((await store.get('cas/del'))?.value, 2);
        const result = await store.delete('cas/del', { ifRevision: second.revision });
        assert.equal(result.deleted, true);
        assert.equal(await store.get('cas/del'), undefined);
      }));

      it('of concurrent creates with ifRevision 0 exactly one wins', using(async (store) => {
        const results = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => store.put('cas/race', i, { ifRevision: 0 })));
        const won = results.filter((r) => r.status === 'fulfilled');
        assert.equal(won.length, 1, 'one writer wins');
        for (const r of results) if (r.status === 'rejected') assert.ok(StowageError.is(r.reason, 'CONFLICT'), String(r.reason));
      }));
    });

    describe('watch', () => {
      it('watch rejects with UNSUPPORTED when the adapter does not declare it', using(async (store) => {
        skipUnless(!store.capabilities.has('watch'), 'the adapter declares "watch": its own tests run instead');
        await rejectsWith(take(store.watch(''), 1), 'UNSUPPORTED');
      }));

      it('delivers every change after the given revision, in order, once each', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        const { revision: start } = await store.put('w/before', 0);
        const r1 = await store.put('w/a', 1);
        const r2 = await store.put('w/b', 2);
        const r3 = await store.delete('w/a');
        const r4 = await store.put('w/b', 3);
        const controller = new AbortController();
        const events = await take(store.watch('w/', { afterRevision: start, signal: controller.signal }), 4, WATCH_WAIT_MS, IGNORED_AFTER_REVISION);
        controller.abort();
        assert.deepEqual(summary(events), ['put w/a=1', 'put w/b=2', 'delete w/a', 'put w/b=3']);
        assert.deepEqual(events.map((e) => e.revision), [r1.revision, r2.revision, r3.revision, r4.revision]);
        assert.equal(events[2]?.type === 'delete' && events[2].reason, 'deleted');
      }));

      it('afterRevision is strictly after: the change at that revision is not delivered, the next one is', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        const r1 = await store.put('after/a', 1);
        const r2 = await store.put('after/b', 2);
        const controller = new AbortController();
        const [first] = await take(store.watch('after/', { afterRevision: r1.revision, signal: controller.signal }), 1);
        assert.equal(first?.revision, r2.revision, `afterRevision ${r1.revision} delivers revision ${r2.revision} (after/b) first, not ${r1.revision} (after/a)`);
        // The deprecated former name means the same; both at once must agree.
        const [old] = await take(store.watch('after/', { fromRevision: r1.revision, signal: controller.signal }), 1);
        assert.equal(old?.revision, r2.revision);
        controller.abort();
        await rejectsWith(take(store.watch('after/', { afterRevision: r1.revision, fromRevision: r2.revision }), 1), 'INVALID_ARGUMENT');
      }));

      it('delivers a burst of 1,000 writes without gaps or repeats', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        const { revision: start } = await store.list('');
        const controller = new AbortController();
        const iterator = store.watch('burst/', { afterRevision: start, signal: controller.signal })[Symbol.asyncIterator]();
        const writes: number[] = [];
        for (let batch = 0; batch < 1000; batch += 50) {
          const results = await Promise.all(Array.from({ length: 50 }, (_, i) => store.put(`burst/k${(batch + i) % 97}`, batch + i)));
          writes.push(...results.map((r) => r.revision));
        }
        const events = await take({ [Symbol.asyncIterator]: () => iterator }, 1000, 45_000, IGNORED_AFTER_REVISION);
        controller.abort();
        assert.deepEqual(events.map((e) => e.revision), [...writes].sort((a, b) => a - b));
        const values = events.map((e) => (e.type === 'put' ? (e.value as number) : -1)).sort((a, b) => a - b);
        assert.deepEqual(values, Array.from({ length: 1000 }, (_, i) => i));
      }), 60_000);

      it('watch from list().revision sees exactly the later changes', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        await store.put('snap/a', 'old');
        await store.put('snap/b', 'old');
        const snapshot = await store.list('snap/');
        await store.put('snap/a', 'new');
        await store.delete('snap/b');
        await store.put('snap/c', 'new');
        const controller = new AbortController();
        const iterator = store.watch('snap/', { afterRevision: snapshot.revision, signal: controller.signal })[Symbol.asyncIterator]();
        const events = await take({ [Symbol.asyncIterator]: () => iterator }, 3, WATCH_WAIT_MS, IGNORED_AFTER_REVISION);
        assert.deepEqual(summary(events), ['put snap/a="new"', 'delete snap/b', 'put snap/c="new"']);
        const again = store.watch('snap/', { afterRevision: snapshot.revision, signal: controller.signal })[Symbol.asyncIterator]();
        await take({ [Symbol.asyncIterator]: () => again }, 3, WATCH_WAIT_MS, IGNORED_AFTER_REVISION);
        const fresh = store.watch('snap/', { afterRevision: events[2]!.revision, signal: controller.signal })[Symbol.asyncIterator]();
        await assertNoMoreEvents(fresh, 300);
        controller.abort();
      }));

      it('without afterRevision delivers only changes made after the watch started, under its prefix only', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        await store.put('live/old', 1);
        const controller = new AbortController();
        const iterator = store.watch('live/', { signal: controller.signal })[Symbol.asyncIterator]();
        const pending = iterator.next();
        // The watch registers when first pulled; give a remote backend time to set it up.
        await sleep(300);
        await store.put('other/x', 1);
        await store.put('live/new', 2);
        const first = await pending;
        controller.abort();
        assert.equal(first.done, false);
        assert.deepEqual(first.value && summary([first.value]), ['put live/new=2']);
      }));

      it('aborting the signal ends the iteration without an error', using(async (store) => {
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        const controller = new AbortController();
        const done = (async () => {
          const seen: ConfigEvent[] = [];
          for await (const event of store.watch('abort/', { signal: controller.signal })) seen.push(event);
          return seen;
        })();
        await sleep(100);
        controller.abort();
        assert.deepEqual(await done, []);
      }));

      it('closing the store ends a running watch with CLOSED', runnable(async () => {
        const store = await factory();
        if (!store.capabilities.has('watch')) await store.close();
        skipUnless(store.capabilities.has('watch'), 'the adapter does not declare "watch"');
        const iterator = store.watch('closing/')[Symbol.asyncIterator]();
        // Expected before close() starts: the watch ends as soon as it begins, and a close that waits on the
        // network (ending a pool) must not leave the rejection unhandled meanwhile.
        const ended = rejectsWith(iterator.next(), 'CLOSED');
        await sleep(100);
        await store.close();
        await ended;
      }));
    });

    describe('leases', () => {
      it('lease() and put(…, { lease }) reject with UNSUPPORTED when leases are not declared', using(async (store) => {
        skipUnless(!store.capabilities.has('leases'), 'the adapter declares "leases": its own tests run instead');
        await rejectsWith(store.lease(leaseTtlMs), 'UNSUPPORTED');
        await rejectsWith(store.put('l/key', 1, { lease: 'some-lease' }), 'UNSUPPORTED');
        assert.equal(await store.get('l/key'), undefined);
      }));

      it('a lease that expires removes its keys, signals lost, and watchers see the deletes', using(async (store) => {
        skipUnless(store.capabilities.has('leases'), 'the adapter does not declare "leases"');
        const lease = await store.lease(leaseTtlMs, { keepAlive: false });
        assert.equal(lease.ttlMs, leaseTtlMs);
        const { revision } = await store.put('eph/a', 'a', { lease: lease.id });
        await store.put('eph/b', 'b', { lease: lease.id });
        await store.put('eph/keep', 'k');
        assert.equal((await store.get('eph/a'))?.lease, lease.id);
        const controller = new AbortController();
        const watching = store.capabilities.has('watch')
          ? take(store.watch('eph/', { afterRevision: revision, signal: controller.signal }), 4, leaseTtlMs * 4 + 10_000)
          : undefined;
        await eventually(async () => (await store.get('eph/a')) === undefined, 'leased key deleted', leaseTtlMs * 4 + 10_000, 100);
        await eventually(() => lease.lost.aborted, 'lease.lost aborted', 5000);
        assert.deepEqual((await store.list('eph/')).entries.map((e) => e.key), ['eph/keep']);
        if (watching) {
          const events = await watching;
          controller.abort();
          const deletes = events.filter((e) => e.type === 'delete');
          assert.deepEqual(deletes.map((e) => e.key).sort(), ['eph/a', 'eph/b']);
          for (const e of deletes) assert.equal(e.type === 'delete' && e.reason, 'lease-expired');
        }
      }), 60_000);

      it('a kept-alive lease outlives its TTL', using(async (store) => {
        skipUnless(store.capabilities.has('leases'), 'the adapter does not declare "leases"');
        const lease = await store.lease(leaseTtlMs);
        await store.put('alive/key', 1, { lease: lease.id });
        await sleep(leaseTtlMs * 2.5);
        assert.equal(lease.lost.aborted, false);
        assert.equal((await store.get('alive/key'))?.value, 1);
        await lease.revoke();
      }), 60_000);

      it('revoke removes the keys bound to the lease and is idempotent', using(async (store) => {
        skipUnless(store.capabilities.has('leases'), 'the adapter does not declare "leases"');
        const lease = await store.lease(leaseTtlMs * 10);
        await store.put('rev/a', 1, { lease: lease.id });
        await store.put('rev/plain', 2);
        await lease.revoke();
        await lease.revoke();
        assert.equal(lease.lost.aborted, true);
        assert.equal(await store.get('rev/a'), undefined);
        assert.equal((await store.get('rev/plain'))?.value, 2);
      }));

      it('put with a revoked lease is refused and writes nothing', using(async (store) => {
        skipUnless(store.capabilities.has('leases'), 'the adapter does not declare "leases"');
        const lease = await store.lease(leaseTtlMs * 10);
        await lease.revoke();
        await rejectsWith(store.put('rev/late', 1, { lease: lease.id }), 'NOT_FOUND');
        assert.equal(await store.get('rev/late'), undefined);
      }));

      it('a lease TTL under 1000 ms is INVALID_ARGUMENT', using(async (store) => {
        await rejectsWith(store.lease(10), 'INVALID_ARGUMENT');
        await rejectsWith(store.lease(1500.5), 'INVALID_ARGUMENT');
      }));
    });

    describe('bad input changes nothing', () => {
      const badKeys: Array<[string, unknown]> = [
        ['an empty key', ''],
        ['a NUL byte', 'a\u0000b'],
        ['a ".." segment', 'a/../b'],
        ['a "." segment', 'a/./b'],
        ['a leading "/"', '/abs'],
        ['an empty segment', 'a//b'],
        ['a lone surrogate', 'a\ud800b'],
        ['a key over 1024 bytes', 'k'.repeat(1025)],
        ['a non-string key', 42],
      ];
      for (const [what, key] of badKeys) {
        it(`put, get and delete with ${what} give INVALID_ARGUMENT`, using(async (store) => {
          await store.put('good/key', 1);
          const before = await keysOf(store);
          await rejectsWith(store.put(key as string, 1), 'INVALID_ARGUMENT');
          await rejectsWith(store.get(key as string), 'INVALID_ARGUMENT');
          await rejectsWith(store.delete(key as string), 'INVALID_ARGUMENT');
          assert.deepEqual(await keysOf(store), before);
        }));
      }

      it('list and watch with a bad prefix give INVALID_ARGUMENT', using(async (store) => {
        await rejectsWith(store.list('a/../'), 'INVALID_ARGUMENT');
        await rejectsWith(store.list('/abs'), 'INVALID_ARGUMENT');
        await rejectsWith(take(store.watch('a\u0000'), 1), 'INVALID_ARGUMENT');
      }));

      const badValues: Array<[string, unknown]> = [
        ['a function', () => 1],
        ['NaN', Number.NaN],
        ['Infinity', Number.POSITIVE_INFINITY],
        ['undefined', undefined],
        ['a Date', new Date(0)],
        ['a bigint', 10n],
        ['an object with a function inside', { a: { b: () => 1 } }],
        ['a string with a lone surrogate', 'x\udc00'],
      ];
      for (const [what, value] of badValues) {
        it(`put of ${what} gives INVALID_ARGUMENT and changes nothing`, using(async (store) => {
          await store.put('good/key', 'kept');
          const before = await keysOf(store);
          await rejectsWith(store.put('good/key', value as JsonValue), 'INVALID_ARGUMENT');
          await rejectsWith(store.put('bad/new', value as JsonValue), 'INVALID_ARGUMENT');
          assert.deepEqual(await keysOf(store), before);
          assert.equal((await store.get('good/key'))?.value, 'kept');
        }));
      }

      it('a cyclic value gives INVALID_ARGUMENT', using(async (store) => {
        const cyclic: Record<string, unknown> = {};
        cyclic['self'] = cyclic;
        await rejectsWith(store.put('bad/cycle', cyclic as JsonValue), 'INVALID_ARGUMENT');
        assert.equal(await store.get('bad/cycle'), undefined);
      }));

      it('a value over maxValueBytes gives RESOURCE_EXHAUSTED and changes nothing', using(async (store) => {
        await store.put('big/key', 'small');
        const before = await keysOf(store);
        await rejectsWith(store.put('big/key', 'x'.repeat(store.maxValueBytes)), 'RESOURCE_EXHAUSTED');
        await rejectsWith(store.put('big/new', { blob: 'é'.repeat(Math.ceil(store.maxValueBytes / 2)) }), 'RESOURCE_EXHAUSTED');
        assert.deepEqual(await keysOf(store), before);
        assert.equal((await store.get('big/key'))?.value, 'small');
      }));

      it('a bad ifRevision or limit gives INVALID_ARGUMENT', using(async (store) => {
        await rejectsWith(store.put('opt/key', 1, { ifRevision: -1 }), 'INVALID_ARGUMENT');
        await rejectsWith(store.put('opt/key', 1, { ifRevision: 1.5 }), 'INVALID_ARGUMENT');
        await rejectsWith(store.delete('opt/key', { ifRevision: Number.NaN }), 'INVALID_ARGUMENT');
        await rejectsWith(store.list('', { limit: 0 }), 'INVALID_ARGUMENT');
        await rejectsWith(store.get('opt/key', { timeoutMs: -5 }), 'INVALID_ARGUMENT');
        assert.deepEqual((await store.list('')).entries, []);
      }));
    });

    describe('lifecycle and cancellation', () => {
      it('every call after close() gives CLOSED, and close() is idempotent', async () => {
        const store = await factory();
        await store.put('c/key', 1);
        await store.close();
        await store.close();
        assert.equal(store.closed, true);
        await rejectsWith(store.get('c/key'), 'CLOSED');
        await rejectsWith(store.list(''), 'CLOSED');
        await rejectsWith(store.put('c/key', 2), 'CLOSED');
        await rejectsWith(store.delete('c/key'), 'CLOSED');
        await rejectsWith(store.lease(leaseTtlMs), 'CLOSED');
        await rejectsWith(take(store.watch(''), 1), 'CLOSED');
        const report = await store.health();
        assert.equal(report.ok, false);
      });

      it('a call with an already-aborted signal gives CANCELLED and changes nothing', using(async (store) => {
        await store.put('ab/key', 'kept');
        const signal = AbortSignal.abort();
        await rejectsWith(store.get('ab/key', { signal }), 'CANCELLED');
        await rejectsWith(store.list('', { signal }), 'CANCELLED');
        await rejectsWith(store.put('ab/key', 'changed', { signal }), 'CANCELLED');
        await rejectsWith(store.put('ab/new', 1, { signal }), 'CANCELLED');
        await rejectsWith(store.delete('ab/key', { signal }), 'CANCELLED');
        assert.deepEqual((await store.list('')).entries.map((e) => [e.key, e.value]), [['ab/key', 'kept']]);
      }));

      it('await using closes the store', async () => {
        let seen: ConfigStore | undefined;
        {
          await using store = await factory();
          seen = store;
          await store.put('dispose/key', 1);
        }
        assert.equal(seen.closed, true);
      });
    });
  });
}
