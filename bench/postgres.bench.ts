/**
 * `postgres://` through the ports against raw clients on the same server (issue 20):
 *
 * - documents insert, get by id and indexed find against raw `pg` doing the same work on a table of the same
 *   shape (`id text COLLATE "C"`, `version`, `data jsonb`, a GIN `jsonb_path_ops` index on `data -> 'team'`,
 *   found with `@>`), through a pool of the same size, each raw statement named (prepared once per
 *   connection) as the adapter's are: at least 0.95× raw;
 * - the client choice: raw `pg` against raw `postgres` (porsager) on the same get and insert statements, each
 *   prepared once per connection (pg's named statements, porsager's `prepare: true`), as the adapter runs them;
 * - config watch latency (put → event) against a raw loop that writes a row and NOTIFYs in one statement and
 *   LISTENs for it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import postgres from 'postgres';
import { createConfigStore } from '../src/core/config/config-store.js';
import { createDocumentStore } from '../src/core/documents/document-store.js';
import type { JsonObject } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import { alternating } from './lib/measure.js';
import { percentile, stats, type BenchContext, type Benchmark, type Figure, type Pair } from './lib/benchmark.js';
import { documentOf, documentSides, preload, type DocumentOp, type RawDocuments } from './lib/documents.js';

type Row = { id: string; version: string; data: JsonObject };

function service(ctx: BenchContext): NonNullable<BenchContext['services']['postgres']> {
  const svc = ctx.services.postgres;
  if (!svc) ctx.skip('postgres unavailable');
  return svc;
}

/** A raw table of the adapter's shape, with the GIN index a declared index on `team` gets. */
async function rawTable(pool: pg.Pool, table: string): Promise<void> {
  await pool.query(`CREATE TABLE ${table} (id text COLLATE "C" PRIMARY KEY, version bigint NOT NULL, data jsonb NOT NULL)`);
  await pool.query(`CREATE INDEX ON ${table} USING gin ((data -> 'team') jsonb_path_ops)`);
}

async function documentsPair(ctx: BenchContext, op: DocumentOp): Promise<Pair> {
  const svc = service(ctx);
  const tag = randomBytes(4).toString('hex');
  const store = createDocumentStore(await openDriver(ctx, 'postgres', 'documents', `${svc.url}?tablePrefix=b${tag}_`));
  const collection = await store.collection('bench', { indexes: [{ fields: ['team'] }] });
  const pool = new pg.Pool({ host: svc.host, port: svc.port, user: 'postgres', database: 'postgres', max: 10 });
  const table = `bench_raw_${tag}`;
  await rawTable(pool, table);
  const parse = (row: Row): unknown => ({ id: row.id, version: Number(row.version), data: row.data });
  const raw: RawDocuments = {
    insert: async (id, data) => {
      await pool.query({ name: `insert_${tag}`, text: `INSERT INTO ${table} (id, version, data) VALUES ($1, 1, $2)`, values: [id, JSON.stringify(data)] });
    },
    get: async (id) => {
      const { rows } = await pool.query<Row>({ name: `get_${tag}`, text: `SELECT id, version, data FROM ${table} WHERE id = $1`, values: [id] });
      return rows[0] && parse(rows[0]);
    },
    findByTeam: async (team, limit) => {
      const { rows } = await pool.query<Row>({
        name: `find_${tag}_${Number(limit)}`,
        text: `SELECT id, version, data FROM ${table} WHERE (data -> 'team') @> $1::jsonb ORDER BY id LIMIT ${Number(limit)}`,
        values: [JSON.stringify(team)],
      });
      return rows.map(parse);
    },
    insertBatch: async (docs) => {
      await pool.query(`INSERT INTO ${table} (id, version, data) SELECT i, 1, d::jsonb FROM unnest($1::text[], $2::text[]) AS t(i, d)`, [
        docs.map((d) => d.id),
        docs.map((d) => JSON.stringify(d.data)),
      ]);
    },
  };
  const { stowageIds, rawIds } = await preload(collection, raw);
  await pool.query(`ANALYZE ${table}`);
  return {
    ...documentSides(op, collection, stowageIds, raw, rawIds, { stowage: 'stowage postgres://', baseline: 'pg (pool of 10, named statements)' }),
    async teardown() {
      await store.close();
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await pool.end();
    },
  };
}

