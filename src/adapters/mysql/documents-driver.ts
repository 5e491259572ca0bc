/**
 * `mysql://` documents with mysql2 and a connection pool, on MySQL 8 or MariaDB (detected on open): one
 * table per collection (`id` VARBINARY, `version`, `data` as a JSON column — on MariaDB LONGTEXT with a
 * `JSON_VALID` check); filters, sorts and keyset positions translated by the shared SQL translator and run
 * as prepared statements; declared indexes as indexes over (stored) generated columns of hashed values, and
 * a top-level equality on an indexed field looked up by that hash; migrations and index changes under
 * `GET_LOCK`. Per collection, a record of the paths that ever held an array (`stowage_array_paths`, see
 * `../sql/array-paths.ts`) lets filters leave out array tests; a new path is committed before the write that
 * brings it, and each query that relied on the record reads its size in the same statement.
 *
 * Over 600 lines on purpose: one class per side of the port (the store: pool, server detection, locks,
 * migrations; a collection: reads, writes, indexes), which share the pool, the error mapping and the
 * duplicate-key handling; the SQL comes from the shared translator and `mysql-dialect.ts`.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import mysql from 'mysql2/promise';
import { StowageError } from '../../ports/errors.js';
import type { JsonObject } from '../../ports/common.js';
import type { CollectionDriver, DocumentRecord, DocumentsCapability, DocumentsDriver, DriverFind, Filter, IndexSpec } from '../../ports/documents.js';
import { sameIndex } from '../../driver/indexes.js';
import { indexDefinitionConflict, redact, safeCause, uniqueIndexBuildConflict, uniqueIndexConflict, versionConflict } from '../../driver/errors.js';
import { parseStoredJson, quote } from '../../driver/validate.js';
import { filterToSql, sortToSql, splitEquality, type FilterContext, type FilterSql, type SqlFragment } from '../sql/filter-sql.js';
import { arrayPathKey, newArrayPaths, RECORD_COMPLETE } from '../sql/array-paths.js';
import { fieldConditions, ID_PATH, matchesFilter, valueAt } from '../../driver/index.js';
import { ARRAY_KEY, mysqlDialect, mysqlIndexExpression, mysqlIndexKey } from './mysql-dialect.js';
import { documentComparator, sortValues } from '../../driver/index.js';

/** Which server answers. */
export type MysqlFlavour = 'mysql' | 'mariadb';

/** Options of {@link MysqlDocumentsDriver}. */
export interface MysqlDocumentsOptions {
  /** mysql2 pool options (host, port, user, password, database, …). */
  pool: mysql.PoolOptions;
  /** Prepended to every table name, so several stores can share a database. */
  tablePrefix?: string;
}

/**
 * Logins and grants the server refused. ER_ACCESS_DENIED_NO_PASSWORD_ERROR is what a user whose
 * authentication plugin the client cannot use (unix_socket, as Debian's root@localhost; ed25519) gets over TCP.
 */
const ACCESS_DENIED_CODES = new Set([
  'ER_ACCESS_DENIED_ERROR',
  'ER_ACCESS_DENIED_NO_PASSWORD_ERROR',
  'ER_DBACCESS_DENIED_ERROR',
  'ER_TABLEACCESS_DENIED_ERROR',
  'ER_SPECIFIC_ACCESS_DENIED_ERROR',
  'ER_HOST_NOT_PRIVILEGED',
  'ER_NOT_SUPPORTED_AUTH_MODE',
]);
const ER_DUP_ENTRY = 1062;
const ER_DUP_FIELDNAME = 1060;
const ER_DUP_KEYNAME = 1061;
const LOCK_WAIT_S = 1;
const INSERT_CHUNK = 500;

/** A document's row; `arrays` is the record's size where the statement read it (see `#verify`). */
type Row = { id: Buffer | string; version: number | string; data: string | JsonObject; arrays?: unknown };

/** The declared indexes, and the key column of each plain index by the path of its first field. */
interface KnownIndexes {
  readonly all: readonly Required<IndexSpec>[];
  readonly plain: ReadonlyMap<string, string>;
  /** What the plain indexes tell the filter translation: where no document holds an array. */
  readonly context: FilterContext;
}

/** A top-level equality on the first field of a plain index (see `#indexedEquality`). */
interface IndexedEquality {
  readonly column: string;
  readonly path: string;
  readonly keys: readonly Buffer[];
  /** ` AND …` conditions after the key condition. */
  readonly tail: string;
  readonly tailParams: readonly unknown[];
  /** The tail left out array arms on the word of the record of array paths. */
  readonly reliesOnRecord: boolean;
}

/**
 * How one find or count uses the record of array paths (see `array-paths.ts`): the context its filters are
 * compiled with, and how many rows the record had then (each of them in the table, so a table of as many
 * rows holds no other).
 */
interface RecordUse {
  readonly context: FilterContext;
  readonly size: number;
}

/** Thrown inside a read whose statement found the record grown since its filter was compiled. */
class StaleRecord extends Error {}

/** How often a read is compiled again after the record grew under it, before it is run without the record. */
const RECORD_RETRIES = 3;

/** `?, ?, …`: n placeholders. */
function marks(n: number): string {
  return n === 1 ? '?' : `${'?, '.repeat(n - 1)}?`;
}

