/**
 * `sqlite://` documents with better-sqlite3: one table per collection (`id`, `version`, `data` as JSON
 * text) in a WAL-mode database; filters, sorts and keyset positions translated to SQL by the shared
 * translator; declared indexes as expression indexes; migrations under a lock row claimed with
 * `BEGIN IMMEDIATE`.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { safeCause } from '../../core/errors.js';
import { quote, parseStoredJson } from '../../core/validate.js';
import { filterToSql, sortToSql } from '../sql/filter-sql.js';
import { sqliteDialect, sqliteIndexColumns } from './sqlite-dialect.js';

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
}

/** How long a migration lock row stays valid without renewal: a crashed holder frees it after this. */
const LOCK_LEASE_MS = 30_000;
const LOCK_POLL_MS = 50;
const STATEMENT_CACHE = 500;

type Row = { id: string; version: number; data: string };

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolvePromise();
    }, ms);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal.reason instanceof Error ? signal.reason : new StowageError('CANCELLED', 'cancelled'));
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function conflictFromUnique(err: unknown, collection: string, id: string): StowageError | undefined {
  const code = (err as { code?: unknown }).code;
  const message = String((err as { message?: unknown }).message);
  if (code === 'SQLITE_CONSTRAINT_PRIMARYKEY') {
    return new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${collection}`);
  }
  if (code === 'SQLITE_CONSTRAINT_UNIQUE') {
    const sqlName = /index '([^']+)'/.exec(message)?.[1] ?? '';
    const prefix = `ix_${collection}__`;
    const index = sqlName.startsWith(prefix) ? sqlName.slice(prefix.length) : sqlName || 'unique';
    return new StowageError('CONFLICT', `document ${quote(id)} in ${collection} breaks unique index ${index}`, {
      details: { index },
      cause: safeCause(err),
    });
  }
  return undefined;
}

class SqliteCollectionDriver implements CollectionDriver {
  readonly #owner: SqliteDocumentsDriver;
  readonly #name: string;
  readonly #table: string;

  constructor(owner: SqliteDocumentsDriver, name: string) {
    this.#owner = owner;
    this.#name = name;
    this.#table = `"d_${name}"`;
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
    return new StowageError('CONFLICT', `document ${quote(id)} in ${this.#name} is at version ${actual}, not ${expected}`, {
      details: { currentVersion: actual },
    });
  }

  #write<R>(id: string, fn: () => R): R {
    try {
      return this.#owner.db.transaction(fn).immediate();
    } catch (err) {
      throw conflictFromUnique(err, this.#name, id) ?? err;
    }
  }

  async insert(id: string, data: JsonObject): Promise<DocumentRecord> {
    const text = JSON.stringify(data);
    this.#write(id, () => this.#owner.stmt(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`).run(id, text));
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly { id: string; data: JsonObject }[]): Promise<DocumentRecord[]> {
    const stmt = this.#owner.stmt(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`);
    let current = '';
    try {
      this.#owner.db
        .transaction(() => {
          for (const doc of docs) {
            current = doc.id;
            stmt.run(doc.id, JSON.stringify(doc.data));
          }
        })
        .immediate();
    } catch (err) {
      throw conflictFromUnique(err, this.#name, current) ?? err;
    }
    return docs.map(({ id, data }) => ({ id, version: 1, data }));
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    const row = this.#owner.stmt(`SELECT id, version, data FROM ${this.#table} WHERE id = ?`).get(id) as Row | undefined;
    return row === undefined ? undefined : this.#record(row);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined): Promise<DocumentRecord> {
    const text = JSON.stringify(data);
    const version = this.#write(id, () => {
      const row = this.#owner.stmt(`SELECT version FROM ${this.#table} WHERE id = ?`).get(id) as { version: number } | undefined;
      const actual = row?.version ?? 0;
      if (ifVersion !== undefined && ifVersion !== actual) throw this.#conflict(id, actual, ifVersion);
      if (row === undefined) this.#owner.stmt(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`).run(id, text);
      else this.#owner.stmt(`UPDATE ${this.#table} SET version = ?, data = ? WHERE id = ?`).run(actual + 1, text, id);
      return actual + 1;
    });
    return { id, version, data };
  }

  async delete(id: string, ifVersion: number | undefined): Promise<boolean> {
    return this.#write(id, () => {
      const row = this.#owner.stmt(`SELECT version FROM ${this.#table} WHERE id = ?`).get(id) as { version: number } | undefined;
      const actual = row?.version ?? 0;
      if (ifVersion !== undefined && ifVersion !== actual) throw this.#conflict(id, actual, ifVersion);
      if (row === undefined) return false;
      this.#owner.stmt(`DELETE FROM ${this.#table} WHERE id = ?`).run(id);
      return true;
    });
  }

  async find(query: DriverFind): Promise<DocumentRecord[]> {
    const where = filterToSql(query.filter, sqliteDialect);
    const { orderBy, after } = sortToSql(query, sqliteDialect);
    const sql =
      `SELECT id, version, data FROM ${this.#table} WHERE (${where.sql})` +
      (after ? ` AND (${after.sql})` : '') +
      ` ORDER BY ${orderBy} LIMIT ?`;
    const rows = this.#owner.stmt(sql).all(...where.params, ...(after?.params ?? []), query.limit) as Row[];
    return rows.map((r) => this.#record(r));
  }

  async count(filter: Filter): Promise<number> {
    const where = filterToSql(filter, sqliteDialect);
    const row = this.#owner.stmt(`SELECT COUNT(*) AS n FROM ${this.#table} WHERE ${where.sql}`).get(...where.params) as { n: number };
    return row.n;
  }

  async ensureIndex(index: Required<IndexSpec>): Promise<void> {
    const sqlName = `"ix_${this.#name}__${index.name}"`;
    try {
      this.#owner.db
        .transaction(() => {
          const existing = this.#owner
            .stmt('SELECT fields, is_unique FROM stowage_indexes WHERE collection = ? AND name = ?')
            .get(this.#name, index.name) as { fields: string; is_unique: number } | undefined;
          if (existing !== undefined && (existing.fields !== JSON.stringify(index.fields) || existing.is_unique !== Number(index.unique))) {
            throw new StowageError('CONFLICT', `index ${index.name} of ${this.#name} exists with another definition`, { details: { index: index.name } });
          }
          this.#owner.db.exec(
            `CREATE ${index.unique ? 'UNIQUE ' : ''}INDEX IF NOT EXISTS ${sqlName} ON ${this.#table} (${sqliteIndexColumns(index.fields)})`,
          );
          this.#owner
            .stmt('INSERT OR IGNORE INTO stowage_indexes (collection, name, fields, is_unique) VALUES (?, ?, ?, ?)')
            .run(this.#name, index.name, JSON.stringify(index.fields), Number(index.unique));
        })
        .immediate();
    } catch (err) {
      if ((err as { code?: unknown }).code === 'SQLITE_CONSTRAINT_UNIQUE') {
        throw new StowageError('CONFLICT', `cannot create unique index ${index.name} on ${this.#name}: existing documents share values of ${index.fields.join(', ')}`, {
          details: { index: index.name },
          cause: safeCause(err),
        });
      }
      throw err;
    }
  }

  async indexes(): Promise<Required<IndexSpec>[]> {
    const rows = this.#owner
      .stmt('SELECT name, fields, is_unique FROM stowage_indexes WHERE collection = ? ORDER BY name')
      .all(this.#name) as { name: string; fields: string; is_unique: number }[];
    return rows.map((r) => ({ name: r.name, fields: JSON.parse(r.fields) as string[], unique: r.is_unique === 1 }));
  }
}

/** A documents driver over one SQLite database file. */
export class SqliteDocumentsDriver implements DocumentsDriver {
  /** `sqlite`. */
  readonly backend = 'sqlite';
  /** `insertMany` runs in one transaction. */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>(['transactions']);
  /** The connection (internal to the adapter). */
  readonly db: Database.Database;
  readonly #statements = new Map<string, Database.Statement>();
  readonly #collections = new Map<string, SqliteCollectionDriver>();
  readonly #localLocks = new Map<string, Promise<unknown>>();
  readonly #owner = randomUUID();

  /** Opens (creating) the database file and the metadata tables. */
  constructor(options: SqliteDocumentsOptions) {
    mkdirSync(dirname(options.file), { recursive: true });
    this.db = new Database(options.file, { timeout: options.busyTimeoutMs ?? 5000 });
    try {
      this.db.pragma('journal_mode = WAL');
      this.db.pragma(`synchronous = ${options.synchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
      this.db.exec(`
        CREATE TABLE IF NOT EXISTS stowage_collections (name TEXT PRIMARY KEY, migration_version INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS stowage_indexes (collection TEXT NOT NULL, name TEXT NOT NULL, fields TEXT NOT NULL,
          is_unique INTEGER NOT NULL, PRIMARY KEY (collection, name));
        CREATE TABLE IF NOT EXISTS stowage_locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires INTEGER NOT NULL);
      `);
    } catch (err) {
      this.db.close();
      throw err;
    }
  }

  /** A prepared statement, cached by its text. */
  stmt(sql: string): Database.Statement {
    let s = this.#statements.get(sql);
    if (s === undefined) {
      if (this.#statements.size >= STATEMENT_CACHE) this.#statements.clear();
      s = this.db.prepare(sql);
      this.#statements.set(sql, s);
    }
    return s;
  }

  /** Opens (creating) a collection's table. */
  async collection(name: string): Promise<CollectionDriver> {
    let c = this.#collections.get(name);
    if (c === undefined) {
      this.db
        .transaction(() => {
          this.db.exec(
            `CREATE TABLE IF NOT EXISTS "d_${name}" (id TEXT PRIMARY KEY NOT NULL, version INTEGER NOT NULL, data TEXT NOT NULL)`,
          );
          this.stmt('INSERT OR IGNORE INTO stowage_collections (name) VALUES (?)').run(name);
        })
        .immediate();
      c = new SqliteCollectionDriver(this, name);
      this.#collections.set(name, c);
    }
    return c;
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
    const claim = this.db.transaction((): boolean => {
      const row = this.stmt('SELECT owner, expires FROM stowage_locks WHERE name = ?').get(name) as { owner: string; expires: number } | undefined;
      if (row !== undefined && row.owner !== this.#owner && row.expires > Date.now()) return false;
      this.stmt('INSERT OR REPLACE INTO stowage_locks (name, owner, expires) VALUES (?, ?, ?)').run(name, this.#owner, Date.now() + LOCK_LEASE_MS);
      return true;
    });
    while (!claim.immediate()) await sleep(LOCK_POLL_MS, signal);
    const renew = setInterval(() => {
      this.stmt('UPDATE stowage_locks SET expires = ? WHERE name = ? AND owner = ?').run(Date.now() + LOCK_LEASE_MS, name, this.#owner);
    }, LOCK_LEASE_MS / 3);
    try {
      return await fn();
    } finally {
      clearInterval(renew);
      if (this.db.open) this.stmt('DELETE FROM stowage_locks WHERE name = ? AND owner = ?').run(name, this.#owner);
    }
  }

  /** The highest migration version applied to a collection. */
  async migrationVersion(collection: string): Promise<number> {
    const row = this.stmt('SELECT migration_version FROM stowage_collections WHERE name = ?').get(collection) as { migration_version: number } | undefined;
    return row?.migration_version ?? 0;
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    this.stmt(
      'INSERT INTO stowage_collections (name, migration_version) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET migration_version = excluded.migration_version',
    ).run(collection, version);
  }

  /** A real query. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    const row = this.db.prepare('SELECT sqlite_version() AS v').get() as { v: string };
    return { serverVersion: row.v };
  }

  /** Closes the connection (checkpointing the WAL). */
  async close(): Promise<void> {
    this.#statements.clear();
    if (this.db.open) this.db.close();
  }

  /** Classifies SQLite errors. */
  mapError(err: unknown): StowageError | undefined {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'string' || !code.startsWith('SQLITE_')) return undefined;
    const cause = safeCause(err);
    const message = `sqlite: ${cause?.message ?? code}`;
    if (code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED')) return new StowageError('UNAVAILABLE', message, { cause });
    if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return new StowageError('CORRUPTED', message, { cause });
    if (code === 'SQLITE_FULL') return new StowageError('RESOURCE_EXHAUSTED', message, { cause });
    if (code.startsWith('SQLITE_READONLY') || code === 'SQLITE_PERM' || code === 'SQLITE_AUTH') return new StowageError('PERMISSION_DENIED', message, { cause });
    if (code.startsWith('SQLITE_CANTOPEN') || code.startsWith('SQLITE_IOERR')) return new StowageError('UNAVAILABLE', message, { cause });
    return undefined;
  }

  /** The better-sqlite3 connection. */
  native(): Database.Database {
    return this.db;
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