/** Raw `pg` against raw `postgres` (porsager), the same statements on the same table: the client choice. */
async function clientPair(ctx: BenchContext, op: 'get' | 'insert'): Promise<Pair> {
  const svc = service(ctx);
  const tag = randomBytes(4).toString('hex');
  const pool = new pg.Pool({ host: svc.host, port: svc.port, user: 'postgres', database: 'postgres', max: 10 });
  const sql = postgres({ host: svc.host, port: svc.port, user: 'postgres', database: 'postgres', max: 10, onnotice: () => undefined });
  const table = `bench_client_${tag}`;
  await rawTable(pool, table);
  const ids = Array.from({ length: 1000 }, (_, i) => `id-${tag}-${i}`);
  await pool.query(`INSERT INTO ${table} (id, version, data) SELECT i, 1, d::jsonb FROM unnest($1::text[], $2::text[]) AS t(i, d)`, [ids, ids.map((_, i) => JSON.stringify(documentOf(i)))]);
  let counter = 0;
  const insertSql = `INSERT INTO ${table} (id, version, data) VALUES ($1, 1, $2)`;
  const getSql = `SELECT id, version, data FROM ${table} WHERE id = $1`;
  return {
    stowage: {
      label: 'pg (node-postgres, pool of 10, named statements)',
      async run(n) {
        for (let i = 0; i < n; i++) {
          if (op === 'get') await pool.query({ name: `get_${tag}`, text: getSql, values: [ids[i % ids.length]] });
          else await pool.query({ name: `insert_${tag}`, text: insertSql, values: [`n-${tag}-${counter++}`, JSON.stringify(documentOf(i))] });
        }
      },
    },
    baseline: {
      label: 'postgres (porsager, max 10, prepared)',
      async run(n) {
        for (let i = 0; i < n; i++) {
          if (op === 'get') await sql.unsafe(getSql, [ids[i % ids.length] as string], { prepare: true });
          else await sql.unsafe(insertSql, [`p-${tag}-${counter++}`, JSON.stringify(documentOf(i))], { prepare: true });
        }
      },
    },
    async teardown() {
      await pool.query(`DROP TABLE IF EXISTS ${table}`);
      await Promise.all([pool.end(), sql.end()]);
    },
  };
}

/** Measures put → event latency on one side: sequential writes, each waiting for its event. */
class LatencyProbe {
  readonly #waiters = new Map<number, () => void>();

  arrived(counter: number): void {
    this.#waiters.get(counter)?.();
  }

