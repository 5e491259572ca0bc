/**
 * `sqlite://` documents on better-sqlite3 or Node's `node:sqlite` (see `engine.ts`): one `WITHOUT ROWID` table per collection (`id` as the
 * clustered key, `version`, `data` as JSON text) in a WAL-mode database; filters, sorts and keyset
 * positions translated to SQL by the shared translator; declared indexes as expression indexes, and a
 * top-level equality on an indexed field run as a union of index ranges; writes group-committed (those
 * issued in the same turn of the event loop share one transaction, one fsync, each in its own savepoint);
 * migrations under a lock row claimed with `BEGIN IMMEDIATE`. Tables and indexes of older layouts are
 * rebuilt when their collection is opened. Per collection, a record of the paths that ever held an array
 * (`stowage_array_paths`, see `../sql/array-paths.ts`) lets filters leave out array tests; it is written in
 * the transaction of the write that brings a new path, and each query that relied on it reads its size in
 * the same statement, so another connection's new path is never missed.
 *
 * Over 600 lines on purpose: the store and its collections share one connection, its statement cache and
 * its group-commit transaction (savepoints per write); the SQL itself comes from the shared translator and
 * `engine.ts` hides the two SQLite bindings, so what is left here is the transaction discipline, best read
 * whole.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverDocument, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { sameIndex } from '../../driver/indexes.js';
import { indexDefinitionConflict, safeCause, uniqueIndexBuildConflict, uniqueIndexConflict, versionConflict } from '../../driver/errors.js';
import { quote, parseStoredJson } from '../../driver/validate.js';
import { filterToSql, sortToSql, splitEquality, type FilterContext, type FilterSql, type SqlFragment } from '../sql/filter-sql.js';
import { arrayPathKey, newArrayPaths, RECORD_COMPLETE } from '../sql/array-paths.js';
import { sqliteDialect, sqliteFilterContext, sqliteIndexArms, sqliteIndexColumns } from './sqlite-dialect.js';
import { chooseSqliteEngine, openSqlite, type SqliteConnection, type SqliteEngineName, type SqliteStatement } from './engine.js';
import { sleep } from '../../driver/sleep.js';

/** How a commit reaches the disk. */
export type SqliteSynchronous = 'full' | 'normal';

/** Options of {@link SqliteDocumentsDriver}. */
export interface SqliteDocumentsOptions {
  /** The database file. */
  file: string;
  /**
   * `full` (default): every commit is fsynced, so an acknowledged write survives power loss. `normal`: in WAL
   * mode commits survive a process crash but the last ones may be lost on power loss; faster.
   */
  synchronous?: SqliteSynchronous;
  /** How long a writer waits for another process's write lock, in milliseconds (default 5000). */
  busyTimeoutMs?: number;
  /** The SQLite engine (default: better-sqlite3 when installed, else `node:sqlite`; see `chooseSqliteEngine`). */
  engine?: SqliteEngineName;
}

/** How long a migration lock row stays valid without renewal: a crashed holder frees it after this. */
const LOCK_LEASE_MS = 30_000;
const LOCK_POLL_MS = 50;
const STATEMENT_CACHE = 500;

type Row = { id: string; version: number; data: string };

/**
 * How many rows the collection's record of array paths has, as a scalar subquery taking the collection's
 * name: a statement whose filter relied on the record reads it alongside its rows (same snapshot), so that
 * a record grown by another connection is noticed (see `SqliteCollectionDriver.#checked`).
 */
const RECORD_SIZE = '(SELECT COUNT(*) FROM stowage_array_paths WHERE collection = ?)';

/** How often a read is compiled again after the record grew under it, before it is run without the record. */
const RECORD_RETRIES = 3;

/** A write waiting for the next group commit. */
interface QueuedWrite {
  fn(): unknown;
  resolve(value: unknown): void;
  reject(err: unknown): void;
  readonly signal: AbortSignal;
  readonly oneStatement: boolean;
}

