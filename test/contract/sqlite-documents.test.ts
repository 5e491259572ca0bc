import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { SqliteDocumentsDriver } from '../../src/adapters/sqlite/documents-driver.js';
import { chooseSqliteEngine, openSqlite, type SqliteEngineName } from '../../src/adapters/sqlite/engine.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { documentsContract } from '../../src/testing/documents.js';
import type { Filter } from '../../src/ports/documents.js';
import { ARRAY_CASE_COUNTS, ARRAY_CASE_QUERIES, ARRAY_CASE_SEED, UPGRADE_CASE, UPGRADE_CASE_DOCS, writeArraysAtNewPaths } from '../support/array-paths-case.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-sqlite-docs-'));
let n = 0;
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Each engine this Node can run; the other is reported as skipped with the reason. */
function available(engine: SqliteEngineName): string | undefined {
  try {
    chooseSqliteEngine(engine);
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
}

for (const engine of ['better-sqlite3', 'node-sqlite'] as const) {
  const unavailable = available(engine);
  if (unavailable !== undefined) {
    describe(`sqlite:// on ${engine}`, () => it.skip(`not on this Node: ${unavailable}`, () => undefined));
    continue;
  }
  documentsContract({
    test: { describe, it },
    name: `sqlite:// on ${engine}`,
    factory: async () =>
      createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, `t${n++}`, 'documents.db'), synchronous: 'normal' }), {
        maxDocumentBytes: 64 * 1024,
      }),
  });

  describe(`sqlite:// specifics on ${engine}`, () => {
    it('an indexed equality, $in or range reads through the index (EXPLAIN QUERY PLAN), an unindexed field scans', async () => {
      const driver = new SqliteDocumentsDriver({ engine, file: join(root, engine, `plan${n++}`, 'documents.db'), synchronous: 'normal' });
      const store = createDocumentStore(driver);
      const col = await store.collection('planned', { indexes: [{ fields: ['n'] }, { fields: ['u'], unique: true }] });
      await col.insertMany(Array.from({ length: 500 }, (_, i) => ({ n: i % 50, u: `u${i}`, m: i })));
      // Every statement the driver runs from here is recorded with its parameters, to be explained.
      const db = driver.db;
      const prepare = db.prepare.bind(db);
      const seen: { sql: string; args: unknown[] }[] = [];
      db.prepare = (sql: string) => {
        const statement = prepare(sql);
        return new Proxy(statement, {
          get: (target, key) =>
            key === 'all' || key === 'get'
              ? (...args: unknown[]) => {
                  seen.push({ sql, args });
                  return (target[key] as (...a: unknown[]) => unknown)(...args);
                }
              : (Reflect.get(target, key) as unknown),
        });
      };
      const plans = async (filter: Filter): Promise<string[]> => {
        seen.length = 0;
        await col.find(filter, { limit: 10 });
        await col.count(filter);
        expect(seen.length).toBeGreaterThan(0);
        return seen.map(({ sql, args }) => (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join(' | '));
      };
      for (const filter of [{ n: 5 }, { n: { $in: [1, 2, 3] } }, { u: 'u7' }, { n: { $gt: 48 } }, { n: 5, m: { $gt: 3 } }] as Filter[]) {
        for (const plan of await plans(filter)) {
          expect(plan, JSON.stringify(filter)).toMatch(/SEARCH d_planned USING INDEX ix_planned\$ix_/);
          expect(plan, JSON.stringify(filter)).not.toMatch(/SCAN d_planned/);
        }
      }
      for (const plan of await plans({ m: 5 })) expect(plan).toMatch(/SCAN d_planned/);
      await store.close();
    });

    const ctx = (dataDir: string) => ({
      dataDir,
      env: {},
      logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
      openDriver: () => Promise.reject(new Error('not used')),
    });

    it('an empty path puts documents.db in the data folder; an absolute path is used as is', async () => {
      const { sqliteDocumentsScheme } = await import('../../src/adapters/sqlite/index.js');
      const { parseUrl } = await import('../../src/driver/url.js');
      const dir = join(root, engine, 'urls');
      const a = await sqliteDocumentsScheme.open(parseUrl(`sqlite://?engine=${engine}`), ctx(dir));
      expect(statSync(join(dir, 'documents.db')).isFile()).toBe(true);
      expect((a as SqliteDocumentsDriver).engine).toBe(engine);
      await a.close();
      const b = await sqliteDocumentsScheme.open(parseUrl(`sqlite://${join(root, engine, 'abs', 'x.db')}?synchronous=normal&engine=${engine}`), ctx(dir));
      expect(statSync(join(root, engine, 'abs', 'x.db')).isFile()).toBe(true);
      await b.close();
    });

    it('documents, indexes and migration versions survive reopening the file', async () => {
      const file = join(root, engine, 'reopen', 'documents.db');
      const calls: number[] = [];
      const migrations = [{ version: 1, up: async () => void calls.push(1) }];
      const first = createDocumentStore(new SqliteDocumentsDriver({ engine, file }));
      const col = await first.collection('users', { indexes: [{ fields: ['email'], unique: true, name: 'by_email' }], migrations });
      await col.insert({ email: 'a@x' }, { id: 'u1' });
      await first.close();
      const second = createDocumentStore(new SqliteDocumentsDriver({ engine, file }));
      const again = await second.collection('users', { migrations });
      expect(await again.get('u1')).toEqual({ id: 'u1', version: 1, data: { email: 'a@x' } });
      expect(await again.indexes()).toEqual([{ name: 'by_email', fields: ['email'], unique: true }]);
      await expect(again.insert({ email: 'a@x' })).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(calls).toEqual([1]);
      await second.close();
    });

    it('a damaged database file is CORRUPTED at open, naming the file', async () => {
      const { sqliteDocumentsScheme } = await import('../../src/adapters/sqlite/index.js');
      const { parseUrl } = await import('../../src/driver/url.js');
      const file = join(root, engine, 'damaged', 'documents.db');
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file }));
      await (await store.collection('things')).insert({ a: 1 });
      await store.close();
      // The 16-byte magic string that opens every SQLite file, overwritten: the file is no database any more.
      const bytes = readFileSync(file);
      bytes.fill(0x41, 0, 16);
      writeFileSync(file, bytes);
      const err = await sqliteDocumentsScheme.open(parseUrl(`sqlite://${file}?engine=${engine}`), ctx(root)).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CORRUPTED' });
      expect(String((err as Error).message)).toContain(file);
    });

    it('a stored document that is not JSON any more is CORRUPTED, naming it', async () => {
      const driver = new SqliteDocumentsDriver({ engine, file: join(root, engine, 'corrupt', 'documents.db') });
      const store = createDocumentStore(driver);
      const col = await store.collection('things');
      await col.insert({ a: 1 }, { id: 'broken' });
      driver.db.prepare('UPDATE "d_things" SET data = ? WHERE id = ?').run('{"a":', 'broken');
      const err = await col.get('broken').catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'CORRUPTED' });
      expect(String((err as Error).message)).toContain('"broken"');
      await store.close();
    });

    it('two connections to one file run a migration once', async () => {
      const file = join(root, engine, 'two', 'documents.db');
      const stores = [0, 1].map(() => createDocumentStore(new SqliteDocumentsDriver({ engine, file })));
      const calls: number[] = [];
      const migrations = [{ version: 1, up: async () => { calls.push(1); await new Promise((r) => setTimeout(r, 100)); } }];
      await Promise.all(stores.map((s) => s.collection('items', { migrations })));
      expect(calls).toEqual([1]);
      await Promise.all(stores.map((s) => s.close()));
    });

    it('the write-ahead log is copied back into the database as it grows: its file stays bounded under a long stream of writes', async () => {
      const file = join(root, engine, 'wal', 'documents.db');
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file, synchronous: 'normal' }), { maxDocumentBytes: 64 * 1024 });
      const col = await store.collection('big', { indexes: [{ fields: ['k'] }] });
      const filler = 'x'.repeat(8 * 1024);
      let written = 0;
      let largestWal = 0;
      for (let batch = 0; batch < 24; batch++) {
        // 200 documents of 8 KiB issued together: one transaction of ~1.6 MiB, over 32 MiB in all.
        await Promise.all(Array.from({ length: 200 }, (_, i) => col.insert({ k: i % 10, filler })));
        written += 200 * filler.length;
        largestWal = Math.max(largestWal, statSync(`${file}-wal`).size);
      }
      await store.close();
      expect(written).toBeGreaterThan(32 * 1024 * 1024);
      // Checkpoints every 4,000 pages (~16 MiB of WAL) plus the transaction that crossed the limit.
      expect(largestWal).toBeGreaterThan(4 * 1024 * 1024);
      expect(largestWal).toBeLessThan(22 * 1024 * 1024);
    });

    it('writes issued together commit together; a failing one fails alone and changes nothing', async () => {
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, 'group', 'documents.db') }));
      const col = await store.collection('g', { indexes: [{ fields: ['email'], unique: true }] });
      await col.insert({ n: 0 }, { id: 'existing' });
      const writes = [
        ...Array.from({ length: 40 }, (_, i) => col.insert({ n: i, email: `u${i}@x` }, { id: `d${i}` })),
        col.insert({ n: -1 }, { id: 'existing' }),
        col.insert({ email: 'u3@x' }, { id: 'dupEmail' }),
        col.put('existing', { n: 9 }, { ifVersion: 7 }),
        col.put('existing', { n: 1 }, { ifVersion: 1 }),
      ];
      const results = await Promise.allSettled(writes);
      expect(results.slice(0, 40).every((r) => r.status === 'fulfilled')).toBe(true);
      expect(results[40]).toMatchObject({ status: 'rejected', reason: { code: 'ALREADY_EXISTS' } });
      expect(results[41]).toMatchObject({ status: 'rejected', reason: { code: 'CONFLICT' } });
      expect(results[42]).toMatchObject({ status: 'rejected', reason: { code: 'CONFLICT' } });
      expect(results[43]).toMatchObject({ status: 'fulfilled', value: { version: 2 } });
      expect(await col.count()).toBe(41);
      expect(await col.get('dupEmail')).toBeUndefined();
      expect(await col.get('existing')).toMatchObject({ version: 2, data: { n: 1 } });
      await store.close();
      // Acknowledged writes are in the file.
      const again = createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, 'group', 'documents.db') }));
      expect(await (await again.collection('g')).count()).toBe(41);
      await again.close();
    });

    it('operations take effect in the order they were issued, even when not awaited', async () => {
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, 'order', 'documents.db') }));
      const col = await store.collection('o');
      const inserted = col.insert({ v: 1 }, { id: 'a' });
      const seen = col.get('a');
      const put = col.put('a', { v: 2 });
      const removed = col.delete('a');
      const after = col.get('a');
      const found = col.find({ v: 2 });
      expect((await seen)?.data).toEqual({ v: 1 });
      expect(await removed).toBe(true);
      expect(await after).toBeUndefined();
      expect((await found).items).toEqual([]);
      expect((await inserted).version).toBe(1);
      expect((await put).version).toBe(2);
      await store.close();
    });

    it('get reads synchronously (no deadline machinery) yet fails like any call: as a rejection, with the same codes', async () => {
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, 'syncget', 'documents.db'), synchronous: 'normal' }));
      const col = await store.collection('s');
      await col.insert({ v: 1 }, { id: 'a' });
      const bad = col.get('');
      expect(bad).toBeInstanceOf(Promise);
      await expect(bad).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(col.get('a', { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' });
      await expect(col.get('a', { timeoutMs: -1 })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((await col.get('a'))?.data).toEqual({ v: 1 });
      await store.close();
      await expect(col.get('a')).rejects.toMatchObject({ code: 'CLOSED' });
    });

    it('a write cancelled before its batch commits is not applied', async () => {
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file: join(root, engine, 'cancel', 'documents.db') }));
      const col = await store.collection('c');
      const controller = new AbortController();
      const kept = col.insert({ v: 1 }, { id: 'kept' });
      const cancelled = col.insert({ v: 2 }, { id: 'gone', signal: controller.signal });
      controller.abort();
      await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
      await kept;
      await new Promise((r) => setTimeout(r, 20));
      expect(await col.get('gone')).toBeUndefined();
      expect(await col.count()).toBe(1);
      await store.close();
    });

    it('an indexed equality pages in id order over scalars and arrays, as without the index', async () => {
      const file = join(root, engine, 'paging', 'documents.db');
      const store = createDocumentStore(new SqliteDocumentsDriver({ engine, file }));
      const plain = await store.collection('plain');
      const indexed = await store.collection('indexed', { indexes: [{ fields: ['t'] }, { fields: ['u'], unique: true }, { fields: ['k'] }] });
      const values = ['x', 'y', ['x', 'z'], ['y'], 1, 1.5, [1, 'x'], true, [true], null, { a: 'x' }, 'x ', ['z', ['x']]];
      for (let i = 0; i < 60; i++) {
        const data = { t: values[i % values.length], u: i % 7 === 0 ? ['x', i] : `u${i}`, k: i % 3 };
        await plain.insert(data as never, { id: `id${String(i).padStart(2, '0')}` });
        await indexed.insert(data as never, { id: `id${String(i).padStart(2, '0')}` });
      }
      const filters = [{ t: 'x' }, { t: 1 }, { t: true }, { t: { $in: ['x', 1, 'y'] } }, { t: 'x', k: 1 }, { t: { $eq: 'x', $ne: 'y' } }, { u: 'x' }, { u: 'u5' }, { k: 1 }, { k: { $in: [0, 2] } }, { k: 1, t: 'x' }];
      for (const filter of filters) {
        const expected = (await plain.find(filter, { limit: 1000 })).items.map((d) => d.id);
        const pages: string[] = [];
        let after: string | undefined;
        do {
          const page = await indexed.find(filter, { limit: 3, after });
          pages.push(...page.items.map((d) => d.id));
          after = page.next;
        } while (after !== undefined);
        expect(pages, JSON.stringify(filter)).toEqual(expected);
        expect(await indexed.count(filter)).toBe(expected.length);
        expect((await indexed.find(filter, { sort: { k: -1 }, limit: 1000 })).items.map((d) => d.id).sort()).toEqual([...expected].sort());
      }
      await store.close();
    });

    /** Records every read the driver runs from now on, to explain each with EXPLAIN QUERY PLAN. */
    function planRecorder(driver: SqliteDocumentsDriver): () => string[] {
      const db = driver.db;
      const prepare = db.prepare.bind(db);
      const seen: { sql: string; args: unknown[] }[] = [];
      db.prepare = (sql: string) =>
        new Proxy(prepare(sql), {
          get: (target, key) =>
            key === 'all' || key === 'get'
              ? (...args: unknown[]) => {
                  seen.push({ sql, args });
                  return (target[key] as (...a: unknown[]) => unknown)(...args);
                }
              : (Reflect.get(target, key) as unknown),
        });
      return () => seen.splice(0).map(({ sql, args }) => (prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map((r) => r.detail).join(' | '));
    }

    it('a dotted indexed equality reads through the index (EXPLAIN QUERY PLAN), and finds what walks an array on the way as without it', async () => {
      const driver = new SqliteDocumentsDriver({ engine, file: join(root, engine, `dotted${n++}`, 'documents.db'), synchronous: 'normal' });
      const store = createDocumentStore(driver);
      const plain = await store.collection('unindexed');
      const col = await store.collection('dotted', { indexes: [{ fields: ['o.k'] }, { fields: ['p.q.r'], unique: true }] });
      const odd = [{ o: [{ k: 5 }, { k: 6 }] }, { o: [{ k: [5] }] }, { o: { k: [5, 7] } }, { o: 5 }, { o: { k: '5' } }, { o: [[{ k: 5 }]] }, { o: [5] }, { p: [{ q: { r: 'x' } }] }, { p: { q: [{ r: 'x' }, { r: 'y' }] } }];
      const docs = [...Array.from({ length: 300 }, (_, i) => ({ o: { k: i % 30 }, p: { q: { r: `r${i}` } }, m: i })), ...odd];
      for (const [i, data] of docs.entries()) {
        await plain.insert(data as never, { id: `id${String(i).padStart(3, '0')}` });
        await col.insert(data as never, { id: `id${String(i).padStart(3, '0')}` });
      }
      const plans = planRecorder(driver);
      const filters = [{ 'o.k': 5 }, { 'o.k': { $in: [5, 6, '5'] } }, { 'o.k': 5, m: { $gt: 3 } }, { 'p.q.r': 'x' }, { 'p.q.r': 'r7' }];
      for (const filter of filters as Filter[]) {
        const expected = (await plain.find(filter, { limit: 1000 })).items.map((d) => d.id);
        expect(expected.length, JSON.stringify(filter)).toBeGreaterThan(0);
        plans();
        expect((await col.find(filter, { limit: 1000 })).items.map((d) => d.id), JSON.stringify(filter)).toEqual(expected);
        expect(await col.count(filter), JSON.stringify(filter)).toBe(expected.length);
        for (const plan of plans()) {
          expect(plan, JSON.stringify(filter)).toMatch(/SEARCH d_dotted USING INDEX ix_dotted\$ix_/);
          expect(plan, JSON.stringify(filter)).not.toMatch(/SCAN d_dotted/);
        }
      }
      await store.close();
    });

    it('where no document ever held an array at a path, its filter has no array arm (EXPLAIN QUERY PLAN), yet sees an array written later', async () => {
      const driver = new SqliteDocumentsDriver({ engine, file: join(root, engine, `guard${n++}`, 'documents.db'), synchronous: 'normal' });
      const store = createDocumentStore(driver);
      const col = await store.collection('guarded', { indexes: [{ fields: ['n'] }] });
      await col.insertMany(Array.from({ length: 200 }, (_, i) => ({ n: i, o: { k: i % 10 }, items: [{ q: i % 5 }] })));
      const plans = planRecorder(driver);
      const many = { n: { $in: Array.from({ length: 20 }, (_, i) => i * 3) } };
      expect(await col.count(many)).toBe(20);
      expect(await col.count({ 'o.k': 3 })).toBe(20);
      expect(await col.count({ 'items.q': 4 })).toBe(40);
      const [inPlan, dottedPlan, elementPlan] = plans();
      // No walk of an array (a json_each named e1, e2, …); the record's size is read once per statement,
      // beside the rows.
      for (const plan of [inPlan, dottedPlan, elementPlan]) {
        expect(plan).toMatch(/ SCALAR SUBQUERY \d+ \| SEARCH stowage_array_paths USING PRIMARY KEY \(collection=\?\)/);
      }
      expect(inPlan).not.toMatch(/ e\d+ /);
      expect(dottedPlan).not.toMatch(/ e\d+ /);
      // `items` holds arrays: walked; `items.q` in its elements never did: compared as a scalar only.
      expect(elementPlan?.match(/ e\d+ /g)).toHaveLength(1);
      await col.insert({ n: [1, 3], o: { k: [3] } });
      await col.insert({ n: [[3]], items: [{ q: [4] }] });
      plans();
      expect(await col.count(many)).toBe(21);
      expect(await col.count({ 'o.k': 3 })).toBe(21);
      expect(await col.count({ 'items.q': 4 })).toBe(41);
      // Now each of them walks arrays.
      expect(plans().map((plan) => (plan.match(/ e\d+ /g) ?? []).length)).toEqual([1, 1, 3]);
      expect(await col.count({ n: { $gte: 3, $lt: 4 } })).toBe(2);
      expect(await col.count({ n: { $type: 'array' } })).toBe(2);
      expect(await col.count({ n: { $size: 2 } })).toBe(1);
      await store.close();
    });

    it('an array another connection writes at a new path is seen by the next query of this one, whatever the write', async () => {
      const file = join(root, engine, `record${n++}`, 'documents.db');
      // Two connections to the file, as two processes would have.
      const open = () => createDocumentStore(new SqliteDocumentsDriver({ engine, file, synchronous: 'normal' }));
      const a = open();
      const b = open();
      const colA = await a.collection('shared');
      const colB = await b.collection('shared');
      await colA.insertMany(ARRAY_CASE_SEED);
      const counts = () => Promise.all(ARRAY_CASE_QUERIES.map((q) => colA.count(q)));
      expect(await counts()).toEqual(ARRAY_CASE_COUNTS.before);
      await writeArraysAtNewPaths(colB);
      expect(await counts()).toEqual(ARRAY_CASE_COUNTS.after);
      await Promise.all([a.close(), b.close()]);
    });

    it('a file written before the record of array paths existed gets it on open, from its documents', async () => {
      const file = join(root, engine, `backfill${n++}`, 'documents.db');
      const first = createDocumentStore(new SqliteDocumentsDriver({ engine, file, synchronous: 'normal' }));
      const col = await first.collection('old');
      await col.insertMany(UPGRADE_CASE_DOCS);
      await first.close();
      // What an earlier version left: the documents, no record.
      const raw = openSqlite(file, engine, 1000);
      raw.exec('DELETE FROM stowage_array_paths');
      raw.close();
      const again = createDocumentStore(new SqliteDocumentsDriver({ engine, file, synchronous: 'normal' }));
      const reopened = await again.collection('old');
      for (const { filter, count } of UPGRADE_CASE) expect(await reopened.count(filter), JSON.stringify(filter)).toBe(count);
      await again.close();
    });

    it('a database of the earlier layout (rowid tables, other index expressions) is upgraded on open', async () => {
      const file = join(root, engine, 'old', 'documents.db');
      const { mkdirSync } = await import('node:fs');
      mkdirSync(join(root, engine, 'old'), { recursive: true });
      const old = openSqlite(file, engine, 5000);
      const t = (p: string) => `json_type(data, '$."${p}"')`;
      const x = (p: string) => `json_extract(data, '$."${p}"')`;
      old.exec(`
        CREATE TABLE stowage_collections (name TEXT PRIMARY KEY, migration_version INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE stowage_indexes (collection TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL, is_unique INTEGER NOT NULL, PRIMARY KEY (collection, name));
        CREATE TABLE stowage_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL);
        CREATE TABLE "d_users" (id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL);
        INSERT INTO stowage_collections VALUES ('users', 1);
        INSERT INTO stowage_indexes VALUES ('users', 'ix_team', '["team"]', 0), ('users', 'by_email', '["email"]', 1);
        CREATE INDEX "ix_users__ix_team" ON "d_users" (${t('team')}, ${x('team')});
        CREATE UNIQUE INDEX "ix_users__by_email" ON "d_users" (${t('email')}, ${x('email')});
      `);
      const insert = old.prepare('INSERT INTO "d_users" (id, version, data) VALUES (?, ?, ?)');
      insert.run('a', 3, JSON.stringify({ team: 'red', email: 'a@x' }));
      insert.run('b', 1, JSON.stringify({ team: ['red', 'blue'], email: 'b@x' }));
      insert.run('c', 1, JSON.stringify({ team: 'blue' }));
      old.close();

      const driver = new SqliteDocumentsDriver({ engine, file });
      const store = createDocumentStore(driver);
      const calls: number[] = [];
      const col = await store.collection('users', { indexes: [{ fields: ['team'] }], migrations: [{ version: 1, up: async () => void calls.push(1) }] });
      expect(calls).toEqual([]);
      const schema = driver.db.prepare('SELECT name, sql FROM sqlite_master WHERE tbl_name = ?').all('d_users') as { name: string; sql: string | null }[];
      expect(schema.find((r) => r.name === 'd_users')?.sql).toMatch(/WITHOUT ROWID$/);
      expect(schema.find((r) => r.name === 'ix_users$ix_team')?.sql).toContain('CASE WHEN');
      // The indexes of the earlier name (ix_<collection>__<index>, ambiguous) are gone from the table.
      expect(schema.filter((r) => r.name.startsWith('ix_users__'))).toEqual([]);
      expect(await col.get('a')).toEqual({ id: 'a', version: 3, data: { team: 'red', email: 'a@x' } });
      expect((await col.find({ team: 'red' })).items.map((d) => d.id)).toEqual(['a', 'b']);
      expect(await col.indexes()).toEqual([
        { name: 'by_email', fields: ['email'], unique: true },
        { name: 'ix_team', fields: ['team'], unique: false },
      ]);
      await expect(col.insert({ email: 'b@x' })).rejects.toMatchObject({ code: 'CONFLICT' });
      await store.close();
    });
  });
}