/**
 * Statements with more parameters than this run as text (`query`), not as cached prepared statements: a
 * long `$in` list would otherwise keep server memory per distinct length and connection.
 */
const MAX_PREPARED_PARAMS = 256;

/** A MySQL identifier of at most 64 characters, shortened with a hash when needed. */
function identifier(name: string): string {
  if (name.length <= 64) return name;
  return `${name.slice(0, 47)}_${createHash('sha256').update(name).digest('hex').slice(0, 16)}`;
}

/** The key named by a duplicate-entry error (`PRIMARY` or an index name). */
function duplicateKey(err: unknown): string {
  return /for key '(?:[^'.]*\.)?([^']+)'/.exec(String((err as Error).message))?.[1] ?? '';
}

function errno(err: unknown): number | undefined {
  const n = (err as { errno?: unknown } | null)?.errno;
  return typeof n === 'number' ? n : undefined;
}

class MysqlCollectionDriver implements CollectionDriver {
  readonly #owner: MysqlDocumentsDriver;
  readonly #name: string;
  readonly #table: string;
  #indexCache: KnownIndexes | undefined;
  /**
   * The record of array paths as last read or written by this pool: never more than the table holds (a
   * path is added here only once its row is committed).
   */
  readonly #arrays = new Set<string>();

  constructor(owner: MysqlDocumentsDriver, name: string, table: string) {
    this.#owner = owner;
    this.#name = name;
    this.#table = table;
  }

  get #pool(): mysql.Pool {
    return this.#owner.pool;
  }

  #record(row: Row): DocumentRecord {
    const id = Buffer.isBuffer(row.id) ? row.id.toString('utf8') : row.id;
    let data: JsonObject;
    if (typeof row.data !== 'string') data = row.data;
    else {
      try {
        data = JSON.parse(row.data) as JsonObject;
      } catch {
        // Only now is the error's location worth composing.
        data = parseStoredJson(row.data, `mysql document ${quote(id)} in ${this.#name}`) as JsonObject;
      }
    }
    return { id, version: Number(row.version), data };
  }

  #versionConflict(id: string, actual: number, expected: number): StowageError {
    return versionConflict(this.#name, id, actual, expected);
  }

  /** Turns a duplicate-key error into ALREADY_EXISTS (the id) or CONFLICT (a unique index). */
  async #duplicate(err: unknown, id: string, onPrimary: () => StowageError): Promise<never> {
    if (errno(err) !== ER_DUP_ENTRY) throw err;
    const key = duplicateKey(err);
    if (key === 'PRIMARY') throw onPrimary();
    const index = (await this.indexes()).find((i) => this.sqlIndexName(i.name) === key)?.name ?? key;
    throw uniqueIndexConflict(this.#name, id, index, safeCause(new Error(`duplicate entry for key ${key}`)));
  }

  /** The SQL name of a declared index. */
  sqlIndexName(name: string): string {
    return identifier(`ix_${name}`);
  }

  async #currentVersion(id: string): Promise<number> {
    const [rows] = await this.#pool.execute(`SELECT version FROM ${this.#table} WHERE id = ?`, [id]);
    const row = (rows as { version: number | string }[])[0];
    return row === undefined ? 0 : Number(row.version);
  }

  async insert(id: string, data: JsonObject, _signal?: AbortSignal, json?: string): Promise<DocumentRecord> {
    await this.#recordArrays([data]);
    try {
      await this.#pool.execute(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`, [id, json ?? JSON.stringify(data)]);
    } catch (err) {
      await this.#duplicate(err, id, () => new StowageError('ALREADY_EXISTS', `document ${quote(id)} already exists in ${this.#name}`));
    }
    return { id, version: 1, data };
  }

  async insertMany(docs: readonly { id: string; data: JsonObject; json?: string }[]): Promise<DocumentRecord[]> {
    await this.#recordArrays(docs.map((doc) => doc.data));
    const conn = await this.#pool.getConnection();
    try {
      await conn.beginTransaction();
      try {
        for (let i = 0; i < docs.length; i += INSERT_CHUNK) {
          const chunk = docs.slice(i, i + INSERT_CHUNK);
          await conn.query(`INSERT INTO ${this.#table} (id, version, data) VALUES ${chunk.map(() => '(?, 1, ?)').join(', ')}`,
            chunk.flatMap((d) => [d.id, d.json ?? JSON.stringify(d.data)]));
        }
        await conn.commit();
      } catch (err) {
        await conn.rollback().catch(() => undefined);
        await this.#duplicate(err, docs[0]?.id ?? '', () => new StowageError('ALREADY_EXISTS', `a document of the batch already exists in ${this.#name}`));
      }
    } finally {
      conn.release();
    }
    return docs.map(({ id, data }) => ({ id, version: 1, data }));
  }

  async get(id: string): Promise<DocumentRecord | undefined> {
    const [rows] = await this.#pool.execute(`SELECT id, version, data FROM ${this.#table} WHERE id = ?`, [id]);
    const row = (rows as Row[])[0];
    return row === undefined ? undefined : this.#record(row);
  }

  async put(id: string, data: JsonObject, ifVersion: number | undefined, _signal?: AbortSignal, json?: string): Promise<DocumentRecord> {
    const text = json ?? JSON.stringify(data);
    await this.#recordArrays([data]);
    // Optimistic: without ifVersion, read the version and write conditionally until no one interferes.
    for (let attempt = 0; attempt < 50; attempt++) {
      const expected = ifVersion ?? (await this.#currentVersion(id));
      if (expected === 0) {
        try {
          await this.#pool.execute(`INSERT INTO ${this.#table} (id, version, data) VALUES (?, 1, ?)`, [id, text]);
          return { id, version: 1, data };
        } catch (err) {
          if (errno(err) !== ER_DUP_ENTRY || duplicateKey(err) !== 'PRIMARY') return this.#duplicate(err, id, () => this.#versionConflict(id, 1, 0));
          // Someone created it meanwhile: a conflict for create-only, otherwise read again and update.
          if (ifVersion !== undefined) throw this.#versionConflict(id, await this.#currentVersion(id), 0);
          continue;
        }
      }
      let result: mysql.ResultSetHeader;
      try {
        [result] = await this.#pool.execute<mysql.ResultSetHeader>(
          `UPDATE ${this.#table} SET version = version + 1, data = ? WHERE id = ? AND version = ?`,
          [text, id, expected],
        );
      } catch (err) {
        return this.#duplicate(err, id, () => this.#versionConflict(id, expected, expected));
      }
      if (result.affectedRows === 1) return { id, version: expected + 1, data };
      if (ifVersion !== undefined) throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion);
    }
    throw new StowageError('UNAVAILABLE', `document ${quote(id)} in ${this.#name} kept changing; put gave up`);
  }

  async delete(id: string, ifVersion: number | undefined): Promise<boolean> {
    if (ifVersion === 0) {
      const actual = await this.#currentVersion(id);
      if (actual !== 0) throw this.#versionConflict(id, actual, 0);
      return false;
    }
    const [result] = await this.#pool.execute<mysql.ResultSetHeader>(
      `DELETE FROM ${this.#table} WHERE id = ?${ifVersion === undefined ? '' : ' AND version = ?'}`,
      ifVersion === undefined ? [id] : [id, ifVersion],
    );
    if (result.affectedRows === 1) return true;
    if (ifVersion !== undefined) throw this.#versionConflict(id, await this.#currentVersion(id), ifVersion);
    return false;
  }

  /** The generated columns of a declared index. */
  static columns(index: Required<IndexSpec>): string[] {
    const base = createHash('sha256').update(index.name).digest('hex').slice(0, 12);
    return index.fields.map((_, i) => `g_${base}_${i}`);
  }

  /** The declared indexes, cached (a stale cache only costs speed: the prefilter is an optimisation). */
  #knownIndexes(): Promise<KnownIndexes> | KnownIndexes {
    return this.#indexCache ?? this.indexes().then((all) => {
      const plain = new Map<string, string>();
      for (const index of all) if (!index.unique && !plain.has(index.fields[0] ?? '')) plain.set(index.fields[0] ?? '', MysqlCollectionDriver.columns(index)[0] ?? '');
      // A plain index keys every array ARRAY_KEY: one lookup, once per statement, tells whether any document
      // holds an array at an undotted indexed field (a dotted one's key does not see arrays on the way).
      const arrays = this.#arrays;
      const context: FilterContext = {
        arrayAt: (path) => {
          const column = path.length === 1 && typeof path[0] === 'string' ? plain.get(path[0]) : undefined;
          return column === undefined ? undefined : `EXISTS (SELECT 1 FROM ${this.#table} WHERE ${column} = X'00')`;
        },
        neverArray: (path) => arrays.has(RECORD_COMPLETE) && !arrays.has(arrayPathKey(path)),
      };
      this.#indexCache = { all, plain, context };
      return this.#indexCache;
    });
  }

  /**
   * The filter as SQL, with an index-friendly condition in front for top-level equalities on the first
   * field of a declared index. It holds for every match, so it only narrows the scan: `key IN (hash(x),
   * ARRAY_KEY)` on a plain index; `key = hash(x) OR key IS NULL` on a unique one, where arrays have no key
   * (MySQL runs that as a `ref_or_null` lookup).
   */
  async #where(filter: Filter, use: RecordUse): Promise<FilterSql> {
    const { all } = await this.#knownIndexes();
    const exact = filterToSql(filter, mysqlDialect, use.context);
    const parts: string[] = [];
    const params: unknown[] = [];
    for (const [key, value] of Object.entries(filter)) {
      // A dotted path may reach values through an array, which its index key does not hold (see splitEquality).
      if (key === '$and' || key === '$or' || key === ID_PATH || key.includes('.')) continue;
      const index = all.find((i) => i.fields[0] === key);
      if (index === undefined) continue;
      const column = MysqlCollectionDriver.columns(index)[0];
      for (const [op, operand] of fieldConditions(value)) {
        const values = op === '$eq' ? [operand] : op === '$in' ? (operand as unknown[]) : undefined;
        const keys = values?.map((v) => mysqlIndexKey(v as never));
        if (keys === undefined || keys.length === 0 || keys.some((k) => k === undefined)) continue;
        if (index.unique) {
          parts.push(`(${column} IN (${marks(keys.length)}) OR ${column} IS NULL)`);
          params.push(...keys);
        } else {
          parts.push(`${column} IN (${marks(keys.length + 1)})`);
          params.push(...keys, ARRAY_KEY);
        }
      }
    }
    if (parts.length === 0) return exact;
    return { sql: `${parts.join(' AND ')} AND (${exact.sql})`, params: [...params, ...exact.params], reliesOnRecord: exact.reliesOnRecord };
  }

  /**
   * For a top-level equality on the first field of a plain index, what two conditions without `JSON_TABLE`
   * (whose mere presence in a statement costs MariaDB more than the lookup) are made of: the scalar
   * matches are the documents whose index key is one of `keys` (numbers also compared) and that match
   * the rest (`tail`); the candidates are those plus every document whose field is an array (key
   * ARRAY_KEY), which the caller checks with the reference evaluator. Undefined when the filter has no such
   * equality. Runs on every find, so it builds only strings.
   */
  #indexedEquality(filter: Filter, known: KnownIndexes, use: RecordUse): IndexedEquality | undefined {
    const eq = splitEquality(filter, (path) => known.plain.has(path));
    if (eq === undefined) return undefined;
    const keys: Buffer[] = [];
    for (const value of eq.values) {
      const key = mysqlIndexKey(value);
      if (key === undefined) return undefined;
      keys.push(key);
    }
    const ref = { doc: mysqlDialect.document, path: [eq.path] };
    // A string's or a boolean's key is a hash of its type and of the very text the exact comparison reads
    // (JSON_UNQUOTE), so an equal key is an equal value; a number's text could be written another way
    // (`1.0`), so numbers are compared exactly as well.
    const numbers = eq.values.filter((v): v is number => typeof v === 'number');
    const rest = filterToSql(eq.rest, mysqlDialect, use.context);
    let tail = '';
    if (numbers.length > 0) {
      tail += ` AND (NOT ${mysqlDialect.isKind(ref, 'number')} OR ${numbers.map(() => `${mysqlDialect.value(ref, 'number')} = ?`).join(' OR ')})`;
    }
    if (rest.params.length > 0 || rest.sql !== '1=1') tail += ` AND (${rest.sql})`;
    return { column: known.plain.get(eq.path) ?? '', path: eq.path, keys, tail, tailParams: [...numbers, ...rest.params], reliesOnRecord: rest.reliesOnRecord };
  }

  /** The scalar matches ({@link MysqlCollectionDriver.#indexedEquality}), or with `includeArrays` all the candidates. */
  static #indexedWhere(eq: IndexedEquality, { includeArrays }: { includeArrays: boolean }): FilterSql {
    const keys = includeArrays ? [...eq.keys, ARRAY_KEY] : eq.keys;
    return { sql: `${eq.column} IN (${marks(keys.length)})${eq.tail}`, params: [...keys, ...eq.tailParams], reliesOnRecord: eq.reliesOnRecord };
  }

  /**
   * Runs a read whose cost grows with the caller's filter, on a connection of its own, and stops it on the
   * server (`KILL QUERY`) when `signal` aborts (the call's deadline passed, or its caller gave up): otherwise
   * the server would go on working, and holding memory, for a call that has already failed. A connection a
   * kill was sent to is closed rather than reused, so a late kill cannot stop someone else's next statement.
   * Statements with many parameters (long `$in` lists) go as text rather than as prepared statements, which
   * the server would otherwise keep in memory in the connection's statement cache.
   */
  async #read(sql: string, params: readonly unknown[], signal: AbortSignal | undefined): Promise<Row[]> {
    signal?.throwIfAborted();
    const conn = await this.#pool.getConnection();
    let killed: Promise<void> | undefined;
    const kill = (): void => {
      killed = this.#owner.killQuery(conn.threadId).catch(() => undefined);
    };
    signal?.addEventListener('abort', kill, { once: true });
    try {
      const [rows] = params.length > MAX_PREPARED_PARAMS ? await conn.query(sql, params as never[]) : await conn.execute(sql, params as never[]);
      return rows as Row[];
    } finally {
      signal?.removeEventListener('abort', kill);
      if (killed === undefined) conn.release();
      else {
        await killed;
        conn.destroy();
      }
    }
  }

  /** The columns of a read, with the record's size where `where` relied on it (see {@link MysqlCollectionDriver.#verify}). */
  #columns(columns: string, where: FilterSql): SqlFragment {
    if (!where.reliesOnRecord) return { sql: columns, params: [] };
    return { sql: `${columns}, (SELECT COUNT(*) FROM ${this.#owner.table('stowage_array_paths')} WHERE collection = ?) AS arrays`, params: [this.#name] };
  }

  /**
   * Throws {@link StaleRecord} when the record of array paths has more rows than `use` saw: the size read
   * by the statement itself (same snapshot as its rows), or where it returned none, read now (the record
   * only grows, so the same size now means the same size then).
   */
  async #verify(rows: readonly { arrays?: unknown }[], use: RecordUse): Promise<void> {
    let size = rows.find((r) => r.arrays !== undefined && r.arrays !== null)?.arrays;
    if (size === undefined) {
      const [found] = await this.#pool.execute(`SELECT COUNT(*) AS n FROM ${this.#owner.table('stowage_array_paths')} WHERE collection = ?`, [this.#name]);
      size = (found as { n: number | string }[])[0]?.n;
    }
    if (Number(size) !== use.size) throw new StaleRecord('the record of array paths grew');
  }

  /**
   * Runs a find or count with the record of array paths (`fn` compiles with `use.context` and verifies):
   * where the record grew under it (another process wrote an array at a new path), it reads the record
   * again and runs once more, and at last without the record.
   */
  async #withRecord<R>(fn: (use: RecordUse) => Promise<R>): Promise<R> {
    const known = this.#indexCache ?? (await this.#knownIndexes());
    for (let attempt = 0; ; attempt++) {
      const use: RecordUse = attempt < RECORD_RETRIES ? { context: known.context, size: this.#arrays.size } : { context: { ...known.context, neverArray: undefined }, size: -1 };
      try {
        return await fn(use);
      } catch (err) {
        if (!(err instanceof StaleRecord)) throw err;
        await this.readArrays();
      }
    }
  }

  /** Reads the record of array paths into this pool's copy. */
  async readArrays(): Promise<void> {
    const [rows] = await this.#pool.execute(`SELECT path FROM ${this.#owner.table('stowage_array_paths')} WHERE collection = ?`, [this.#name]);
    for (const row of rows as { path: string }[]) this.#arrays.add(row.path);
  }

  /**
   * Records the array paths of `docs` not yet recorded, committed before the write that stores them: a
   * reader that sees the documents sees the paths (a write that then fails leaves a path recorded, which
   * costs only an arm).
   */
  async #recordArrays(docs: readonly JsonObject[]): Promise<void> {
    const fresh = docs.length === 1 ? newArrayPaths(docs[0] as JsonObject, this.#arrays) : [...new Set(docs.flatMap((doc) => newArrayPaths(doc, this.#arrays)))];
    if (fresh.length === 0) return;
    await this.#owner.recordArrays(this.#name, fresh);
    for (const path of fresh) this.#arrays.add(path);
  }

  /** The SELECT of a find page (without running it). */
  #selectSql(where: FilterSql, query: DriverFind, orderFirst = ''): SqlFragment {
    const sorted = sortToSql(query, mysqlDialect);
    const { after } = sorted;
    const orderBy = `${orderFirst}${sorted.orderBy}`;
    const columns = this.#columns('id, version, data', where);
    // The limit is a literal (a validated integer): prepared statements take no placeholder there on MariaDB.
    return {
      sql:
        `SELECT ${columns.sql} FROM ${this.#table} WHERE (${where.sql})` +
        (after ? ` AND (${after.sql})` : '') +
        ` ORDER BY ${orderBy} LIMIT ${Math.trunc(query.limit)}`,
      params: [...columns.params, ...where.params, ...(after?.params ?? [])],
    };
  }

  async #select(where: FilterSql, query: DriverFind, signal: AbortSignal | undefined, use: RecordUse, orderFirst = ''): Promise<DocumentRecord[]> {
    const { sql, params } = this.#selectSql(where, query, orderFirst);
    const rows = await this.#read(sql, params, signal);
    if (where.reliesOnRecord) await this.#verify(rows, use);
    return rows.map((r) => this.#record(r));
  }

  async find(query: DriverFind, signal?: AbortSignal): Promise<DocumentRecord[]> {
    return this.#withRecord((use) => this.#find(query, signal, use));
  }

  async #find(query: DriverFind, signal: AbortSignal | undefined, use: RecordUse): Promise<DocumentRecord[]> {
    const known = this.#indexCache ?? (await this.#knownIndexes());
    const indexed = this.#indexedEquality(query.filter, known, use);
    if (indexed === undefined) return this.#select(await this.#where(query.filter, use), query, signal, use);
    if (indexed.keys.length === 1 && query.sort.length === 0) {
      // One key, id order: the candidates in index order (key, id) are one range read without a sort, and
      // ARRAY_KEY (one zero byte) sorts before every 32-byte hash, so arrays come first. No array among
      // them: they are the scalar matches in id order. Otherwise the page is made as below.
      const candidates = MysqlCollectionDriver.#indexedWhere(indexed, { includeArrays: true });
      const rows = await this.#select(candidates, query, signal, use, `${indexed.column}, `);
      if (!rows.some((doc) => Array.isArray(valueAt(doc.id, doc.data, indexed.path)))) return rows;
      return this.#checkedCandidates(candidates, query, signal, use);
    }
    // One statement: the scalar matches, in order, through the index; then a row of NULLs if the index
    // holds any array, in which case the page is made again from all candidates.
    const scalars = MysqlCollectionDriver.#indexedWhere(indexed, { includeArrays: false });
    const first = this.#selectSql(scalars, query);
    const nulls = scalars.reliesOnRecord ? 'NULL, NULL, NULL, NULL' : 'NULL, NULL, NULL';
    const found = await this.#read(
      `(${first.sql}) UNION ALL (SELECT ${nulls} FROM DUAL WHERE EXISTS (SELECT 1 FROM ${this.#table} WHERE ${indexed.column} = ?))`,
      [...first.params, ARRAY_KEY],
      signal,
    );
    if (scalars.reliesOnRecord) await this.#verify(found, use);
    if (!found.some((r) => r.id === null)) {
      // A UNION's order is not promised: restore the page's.
      return found.map((r) => this.#record(r)).sort(documentComparator(query.sort));
    }
    return this.#checkedCandidates(MysqlCollectionDriver.#indexedWhere(indexed, { includeArrays: true }), query, signal, use);
  }

  /**
   * A page from candidates that come in the final order: rows the reference evaluator rejects (arrays not
   * holding the value) are dropped, and the page is topped up from after the last candidate until it is
   * full or the candidates run out.
   */
  async #checkedCandidates(candidates: FilterSql, query: DriverFind, signal: AbortSignal | undefined, use: RecordUse): Promise<DocumentRecord[]> {
    const out: DocumentRecord[] = [];
    let after = query.after;
    for (;;) {
      const page = await this.#select(candidates, { ...query, after }, signal, use);
      for (const doc of page) {
        if (matchesFilter(query.filter, doc.id, doc.data)) out.push(doc);
        if (out.length === query.limit) return out;
      }
      const last = page.at(-1);
      if (page.length < query.limit || last === undefined) return out;
      after = { values: sortValues(query.sort, last.id, last.data), id: last.id };
    }
  }

  async count(filter: Filter, signal?: AbortSignal): Promise<number> {
    return this.#withRecord(async (use) => {
      const where = await this.#where(filter, use);
      const columns = this.#columns('COUNT(*) AS n', where);
      const rows = await this.#read(`SELECT ${columns.sql} FROM ${this.#table} WHERE ${where.sql}`, [...columns.params, ...where.params], signal);
      if (where.reliesOnRecord) await this.#verify(rows, use);
      return Number((rows as unknown as { n: number | string }[])[0]?.n ?? 0);
    });
  }

  async ensureIndex(index: Required<IndexSpec>, signal: AbortSignal): Promise<void> {
    // An index recorded as declared needs no lock: a collection opened again builds nothing.
    const known = (await this.indexes()).find((i) => i.name === index.name);
    if (known !== undefined && sameIndex(known, index)) return;
    // Checked again under the lock, and built with every statement on the connection that holds it.
    await this.#owner.withLock(`ddl:${this.#name}`, async (conn) => {
      // The metadata compares names without case, and so do MySQL index names: `K` beside `k` is refused.
      const existing = (await this.#indexesOn(conn)).find((i) => i.name.toLowerCase() === index.name.toLowerCase());
      if (existing !== undefined && existing.name !== index.name) {
        throw new StowageError('ALREADY_EXISTS', `index ${quote(index.name)} of ${this.#name} differs only by case from the existing ${quote(existing.name)}`, {
          details: { name: index.name, existing: existing.name },
        });
      }
      if (existing !== undefined) {
        if (sameIndex(existing, index)) return;
        throw indexDefinitionConflict(this.#name, index.name);
      }
      const columns = MysqlCollectionDriver.columns(index);
      const adds = index.fields.map(
        // STORED: computed once per write. A VIRTUAL column (what earlier versions made, and which still works)
        // is computed again whenever a row is read through it, and costs MariaDB more to keep indexed.
        (field, i) => `ADD COLUMN ${columns[i]} VARBINARY(32) GENERATED ALWAYS AS (${mysqlIndexExpression(field, index.unique)}) STORED`,
      );
      const sql = `ALTER TABLE ${this.#table} ${adds.join(', ')}, ADD ${index.unique ? 'UNIQUE ' : ''}INDEX ${this.sqlIndexName(index.name)} (${columns.join(', ')})`;
      try {
        await conn.query(sql);
      } catch (err) {
        if (errno(err) === ER_DUP_ENTRY) {
          throw uniqueIndexBuildConflict(this.#name, index.name, index.fields);
        }
        // A previous attempt created the index but died before recording it.
        if (errno(err) !== ER_DUP_FIELDNAME && errno(err) !== ER_DUP_KEYNAME) throw err;
      }
      await conn.query(
        `INSERT IGNORE INTO ${this.#owner.table('stowage_indexes')} (collection, name, fields, is_unique) VALUES (?, ?, ?, ?)`,
        [this.#name, index.name, JSON.stringify(index.fields), index.unique ? 1 : 0],
      );
      this.#indexCache = undefined;
    }, signal);
  }

  indexes(): Promise<Required<IndexSpec>[]> {
    return this.#indexesOn(this.#pool);
  }

  async #indexesOn(on: mysql.Pool | mysql.PoolConnection): Promise<Required<IndexSpec>[]> {
    const [rows] = await on.query(
      `SELECT name, fields, is_unique FROM ${this.#owner.table('stowage_indexes')} WHERE collection = ? ORDER BY name`,
      [this.#name],
    );
    return (rows as { name: string; fields: string; is_unique: number }[]).map((r) => ({
      name: r.name,
      fields: JSON.parse(r.fields) as string[],
      unique: Number(r.is_unique) === 1,
    }));
  }
}

/** A documents driver over a MySQL or MariaDB database. */
export class MysqlDocumentsDriver implements DocumentsDriver {
  /** `mysql`. */
  readonly backend = 'mysql';
  /** `insertMany` runs in one transaction. */
  readonly capabilities: ReadonlySet<DocumentsCapability> = new Set<DocumentsCapability>(['transactions']);
  /** The pool (internal to the adapter). */
  readonly pool: mysql.Pool;
  readonly #prefix: string;
  readonly #database: string;
  readonly #secrets: string[];
  readonly #collections = new Map<string, MysqlCollectionDriver>();
  #flavour: MysqlFlavour | undefined;
  #ready: Promise<void> | undefined;

  readonly #poolOptions: mysql.PoolOptions;
  /** One connection, opened on the first cancellation, that sends `KILL QUERY` (never queued behind reads). */
  #killer: mysql.Pool | undefined;
  /** The connections that hold `withLock`'s locks, opened on the first lock. */
  #lockPool: mysql.Pool | undefined;

  /** Creates the pool; the first call connects, detects the flavour and creates the metadata tables. */
  constructor(options: MysqlDocumentsOptions) {
    this.#poolOptions = { charset: 'utf8mb4', connectTimeout: 5000, ...options.pool };
    // Hot statements run as prepared statements (`execute`), cached per connection; the cache is bounded so that
    // many connections cannot reach the server's max_prepared_stmt_count (16382 by default).
    this.pool = mysql.createPool({ charset: 'utf8mb4', connectionLimit: 10, connectTimeout: 5000, maxPreparedStatements: 256, trace: false, ...options.pool });
    // A pool's idle connections may die with the server; errors surface on the next call, never as crashes.
    this.pool.on('connection', (conn) => conn.on('error', () => undefined));
    this.#prefix = options.tablePrefix ?? '';
    this.#database = options.pool.database ?? '';
    this.#secrets = typeof options.pool.password === 'string' ? [options.pool.password] : [];
  }

  /** Which server this is (after the first call). */
  get flavour(): MysqlFlavour | undefined {
    return this.#flavour;
  }

  /** A table name with the prefix, quoted. */
  table(name: string): string {
    return `\`${identifier(`${this.#prefix}${name}`)}\``;
  }

  #init(): Promise<void> {
    this.#ready ??= (async () => {
      const [rows] = await this.pool.query('SELECT VERSION() AS v');
      this.#flavour = /mariadb/i.test(String((rows as { v: string }[])[0]?.v)) ? 'mariadb' : 'mysql';
      await this.pool.query(
        `CREATE TABLE IF NOT EXISTS ${this.table('stowage_collections')} (name VARCHAR(64) NOT NULL PRIMARY KEY, migration_version INT NOT NULL DEFAULT 0) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
      );
      await this.pool.query(
        `CREATE TABLE IF NOT EXISTS ${this.table('stowage_indexes')} (collection VARCHAR(64) NOT NULL, name VARCHAR(64) NOT NULL, fields TEXT NOT NULL, is_unique TINYINT NOT NULL, PRIMARY KEY (collection, name)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
      );
      // The record of array paths (see array-paths.ts), keyed by a hash of the path, which may be long.
      await this.pool.query(
        `CREATE TABLE IF NOT EXISTS ${this.table('stowage_array_paths')} (collection VARCHAR(64) NOT NULL, hash BINARY(32) NOT NULL, path LONGTEXT NOT NULL, PRIMARY KEY (collection, hash)) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
      );
    })();
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
      const dataType = this.#flavour === 'mariadb' ? 'LONGTEXT NOT NULL CHECK (JSON_VALID(data))' : 'JSON NOT NULL';
      // Recorded first, then read back: the metadata's key ignores case, so of two names that differ only
      // by case the first one recorded wins, in every process, and the other is refused.
      await this.pool.query(`INSERT IGNORE INTO ${this.table('stowage_collections')} (name) VALUES (?)`, [name]);
      const [recorded] = await this.pool.query(`SELECT name FROM ${this.table('stowage_collections')} WHERE name = ?`, [name]);
      const twin = (recorded as { name: string }[]).find((r) => r.name !== name)?.name;
      if (twin !== undefined) {
        throw new StowageError('ALREADY_EXISTS', `collection ${quote(name)} differs only by case from the existing ${quote(twin)}`, {
          details: { name, existing: twin },
        });
      }
      await this.pool.query(
        `CREATE TABLE IF NOT EXISTS ${table} (id VARBINARY(255) NOT NULL PRIMARY KEY, version BIGINT NOT NULL, data ${dataType}) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
      );
      const created = new MysqlCollectionDriver(this, name, table);
      await this.#completeArrayRecord(name, table);
      await created.readArrays();
      c = this.#collections.get(name) ?? created;
      this.#collections.set(name, c);
    }
    return c;
  }

  /** Adds array paths to a collection's record (committed when it returns). */
  async recordArrays(collection: string, paths: readonly string[]): Promise<void> {
    await this.pool.query(
      `INSERT IGNORE INTO ${this.table('stowage_array_paths')} (collection, hash, path) VALUES ${paths.map(() => '(?, ?, ?)').join(', ')}`,
      paths.flatMap((path) => [collection, createHash('sha256').update(path).digest(), path]),
    );
  }

  /**
   * Makes a collection's record of array paths cover its documents: one without the record's completion row
   * (new, or written before the record existed) has its documents read once, a page at a time, and their
   * array paths recorded; then the completion row. A document written meanwhile by this version recorded
   * its paths first; processes of versions without the record must not write to the database any more.
   */
  async #completeArrayRecord(collection: string, table: string): Promise<void> {
    const complete = createHash('sha256').update(RECORD_COMPLETE).digest();
    const [marked] = await this.pool.execute(`SELECT 1 AS x FROM ${this.table('stowage_array_paths')} WHERE collection = ? AND hash = ?`, [collection, complete]);
    if ((marked as unknown[]).length > 0) return;
    const seen = new Set<string>();
    let after: Buffer = Buffer.alloc(0);
    for (;;) {
      const [rows] = await this.pool.query(`SELECT id, data FROM ${table} WHERE id > ? ORDER BY id LIMIT 1000`, [after]);
      const page = rows as { id: Buffer; data: string | JsonObject }[];
      const last = page.at(-1);
      if (last === undefined) break;
      const fresh: string[] = [];
      for (const row of page) {
        const data = typeof row.data === 'string' ? parseStoredJson(row.data, `mysql document ${quote(row.id.toString('utf8'))} in ${collection}`) : row.data;
        for (const path of newArrayPaths(data as JsonObject, seen)) {
          seen.add(path);
          fresh.push(path);
        }
      }
      if (fresh.length > 0) await this.recordArrays(collection, fresh);
      after = last.id;
    }
    await this.recordArrays(collection, [RECORD_COMPLETE]);
  }

  /** Collection names. */
  async collections(): Promise<string[]> {
    await this.#init();
    const [rows] = await this.pool.query(`SELECT name FROM ${this.table('stowage_collections')} ORDER BY name`);
    return (rows as { name: string }[]).map((r) => r.name);
  }

  /**
   * Holds the server-wide named lock `name` (`GET_LOCK`, scoped to the database and table prefix) while `fn`
   * runs, on a connection of a small pool kept for locks. The server frees it if this process or its
   * connection dies. `fn` may run statements on that connection (index builds do); a migration runs through
   * the main pool, whose connections no lock holds: a lock held on one of them made a pool of one, or as
   * many concurrent index builds or migrations as connections, wait for a connection forever.
   */
  async withLock<R>(name: string, fn: (conn: mysql.PoolConnection) => Promise<R>, signal: AbortSignal): Promise<R> {
    const lockName = `stowage:${createHash('sha256').update(`${this.#database}\u0000${this.#prefix}\u0000${name}`).digest('hex').slice(0, 40)}`;
    this.#lockPool ??= this.#sidePool(10);
    const conn = await this.#lockPool.getConnection();
    let held = false;
    try {
      while (!held) {
        signal.throwIfAborted();
        const [rows] = await conn.query('SELECT GET_LOCK(?, ?) AS got', [lockName, LOCK_WAIT_S]);
        held = Number((rows as { got: number | null }[])[0]?.got) === 1;
      }
      return await fn(conn);
    } finally {
      if (held) await conn.query('SELECT RELEASE_LOCK(?)', [lockName]).catch(() => conn.destroy());
      conn.release();
    }
  }

  /** The highest migration version applied to a collection. */
  async migrationVersion(collection: string): Promise<number> {
    await this.#init();
    const [rows] = await this.pool.query(`SELECT migration_version AS v FROM ${this.table('stowage_collections')} WHERE name = ?`, [collection]);
    return Number((rows as { v: number }[])[0]?.v ?? 0);
  }

  /** Records a migration version. */
  async setMigrationVersion(collection: string, version: number): Promise<void> {
    await this.pool.query(
      `INSERT INTO ${this.table('stowage_collections')} (name, migration_version) VALUES (?, ?) ON DUPLICATE KEY UPDATE migration_version = VALUES(migration_version)`,
      [collection, version],
    );
  }

  /** `SELECT VERSION()`. */
  async ping(): ReturnType<DocumentsDriver['ping']> {
    const [rows] = await this.pool.query('SELECT VERSION() AS v');
    return { serverVersion: String((rows as { v: string }[])[0]?.v) };
  }

  /**
   * Stops the statement that connection `threadId` is running (`KILL QUERY`), from a connection of its own so
   * that it is not queued behind the reads it is meant to stop.
   */
  async killQuery(threadId: number): Promise<void> {
    this.#killer ??= this.#sidePool(1);
    await this.#killer.query(`KILL QUERY ${Math.trunc(threadId)}`);
  }

  /**
   * A pool beside the main one (for `KILL QUERY`, for locks) of up to `size` connections, one kept idle. Like the
   * main pool's, an idle connection that dies with the server reports it on the next call, never as a crash.
   */
  #sidePool(size: number): mysql.Pool {
    const pool = mysql.createPool({ ...this.#poolOptions, connectionLimit: size, maxIdle: 1 });
    pool.on('connection', (conn) => conn.on('error', () => undefined));
    return pool;
  }

  /** Ends the pools. */
  async close(): Promise<void> {
    await Promise.all([this.pool.end(), this.#killer?.end(), this.#lockPool?.end()]);
  }

  /** Classifies mysql2 errors, with the password removed from messages. */
  mapError(err: unknown): StowageError | undefined {
    const code = (err as { code?: unknown } | null)?.code;
    if (typeof code !== 'string') return undefined;
    const cause = safeCause(err, this.#secrets);
    const message = `mysql: ${redact(cause?.message ?? code, this.#secrets)}`;
    if (ACCESS_DENIED_CODES.has(code)) {
      return new StowageError('PERMISSION_DENIED', message, { cause });
    }
    if (code.startsWith('PROTOCOL_') || code === 'ER_CON_COUNT_ERROR' || code === 'ER_SERVER_SHUTDOWN' || code === 'ER_BAD_DB_ERROR' ||
      code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' || code === 'ETIMEDOUT') {
      return new StowageError('UNAVAILABLE', message, { cause });
    }
    if (code === 'ER_DATA_TOO_LONG' || code === 'ER_NET_PACKET_TOO_LARGE' || code === 'ER_RECORD_FILE_FULL') {
      return new StowageError('RESOURCE_EXHAUSTED', message, { cause });
    }
    return undefined;
  }

  /** The mysql2 pool. */
  native(): mysql.Pool {
    return this.pool;
  }
}