function conflictFromUnique(err: unknown, collection: string, id: string): StowageError | undefined {
  const code = (err as { code?: unknown }).code;
  const message = String((err as { message?: unknown }).message);
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${collection}`);
  }
  if (code === 'SQLITE_CONSTRAINT_UNIQUE') {
    const sqlName = /index '([^']+)'/.exec(message)?.[1] ?? '';
    const prefix = `ix_${collection}$`;
    const index = sqlName.startsWith(prefix) ? sqlName.slice(prefix.length) : sqlName || 'unique';
    return uniqueIndexConflict(collection, id, index, safeCause(err));
  }
  return undefined;
}

/** WAL pages between automatic checkpoints (SQLite's default is 1,000); see the driver's constructor. */
const WAL_AUTOCHECKPOINT_PAGES = 4000;

const COLUMNS = '(id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID';

/**
 * The SQL name of a collection's index. SQLite index names share one namespace per database, so the name
 * holds the collection's; `$` separates the two because neither name can hold one (`ix_a__b` from the
 * collection and index of `ix_<collection>__<index>`, the earlier form, could be read two ways).
 */
function indexName(collection: string, index: string): string {
  return `ix_${collection}$${index}`;
}

/** The index name of earlier versions, dropped when its collection is opened (see {@link upgradeLayout}). */
function legacyIndexName(collection: string, index: string): string {
  return `ix_${collection}__${index}`;
}

function createIndexSql(collection: string, index: Required<IndexSpec>): string {
  return `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS "${indexName(collection, index.name)}" ON "d_${collection}" (${sqliteIndexColumns(index.fields, index.unique)})`;
}

class SqliteCollectionDriver implements CollectionDriver {
  readonly #owner: SqliteDocumentsDriver;
  readonly #name: string;
  readonly #table: string;
  readonly #insert: SqliteStatement;
  readonly #get: SqliteStatement;
  readonly #version: SqliteStatement;
  #indexes: Required<IndexSpec>[] = [];
  /** What the declared indexes and the record of array paths tell the filter translation. */
  #context: FilterContext = {};
  /**
   * The record of array paths (see `array-paths.ts`) as last read or written by this connection: never more
   * than the table holds, so a table of as many rows holds exactly these.
   */
  #arrays = new Set<string>();

  constructor(owner: SqliteDocumentsDriver, name: string) {
    this.#owner = owner;
    this.#name = name;
    this.#table = `"d_${name}"`;
    this.#insert = owner.db.prepare(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`);
    this.#get = owner.db.prepare(`SELECT id, version, data FROM ${this.#table} WHERE id = ?`);
    this.#version = owner.db.prepare(`SELECT version FROM ${this.#table} WHERE id = ?`);
    this.#readArrays();
    this.#setIndexes(this.#readIndexes());
  }

  #setIndexes(indexes: Required<IndexSpec>[]): void {
    this.#indexes = indexes;
    const arrays = this.#arrays;
    this.#context = {
      ...sqliteFilterContext(this.#table, indexes.map((index) => index.fields[0] ?? '')),
      neverArray: (path) => arrays.has(RECORD_COMPLETE) && !arrays.has(arrayPathKey(path)),
    };
  }

  #readArrays(): void {
    const rows = this.#owner.stmt('SELECT path FROM stowage_array_paths WHERE collection = ?').all(this.#name) as { path: string }[];
    for (const row of rows) this.#arrays.add(row.path);
  }

  /** The array paths of `docs` not yet in the record. */
  #newArrays(docs: readonly JsonObject[]): string[] {
    if (docs.length === 1) return newArrayPaths(docs[0] as JsonObject, this.#arrays);
    return [...new Set(docs.flatMap((doc) => newArrayPaths(doc, this.#arrays)))];
  }

  /** Adds `paths` to the record, inside the write that stores the documents holding them. */
  #recordArrays(paths: readonly string[]): void {
    const add = this.#owner.stmt('INSERT OR IGNORE INTO stowage_array_paths (collection, path) VALUES (?, ?)');
    for (const path of paths) add.run(this.#name, path);
  }

  /** After the write that recorded `paths` committed: the table holds them. */
  #recorded(paths: readonly string[]): void {
    for (const path of paths) this.#arrays.add(path);
  }

  #record(row: Row): DocumentRecord {
    let data: JsonObject;
    try {
      data = JSON.parse(row.data) as JsonObject;
    } catch {
      // Only now is the error's location worth composing.
      data = parseStoredJson(row.data, `sqlite document ${quote(row.id)} in ${this.#name}`) as JsonObject;
    }
    return { id: row.id, version: row.version, data };
  }

  #conflict(id: string, actual: number, expected: number): StowageError {
    return versionConflict(this.#name, id, actual, expected);
  }

  #currentVersion(id: string): number {
    return (this.#version.get(id) as { version: number } | undefined)?.version ?? 0;
  }

  async insert(id: string, data: JsonObject, signal: AbortSignal, json?: string): Promise<DocumentRecord> {
    const text = json ?? JSON.stringify(data);
    const arrays = this.#newArrays([data]);
    await this.#owner.write(
      signal,
      () => {
        this.#recordArrays(arrays);
        try {
          this.#insert.run(id, text);
        } catch (err) {
          throw conflictFromUnique(err, this.#name, id) ?? err;
        }
      },
      { oneStatement: arrays.length === 0 },
    );
    this.#recorded(arrays);
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly DriverDocument[], signal: AbortSignal): Promise<DocumentRecord[]> {
    const texts = docs.map((doc) => doc.json ?? JSON.stringify(doc.data));
    const arrays = this.#newArrays(docs.map((doc) => doc.data));
    await this.#owner.write(signal, () => {
      this.#recordArrays(arrays);
      docs.forEach((doc, i) => {
        try {
          this.#insert.run(doc.id, texts[i]);
        } catch (err) {
          throw conflictFromUnique(err, this.#name, doc.id) ?? err;
        }
      });
    });
    this.#recorded(arrays);
    return docs.map(({ id, data }) => ({ id, version: 1, data }));
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    return this.getSync(id);
  }

  /** Reads one at once (better-sqlite3 is synchronous), after committing the writes queued before it. */
  getSync(id: string): DocumentRecord | undefined {
    this.#owner.settle();
    const row = this.#get.get(id) as Row | undefined;
    return row === undefined ? undefined : this.#record(row);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined, signal: AbortSignal, json?: string): Promise<DocumentRecord> {
    const text = json ?? JSON.stringify(data);
    const arrays = this.#newArrays([data]);
    const version = await this.#owner.write(signal, () => {
      const actual = this.#currentVersion(id);
      if (ifVersion !== undefined && ifVersion !== actual) throw this.#conflict(id, actual, ifVersion);
      this.#recordArrays(arrays);
      try {
        if (actual === 0) this.#insert.run(id, text);
        else this.#owner.stmt(`UPDATE ${this.#table} SET version = ?, data = ? WHERE id = ?`).run(actual + 1, text, id);
      } catch (err) {
        throw conflictFromUnique(err, this.#name, id) ?? err;
      }
      return actual + 1;
    });
    this.#recorded(arrays);
    return { id, version, data };
  }

  async delete(id: string, ifVersion: number | undefined, signal: AbortSignal): Promise<boolean> {
    return this.#owner.write(signal, () => {
      const actual = this.#currentVersion(id);
      if (ifVersion !== undefined && ifVersion !== actual) throw this.#conflict(id, actual, ifVersion);
      if (actual === 0) return false;
      this.#owner.stmt(`DELETE FROM ${this.#table} WHERE id = ?`).run(id);
      return true;
    });
  }

  /** The declared index to drive an equality on `path` with: one whose first field it is, one-field first. */
  #indexFor(path: string): Required<IndexSpec> | undefined {
    let found: Required<IndexSpec> | undefined;
    for (const index of this.#indexes) {
      if (index.fields[0] !== path) continue;
      if (index.fields.length === 1) return index;
      found ??= index;
    }
    return found;
  }

  /**
   * The filter as index ranges and the rest: with a top-level equality on an indexed field, disjoint
   * conditions that each read one range of the index (see {@link sqliteIndexArms}) and together are that
   * equality, plus the rest of the filter; otherwise undefined.
   */
  #arms(filter: Filter, context: FilterContext): { arms: SqlFragment[]; rest: FilterSql } | undefined {
    if (this.#indexes.length === 0) return undefined;
    // Dotted paths too: every index records the JSON types on the way to its fields (see sqliteIndexColumns).
    const eq = splitEquality(filter, (path) => this.#indexFor(path) !== undefined, { dotted: true });
    const index = eq && this.#indexFor(eq.path);
    if (eq === undefined || index === undefined) return undefined;
    return { arms: sqliteIndexArms(eq.path, eq.values, index.unique), rest: filterToSql(eq.rest, sqliteDialect, context) };
  }

  /**
   * Runs a read compiled with `context` by `run`, which reads the record's size in the same statement where
   * the filter relied on the record (`check`). Where the record grew meanwhile (another connection wrote an
   * array at a new path), the read is compiled again with what the record holds now, and at last without
   * the record. `size` is undefined where the statement returned no row: then a later look at the record
   * tells as well, since it only grows (the same size later means the same size then).
   */
  #checked<R>(run: (context: FilterContext) => { result: R; check: boolean; size: number | undefined }): R {
    for (let attempt = 0; ; attempt++) {
      const context = attempt < RECORD_RETRIES ? this.#context : this.#contextWithoutRecord();
      // What the translation saw: every path of it is in the table, so as many rows means no other.
      const known = this.#arrays.size;
      const { result, check, size } = run(context);
      if (!check) return result;
      const actual = size ?? (this.#owner.stmt(`SELECT ${RECORD_SIZE} AS n`).get(this.#name) as { n: number }).n;
      if (actual === known) return result;
      this.#readArrays();
    }
  }

  #contextWithoutRecord(): FilterContext {
    return { ...this.#context, neverArray: undefined };
  }

  async find(query: DriverFind): Promise<DocumentRecord[]> {
    this.#owner.settle();
    return this.#checked((context) => this.#find(query, context));
  }

  #find(query: DriverFind, context: FilterContext): { result: DocumentRecord[]; check: boolean; size: number | undefined } {
    const { orderBy, after } = sortToSql(query, sqliteDialect);
    const tail = after ? ` AND (${after.sql})` : '';
    const tailParams = after?.params ?? [];
    const split = this.#arms(query.filter, context);
    // The limit is a literal: a bound LIMIT makes SQLite (built with STAT4) prepare the statement again at
    // every run, which cost more than the query itself. It is a validated integer.
    const limit = ` LIMIT ${Math.trunc(query.limit)}`;
    let sql: string;
    let params: unknown[];
    let check: boolean;
    if (split !== undefined && query.sort.length === 0) {
      // In id order: every range is read in id order and SQLite merges them, stopping at the limit.
      const { arms, rest } = split;
      check = rest.reliesOnRecord;
      const columns = check ? `id, version, data, ${RECORD_SIZE} AS arrays` : 'id, version, data';
      sql = arms.map((arm) => `SELECT ${columns} FROM ${this.#table} WHERE ${arm.sql} AND (${rest.sql})${tail}`).join(' UNION ALL ') + ` ORDER BY id${limit}`;
      params = arms.flatMap((arm) => [...(check ? [this.#name] : []), ...arm.params, ...rest.params, ...tailParams]);
    } else {
      const where = split === undefined ? filterToSql(query.filter, sqliteDialect, context) : orArms(split.arms, split.rest);
      check = where.reliesOnRecord;
      sql = `SELECT id, version, data${check ? `, ${RECORD_SIZE} AS arrays` : ''} FROM ${this.#table} WHERE (${where.sql})${tail} ORDER BY ${orderBy}${limit}`;
      params = [...(check ? [this.#name] : []), ...where.params, ...tailParams];
    }
    const rows = this.#owner.stmt(sql).all(...params) as (Row & { arrays?: number })[];
    return { result: rows.map((r) => this.#record(r)), check, size: rows[0]?.arrays };
  }

  async count(filter: Filter): Promise<number> {
    this.#owner.settle();
    return this.#checked((context) => {
      const split = this.#arms(filter, context);
      const where = split === undefined ? filterToSql(filter, sqliteDialect, context) : orArms(split.arms, split.rest);
      const check = where.reliesOnRecord;
      const sql = `SELECT COUNT(*) AS n${check ? `, ${RECORD_SIZE} AS arrays` : ''} FROM ${this.#table} WHERE ${where.sql}`;
      const row = this.#owner.stmt(sql).get(...(check ? [this.#name] : []), ...where.params) as { n: number; arrays?: number };
      return { result: row.n, check, size: row.arrays };
    });
  }

  async ensureIndex(index: Required<IndexSpec>): Promise<void> {
    this.#owner.settle();
    try {
      this.#owner.immediate(() => {
          // COLLATE NOCASE: SQLite index names ignore case, so `K` beside `k` is refused, never merged.
          const existing = this.#owner
            .stmt('SELECT name, fields, is_unique FROM stowage_indexes WHERE collection = ? AND name = ? COLLATE NOCASE')
            .get(this.#name, index.name) as { name: string; fields: string; is_unique: number } | undefined;
          if (existing !== undefined && existing.name !== index.name) {
            throw new StowageError('ALREADY_EXISTS', `index ${quote(index.name)} of ${this.#name} differs only by case from the existing ${quote(existing.name)}`, {
              details: { name: index.name, existing: existing.name },
            });
          }
          if (existing !== undefined && !sameIndex({ fields: JSON.parse(existing.fields) as string[], unique: existing.is_unique === 1 }, index)) {
            throw indexDefinitionConflict(this.#name, index.name);
          }
          this.#owner.db.exec(createIndexSql(this.#name, index));
          this.#owner
            .stmt('INSERT OR IGNORE INTO stowage_indexes (collection, name, fields, is_unique) VALUES (?, ?, ?, ?)')
            .run(this.#name, index.name, JSON.stringify(index.fields), Number(index.unique));
      });
    } catch (err) {
      if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw uniqueIndexBuildConflict(this.#name, index.name, index.fields, safeCause(err));
      }
      throw err;
    }
    this.#setIndexes(this.#readIndexes());
  }

  #readIndexes(): Required<IndexSpec>[] {
    return readIndexes(this.#owner, this.#name);
  }

  async indexes(): Promise<Required<IndexSpec>[]> {
    this.#owner.settle();
    this.#setIndexes(this.#readIndexes());
    return this.#indexes.map((index) => ({ ...index, fields: [...index.fields] }));
  }
}

/** The declared indexes of a collection, by name. */
function readIndexes(owner: SqliteDocumentsDriver, collection: string): Required<IndexSpec>[] {
  const rows = owner
    .stmt('SELECT name, fields, is_unique FROM stowage_indexes WHERE collection = ? ORDER BY name')
    .all(collection) as { name: string; fields: string; is_unique: number }[];
  return rows.map((r) => ({ name: r.name, fields: JSON.parse(r.fields) as string[], unique: r.is_unique === 1 }));
}

/** The arms of a split filter as one condition. */
function orArms(arms: readonly SqlFragment[], rest: FilterSql): FilterSql {
  return {
    sql: `(${arms.map((arm) => `(${arm.sql})`).join(' OR ')}) AND (${rest.sql})`,
    params: [...arms.flatMap((arm) => arm.params), ...rest.params],
    reliesOnRecord: rest.reliesOnRecord,
  };
}

/**
 * Brings a collection's table and indexes to the current layout, inside the caller's write transaction: a
 * rowid table (before the id became the clustered key) is copied into a `WITHOUT ROWID` one, and an index
 * whose expressions differ from what {@link sqliteIndexColumns} gives now is rebuilt.
 */
function upgradeLayout(owner: SqliteDocumentsDriver, collection: string): void {
  const table = `d_${collection}`;
  const schema = owner.stmt("SELECT sql FROM sqlite_master WHERE type = ? AND name = ?");
  const current = schema.get('table', table) as { sql: string } | undefined;
  if (current !== undefined && !/WITHOUT ROWID\s*$/i.test(current.sql)) {
    // Dropping the old table drops its indexes; the loop below creates them again.
    owner.db.exec(`DROP TABLE IF EXISTS stowage_rebuild;
      CREATE TABLE stowage_rebuild ${COLUMNS};
      INSERT INTO stowage_rebuild (id, version, data) SELECT id, version, data FROM "${table}";
      DROP TABLE "${table}";
      ALTER TABLE stowage_rebuild RENAME TO "${table}";`);
  }
  const ownIndex = owner.stmt('SELECT name FROM sqlite_master WHERE type = ? AND name = ? AND tbl_name = ?');
  for (const index of readIndexes(owner, collection)) {
    // Only this table's own index of the earlier name: another collection's may have the same name.
    const legacy = legacyIndexName(collection, index.name);
    if (ownIndex.get('index', legacy, table) !== undefined) owner.db.exec(`DROP INDEX "${legacy}"`);
    const existing = schema.get('index', indexName(collection, index.name)) as { sql: string } | undefined;
    if (existing?.sql.endsWith(`(${sqliteIndexColumns(index.fields, index.unique)})`) === true) continue;
    owner.db.exec(`DROP INDEX IF EXISTS "${indexName(collection, index.name)}"; ${createIndexSql(collection, index)}`);
  }
}

/**
 * Makes the collection's record of array paths cover its documents, inside the caller's write transaction:
 * a collection without the record's completion row (new, or written before the record existed) has its
 * documents read once and their array paths recorded. Processes of versions without the record must not
 * write to the file any more: arrays they store are not recorded.
 */
function completeArrayRecord(owner: SqliteDocumentsDriver, collection: string): void {
  const complete = owner.stmt('SELECT 1 AS x FROM stowage_array_paths WHERE collection = ? AND path = ?');
  if (complete.get(collection, RECORD_COMPLETE) !== undefined) return;
  const add = owner.stmt('INSERT OR IGNORE INTO stowage_array_paths (collection, path) VALUES (?, ?)');
  const seen = new Set<string>();
  // A page at a time, in id order; a document without a `[` in its text holds no array.
  const page = owner.stmt(`SELECT id, data FROM "d_${collection}" WHERE id > ? AND data LIKE '%[%' ORDER BY id LIMIT 1000`);
  let rows: { id: string; data: string }[];
  for (let after = ''; (rows = page.all(after) as { id: string; data: string }[]).length > 0; after = rows.at(-1)?.id ?? '') {
    for (const row of rows) {
      for (const path of newArrayPaths(parseStoredJson(row.data, `sqlite document ${quote(row.id)} in ${collection}`) as JsonObject, seen)) {
        seen.add(path);
        add.run(collection, path);
      }
    }
  }
  add.run(collection, RECORD_COMPLETE);
}

/** A documents driver over one SQLite database file. */
export class SqliteDocumentsDriver implements DocumentsDriver {
  /** `sqlite`. */
  readonly backend = 'sqlite';
  /** `insertMany` runs in one transaction. */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>(['transactions']);
  /** The connection (internal to the adapter). */
  readonly db: SqliteConnection;
  readonly #statements = new Map<string, SqliteStatement>();
  readonly #collections = new Map<string, SqliteCollectionDriver>();
  readonly #localLocks = new Map<string, Promise<unknown>>();
  readonly #owner = randomUUID();
  readonly #file: string;
  #queue: QueuedWrite[] = [];
  #scheduled = false;

  /**
   * Opens (creating) the database file and the metadata tables.
   *
   * @throws StowageError CORRUPTED when the file is not a readable SQLite database, RESOURCE_EXHAUSTED when the
   *   disk is full, UNAVAILABLE when it cannot be opened (errors of the open go through {@link mapError} like
   *   those of every later call).
   */
  constructor(options: SqliteDocumentsOptions) {
    this.#file = options.file;
    mkdirSync(dirname(options.file), { recursive: true });
    try {
      this.db = openSqlite(options.file, options.engine ?? chooseSqliteEngine(), options.busyTimeoutMs ?? 5000);
    } catch (err) {
      throw this.mapError(err) ?? err;
    }
    try {
      this.db.exec('PRAGMA journal_mode = WAL');
      this.db.exec(`PRAGMA synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      // SQLite copies the WAL back into the database (a checkpoint: page copies and two fsyncs, inside the
      // commit that crosses the limit, on this thread) every 1,000 pages by default. Every 4,000 pages (a
      // WAL of up to ~16 MB) a hot page (an index leaf, the newest ids' leaf) is copied once per checkpoint
      // instead of four times: ~25 % more durable inserts per second with 256 in flight (bench/).
      this.db.exec(`PRAGMA wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS stowage_collections (name TEXT PRIMARY KEY, migration_version INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS stowage_indexes (collection TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL,
          is_unique INTEGER NOT NULL, PRIMARY KEY (collection, name));
        CREATE TABLE IF NOT EXISTS stowage_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS stowage_array_paths (collection TEXT NOT NULL, path TEXT NOT NULL, PRIMARY KEY (collection, path)) WITHOUT ROWID;
      `);
    } catch (err) {
      this.db.close();
      throw this.mapError(err) ?? err;
    }
  }

  /** A prepared statement, cached by its text. */
  stmt(sql: string): SqliteStatement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      if (this.#statements.size >= STATEMENT_CACHE) this.#statements.clear();
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /**
   * Runs `fn` in a `BEGIN IMMEDIATE` transaction (a savepoint inside one already open), committed when it
   * returns and rolled back when it throws.
   */
  immediate<R>(fn: () => R): R {
    const nested = this.db.inTransaction;
    this.stmt(nested ? 'SAVEPOINT t' : 'BEGIN IMMEDIATE').run();
    try {
      const result = fn();
      this.stmt(nested ? 'RELEASE t' : 'COMMIT').run();
      return result;
    } catch (err) {
      // SQLite may have rolled the transaction back itself (an I/O error, a full disk): then nothing is left to undo.
      if (this.db.isOpen && this.db.inTransaction) {
        if (nested) {
          this.stmt('ROLLBACK TO t').run();
          this.stmt('RELEASE t').run();
        } else {
          this.stmt('ROLLBACK').run();
        }
      }
      throw err;
    }
  }

  /** Opens (creating) a collection's table, bringing an older layout up to date. */
  async collection(name: string): Promise<CollectionDriver> {
    let c = this.#collections.get(name);
    if (c === undefined) {
      this.settle();
      this.immediate(() => {
        // SQLite table names ignore case: "d_TENANTA" is the table of "tenantA". Refused, not shared.
        const twin = this.stmt('SELECT name FROM stowage_collections WHERE name = ? COLLATE NOCASE AND name <> ?').get(name, name) as { name: string } | undefined;
        if (twin !== undefined) {
          throw new StowageError('ALREADY_EXISTS', `collection ${quote(name)} differs only by case from the existing ${quote(twin.name)}`, {
            details: { name, existing: twin.name },
          });
        }
        this.db.exec(`CREATE TABLE IF NOT EXISTS "d_${name}" ${COLUMNS}`);
        this.stmt('INSERT OR IGNORE INTO stowage_collections (name) VALUES (?)').run(name);
        upgradeLayout(this, name);
        completeArrayRecord(this, name);
      });
      c = new SqliteCollectionDriver(this, name);
      this.#collections.set(name, c);
    }
    return c;
  }

  /**
   * Queues a write; it runs when the queue is flushed, at the latest in the next turn of the event loop
   * (`setImmediate`), together with every write queued meanwhile: one transaction, one commit (one fsync
   * with `synchronous = full`), each write of several statements in its own savepoint so that a failing one
   * (a unique violation, a version conflict) is undone alone and fails alone (a one-statement write is
   * undone by SQLite itself). The promise settles after the commit, so an
   * acknowledged write is on disk. A write whose deadline passed or whose caller gave up before the flush
   * is dropped unapplied. `oneStatement`: `fn` runs one statement (atomic by itself), so a batch of just it
   * needs no explicit transaction.
   */
  write<R>(signal: AbortSignal, fn: () => R, { oneStatement = false } = {}): Promise<R> {
    return new Promise<R>((resolvePromise, reject) => {
      this.#queue.push({ fn, resolve: resolvePromise as (value: unknown) => void, reject, signal, oneStatement });
      if (!this.#scheduled) {
        this.#scheduled = true;
        setImmediate(this.#flushSoon);
      }
    });
  }

  readonly #flushSoon = (): void => {
    this.#scheduled = false;
    this.settle();
  };

  /**
   * Runs the queued writes now. Reads and schema changes call this first, so every operation takes effect
   * in the order it was issued (a read issued after a write, even not awaited, sees it).
   */
  settle(): void {
    if (this.#queue.length === 0) return;
    const batch: QueuedWrite[] = [];
    for (const w of this.#queue) {
      if (w.signal.aborted) w.reject(w.signal.reason instanceof Error ? w.signal.reason : new StowageError('CANCELLED', 'cancelled'));
      else batch.push(w);
    }
    this.#queue = [];
    const only = batch.length === 1 ? batch[0] : undefined;
    if (only?.oneStatement === true) {
      // One statement in autocommit mode: its own transaction, committed (and synced) before it returns.
      try {
        only.resolve(only.fn());
      } catch (err) {
        only.reject(err);
      }
      return;
    }
    if (batch.length === 0) return;
    this.#commitBatch(batch);
  }

  #commitBatch(batch: readonly QueuedWrite[]): void {
    const results: unknown[] = [];
    const errors: unknown[] = [];
    try {
      this.stmt('BEGIN IMMEDIATE').run();
      const alone = batch.length === 1;
      for (const [i, w] of batch.entries()) {
        // A failing statement undoes itself and leaves the transaction open (SQLite's ABORT), so a
        // one-statement write needs no savepoint of its own.
        const savepoint = !alone && !w.oneStatement;
        try {
          if (savepoint) this.stmt('SAVEPOINT w').run();
          results[i] = w.fn();
          if (savepoint) this.stmt('RELEASE w').run();
        } catch (err) {
          // An I/O error or a full disk may have rolled back the whole transaction: nothing of it stands.
          if (!this.db.isOpen || !this.db.inTransaction) throw err;
          errors[i] = err ?? new Error('write failed');
          if (savepoint) {
            this.stmt('ROLLBACK TO w').run();
            this.stmt('RELEASE w').run();
          }
        }
      }
      // A lone write that failed leaves nothing to commit: undo it whole.
      this.stmt(alone && errors[0] !== undefined ? 'ROLLBACK' : 'COMMIT').run();
    } catch (err) {
      try {
        if (this.db.isOpen && this.db.inTransaction) this.stmt('ROLLBACK').run();
      } catch {
        // The rollback failing leaves SQLite to roll back on the next open; nothing was acknowledged.
      }
      for (const w of batch) w.reject(err);
      return;
    }
    for (const [i, w] of batch.entries()) {
      if (errors[i] === undefined) w.resolve(results[i]);
      else w.reject(errors[i]);
    }
  }

  /** Collection names. */
  async collections(): Promise<string[]> {
    return (this.stmt('SELECT name FROM stowage_collections ORDER BY name').all() as { name: string }[]).map((r) => r.name);
  }

  /**
   * Holds the lock `name` while `fn` runs: in this process a promise chain, across processes a row in
   * `stowage_locks` claimed inside `BEGIN IMMEDIATE` (so two claims never interleave), with a lease that the
   * holder renews and that frees the lock if the holder dies.
   */
  async withLock<R>(name: string, fn: () => Promise<R>, signal: AbortSignal): Promise<R> {
    const previous = this.#localLocks.get(name) ?? Promise.resolve();
    const run = previous.catch(() => undefined).then(() => this.#withRowLock(name, fn, signal));
    this.#localLocks.set(name, run);
    try {
      return await run;
    } finally {
      if (this.#localLocks.get(name) === run) this.#localLocks.delete(name);
    }
  }

  async #withRowLock<R>(name: string, fn: () => Promise<R>, signal: AbortSignal): Promise<R> {
    this.settle();
    const claim = (): boolean => {
      const row = this.stmt('SELECT owner, expires FROM stowage_locks WHERE name = ?').get(name) as { owner: string; expires: number } | undefined;
      if (row !== undefined && row.owner !== this.#owner && row.expires > Date.now()) return false;
      this.stmt('INSERT OR REPLACE INTO stowage_locks (name, owner, expires) VALUES (?, ?, ?)').run(name, this.#owner, Date.now() + LOCK_LEASE_MS);
      return true;
    };
    while (!this.immediate(claim)) await sleep(LOCK_POLL_MS, signal);
    const renew = setInterval(() => {
      this.stmt('UPDATE stowage_locks SET expires = ? WHERE name = ? AND owner = ?').run(Date.now() + LOCK_LEASE_MS, name, this.#owner);
    }, LOCK_LEASE_MS / 3);
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      if (this.db.isOpen) this.stmt('DELETE FROM stowage_locks WHERE name = ? AND owner = ?').run(name, this.#owner);
    }
  }

  /** The highest migration version applied to a collection. */
  async migrationVersion(collection: string): Promise<number> {
    const row = this.stmt('SELECT migration_version FROM stowage_collections WHERE name = ?').get(collection) as { migration_version: number } | undefined;
    return row?.migration_version ?? 0;
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    this.settle();
    this.stmt(
      'INSERT INTO stowage_collections (name, migration_version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET migration_version = excluded.migration_version',
    ).run(collection, version);
  }

  /** A real query. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    const row = this.db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
    return { serverVersion: row.v };
  }

  /** Runs the queued writes, then closes the connection (checkpointing the WAL). */
  async close(): Promise<void> {
    if (this.db.isOpen) this.settle();
    this.#statements.clear();
    if (this.db.isOpen) this.db.close();
  }

  /** Classifies SQLite errors. */
  mapError(err: unknown): StowageError | undefined {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
    const cause = safeCause(err);
    const message = `sqlite ${this.#file}: ${cause?.message ?? code}`;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return new StowageError('UNAVAILABLE', message, { cause });
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new StowageError('CORRUPTED', message, { cause });
    if (code === 'SQLITE_FULL') return new StowageError('RESOURCE_EXHAUSTED', message, { cause });
    if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return new StowageError('PERMISSION_DENIED', message, { cause });
    if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_IOERR')) return new StowageError('UNAVAILABLE', message, { cause });
    return undefined;
  }

  /** The engine's own handle: a better-sqlite3 `Database` or a `node:sqlite` `DatabaseSync` (see {@link SqliteDocumentsDriver.engine}). */
  native(): object {
    return this.db.native;
  }

  /** The SQLite engine this database runs on. */
  get engine(): SqliteEngineName {
    return this.db.engine;
  }
}

/**
 * Where a `sqlite://` URL puts the database: `sqlite:///abs/file.db` is absolute; `sqlite://` alone is
 * `<dataDir>/documents.db`; `sqlite://rel/file.db` is relative to the data folder.
 */
export function sqliteFile(hostAndPath: string, dataDir: string): string {
  if (hostAndPath === '') return join(dataDir, 'documents.db');
  return isAbsolute(hostAndPath) ? hostAndPath : resolve(dataDir, hostAndPath);
}
