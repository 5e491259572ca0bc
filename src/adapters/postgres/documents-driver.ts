/**
 * `postgres://` documents with `pg`: one table per collection (`id text COLLATE "C"`, `version bigint`,
 * `data jsonb`); filters, sorts and keyset positions translated by the shared SQL translator; declared
 * indexes as a GIN index (`jsonb_path_ops`) over the first field, which serves top-level equalities through
 * `@>`, plus, for unique ones, a unique B-tree over the fields' values (arrays and nulls left out, as on the
 * other adapters); DDL and migrations under advisory locks.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverDocument, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { sameIndex } from '../../driver/indexes.js';
import { indexDefinitionConflict, safeCause, uniqueIndexBuildConflict, uniqueIndexConflict, versionConflict } from '../../driver/errors.js';
import { quote } from '../../driver/validate.js';
import { pause } from '../../driver/sleep.js';
import { filterToSql, sortToSql, splitEquality, type SqlFragment } from '../sql/filter-sql.js';
import { numberPlaceholders, pgPath, postgresDialect } from './postgres-dialect.js';
import { isUniqueViolation, prepared, runPrepared, StatementCache, type PostgresConnection, type PreparedStatement } from './connection.js';

type Row = { id: string; version: string | number; data: JsonObject };

const INSERT_CHUNK = 500;
/** `$in` lists longer than this stay with the translator's set test (a long OR of `@>` costs more). */
const MAX_LOOKUP_VALUES = 8;

