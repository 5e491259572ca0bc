/**
 * How a `postgres://` config watch gets its changes: from the NOTIFY that carries a change when it fits, and
 * from the revision log when it does not (a value too large to carry, a revision only named) — in revision
 * order either way, none missing and none twice. Against the harness's PostgreSQL.
 */
import { expect, it } from 'vitest';
import { postgresConfigScheme } from '../../src/adapters/postgres/index.js';
import type { PostgresConfigDriver } from '../../src/adapters/postgres/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { ConfigEvent, ConfigStore } from '../../src/ports/config.js';
import { openContext as context } from '../support/adapters.js';
import { serviceSuite } from '../support/services.js';

/** A store whose reads of the revision log are counted (the watch's query is the only one that joins it). */
interface Counted {
  readonly store: ConfigStore;
  logReads(): number;
  /** Runs a statement of the test's own on the store's pool (not counted). */
  sql(text: string, values: unknown[]): Promise<unknown>;
}

serviceSuite(
  'postgres',
  (svc) => {
    let n = 0;
    const open = async (prefix: string): Promise<Counted> => {
      const driver = (await postgresConfigScheme.open(parseUrl(`${svc().url}?tablePrefix=${prefix}`), context)) as PostgresConfigDriver;
      const pool = driver.native() as unknown as { query: (...args: unknown[]) => unknown };
      const query = pool.query.bind(pool);
      let reads = 0;
      pool.query = (...args: unknown[]) => {
        const sql = typeof args[0] === 'string' ? args[0] : (args[0] as { text?: unknown } | undefined)?.text;
        if (typeof sql === 'string' && sql.includes('LEFT JOIN LATERAL') && sql.includes('_log')) reads++;
        return query(...args);
      };
      return { store: createConfigStore(driver), logReads: () => reads, sql: async (text, values) => query(text, values) };
    };
    const tablePrefix = (): string => `w${process.pid}_${n++}_`;

    /** Collects the events of a watch of `prefix` until `count` have come. */
    const collect = (store: ConfigStore, prefix: string, afterRevision: number, count: number): Promise<ConfigEvent[]> =>
      (async () => {
        const events: ConfigEvent[] = [];
        const abort = new AbortController();
        const timer = setTimeout(() => abort.abort(), 30_000);
        try {
          for await (const ev of store.watch(prefix, { afterRevision, signal: abort.signal })) {
            events.push(ev);
            if (events.length === count) break;
          }
        } finally {
          clearTimeout(timer);
        }
        return events;
      })();

    const summary = (events: ConfigEvent[]): [string, string, number, unknown][] =>
      events.map((e) => [e.type, e.key, e.revision, e.type === 'put' ? e.value : e.reason]);

    /** What a scenario gets: two stores over one schema, and the events of a watch on the first. */
    interface Scene {
      readonly watcher: Counted;
      readonly writer: Counted;
      /** The stores' table prefix (their NOTIFY channel is `<prefix>stowage_config`). */
      readonly prefix: string;
      /** Resolves with the first `count` events after the scene's start, once they have come. */
      readonly events: Promise<ConfigEvent[]>;
    }

    /**
     * Opens a watcher and a writer over one schema, starts a watch of `watchPrefix` after a first write, waits
     * for the watch's first read of the log, runs `body`, and closes both stores.
     */
    const scene = async (watchPrefix: string, count: number, body: (s: Scene) => Promise<void>): Promise<void> => {
      const prefix = tablePrefix();
      const watcher = await open(prefix);
      const writer = await open(prefix);
      try {
        const { revision: start } = await writer.store.put(`${watchPrefix}start`, 0);
        const events = collect(watcher.store, watchPrefix, start, count);
        // The watch's first read of the log: nothing after `start` yet.
        await expect.poll(() => watcher.logReads(), { timeout: 10_000 }).toBeGreaterThan(0);
        await body({ watcher, writer, prefix, events });
      } finally {
        await watcher.store.close();
        await writer.store.close();
      }
    };

    it('takes small changes from their notifications: in order, the deletes too, with no read of the log after the first', () =>
      scene('k/', 31, async ({ watcher, writer, events }) => {
        const readsBefore = watcher.logReads();
        const expected: [string, string, number, unknown][] = [];
        for (let i = 0; i < 30; i++) {
          const { revision } = await writer.store.put(`k/${i % 3}`, { i, text: 'line\nbreak' });
          expected.push(['put', `k/${i % 3}`, revision, { i, text: 'line\nbreak' }]);
        }
        const { revision } = await writer.store.delete('k/0');
        expected.push(['delete', 'k/0', revision, 'deleted']);
        expect(summary(await events)).toEqual(expected);
        expect(watcher.logReads() - readsBefore).toBe(0);
      }), 60_000);

    it('changes too large to carry come from the log, between the small ones, in revision order, none missing or twice', () =>
      scene('k/', 40, async ({ watcher, writer, events }) => {
        const big = 'x'.repeat(10_000);
        // Written concurrently, two writers: the notifications of one store's writes interleave with the other's.
        const writes = await Promise.all(
          Array.from({ length: 40 }, (_, i) =>
            (i % 2 === 0 ? writer : watcher).store.put(`k/${i}`, i % 4 === 0 ? { i, big } : { i }).then(({ revision }) => [revision, i] as const),
          ),
        );
        const got = await events;
        const expected = [...writes].sort((a, b) => a[0] - b[0]);
        expect(got.map((e) => [e.revision, e.type === 'put' ? (e.value as { i: number }).i : -1])).toEqual(expected);
        expect(got.filter((e) => e.type === 'put' && (e.value as { big?: string }).big === big)).toHaveLength(10);
        // The large ones were read from the log.
        expect(watcher.logReads()).toBeGreaterThan(1);
      }), 60_000);

    it('a notification that is not a change of ours costs one read of the log, not one per change after it', () =>
      scene('k/', 20, async ({ watcher, writer, prefix, events }) => {
        const readsBefore = watcher.logReads();
        // Another program NOTIFYing on the store's channel: nothing the listener can read.
        await writer.sql('SELECT pg_notify($1, $2)', [`${prefix}stowage_config`, 'not a header line\nnot ours']);
        const expected: number[] = [];
        for (let i = 0; i < 20; i++) expected.push((await writer.store.put(`k/${i}`, i)).revision);
        expect((await events).map((e) => e.revision)).toEqual(expected);
        // Before the fix the listener took an unreadable payload for a revision beyond every other, and each
        // change after it was read from the log (20 reads here).
        expect(watcher.logReads() - readsBefore).toBeLessThanOrEqual(2);
      }), 60_000);

    it('a watch of a prefix skips the changes outside it that notifications carry, and misses none inside it', () =>
      scene('a/', 10, async ({ writer, events }) => {
        const inside: number[] = [];
        for (let i = 0; i < 30; i++) {
          const key = i % 3 === 0 ? `a/${i}` : `b/${i}`;
          const { revision } = await writer.store.put(key, i);
          if (key.startsWith('a/')) inside.push(revision);
        }
        expect((await events).map((e) => [e.key.slice(0, 2), e.revision])).toEqual(inside.map((r) => ['a/', r]));
      }), 60_000);
  },
);
