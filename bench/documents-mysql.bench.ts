/**
 * `mysql://` documents (MariaDB here) through the DocumentStore port against raw `mysql2` doing the same
 * work (issue 6: at least 0.95× raw): insert, get by id, indexed find. The raw side uses the shape of a
 * JSON document table (id, version, JSON column) with a stored generated column for `$.team` and an index
 * on it, through a pool of the same size, on the same server, so both pay for the same InnoDB commit.
 */
import { randomBytes } from 'node:crypto';
import { createPool, type RowDataPacket } from 'mysql2/promise';
import { createDocumentStore } from '../src/core/documents/document-store.js';
import type { JsonObject } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import type { BenchContext, Benchmark, Pair } from './lib/benchmark.js';
import { documentSides, preload, type DocumentOp, type RawDocuments } from './lib/documents.js';

async function mysqlPair(ctx: BenchContext, op: DocumentOp): Promise<Pair> {
  const svc = ctx.services.mariadb;
  if (!svc) ctx.skip('mariadb unavailable');
  const tag = randomBytes(4).toString('hex');
  const store = createDocumentStore(await openDriver(ctx, 'mysql', 'documents', svc.url));
  const collection = await store.collection(`bench_${tag}`, { indexes: [{ fields: ['team'] }] });
  const pool = createPool({ host: svc.host, port: svc.port, user: 'root', database: 'test', connectionLimit: 10 });
  const table = `bench_raw_${tag}`;
  await pool.query(
    `CREATE TABLE ${table} (id VARCHAR(255) NOT NULL PRIMARY KEY, version BIGINT NOT NULL, data JSON NOT NULL,
       team VARCHAR(255) AS (JSON_UNQUOTE(JSON_EXTRACT(data, '$.team'))) STORED, INDEX (team)) ENGINE=InnoDB`,
  );
  type Row = RowDataPacket & { id: string; version: number; data: string | JsonObject };
  const parse = (row: Row): unknown => ({ id: row.id, version: Number(row.version), data: typeof row.data === 'string' ? (JSON.parse(row.data) as JsonObject) : row.data });
  const raw: RawDocuments = {
    insert: async (id, data) => {
      await pool.execute(`INSERT INTO ${table} (id, version, data) VALUES (?, 1, ?)`, [id, JSON.stringify(data)]);
    },
    get: async (id) => {
      const [rows] = await pool.execute<Row[]>(`SELECT id, version, data FROM ${table} WHERE id = ?`, [id]);
      return rows[0] && parse(rows[0]);
    },
    findByTeam: async (team, limit) => {
      const [rows] = await pool.execute<Row[]>(`SELECT id, version, data FROM ${table} WHERE team = ? ORDER BY id LIMIT ${Number(limit)}`, [team]);
      return rows.map(parse);
    },
    insertBatch: async (docs) => {
      await pool.query(`INSERT INTO ${table} (id, version, data) VALUES ?`, [docs.map((d) => [d.id, 1, JSON.stringify(d.data)])]);
    },
  };
  const { stowageIds, rawIds } = await preload(collection, raw);
  return {
    ...documentSides(op, collection, stowageIds, raw, rawIds, { stowage: 'stowage mysql://', baseline: 'mysql2 (pool of 10)' }),
    async teardown() {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

const BAR = { ratio: 0.95, source: 'issue 6' } as const;
const TRACE =
  "The adapter's pool sets mysql2's trace: false (its errors are mapped to StowageErrors anyway); the raw pool keeps the client's default, which captures a stack trace on every call. Measured aside (not in this table), a raw pool with trace: false too put the port at 0.91-1.09x of it on find and 0.93-0.96x on insert, depending on the run.";
const requires = ['mariadb'] as const;

/** The MySQL/MariaDB documents benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'mysql documents insert (1 at a time)', group: 'documents', adapters: ['mysql'], unit: 'ops/s', requires, bar: BAR, note: TRACE, setup: (ctx) => mysqlPair(ctx, 'insert') },
  { kind: 'pair', name: 'mysql documents get by id', group: 'documents', adapters: ['mysql'], unit: 'ops/s', requires, bar: BAR, note: TRACE, setup: (ctx) => mysqlPair(ctx, 'get') },
  { kind: 'pair', name: 'mysql documents indexed find (limit 10)', group: 'documents', adapters: ['mysql'], unit: 'ops/s', requires, bar: BAR, note: TRACE, setup: (ctx) => mysqlPair(ctx, 'find') },
];