  async sample(counter: number, put: () => Promise<unknown>): Promise<number> {
    const started = performance.now();
    const seen = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no event for write ${counter} within 5 s`)), 5000);
      this.#waiters.set(counter, () => {
        clearTimeout(timer);
        resolve();
      });
    });
    await put();
    await seen;
    this.#waiters.delete(counter);
    return performance.now() - started;
  }
}

async function watchLatency(ctx: BenchContext): Promise<Figure[]> {
  const svc = service(ctx);
  const tag = randomBytes(4).toString('hex');
  const store = createConfigStore(await openDriver(ctx, 'postgres', 'config', `${svc.url}?tablePrefix=w${tag}_`));
  const pool = new pg.Pool({ host: svc.host, port: svc.port, user: 'postgres', database: 'postgres', max: 2 });
  const table = `bench_notify_${tag}`;
  const channel = `bench_notify_${tag}`;
  await pool.query(`CREATE TABLE ${table} (key text PRIMARY KEY, value text NOT NULL)`);
  const listener = new pg.Client({ host: svc.host, port: svc.port, user: 'postgres', database: 'postgres' });
  await listener.connect();
  const abort = new AbortController();
  const ours = new LatencyProbe();
  const theirs = new LatencyProbe();
  listener.on('notification', (msg) => theirs.arrived((JSON.parse(msg.payload ?? '{}') as { counter: number }).counter));
  await listener.query(`LISTEN ${channel}`);
  // The watch starts after this write's revision: one started "now" is established asynchronously, and a write
  // made before it is could fall before its start (the first sample would then wait for ever).
  const { revision } = await store.put('watch/key', { counter: -1 });
  const loop = (async () => {
    for await (const ev of store.watch('watch/', { afterRevision: revision, signal: abort.signal })) {
      if (ev.type === 'put') ours.arrived((ev.value as { counter: number }).counter);
    }
  })();
  // The raw side: the row written and the notification sent in one statement, as the adapter does in one call.
  const rawPut = (value: string) =>
    pool.query(`WITH w AS (INSERT INTO ${table} (key, value) VALUES ('watch/key', $1) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value) SELECT pg_notify('${channel}', $1)`, [value]);
  const rounds = ctx.quick ? 4 : 10;
  const perRound = ctx.quick ? 50 : 100;
  const a: number[] = [];
  const b: number[] = [];
  let counter = 0;
  try {
    await alternating(
      rounds,
      async () => {
        for (let i = 0; i < perRound; i++) {
          const c = counter++;
          a.push(await ours.sample(c, () => store.put('watch/key', { counter: c })));
        }
      },
      async () => {
        for (let i = 0; i < perRound; i++) {
          const c = counter++;
          b.push(await theirs.sample(c, () => rawPut(JSON.stringify({ counter: c }))));
        }
      },
    );
  } finally {
    abort.abort();
    await loop.catch(() => undefined);
    await store.close();
    await listener.end();
    await pool.query(`DROP TABLE IF EXISTS ${table}`);
    await pool.end();
  }
  const note = `${a.length} sequential writes per side, each timed from the write call until its event arrives. The raw loop reads the value from the NOTIFY payload; so does the adapter's watch when the change fits in one (under 7,900 bytes) and follows the last revision it delivered, else it reads the revision log (so a lost notification loses nothing). The adapter's write also takes an advisory lock and appends to the revision log.`;
  const figure = (name: string, p: number): Figure => ({
    name,
    unit: 'ms',
    higherIsBetter: false,
    stowage: stats([percentile(a, p)]),
    stowageLabel: 'stowage postgres:// watch',
    baseline: { label: 'pg LISTEN/NOTIFY loop', stats: stats([percentile(b, p)]) },
    note,
  });
  return [figure('postgres config watch latency p50', 50), figure('postgres config watch latency p99', 99)];
}

const BAR = { ratio: 0.95, source: 'issue 20' } as const;
const requires = ['postgres'] as const;
const adapters = ['postgres'];
const CLIENT_NOTE =
  'Raw clients only, no Stowage: the measurement behind using pg. Both prepare each statement once per connection (pg by a statement name, as the adapter runs its per-call statements; postgres with prepare: true). Unnamed, pg measured 0.73x of postgres on get by id. The "stowage" column is pg here.';

/** The PostgreSQL benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'postgres documents insert (1 at a time)', group: 'documents', adapters, unit: 'ops/s', requires, bar: BAR, setup: (ctx) => documentsPair(ctx, 'insert') },
  { kind: 'pair', name: 'postgres documents get by id', group: 'documents', adapters, unit: 'ops/s', requires, bar: BAR, setup: (ctx) => documentsPair(ctx, 'get') },
  { kind: 'pair', name: 'postgres documents indexed find (limit 10)', group: 'documents', adapters, unit: 'ops/s', requires, bar: BAR, setup: (ctx) => documentsPair(ctx, 'find') },
  { kind: 'pair', name: 'postgres client: pg vs postgres, get by id', group: 'documents', unit: 'ops/s', requires, note: CLIENT_NOTE, setup: (ctx) => clientPair(ctx, 'get') },
  { kind: 'pair', name: 'postgres client: pg vs postgres, insert', group: 'documents', unit: 'ops/s', requires, note: CLIENT_NOTE, setup: (ctx) => clientPair(ctx, 'insert') },
  { kind: 'measure', name: 'postgres config watch latency', group: 'config', adapters, requires, measure: watchLatency },
];
