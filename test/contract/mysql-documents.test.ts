import mysql from 'mysql2/promise';
import { afterAll, describe, expect, it } from 'vitest';
import { mysqlDocumentsScheme } from '../../src/adapters/mysql/index.js';
import type { MysqlDocumentsDriver } from '../../src/adapters/mysql/documents-driver.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { documentsContract } from '../../src/testing/documents.js';
import type { Filter } from '../../src/ports/documents.js';
import { serviceSuite, type Service } from '../support/services.js';
import { expectLocksOutsideThePool } from '../support/lock-pools.js';
import { ARRAY_CASE_COUNTS, ARRAY_CASE_QUERIES, ARRAY_CASE_SEED, UPGRADE_CASE, UPGRADE_CASE_DOCS, writeArraysAtNewPaths } from '../support/array-paths-case.js';

const context = {
  dataDir: '/nonexistent',
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

/**
 * The documents contract and the mysql:// specifics against one server flavour: MariaDB (started here from
 * PATH) or MySQL 8 (testcontainers where a Docker engine answers, or STOWAGE_TEST_MYSQL8_URL).
 */
function mysqlSuite(kind: 'mariadb' | 'mysql8', label: string): void {
  serviceSuite(kind, (svc) => {
    const run = `${process.pid}_${Date.now().toString(36)}`;
    let n = 0;
    const databases: string[] = [];

    /** A store on `database` of the test server (another pool on it, as another process would have). */
    async function storeOn(service: Service, database: string, options?: { maxDocumentBytes: number }, params = '') {
      const url = service.url.replace(/\/[^/?]*(\?|$)/, `/${database}$1`);
      const driver = await mysqlDocumentsScheme.open(parseUrl(params === '' ? url : `${url}${url.includes('?') ? '&' : '?'}${params}`), context);
      return { driver: driver as MysqlDocumentsDriver, store: createDocumentStore(driver, options) };
    }

    /** A store on a fresh database of the test server. */
    async function freshStore(service: Service) {
      const database = `stowage_docs_${run}_${n++}`;
      const url = new URL(service.url.replace(/^mysql:/, 'http:'));
      const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
      try {
        await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
      } finally {
        await admin.end();
      }
      databases.push(database);
      return (await storeOn(service, database, { maxDocumentBytes: 64 * 1024 })).store;
    }

    afterAll(async () => {
      if (databases.length === 0) return;
      const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
      const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
      for (const db of databases) await admin.query(`DROP DATABASE IF EXISTS \`${db}\``);
      await admin.end();
    });

    documentsContract({ test: { describe, it }, name: `mysql:// (${label})`, factory: () => freshStore(svc()) });

    describe(`mysql:// specifics (${label})`, () => {
      it('detects the server flavour and a second store on the same database sees the indexes and migrations', async () => {
        const first = await freshStore(svc());
        const calls: number[] = [];
        const migrations = [{ version: 1, up: async () => void calls.push(1) }];
        const col = await first.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }], migrations });
        await col.insert({ email: 'a@x' });
        const db = (await first.health()).serverVersion ?? '';
        expect(db).toMatch(/MariaDB|^\d/);
        const { driver, store: second } = await storeOn(svc(), databases.at(-1) ?? '');
        const again = await second.collection('users', { migrations });
        expect(driver.flavour).toBe(/MariaDB/i.test(db) ? 'mariadb' : 'mysql');
        await expect(again.insert({ email: 'a@x' })).rejects.toMatchObject({ code: 'CONFLICT' });
        expect(calls).toEqual([1]);
        await Promise.all([first.close(), second.close()]);
      });

      it('an indexed equality pages over scalars and arrays as without the index (array rows checked after the lookup)', async () => {
        const store = await freshStore(svc());
        const plain = await store.collection('plain');
        const indexed = await store.collection('indexed', { indexes: [{ fields: ['t'] }, { fields: ['u'], unique: true }, { fields: ['k'] }] });
        const values = ['x', 'y', ['x', 'z'], ['y'], 1, 1.5, [1, 'x'], true, [true], null, { a: 'x' }, 'x ', ['z', ['x']], ['q'], ['r'], ['s']];
        for (let i = 0; i < 64; i++) {
          const data = { t: values[i % values.length], u: i % 7 === 0 ? ['x', i] : `u${i}`, k: i % 3 };
          const id = `id${String(i).padStart(2, '0')}`;
          await plain.insert(data as never, { id });
          await indexed.insert(data as never, { id });
        }
        const filters = [{ t: 'x' }, { t: 1 }, { t: true }, { t: { $in: ['x', 1, 'y'] } }, { t: 'x', k: 1 }, { t: { $eq: 'x', $ne: 'y' } }, { u: 'x' }, { t: 'q' }, { k: 1 }, { k: { $in: [0, 2] } }, { k: 1, t: 'x' }, { k: 2, t: { $ne: 'y' } }];
        for (const filter of filters) {
          const expected = (await plain.find(filter, { limit: 1000 })).items.map((d) => d.id);
          for (const sort of [undefined, { k: -1 as const }]) {
            const pages: string[] = [];
            let after: string | undefined;
            do {
              const page = await indexed.find(filter, { limit: 2, after, sort });
              pages.push(...page.items.map((d) => d.id));
              after = page.next;
            } while (after !== undefined);
            const sorted = sort === undefined ? expected : (await plain.find(filter, { limit: 1000, sort })).items.map((d) => d.id);
            expect(pages, JSON.stringify({ filter, sort })).toEqual(sorted);
          }
          expect(await indexed.count(filter)).toBe(expected.length);
        }
        await store.close();
      });

      it('two stores (two pools, as two processes would have) opening a collection at once run its migration once, under GET_LOCK', async () => {
        const first = await freshStore(svc());
        const { store: second } = await storeOn(svc(), databases.at(-1) ?? '');
        const runs: string[] = [];
        // Slow enough that, without a lock across pools, both stores would read version 0 and both run it.
        const migrations = (who: string) => [{ version: 1, up: async () => { runs.push(`start ${who}`); await new Promise((r) => setTimeout(r, 300)); runs.push(`end ${who}`); } }];
        await Promise.all([first.collection('jobs', { migrations: migrations('a') }), second.collection('jobs', { migrations: migrations('b') })]);
        expect(runs).toHaveLength(2);
        expect(runs[0]?.replace('start ', 'end ')).toBe(runs[1]);
        await Promise.all([first.close(), second.close()]);
      });

      it('locks hold no pooled connection: a pool of 2 builds 4 collections\' indexes at once, a pool of 1 migrates', async () => {
        // A lock held on a pooled connection, with the index build's or the migration's statements taken from
        // the same pool, made as many concurrent builds (or migrations) as connections wait forever.
        await (await freshStore(svc())).close();
        const database = databases.at(-1) ?? '';
        const one = await expectLocksOutsideThePool(async (size) => (await storeOn(svc(), database, undefined, `connectionLimit=${size}`)).store);
        await one.close();
      }, 60_000);

      it('a read whose deadline passes, or whose signal aborts, is stopped on the server (gone from PROCESSLIST)', async () => {
        const store = await freshStore(svc());
        const col = await store.collection('slow');
        await col.insertMany(Array.from({ length: 200 }, (_, i) => ({ tags: Array.from({ length: 100 }, (_, j) => `t${i}-${j}`), n: i })));
        // 400 walks of a 100-element array per document: ~10 s of server work here (MariaDB 10.11), little memory.
        const slow = { $or: Array.from({ length: 400 }, (_, i) => ({ tags: `absent ${i}` })) };
        const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
        const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password) });
        const running = async (): Promise<number> => {
          const [rows] = await admin.query(
            "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID <> CONNECTION_ID() AND COMMAND <> 'Sleep' AND INFO LIKE '%d\\_slow%'",
          );
          return Number((rows as { n: number }[])[0]?.n);
        };
        try {
          for (const call of [
            () => col.count(slow, { timeoutMs: 300 }),
            () => col.find(slow, { signal: AbortSignal.timeout(300) }),
          ]) {
            const failed = call().then(() => 'answered', (err: { code?: string }) => err.code);
            await expect(failed).resolves.toMatch(/^(TIMEOUT|CANCELLED)$/);
            // The statement would run for several seconds more; once killed it is gone within moments (3 s
            // of polling leave room for a loaded machine).
            let left = await running();
            for (let i = 0; i < 60 && left > 0; i++) {
              await new Promise((r) => setTimeout(r, 50));
              left = await running();
            }
            expect(left).toBe(0);
          }
          // The store goes on working on fresh connections.
          expect(await col.count({ n: { $lt: 10 } })).toBe(10);
        } finally {
          await admin.end();
          await store.close();
        }
      }, 60_000);

      it('an indexed equality or $in reads through the index (EXPLAIN), an unindexed field scans', async () => {
        const { driver, store } = await freshStore(svc()).then(async (s) => {
          await s.close();
          return storeOn(svc(), databases.at(-1) ?? '');
        });
        const col = await store.collection('planned', { indexes: [{ fields: ['n'], name: 'by_n' }, { fields: ['u'], unique: true, name: 'by_u' }] });
        await col.insertMany(Array.from({ length: 300 }, (_, i) => ({ n: i % 30, u: `u${i}`, m: i })));
        // Every statement the driver runs from here is recorded with its parameters, to be explained.
        const seen: { sql: string; params: unknown[] }[] = [];
        const getConnection = driver.pool.getConnection.bind(driver.pool);
        driver.pool.getConnection = async () => {
          const conn = await getConnection();
          for (const method of ['execute', 'query'] as const) {
            const original = conn[method].bind(conn) as (sql: string, params?: unknown[]) => Promise<unknown>;
            (conn as unknown as Record<string, unknown>)[method] = (sql: string, params?: unknown[]) => {
              if (sql.startsWith('SELECT') || sql.startsWith('(SELECT')) seen.push({ sql, params: params ?? [] });
              return original(sql, params);
            };
          }
          return conn;
        };
        const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
        const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: databases.at(-1) });
        const keys = async (filter: Filter): Promise<string[]> => {
          seen.length = 0;
          await col.find(filter, { limit: 10 });
          await col.count(filter);
          expect(seen.length).toBeGreaterThan(0);
          const used: string[] = [];
          for (const { sql, params } of seen) {
            const [rows] = await admin.query(`EXPLAIN ${sql}`, params);
            for (const row of rows as { table: string | null; key: string | null; type: string | null }[]) {
              if (row.table === 'd_planned') used.push(row.type === 'ALL' ? 'ALL' : String(row.key));
            }
          }
          return used;
        };
        try {
          for (const filter of [{ n: 5 }, { n: { $in: [1, 2, 3] } }, { u: 'u7' }, { n: 5, m: { $gt: 3 } }] as Filter[]) {
            const used = await keys(filter);
            expect(used.length, JSON.stringify(filter)).toBeGreaterThan(0);
            // The optimizer may read a short page in id order (PRIMARY, with LIMIT); never the whole table.
            expect(used.some((k) => k.startsWith('ix_by_')), `${JSON.stringify(filter)}: ${used.join()}`).toBe(true);
            expect(used, JSON.stringify(filter)).not.toContain('ALL');
          }
          expect(await keys({ m: 5 })).toContain('ALL');
        } finally {
          await admin.end();
          await store.close();
        }
      }, 60_000);

      /** Records the SELECT COUNT statements the driver runs. */
      function countStatements(driver: MysqlDocumentsDriver): { sql: string; params: unknown[] }[] {
        const seen: { sql: string; params: unknown[] }[] = [];
        const getConnection = driver.pool.getConnection.bind(driver.pool);
        driver.pool.getConnection = async () => {
          const conn = await getConnection();
          for (const method of ['execute', 'query'] as const) {
            const original = conn[method].bind(conn) as (sql: string, params?: unknown[]) => Promise<unknown>;
            (conn as unknown as Record<string, unknown>)[method] = (sql: string, params?: unknown[]) => {
              if (sql.startsWith('SELECT COUNT')) seen.push({ sql, params: params ?? [] });
              return original(sql, params);
            };
          }
          return conn;
        };
        return seen;
      }

      it('where no document ever held an array at a path, its filter has no array arm (statement and EXPLAIN), yet sees an array written later', async () => {
        const { driver, store } = await freshStore(svc()).then(async (s) => {
          await s.close();
          return storeOn(svc(), databases.at(-1) ?? '');
        });
        const col = await store.collection('guarded', { indexes: [{ fields: ['n'], name: 'by_n' }] });
        await col.insertMany(Array.from({ length: 200 }, (_, i) => ({ n: i, o: { k: i % 10 }, items: [{ q: i % 5 }] })));
        const seen = countStatements(driver);
        const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
        const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: databases.at(-1) });
        try {
          const range = { n: { $gt: 150 } };
          expect(await col.count(range)).toBe(49);
          expect(await col.count({ 'o.k': 3 })).toBe(20);
          expect(await col.count({ 'items.q': 4 })).toBe(40);
          const statements = seen.splice(0);
          const [rangeSql, dottedSql, elementSql] = statements.map((s) => s.sql);
          // No array test, no walk of elements: the value alone; the record's size beside the count.
          for (const sql of [rangeSql, dottedSql]) {
            expect(sql).not.toMatch(/ARRAY|JSON_TABLE|\[\*\]/);
            expect(sql).toMatch(/\(SELECT COUNT\(\*\) FROM `?stowage_array_paths`? WHERE collection = \?\) AS arrays/);
          }
          // `items` holds arrays: its elements are read (`[*]`), but `items.q` in them is never one.
          expect(elementSql).toContain(`'$."items"[*]."q"'`);
          expect(elementSql).not.toContain(`'$."items"[*]."q"[*]'`);
          const [plan] = await admin.query(`EXPLAIN ${rangeSql ?? ''}`, statements[0]?.params);
          // The record's size: one lookup in its primary key; the documents: one scan, nothing per element.
          const tables = (plan as { table: string | null; key: string | null }[]).map((r) => `${String(r.table)}:${String(r.key)}`);
          expect(tables).toEqual(['d_guarded:null', 'stowage_array_paths:PRIMARY']);
          await col.insert({ n: [1, 160], o: { k: [3] } });
          await col.insert({ n: [[160]], items: [{ q: [4] }] });
          expect(await col.count(range)).toBe(50);
          expect(await col.count({ 'o.k': 3 })).toBe(21);
          expect(await col.count({ 'items.q': 4 })).toBe(41);
          expect(await col.count({ n: { $in: [160, 1000] } })).toBe(2);
          expect(await col.count({ n: { $type: 'array' } })).toBe(2);
          expect(await col.count({ n: { $size: 2 } })).toBe(1);
        } finally {
          await admin.end();
          await store.close();
        }
      }, 60_000);

      it('an array another pool (another process) writes at a new path is seen by the next query of this one, whatever the write', async () => {
        const a = await freshStore(svc());
        const { store: b } = await storeOn(svc(), databases.at(-1) ?? '');
        const colA = await a.collection('shared', { indexes: [{ fields: ['n'], name: 'by_n' }] });
        const colB = await b.collection('shared');
        await colA.insertMany(ARRAY_CASE_SEED);
        const counts = () => Promise.all(ARRAY_CASE_QUERIES.map((q) => colA.count(q)));
        const finds = async () => (await Promise.all(ARRAY_CASE_QUERIES.map((q) => colA.find(q, { limit: 100 })))).map((page) => page.items.length);
        expect(await counts()).toEqual(ARRAY_CASE_COUNTS.before);
        expect(await finds()).toEqual(ARRAY_CASE_COUNTS.before);
        await writeArraysAtNewPaths(colB);
        expect(await finds()).toEqual(ARRAY_CASE_COUNTS.after);
        expect(await counts()).toEqual(ARRAY_CASE_COUNTS.after);
        await Promise.all([a.close(), b.close()]);
      }, 60_000);

      it('a database written before the record of array paths existed gets it when a collection is opened', async () => {
        const first = await freshStore(svc());
        const col = await first.collection('old');
        await col.insertMany(UPGRADE_CASE_DOCS);
        await first.close();
        const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
        const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: decodeURIComponent(url.username), password: decodeURIComponent(url.password), database: databases.at(-1) });
        try {
          // What an earlier version left: the documents, no record.
          await admin.query('DELETE FROM stowage_array_paths');
        } finally {
          await admin.end();
        }
        const { store: again } = await storeOn(svc(), databases.at(-1) ?? '');
        const reopened = await again.collection('old');
        for (const { filter, count } of UPGRADE_CASE) expect(await reopened.count(filter), JSON.stringify(filter)).toBe(count);
        await again.close();
      }, 60_000);

      it('a $in of 10,000 values over array fields answers as one set, quickly', async () => {
        const store = await freshStore(svc());
        const col = await store.collection('many');
        await col.insertMany(Array.from({ length: 500 }, (_, i) => ({ tags: [`t${i}`, i], n: i })));
        const values = Array.from({ length: 10_000 }, (_, i) => `t${i * 7}`);
        // One JSON_TABLE subquery per value took minutes and gigabytes here; one set takes milliseconds.
        expect(await col.count({ tags: { $in: values } }, { timeoutMs: 5_000 })).toBe(72);
        expect(await col.count({ n: { $in: Array.from({ length: 10_000 }, (_, i) => i * 7) } }, { timeoutMs: 5_000 })).toBe(72);
        expect(await col.count({ tags: { $nin: values } }, { timeoutMs: 5_000 })).toBe(428);
        await store.close();
      }, 60_000);

      it('ids differing only by trailing spaces are different documents', async () => {
        const store = await freshStore(svc());
        const col = await store.collection('ids');
        await col.insert({ a: 1 }, { id: 'a' });
        await col.insert({ a: 2 }, { id: 'a ' });
        expect((await col.get('a '))?.data).toEqual({ a: 2 });
        expect(await col.count({ _id: 'a' })).toBe(1);
        await store.close();
      });
    });
  });
}

mysqlSuite('mariadb', 'MariaDB');
mysqlSuite('mysql8', 'MySQL 8');
