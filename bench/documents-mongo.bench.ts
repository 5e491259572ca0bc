/**
 * Documents against the MongoDB driver, what a Node application would use instead of the documents port,
 * on FerretDB (the MongoDB wire protocol over PostgreSQL, the server the test harness runs as `mongodb`):
 *
 * - `mongodb://` against the driver on the same FerretDB: insert, get by id and indexed find, the driver
 *   storing documents of the adapter's shape (`{ _id, v, d }`, an index on `d.team`);
 * - `postgres://` against the driver on FerretDB, both storing JSON in PostgreSQL 15 (the harness starts
 *   one PostgreSQL for `postgres://` and another under FerretDB, same binary and settings): Stowage on
 *   PostgreSQL itself against the MongoDB API over it, the choice a team on PostgreSQL has.
 *
 * `sqlite://` is not set against the driver: an embedded file against a server one network hop away would
 * measure the hop, not the store. Both sides commit each write in PostgreSQL with its default
 * `synchronous_commit = on`, one at a time.
 */
import { randomBytes } from 'node:crypto';
import { MongoClient, type Collection as MongoCollection } from 'mongodb';
import { createDocumentStore } from '../src/core/documents/document-store.js';
import type { JsonObject } from '../src/ports/common.js';
import type { Collection } from '../src/ports/documents.js';
import { openDriver } from './lib/adapters.js';
import type { BenchContext, BenchService, Benchmark, Pair } from './lib/benchmark.js';
import { documentSides, preload, type DocumentOp, type RawDocuments } from './lib/documents.js';

interface Stored {
  _id: string;
  v: number;
  d: JsonObject;
}

const INDEXES = [{ fields: ['team'] }];

function service(ctx: BenchContext, kind: 'mongodb' | 'postgres'): BenchService {
  const svc = ctx.services[kind];
  if (!svc) ctx.skip(`${kind} unavailable`);
  return svc;
}

/** The driver on its own collection of the adapter's shape; its label names the server's version. */
async function rawMongo(ctx: BenchContext): Promise<{ raw: RawDocuments; label: string; close(): Promise<void> }> {
  const client = new MongoClient(service(ctx, 'mongodb').url);
  await client.connect();
  const db = client.db();
  const info = await db.command({ buildInfo: 1 });
  // FerretDB built from source reports its version as "unknown".
  const ferret = typeof info.ferretdbVersion === 'string' ? info.ferretdbVersion : undefined;
  const server = ferret === undefined ? `MongoDB ${String(info.version)}` : ferret === 'unknown' ? 'FerretDB' : `FerretDB ${ferret}`;
  const col: MongoCollection<Stored> = db.collection<Stored>(`raw_${randomBytes(4).toString('hex')}`);
  await col.createIndex({ 'd.team': 1 });
  const record = (doc: Stored): unknown => ({ id: doc._id, version: doc.v, data: doc.d });
  return {
    raw: {
      insert: async (id, data) => {
        await col.insertOne({ _id: id, v: 1, d: data });
      },
      get: async (id) => {
        const doc = await col.findOne({ _id: id });
        return doc === null ? undefined : record(doc);
      },
      findByTeam: async (team, limit) => (await col.find({ 'd.team': team }).sort({ _id: 1 }).limit(limit).toArray()).map(record),
      insertBatch: async (docs) => {
        await col.insertMany(docs.map((d) => ({ _id: d.id, v: 1, d: d.data })));
      },
    },
    label: `mongodb driver on ${server}`,
    async close() {
      await col.drop().catch(() => undefined);
      await client.close();
    },
  };
}

async function stowageCollection(ctx: BenchContext, backend: 'mongodb' | 'postgres'): Promise<{ collection: Collection; close(): Promise<void> }> {
  const tag = randomBytes(4).toString('hex');
  const url = backend === 'mongodb' ? `${service(ctx, 'mongodb').url}?collectionPrefix=b${tag}_` : `${service(ctx, 'postgres').url}?tablePrefix=b${tag}_`;
  const store = createDocumentStore(await openDriver(ctx, backend === 'mongodb' ? 'mongo' : 'postgres', 'documents', url));
  return { collection: await store.collection('bench', { indexes: INDEXES }), close: () => store.close() };
}

async function pair(ctx: BenchContext, backend: 'mongodb' | 'postgres', op: DocumentOp): Promise<Pair> {
  const ours = await stowageCollection(ctx, backend);
  const theirs = await rawMongo(ctx);
  const { stowageIds, rawIds } = await preload(ours.collection, theirs.raw);
  return {
    ...documentSides(op, ours.collection, stowageIds, theirs.raw, rawIds, { stowage: `stowage ${backend}://`, baseline: theirs.label }),
    async teardown() {
      await ours.close();
      await theirs.close();
    },
  };
}

const OPS: readonly { op: DocumentOp; title: string }[] = [
  { op: 'insert', title: 'insert (1 at a time)' },
  { op: 'get', title: 'get by id' },
  { op: 'find', title: 'indexed find (limit 10)' },
];

const MONGO_NOTE =
  'Same FerretDB, same document shape ({ _id, v, d }) and index on d.team, 1,000 documents preloaded. Insert and get are one command on both sides. Find: FerretDB evaluates none of the aggregation expressions the adapter writes its exact filters in ($expr), so on FerretDB the adapter reads the whole collection and filters with its reference evaluator (on MongoDB the filter runs in the server); the driver sends { "d.team": … }, which FerretDB does not push down to PostgreSQL either (its explain: filterPushdown false, a sequential scan), so both sides scan and the index is unused.';
const POSTGRES_NOTE =
  'Both store JSON in PostgreSQL 15 and commit each insert (synchronous_commit = on): Stowage in a jsonb table of its own with a GIN index on team; the driver through FerretDB, which turns each command into SQL on its own PostgreSQL (same binary and settings, another instance started by the harness). 1,000 documents preloaded on each side. The find ratio is the index: postgres:// finds through its GIN index, FerretDB scans the collection for a filter on a dotted path (its explain: filterPushdown false).';

/** The MongoDB-driver peer benchmarks. */
export const benchmarks: Benchmark[] = [
  ...OPS.map(
    ({ op, title }): Benchmark => ({
      kind: 'pair',
      name: `mongodb documents ${title} vs the mongodb driver`,
      group: 'documents peers',
      adapters: ['mongo'],
      requires: ['mongodb'],
      unit: 'ops/s',
      note: MONGO_NOTE,
      setup: (ctx) => pair(ctx, 'mongodb', op),
    }),
  ),
  ...OPS.map(
    ({ op, title }): Benchmark => ({
      kind: 'pair',
      name: `postgres documents ${title} vs the mongodb driver on FerretDB`,
      group: 'documents peers',
      adapters: ['postgres'],
      requires: ['postgres', 'mongodb'],
      unit: 'ops/s',
      note: POSTGRES_NOTE,
      setup: (ctx) => pair(ctx, 'postgres', op),
    }),
  ),
];
