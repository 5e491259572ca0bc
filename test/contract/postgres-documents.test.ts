/**
 * The documents contract and the postgres:// specifics against a PostgreSQL server (started here from the
 * Debian binaries, or STOWAGE_TEST_POSTGRES_URL). Each store gets a table prefix of its own.
 */
import type { PoolClient } from 'pg';
import { describe, expect, it } from 'vitest';
import { postgresDocumentsScheme, type PostgresDocumentsDriver } from '../../src/adapters/postgres/index.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { documentsContract } from '../../src/testing/documents.js';
import type { Filter } from '../../src/ports/documents.js';
import { serviceSuite } from '../support/services.js';

const context = {
  dataDir: '/nonexistent',
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

serviceSuite('postgres', (svc) => {
  const run = Date.now().toString(36).slice(-5);
  let n = 0;

  /** A store with table prefix `prefix` (another pool, as another process would have). */
  async function storeOn(prefix: string, options?: { maxDocumentBytes: number }) {
    const driver = (await postgresDocumentsScheme.open(parseUrl(`${svc().url}?tablePrefix=${prefix}`), context)) as PostgresDocumentsDriver;
    return { driver, store: createDocumentStore(driver, options), prefix };
  }
  const freshPrefix = () => `t${run}_${n++}_`;

  documentsContract({ test: { describe, it }, name: 'postgres://', factory: async () => (await storeOn(freshPrefix(), { maxDocumentBytes: 64 * 1024 })).store });

  describe('postgres:// specifics', () => {
    it('a second store on the same tables sees the indexes and migrations', async () => {
      const prefix = freshPrefix();
      const { store: first } = await storeOn(prefix);
      const calls: number[] = [];
      const migrations = [{ version: 1, up: async () => void calls.push(1) }];
      const col = await first.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }], migrations });
      await col.insert({ email: 'a@x' });
      expect((await first.health()).serverVersion).toMatch(/^PostgreSQL \d+/);
      const { store: second } = await storeOn(prefix);
      const again = await second.collection('users', { migrations });
      await expect(again.insert({ email: 'a@x' })).rejects.toMatchObject({ code: 'CONFLICT', details: { index: 'by_email' } });
      expect(calls).toEqual([1]);
      await Promise.all([first.close(), second.close()]);
    });

    it('two stores opening a collection at once run its migration once, under an advisory lock', async () => {
      const prefix = freshPrefix();
      const [{ store: first }, { store: second }] = await Promise.all([storeOn(prefix), storeOn(prefix)]);
      const runs: string[] = [];
      const migrations = (who: string) => [{ version: 1, up: async () => { runs.push(`start ${who}`); await new Promise((r) => setTimeout(r, 300)); runs.push(`end ${who}`); } }];
      await Promise.all([first.collection('jobs', { migrations: migrations('a') }), second.collection('jobs', { migrations: migrations('b') })]);
      expect(runs).toHaveLength(2);
      expect(runs[0]?.replace('start ', 'end ')).toBe(runs[1]);
      await Promise.all([first.close(), second.close()]);
    });

    it('a top-level equality on an indexed field reads through its GIN index (EXPLAIN), and answers as without it', async () => {
      const { driver, store } = await storeOn(freshPrefix());
      const plain = await store.collection('plain');
      const col = await store.collection('planned', { indexes: [{ fields: ['n'], name: 'by_n' }, { fields: ['u'], unique: true, name: 'by_u' }] });
      // Selective values (about ten rows of 20,000 each), so that the planner prefers the index to a scan.
      const docs = Array.from({ length: 20_000 }, (_, i) => ({ n: i % 97 === 0 ? [i % 2000, 'x'] : i % 2000, u: `u${i}`, m: i }));
      await col.insertMany(docs);
      await plain.insertMany(docs);
      await driver.pool.query(`ANALYZE ${driver.table('d_planned')}`);
      const seen: string[] = [];
      const connect = driver.pool.connect.bind(driver.pool) as (...args: unknown[]) => unknown;
      // Record the statements the driver runs on clients of its own (finds do), to explain them; the pool's
      // own use of connect (with a callback, for pool.query) is left alone.
      driver.pool.connect = ((...args: unknown[]) => {
        if (args.length > 0) return connect(...args);
        return (connect() as Promise<PoolClient>).then((client) => {
          const original = client.query.bind(client) as (sql: unknown, ...rest: unknown[]) => unknown;
          (client as unknown as { query: typeof original }).query = (sql: unknown, ...rest: unknown[]) => {
            // Text and values, or a query config (a statement the driver names once it has run twice).
            const { text, values } = typeof sql === 'string' ? { text: sql, values: rest[0] } : (sql as { text: string; values: unknown });
            if (text.startsWith('SELECT id')) seen.push(JSON.stringify([text, values]));
            return original(sql, ...rest);
          };
          return client;
        });
      }) as typeof driver.pool.connect;
      for (const filter of [{ n: 5 }, { n: { $in: [1, 2, 3] } }, { u: 'u7' }, { n: 'x', m: { $gt: 3 } }] as Filter[]) {
        seen.length = 0;
        const got = (await col.find(filter, { limit: 1000 })).items.map((d) => d.data);
        expect(got, JSON.stringify(filter)).toEqual((await plain.find(filter, { limit: 1000 })).items.map((d) => d.data));
        const [sql, params] = JSON.parse(seen[0] ?? '[]') as [string, unknown[]];
        const plan = (await driver.pool.query<{ 'QUERY PLAN': string }>(`EXPLAIN ${sql}`, params)).rows.map((r) => r['QUERY PLAN']).join('\n');
        expect(plan, JSON.stringify(filter)).toMatch(/Bitmap Index Scan on "?t\w+ix_g_planned_by_/);
      }
      await store.close();
    }, 60_000);

    it('a read whose deadline passes is cancelled on the server (gone from pg_stat_activity)', async () => {
      const { driver, store } = await storeOn(freshPrefix());
      const col = await store.collection('slow');
      await col.insertMany(Array.from({ length: 2000 }, (_, i) => ({ tags: Array.from({ length: 50 }, (_, j) => `t${i}-${j}`), n: i })));
      // Prefix matches walk every array element: seconds of server work here.
      const slow = { $or: Array.from({ length: 60 }, (_, i) => ({ tags: { $regex: `^absent ${i}` } })) };
      const running = async () => Number((await driver.pool.query<{ n: string }>(
        "SELECT COUNT(*) AS n FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND state = 'active' AND query LIKE '%d_slow%'",
      )).rows[0]?.n);
      for (const call of [() => col.count(slow, { timeoutMs: 300 }), () => col.find(slow, { signal: AbortSignal.timeout(300) })]) {
        const failed = call().then(() => 'answered', (err: { code?: string }) => err.code);
        await expect(failed).resolves.toMatch(/^(TIMEOUT|CANCELLED)$/);
        let left = await running();
        for (let i = 0; i < 60 && left > 0; i++) {
          await new Promise((r) => setTimeout(r, 50));
          left = await running();
        }
        expect(left).toBe(0);
      }
      expect(await col.count({ n: { $lt: 10 } })).toBe(10);
      await store.close();
    }, 60_000);

    it('$mod keeps every digit of a large integer, and an index step never reads a scalar as its element', async () => {
      const { store } = await storeOn(freshPrefix());
      const col = await store.collection('walk');
      // float8::numeric keeps 15 digits (1234567890123456 would become …460); JavaScript's % sees all 16.
      await col.insert({ n: 1234567890123456, big: 9007199254740991, neg: -7.5 }, { id: 'nums' });
      await col.insert({ a: 's', o: { '0': 'k' }, l: ['s', [1]] }, { id: 'paths' });
      const ids = async (filter: Filter) => (await col.find(filter)).items.map((d) => d.id);
      expect(await ids({ n: { $mod: [10, 6] } })).toEqual(['nums']);
      expect(await ids({ big: { $mod: [10, 1] } })).toEqual(['nums']);
      expect(await ids({ neg: { $mod: [4, -3] } })).toEqual(['nums']);
      // PostgreSQL's `'"s"'::jsonb -> 0` is "s": only the array route may take the index step.
      expect(await ids({ 'a.0': 's' })).toEqual([]);
      expect(await ids({ 'a.0': { $exists: true } })).toEqual([]);
      expect(await ids({ 'o.0': 'k' })).toEqual(['paths']);
      expect(await ids({ 'l.0': 's', 'l.1': 1, 'l.1.0': 1 })).toEqual(['paths']);
      expect(await ids({ 'l.1.0.0': { $exists: true } })).toEqual([]);
      await store.close();
    });

    it('path keys with quotes and question marks are data, not SQL', async () => {
      const { store } = await storeOn(freshPrefix());
      const col = await store.collection('odd');
      await col.insert({ "it's?": 1, 'a?b': ['x?'] }, { id: 'q' });
      expect(await col.count({ "it's?": 1, 'a?b': 'x?' })).toBe(1);
      expect(await col.count({ "it's?": { $in: [2, 3, 4, 5, 1] } })).toBe(1);
      await store.close();
    });
  });
});
