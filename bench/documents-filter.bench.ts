/**
 * Large filters on 100,000 documents (issue 17): `$in` with 1,000 and 10,000 values and a dotted path through
 * an array of objects (`items.n`, MongoDB's most common shape), on
 * `sqlite://` and `mysql://` (MariaDB), each against the same query written by hand for the raw client
 * (better-sqlite3 / mysql2) over a table of the same shape (id, version, JSON text). Every operation is one
 * `count`, so the figures are full-table evaluations per second. Stowage also checks JSON types and array
 * elements (its documented semantics), which the hand-written query does not.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { createPool, type RowDataPacket } from 'mysql2/promise';
import { createDocumentStore } from '../src/core/documents/document-store.js';
import type { JsonObject } from '../src/ports/common.js';
import type { Collection, Filter } from '../src/ports/documents.js';
import { openDriver } from './lib/adapters.js';
import type { BenchContext, Benchmark, Pair } from './lib/benchmark.js';

type Query = 'in1000' | 'in10000' | 'dotted';

function documentAt(i: number): JsonObject {
  return { n: i, team: `t${i % 1000}`, tags: [`x${i % 5000}`, i % 7], o: { k: i % 100, label: `l${i % 10}` }, items: [{ n: i % 1000, q: 1 }, { n: (i + 1) % 1000, q: 2 }] };
}

function size(ctx: BenchContext): number {
  return ctx.quick ? 20_000 : 100_000;
}

/** The Stowage filter and the values the hand-written query binds. */
function queryOf(query: Query, docs: number): { filter: Filter; values: number[] } {
  if (query === 'dotted') return { filter: { 'items.n': 42 }, values: [42] };
  const count = query === 'in1000' ? 1_000 : 10_000;
  // Spread over the documents, so about `count` of them match.
  const values = Array.from({ length: count }, (_, i) => Math.floor((i * docs) / count));
  return { filter: { n: { $in: values } }, values };
}

async function load(collection: Collection, docs: number): Promise<void> {
  for (let n = 0; n < docs; n += 1_000) {
    await collection.insertMany(Array.from({ length: Math.min(1_000, docs - n) }, (_, i) => documentAt(n + i)));
  }
}

async function sqlitePair(ctx: BenchContext, query: Query): Promise<Pair> {
  const docs = size(ctx);
  const store = createDocumentStore(await openDriver(ctx, 'sqlite', 'documents', `sqlite://${join(ctx.dir, 'documents.db')}?synchronous=normal`));
  const collection = await store.collection('docs');
  await load(collection, docs);
  const db = new Database(join(ctx.dir, 'raw.db'));
  db.pragma('journal_mode = wal');
  db.pragma('synchronous = normal');
  db.exec('CREATE TABLE docs (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID');
  const insert = db.prepare('INSERT INTO docs (id, version, data) VALUES (?, 1, ?)');
  db.transaction(() => {
    for (let i = 0; i < docs; i++) insert.run(`d${i}`, JSON.stringify(documentAt(i)));
  })();
  const { filter, values } = queryOf(query, docs);
  // What one would write by hand: one JSON array parameter for the list, the elements of `items` for the path.
  const raw =
    query === 'dotted'
      ? db.prepare("SELECT COUNT(*) AS n FROM docs WHERE EXISTS (SELECT 1 FROM json_each(data, '$.items') AS e WHERE json_extract(e.value, '$.n') = ?)")
      : db.prepare("SELECT COUNT(*) AS n FROM docs WHERE json_extract(data, '$.n') IN (SELECT value FROM json_each(?))");
  const param = query === 'dotted' ? values[0] : JSON.stringify(values);
  return {
    stowage: {
      label: 'stowage sqlite://',
      async run(n) {
        for (let i = 0; i < n; i++) await collection.count(filter);
      },
    },
    baseline: {
      label: 'better-sqlite3 (hand-written SQL)',
      async run(n) {
        for (let i = 0; i < n; i++) raw.get(param);
      },
    },
    async teardown() {
      await store.close();
      db.close();
    },
  };
}