/** A PostgreSQL identifier of at most 63 bytes (longer names are cut silently by the server), quoted. */
function identifier(name: string): string {
  const short = name.length <= 63 ? name : `${name.slice(0, 46)}_${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
  return `"${short}"`;
}

/** A 64-bit advisory lock key (as text, for a `bigint` parameter) for `name`. */
function lockKey(name: string): string {
  return createHash('sha256').update(name).digest().readBigInt64BE(0).toString();
}

/** The statements a collection runs on every call, prepared once per connection. */
interface CollectionStatements {
  readonly get: PreparedStatement;
  readonly version: PreparedStatement;
  readonly insert: PreparedStatement;
  readonly upsert: PreparedStatement;
  readonly update: PreparedStatement;
  readonly delete: PreparedStatement;
  readonly deleteIf: PreparedStatement;
  readonly insertMany: PreparedStatement;
}

function collectionStatements(table: string): CollectionStatements {
  return {
    get: prepared(`SELECT id, version, data FROM ${table} WHERE id = $1`),
    version: prepared(`SELECT version FROM ${table} WHERE id = $1`),
    insert: prepared(`INSERT INTO ${table} (id, version, data) VALUES ($1, 1, $2)`),
    // One statement: insert, or bump the version of what is there. Row locks make concurrent puts queue.
    upsert: prepared(`INSERT INTO ${table} AS t (id, version, data) VALUES ($1, 1, $2) ON CONFLICT (id) DO UPDATE SET version = t.version + 1, data = EXCLUDED.data RETURNING version`),
    update: prepared(`UPDATE ${table} SET version = version + 1, data = $2 WHERE id = $1 AND version = $3`),
    delete: prepared(`DELETE FROM ${table} WHERE id = $1`),
    deleteIf: prepared(`DELETE FROM ${table} WHERE id = $1 AND version = $2`),
    // Two array parameters, whatever the batch's size: one statement shape, no parameter limit.
    insertMany: prepared(`INSERT INTO ${table} (id, version, data) SELECT i, 1, d::jsonb FROM unnest($1::text[], $2::text[]) AS t(i, d)`),
  };
}

class PostgresCollectionDriver implements CollectionDriver {
  readonly #owner: PostgresDocumentsDriver;
  readonly #name: string;
  readonly #table: string;
  readonly #sql: CollectionStatements;

  constructor(owner: PostgresDocumentsDriver, name: string, table: string) {
    this.#owner = owner;
    this.#name = name;
    this.#table = table;
    this.#sql = collectionStatements(table);
  }

  get #pool(): pg.Pool {
    return this.#owner.pool;
  }

  #record(row: Row): DocumentRecord {
    return { id: row.id, version: Number(row.version), data: row.data };
  }

  #versionConflict(id: string, actual: number, expected: number): StowageError {
    return versionConflict(this.#name, id, actual, expected);
  }

  /** Turns a unique violation into `onPrimary()` (the id) or CONFLICT naming the unique index; rethrows the rest. */
  async #duplicate(err: unknown, id: string, onPrimary: () => StowageError): Promise<never> {
    if (!isUniqueViolation(err)) throw err;
    const constraint = err.constraint ?? '';
    if (constraint === '' || constraint.endsWith('_pkey')) throw onPrimary();
    const index = (await this.indexes()).find((i) => this.#owner.indexName(this.#name, i.name, 'u') === `"${constraint}"`)?.name ?? constraint;
    throw uniqueIndexConflict(this.#name, id, index, safeCause(new Error(`duplicate key for ${constraint}`)));
  }

  async #currentVersion(id: string): Promise<number> {
    const { rows } = await runPrepared<{ version: string }>(this.#pool, this.#sql.version, [id]);
    return rows[0] === undefined ? 0 : Number(rows[0].version);
  }

  async insert(id: string, data: JsonObject, _signal?: AbortSignal, json?: string): Promise<DocumentRecord> {
    try {
      await runPrepared(this.#pool, this.#sql.insert, [id, json ?? JSON.stringify(data)]);
    } catch (err) {
      await this.#duplicate(err, id, () => new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`));
    }
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly DriverDocument[]): Promise<DocumentRecord[]> {
    const client = await this.#pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      try {
        for (let i = 0; i < docs.length; i += INSERT_CHUNK) {
          const chunk = docs.slice(i, i + INSERT_CHUNK);
          await runPrepared(client, this.#sql.insertMany, [chunk.map((d) => d.id), chunk.map((d) => d.json ?? JSON.stringify(d.data))]);
        }
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = e as Error;
        });
        await this.#duplicate(err, docs[0]?.id ?? '', () => new StowageError('ALREADY_EXISTS', `a document of the batch already exists in ${this.#name}`));
      }
    } finally {
      client.release(broken);
    }
    return docs.map(({ id, data }) => ({ id, version: 1, data }));
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    const { rows } = await runPrepared<Row>(this.#pool, this.#sql.get, [id]);
    return rows[0] === undefined ? undefined : this.#record(rows[0]);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined, _signal?: AbortSignal, json?: string): Promise<DocumentRecord> {
    const text = json ?? JSON.stringify(data);
    if (ifVersion === undefined) {
      try {
        const { rows } = await runPrepared<{ version: string }>(this.#pool, this.#sql.upsert, [id, text]);
        return { id, version: Number(rows[0]?.version), data };
      } catch (err) {
        return this.#duplicate(err, id, () => this.#versionConflict(id, 0, 0));
      }
    }
    if (ifVersion === 0) {
      try {
        await runPrepared(this.#pool, this.#sql.insert, [id, text]);
        return { id, version: 1, data };
      } catch (err) {
        return this.#duplicate(err, id, () => this.#versionConflict(id, 1, 0));
      }
    }
    let updated: number;
    try {
      ({ rowCount: updated } = (await runPrepared(this.#pool, this.#sql.update, [id, text, ifVersion])) as { rowCount: number });
    } catch (err) {
      return this.#duplicate(err, id, () => this.#versionConflict(id, ifVersion, ifVersion));
    }
    if (updated === 1) return { id, version: ifVersion + 1, data };
    throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion);
  }

  async delete(id: string, ifVersion: number | undefined): Promise<boolean> {
    if (ifVersion === 0) {
      const actual = await this.#currentVersion(id);
      if (actual !== 0) throw this.#versionConflict(id, actual, 0);
      return false;
    }
    const result = await (ifVersion === undefined ? runPrepared(this.#pool, this.#sql.delete, [id]) : runPrepared(this.#pool, this.#sql.deleteIf, [id, ifVersion]));
    if (result.rowCount === 1) return true;
    if (ifVersion !== undefined) throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion);
    return false;
  }

  /**
   * The filter as SQL (with `?` placeholders). Each top-level `$eq` (or `$in` of up to
   * {@link MAX_LOOKUP_VALUES} values) without null becomes containment: `(data -> 'f') @> '"x"'` holds exactly
   * when the value is `"x"` or an array with the top-level element `"x"` (`[["x"]]` does not contain it;
   * numbers compare by value, strings byte by byte), which is the equality's meaning. It is native, and the
   * planner reads it through the GIN index a declared index on `f` has; the rest of the filter goes through
   * the shared translator.
   */
  #where(filter: Filter): SqlFragment {
    const parts: string[] = [];
    const params: unknown[] = [];
    let rest = filter;
    for (let eq = splitEquality(rest, () => true, { maxValues: MAX_LOOKUP_VALUES }); eq !== undefined; eq = splitEquality(rest, () => true, { maxValues: MAX_LOOKUP_VALUES })) {
      const path = pgPath(postgresDialect.document, [eq.path]);
      parts.push(`(${eq.values.map(() => `(${path}) @> ?::jsonb`).join(' OR ')})`);
      params.push(...eq.values.map((v) => JSON.stringify(v)));
      rest = eq.rest;
    }
    if (parts.length === 0) return filterToSql(filter, postgresDialect);
    const exact = filterToSql(rest, postgresDialect);
    if (exact.sql !== '1=1') parts.push(`(${exact.sql})`);
    return { sql: parts.join(' AND '), params: [...params, ...exact.params] };
  }

  /**
   * Runs a read whose cost grows with the caller's filter on a client of its own, and cancels it on the
   * server when `signal` aborts (`pg_cancel_backend`), so an abandoned scan does not hold a connection.
   */
  async #read<T extends object>(sql: string, params: readonly unknown[], signal: AbortSignal | undefined): Promise<T[]> {
    signal?.throwIfAborted();
    const client = await this.#pool.connect();
    // pg keeps the backend's pid from the startup handshake; it is not in the type declarations.
    const pid = (client as unknown as { processID?: number }).processID;
    let cancelled: Promise<unknown> | undefined;
    const cancel = (): void => {
      cancelled = this.#owner.cancelBackend(pid as number);
    };
    if (pid !== undefined) signal?.addEventListener('abort', cancel, { once: true });
    let failed: Error | undefined;
    try {
      return (await runPrepared<T>(client, this.#owner.statements.of(sql), params as unknown[])).rows;
    } catch (err) {
      failed = err as Error;
      throw err;
    } finally {
      signal?.removeEventListener('abort', cancel);
      if (cancelled !== undefined) await cancelled;
      // A cancel may arrive after the statement ended and hit the next one: a cancelled client is not reused.
      client.release(cancelled !== undefined ? true : failed);
    }
  }

  async find(query: DriverFind, signal?: AbortSignal): Promise<DocumentRecord[]> {
    const where = this.#where(query.filter);
    const { orderBy, after } = sortToSql(query, postgresDialect);
    const sql =
      `SELECT id, version, data FROM ${this.#table} WHERE (${where.sql})` + (after ? ` AND (${after.sql})` : '') + ` ORDER BY ${orderBy} LIMIT ${Math.trunc(query.limit)}`;
    return (await this.#read<Row>(sql, [...where.params, ...(after?.params ?? [])], signal)).map((r) => this.#record(r));
  }

  async count(filter: Filter, signal?: AbortSignal): Promise<number> {
    const where = this.#where(filter);
    const rows = await this.#read<{ n: string }>(`SELECT COUNT(*) AS n FROM ${this.#table} WHERE ${where.sql}`, where.params, signal);
    return Number(rows[0]?.n ?? 0);
  }

  async ensureIndex(index: Required<IndexSpec>, signal: AbortSignal): Promise<void> {
    // An index recorded as declared needs no lock: a collection opened again builds nothing.
    const known = (await this.indexes()).find((i) => i.name === index.name);
    if (known !== undefined && sameIndex(known, index)) return;
    // Checked again under the lock, and built with every statement on the connection that holds it.
    await this.#owner.withLock(`ddl:${this.#name}`, async (client) => {
      const existing = (await this.#indexesOn(client)).find((i) => i.name === index.name);
      if (existing !== undefined) {
        if (sameIndex(existing, index)) return;
        throw indexDefinitionConflict(this.#name, index.name);
      }
      const first = pgPath(postgresDialect.document, (index.fields[0] ?? '').split('.'));
      // IF NOT EXISTS: a previous attempt may have created them and died before recording the index.
      await client.query(`CREATE INDEX IF NOT EXISTS ${this.#owner.indexName(this.#name, index.name, 'g')} ON ${this.#table} USING gin ((${first}) jsonb_path_ops)`);
      if (index.unique) {
        // Arrays and nulls get no key (NULL), so they are not constrained, as on the other adapters.
        const keys = index.fields.map((f) => {
          const json = pgPath(postgresDialect.document, f.split('.'));
          return `(CASE WHEN jsonb_typeof(${json}) IN ('null', 'array') THEN NULL ELSE ${json} END)`;
        });
        try {
          await client.query(`CREATE UNIQUE INDEX IF NOT EXISTS ${this.#owner.indexName(this.#name, index.name, 'u')} ON ${this.#table} (${keys.join(', ')})`);
        } catch (err) {
          if (!isUniqueViolation(err)) throw err;
          throw uniqueIndexBuildConflict(this.#name, index.name, index.fields);
        }
      }
      await client.query(
        `INSERT INTO ${this.#owner.table('stowage_indexes')} (collection, name, fields, is_unique) VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING`,
        [this.#name, index.name, JSON.stringify(index.fields), index.unique],
      );
    }, signal);
  }

  indexes(): Promise<Required<IndexSpec>[]> {
    return this.#indexesOn(this.#pool);
  }

  async #indexesOn(on: pg.Pool | pg.ClientBase): Promise<Required<IndexSpec>[]> {
    const { rows } = await on.query<{ name: string; fields: string[]; is_unique: boolean }>(
      `SELECT name, fields, is_unique FROM ${this.#owner.table('stowage_indexes')} WHERE collection = $1 ORDER BY name COLLATE "C"`,
      [this.#name],
    );
    return rows.map((r) => ({ name: r.name, fields: r.fields, unique: r.is_unique }));
  }
}

/** A documents driver over a PostgreSQL database. */
export class PostgresDocumentsDriver implements DocumentsDriver {
  /** `postgres`. */
  readonly backend = 'postgres';
  /** `insertMany` runs in one transaction. */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>(['transactions']);
  readonly #connection: PostgresConnection;
  readonly #collections = new Map<string, PostgresCollectionDriver>();
  #ready: Promise<void> | undefined;
  /** The reads' compiled statements (finds, counts), named and prepared once per connection up to a bound. */
  readonly statements = new StatementCache((sql) => numberPlaceholders(sql));

  /** Wraps a connection (see `openPostgresPool`); the first call creates the metadata tables. */
  constructor(connection: PostgresConnection) {
    this.#connection = connection;
  }

  /** The pool (internal to the adapter). */
  get pool(): pg.Pool {
    return this.#connection.pool;
  }

  /**
   * Cancels the statement a backend runs (`pg_cancel_backend`), over a connection of its own: from the pool
   * it would wait behind the very statement it cancels when every pooled connection is busy. Never rejects.
   */
  async cancelBackend(pid: number): Promise<void> {
    const client = this.#connection.newClient();
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT pg_cancel_backend($1)', [pid]);
    } catch {
      // The statement ends anyway: at the server's statement_timeout, or with its connection.
    } finally {
      // Not awaited: a frozen server never answers the goodbye.
      void client.end().catch(() => undefined);
    }
  }

  /** A table name with the prefix, quoted. */
  table(name: string): string {
    return identifier(`${this.#connection.tablePrefix}${name}`);
  }

  /** The SQL name of a declared index's GIN (`g`) or unique (`u`) index. */
  indexName(collection: string, name: string, kind: 'g' | 'u'): string {
    return identifier(`${this.#connection.tablePrefix}ix_${kind}_${collection}_${name}`);
  }

  /**
   * Runs DDL under a transaction-level advisory lock: two processes running `CREATE TABLE IF NOT EXISTS` at
   * once can otherwise both pass the check and one fail on the catalogue's unique index.
   */
  async #ddl(statements: readonly (readonly [sql: string, params?: readonly unknown[]])[]): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query('BEGIN');
      await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [lockKey(`stowage-ddl\u0000${this.#connection.tablePrefix}`)]);
      for (const [sql, params] of statements) await client.query(sql, params as unknown[] | undefined);
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch((e: unknown) => {
        broken = e as Error;
      });
      throw err;
    } finally {
      client.release(broken);
    }
  }

  #init(): Promise<void> {
    this.#ready ??= this.#ddl([
      [`CREATE TABLE IF NOT EXISTS ${this.table('stowage_collections')} (name text COLLATE "C" PRIMARY KEY, migration_version integer NOT NULL DEFAULT 0)`],
      [`CREATE TABLE IF NOT EXISTS ${this.table('stowage_indexes')} (collection text COLLATE "C" NOT NULL, name text COLLATE "C" NOT NULL, fields jsonb NOT NULL, is_unique boolean NOT NULL, PRIMARY KEY (collection, name))`],
    ]);
    this.#ready.catch(() => {
      this.#ready = undefined;
    });
    return this.#ready;
  }

  /** Opens (creating) a collection's table. */
  async collection(name: string): Promise<CollectionDriver> {
    await this.#init();
    let c = this.#collections.get(name);
    if (c === undefined) {
      const table = this.table(`d_${name}`);
      await this.#ddl([
        [`CREATE TABLE IF NOT EXISTS ${table} (id text COLLATE "C" PRIMARY KEY, version bigint NOT NULL, data jsonb NOT NULL)`],
        [`INSERT INTO ${this.table('stowage_collections')} (name) VALUES ($1) ON CONFLICT DO NOTHING`, [name]],
      ]);
      c = new PostgresCollectionDriver(this, name, table);
      this.#collections.set(name, c);
    }
    return c;
  }

  /** Collection names. */
  async collections(): Promise<string[]> {
    await this.#init();
    const { rows } = await this.pool.query<{ name: string }>(`SELECT name FROM ${this.table('stowage_collections')} ORDER BY name`);
    return rows.map((r) => r.name);
  }

  /**
   * Holds a session-level advisory lock for `name` (scoped to the database and table prefix) while `fn`
   * runs, on a connection of its own that is ended afterwards (which frees the lock; the server frees it
   * too if this process dies). Taken with `pg_try_advisory_lock` in a loop, so that the caller's signal can
   * end the wait. `fn` may run statements on that connection (index builds do); a migration runs through the
   * pool, whose connections no lock holds: a lock held on a pooled connection deadlocked a pool of one, or
   * as many concurrent index builds or migrations as connections.
   */
  async withLock<R>(name: string, fn: (client: pg.ClientBase) => Promise<R>, signal: AbortSignal): Promise<R> {
    const key = lockKey(`stowage\u0000${this.#connection.tablePrefix}\u0000${name}`);
    const client = this.#connection.newClient();
    client.on('error', () => undefined);
    try {
      await client.connect();
      for (let wait = 10; ; wait = Math.min(wait * 2, 200)) {
        signal.throwIfAborted();
        if ((await client.query<{ got: boolean }>('SELECT pg_try_advisory_lock($1::bigint) AS got', [key])).rows[0]?.got === true) break;
        await pause(wait, signal);
      }
      return await fn(client);
    } finally {
      // Ending the session frees the lock. Not awaited: a frozen server never answers the goodbye, and a later
      // lock of the same name waits in its try-lock loop until the server has ended this session.
      void client.end().catch(() => undefined);
    }
  }

  /** The highest migration version applied to a collection. */
  async migrationVersion(collection: string): Promise<number> {
    await this.#init();
    const { rows } = await this.pool.query<{ v: number }>(`SELECT migration_version AS v FROM ${this.table('stowage_collections')} WHERE name = $1`, [collection]);
    return Number(rows[0]?.v ?? 0);
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table('stowage_collections')} (name, migration_version) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE SET migration_version = EXCLUDED.migration_version`,
      [collection, version],
    );
  }

  /** `SHOW server_version`. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    const { rows } = await this.pool.query<{ server_version: string }>('SHOW server_version');
    return { serverVersion: `PostgreSQL ${rows[0]?.server_version ?? ''}`.trim() };
  }

  /** Ends the pool. */
  async close(): Promise<void> {
    await this.#connection.end();
  }

  /** Classifies `pg` errors, with the password removed from messages. */
  mapError(err: unknown): StowageError | undefined {
    return this.#connection.mapError(err);
  }

  /** The `pg` pool. */
  native(): pg.Pool {
    return this.pool;
  }
}
