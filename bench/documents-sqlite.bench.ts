/**
 * `sqlite://` documents through the DocumentStore port against raw better-sqlite3 doing the same SQL work
 * (issue 3: at least 0.8× raw) and against NeDB on inserts (at least 5×).
 *
 * The raw side uses the table shape of a JSON document store (id, version, JSON text), an expression index
 * on `$.team`, and the journal mode and `synchronous` setting read from the adapter's own connection, so
 * both sides pay for the same durability.
 */
import { join } from 'node:path';
import Database from 'better-sqlite3';
import NedbModule from '@seald-io/nedb';
import { createDocumentStore } from '../src/core/documents/document-store.js';
import type { DocumentStore } from '../src/ports/documents.js';
import type { JsonObject } from '../src/ports/common.js';
import { openDriver } from './lib/adapters.js';
import type { BenchContext, Benchmark, Pair } from './lib/benchmark.js';
import { documentOf, documentSides, preload, type DocumentOp, type RawDocuments } from './lib/documents.js';

const INDEXES = [{ fields: ['team'] }];

// The package is CommonJS (`module.exports = Datastore`) while its types declare `export default`: under
// NodeNext the default import is the class at run time but typed as the module object.
const Nedb = NedbModule as unknown as typeof NedbModule.default;

interface Opened {
  store: DocumentStore;
  journalMode: string;
  synchronous: number;
}

async function openStowage(ctx: BenchContext): Promise<Opened> {
  const driver = await openDriver(ctx, 'sqlite', 'documents', `sqlite://${join(ctx.dir, 'documents.db')}`);
  const store = createDocumentStore(driver);
  // Mirror the adapter's durability settings on the raw side; default to WAL + FULL when it hides its handle.
  const native = driver.native?.();
  let journalMode = 'wal';
  let synchronous = 2;
  if (native instanceof Database) {
    journalMode = String(native.pragma('journal_mode', { simple: true }));
    synchronous = Number(native.pragma('synchronous', { simple: true }));
  }
  return { store, journalMode, synchronous };
}

function rawSqlite(path: string, journalMode: string, synchronous: number): { raw: RawDocuments; close(): void } {
  const db = new Database(path);
  db.pragma(`journal_mode = ${journalMode}`);
  db.pragma(`synchronous = ${synchronous}`);
  db.exec(`CREATE TABLE docs (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID;
           CREATE INDEX docs_team ON docs (json_extract(data, '$.team'));`);
  const insert = db.prepare('INSERT INTO docs (id, version, data) VALUES (?, 1, ?)');
  const get = db.prepare('SELECT id, version, data FROM docs WHERE id = ?');
  const find = db.prepare("SELECT id, version, data FROM docs WHERE json_extract(data, '$.team') = ? ORDER BY id LIMIT ?");
  const parse = (row: { id: string; version: number; data: string }): unknown => ({ id: row.id, version: row.version, data: JSON.parse(row.data) as JsonObject });
  return {
    raw: {
      insert: async (id, data) => {
        insert.run(id, JSON.stringify(data));
      },
      get: async (id) => {
        const row = get.get(id) as { id: string; version: number; data: string } | undefined;
        return row && parse(row);
      },
      findByTeam: async (team, limit) => (find.all(team, limit) as { id: string; version: number; data: string }[]).map(parse),
      insertBatch: async (docs) => {
        db.transaction(() => {
          for (const d of docs) insert.run(d.id, JSON.stringify(d.data));
        })();
      },
    },
    close: () => db.close(),
  };
}

async function sqlitePair(ctx: BenchContext, op: DocumentOp): Promise<Pair> {
  const { store, journalMode, synchronous } = await openStowage(ctx);
  const collection = await store.collection('users', { indexes: INDEXES });
  const { raw, close } = rawSqlite(join(ctx.dir, 'raw.db'), journalMode, synchronous);
  const { stowageIds, rawIds } = await preload(collection, raw);
  const sides = documentSides(op, collection, stowageIds, raw, rawIds, {
    stowage: 'stowage sqlite://',
    baseline: `better-sqlite3 (${journalMode}, synchronous=${synchronous})`,
  });
  return {
    ...sides,
    async teardown() {
      await store.close();
      close();
    },
  };
}

const BAR_RAW = { ratio: 0.8, source: 'issue 3' } as const;
const RAW_NOTE =
  'The raw table is what a hand-written store would use: WITHOUT ROWID, so the id is the clustered key and a lookup is one b-tree search; same journal mode and synchronous setting as the adapter, prepared statements, JSON.parse of each row.';

/** The SQLite documents benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'sqlite documents insert (1 at a time)', group: 'documents', adapters: ['sqlite'], unit: 'ops/s', bar: BAR_RAW, note: RAW_NOTE, setup: (ctx) => sqlitePair(ctx, 'insert') },
  { kind: 'pair', name: 'sqlite documents get by id', group: 'documents', adapters: ['sqlite'], unit: 'ops/s', bar: BAR_RAW, note: RAW_NOTE, setup: (ctx) => sqlitePair(ctx, 'get') },
  { kind: 'pair', name: 'sqlite documents indexed find (limit 10)', group: 'documents', adapters: ['sqlite'], unit: 'ops/s', bar: BAR_RAW, note: RAW_NOTE, setup: (ctx) => sqlitePair(ctx, 'find') },
  {
    kind: 'pair',
    name: 'sqlite documents insert vs NeDB (1 at a time)',
    group: 'documents',
    adapters: ['sqlite'],
    unit: 'ops/s',
    bar: { ratio: 5, source: 'issue 3' },
    note: 'NeDB appends each insert to its file with fs.appendFile and never fsyncs it (it has no per-insert durability setting), so this compares a durable Stowage insert with a non-durable NeDB one.',
    async setup(ctx) {
      const { store } = await openStowage(ctx);
      const collection = await store.collection('users', { indexes: INDEXES });
      const nedb = new Nedb<JsonObject>({ filename: join(ctx.dir, 'nedb.db') });
      await nedb.loadDatabaseAsync();
      await nedb.ensureIndexAsync({ fieldName: 'team' });
      let counter = 0;
      return {
        stowage: {
          label: 'stowage sqlite://',
          async run(n) {
            for (let i = 0; i < n; i++) await collection.insert(documentOf(counter++));
          },
        },
        baseline: {
          label: 'NeDB (@seald-io/nedb, file)',
          async run(n) {
            for (let i = 0; i < n; i++) await nedb.insertAsync(documentOf(counter++));
          },
        },
        teardown: () => store.close(),
      };
    },
  },
];