async function mysqlPair(ctx: BenchContext, query: Query): Promise<Pair> {
  const svc = ctx.services.mariadb;
  if (!svc) ctx.skip('mariadb unavailable');
  const docs = size(ctx);
  const tag = randomBytes(4).toString('hex');
  const store = createDocumentStore(await openDriver(ctx, 'mysql', 'documents', svc.url));
  const collection = await store.collection(`bench_f_${tag}`);
  await load(collection, docs);
  const pool = createPool({ host: svc.host, port: svc.port, user: 'root', database: 'test', connectionLimit: 10 });
  const table = `bench_f_raw_${tag}`;
  await pool.query(`CREATE TABLE ${table} (id VARCHAR(255) NOT NULL PRIMARY KEY, version BIGINT NOT NULL, data JSON NOT NULL) ENGINE=InnoDB`);
  for (let n = 0; n < docs; n += 1_000) {
    const rows = Array.from({ length: Math.min(1_000, docs - n) }, (_, i) => [`d${n + i}`, 1, JSON.stringify(documentAt(n + i))]);
    await pool.query(`INSERT INTO ${table} (id, version, data) VALUES ?`, [rows]);
  }
  const { filter, values } = queryOf(query, docs);
  // What one would write by hand: an IN list (sent as text: 10,000 placeholders exceed what a prepared
  // statement should carry), JSON_CONTAINS over the wildcard path for the array.
  const sql =
    query === 'dotted'
      ? `SELECT COUNT(*) AS n FROM ${table} WHERE JSON_CONTAINS(JSON_EXTRACT(data, '$.items[*].n'), ?)`
      : `SELECT COUNT(*) AS n FROM ${table} WHERE JSON_EXTRACT(data, '$.n') IN (?)`;
  // JSON_CONTAINS takes the candidate as JSON text.
  const params = query === 'dotted' ? values.map(String) : [values];
  return {
    stowage: {
      label: 'stowage mysql://',
      async run(n) {
        for (let i = 0; i < n; i++) await collection.count(filter, { timeoutMs: 60_000 });
      },
    },
    baseline: {
      label: 'mysql2 (hand-written SQL)',
      async run(n) {
        for (let i = 0; i < n; i++) await pool.query<RowDataPacket[]>(sql, params);
      },
    },
    async teardown() {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

const BAR = { ratio: 0.8, source: 'issue 17' } as const;
const NOTE = 'count() over 100,000 documents (20,000 with --quick), no index; the hand-written query compares values without checking JSON types or array elements.';

/** The large-filter documents benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'sqlite documents large filter: $in 1,000 values', group: 'documents', adapters: ['sqlite'], unit: 'counts/s', bar: BAR, note: NOTE, setup: (ctx) => sqlitePair(ctx, 'in1000') },
  { kind: 'pair', name: 'sqlite documents large filter: $in 10,000 values', group: 'documents', adapters: ['sqlite'], unit: 'counts/s', bar: BAR, note: NOTE, setup: (ctx) => sqlitePair(ctx, 'in10000') },
  { kind: 'pair', name: 'sqlite documents large filter: dotted path through an array', group: 'documents', adapters: ['sqlite'], unit: 'counts/s', bar: BAR, note: NOTE, setup: (ctx) => sqlitePair(ctx, 'dotted') },
  { kind: 'pair', name: 'mysql documents large filter: $in 1,000 values', group: 'documents', adapters: ['mysql'], unit: 'counts/s', requires: ['mariadb'], bar: BAR, note: NOTE, setup: (ctx) => mysqlPair(ctx, 'in1000') },
  { kind: 'pair', name: 'mysql documents large filter: $in 10,000 values', group: 'documents', adapters: ['mysql'], unit: 'counts/s', requires: ['mariadb'], bar: BAR, note: NOTE, setup: (ctx) => mysqlPair(ctx, 'in10000') },
  { kind: 'pair', name: 'mysql documents large filter: dotted path through an array', group: 'documents', adapters: ['mysql'], unit: 'counts/s', requires: ['mariadb'], bar: BAR, note: NOTE, setup: (ctx) => mysqlPair(ctx, 'dotted') },
];
