/**
 * Turning a `postgres://` URL into a `pg` pool, and `pg` errors into {@link StowageError}s. Every postgres
 * port (documents, config, secrets, queue) opens its connections here, so TLS, password files, timeouts and
 * error codes are the same on each.
 *
 * `postgres://user[:password]@host[:port]/database?sslmode=&tls=true&caFile=&certFile=&keyFile=&passwordFile=&connectTimeoutMs=&queryTimeoutMs=&poolSize=`
 * (documents and config add `tablePrefix`, the queue `schema`).
 *
 * TLS: `tls=true` is `sslmode=verify-full` (the certificate chain and the host name are checked). libpq's
 * `sslmode` is read too, as URLs copied from a hosting provider carry it: `disable`, `require` (encrypted,
 * the certificate not checked — unless `caFile` is given, which makes it `verify-ca`, as in libpq),
 * `verify-ca` (the chain is checked, not the host name) and `verify-full`. `allow` and `prefer` are refused:
 * they fall back to plain text without a word.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { StowageError, type StowageErrorCode } from '../../ports/errors.js';
import { boolParam, enumParam, intParam, parseUrl, urlPassword, type StowageUrl } from '../../driver/url.js';
import { errorCodeOf, invalid, safeCause } from '../../driver/errors.js';
import { quote } from '../../driver/validate.js';

/** The query parameters of the connection itself, read by every postgres port. */
export const POSTGRES_CONNECTION_PARAMS: readonly string[] = [
  'sslmode',
  'tls',
  'caFile',
  'certFile',
  'keyFile',
  'passwordFile',
  'connectTimeoutMs',
  'queryTimeoutMs',
  'poolSize',
];

/** The query parameters of a documents or config `postgres://` URL: the connection's and `tablePrefix`. */
export const POSTGRES_PARAMS: readonly string[] = [...POSTGRES_CONNECTION_PARAMS, 'tablePrefix'];

/** libpq's `sslmode` values Stowage takes (see the module's header). */
const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
type SslMode = (typeof SSL_MODES)[number];

/** Options of {@link openPostgresPool}. */
export interface PostgresPoolOptions {
  /** Names the store in error messages, e.g. `documents (postgres)`. */
  readonly backend: string;
  /** `application_name` the server shows in `pg_stat_activity`. @default `stowage` */
  readonly applicationName?: string;
  /** The smallest `?poolSize=` the port works with. @default 1 */
  readonly minPoolSize?: number;
  /**
   * What a serialization failure or a deadlock (SQLSTATE 40001, 40P01) is to this port: CONFLICT where the
   * caller retries its compare-and-set (documents, config), UNAVAILABLE where nothing was applied and the
   * same call can simply be tried again (the queue). @default `'CONFLICT'`
   */
  readonly contention?: 'CONFLICT' | 'UNAVAILABLE';
}

/** What {@link openPostgresPool} gives: a pool, and a way to open the dedicated connections LISTEN needs. */
export interface PostgresConnection {
  /** The pool every ordinary statement runs on. Its idle-client errors are already handled. */
  readonly pool: pg.Pool;
  /**
   * A new, not yet connected client with the pool's settings, for a session of its own (LISTEN, a
   * session-level advisory lock). The caller connects, handles its `error` event and ends it.
   */
  newClient(): pg.Client;
  /** The table prefix from `?tablePrefix=` (letters, digits, `_`), `''` when absent. */
  readonly tablePrefix: string;
  /** The URL with its password replaced: safe for messages. */
  readonly redacted: string;
  /** The upper bound of one statement, from `?queryTimeoutMs=`. */
  readonly queryTimeoutMs: number;
  /**
   * Maps a raw error of this connection to a StowageError (see {@link mapPostgresError}), password removed;
   * undefined when it is no error `pg` or the server raised (a driver's `mapError`, then core's rules, apply).
   */
  mapError(err: unknown): StowageError | undefined;
  /** Ends the pool (idempotent). */
  end(): Promise<void>;
}

async function readTlsFile(path: string, what: string, url: StowageUrl): Promise<Buffer> {
  try {
    return await readFile(path);
  } catch (err) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: cannot read ${what} ${quote(path, 200)} (${errorCodeOf(err) ?? 'error'})`);
  }
}

/** What a `postgres://` URL says, ready for `pg`. */
export interface PostgresUrlConfig {
  /** The client settings: host, port, user, password (read from `passwordFile`), database, TLS, timeouts. */
  config: pg.ClientConfig;
  /** `?poolSize=`: the pool's size. */
  poolSize: number;
  /** `?tablePrefix=`: the prefix of the adapter's table names. */
  tablePrefix: string;
  /** The secrets the URL brought (password, key), to be removed from every error text. */
  secrets: string[];
}

/** The TLS mode of a URL: `sslmode=`, or `tls=true` (verify-full), or `disable` when neither is given. */
function sslModeOf(url: StowageUrl): SslMode {
  const given = url.params.get('sslmode');
  if (given === undefined) return boolParam(url, 'tls', false) ? 'verify-full' : 'disable';
  if (url.params.has('tls')) throw invalid(`${url.redacted}: give tls or sslmode, not both`);
  if (given === 'allow' || given === 'prefer') {
    throw invalid(`${url.redacted}: sslmode=${given} is not supported: it falls back to an unencrypted connection without a word; use require, verify-ca or verify-full`);
  }
  return enumParam(url, 'sslmode', SSL_MODES, 'disable');
}

/** The `pg` client settings a URL names; the password is returned apart so errors can be scrubbed of it. */
export async function postgresConfigFromUrl(url: StowageUrl, options: { minPoolSize?: number } = {}): Promise<PostgresUrlConfig> {
  const host = url.hosts[0];
  if (host === undefined || url.hosts.length > 1) throw invalid(`${url.redacted} must name exactly one host`);
  const database = url.path.replace(/^\//, '');
  if (database !== '' && !/^[A-Za-z0-9_$-]{1,63}$/.test(database)) {
    throw invalid(`${url.redacted}: the database in the path must be 1 to 63 letters, digits, "_", "$" or "-"`);
  }
  const tablePrefix = url.params.get('tablePrefix') ?? '';
  if (!/^[a-z0-9_]{0,20}$/.test(tablePrefix)) {
    throw invalid('query parameter "tablePrefix" must be up to 20 lower-case letters, digits and "_"');
  }
  const sslmode = sslModeOf(url);
  const caFile = url.params.get('caFile');
  const certFile = url.params.get('certFile');
  const keyFile = url.params.get('keyFile');
  if (sslmode === 'disable' && (caFile || certFile || keyFile)) {
    throw invalid(`${url.redacted}: caFile, certFile and keyFile need tls=true (or an sslmode other than disable)`);
  }
  if ((certFile === undefined) !== (keyFile === undefined)) {
    throw invalid(`${url.redacted}: certFile and keyFile go together (client certificate authentication)`);
  }
  const password = await urlPassword(url);
  const connectTimeoutMs = intParam(url, 'connectTimeoutMs', 5000, { min: 1, max: 600_000 });
  const queryTimeoutMs = intParam(url, 'queryTimeoutMs', 30_000, { min: 10, max: 3_600_000 });
  const config: pg.ClientConfig = {
    host: host.host,
    port: host.port ?? 5432,
    user: url.username ?? 'postgres',
    database: database === '' ? (url.username ?? 'postgres') : database,
    connectionTimeoutMillis: connectTimeoutMs,
    // Client-side bound: a frozen server never answers, so the server-side statement_timeout alone could
    // not end the wait. The pool destroys a client whose query failed, so a stuck socket is not reused.
    query_timeout: queryTimeoutMs,
    statement_timeout: queryTimeoutMs,
    keepAlive: true,
    // No JIT: a filter of many branches has a high estimated cost, and compiling it with LLVM takes seconds
    // during which the backend ignores cancellation and statement_timeout (60 prefix matches over 2,000
    // documents: 25 s instead of 1 s here). The statements Stowage writes gain nothing from JIT.
    options: '-c jit=off',
    ...(password !== undefined ? { password } : {}),
  };
  if (sslmode !== 'disable') {
    // As libpq: `require` with a CA file checks the chain.
    const checkChain = sslmode !== 'require' || caFile !== undefined;
    config.ssl = {
      rejectUnauthorized: checkChain,
      // verify-ca: the chain is checked, the name the certificate was issued to is not.
      ...(sslmode === 'verify-full' ? {} : { checkServerIdentity: () => undefined }),
      ...(caFile ? { ca: await readTlsFile(caFile, 'caFile', url) } : {}),
      ...(certFile ? { cert: await readTlsFile(certFile, 'certFile', url) } : {}),
      ...(keyFile ? { key: await readTlsFile(keyFile, 'keyFile', url) } : {}),
    };
  }
  const poolSize = intParam(url, 'poolSize', 10, { min: options.minPoolSize ?? 1, max: 1000 });
  return { config, poolSize, tablePrefix, secrets: password !== undefined ? [password] : [] };
}

/**
 * Opens a `pg` pool for a `postgres://` URL (already parsed, or as text). Nothing connects yet: the first
 * statement does, so a server that is down surfaces as UNAVAILABLE on that call, not here.
 *
 * @throws StowageError INVALID_ARGUMENT for a bad URL or unreadable TLS file; PERMISSION_DENIED for an
 *   unreadable password file
 */
export async function openPostgresPool(url: StowageUrl | string, options: PostgresPoolOptions): Promise<PostgresConnection> {
  const parsed = typeof url === 'string' ? parseUrl(url) : url;
  const { config, poolSize, tablePrefix, secrets } = await postgresConfigFromUrl(parsed, options);
  const clientConfig: pg.ClientConfig = { ...config, application_name: options.applicationName ?? 'stowage' };
  const pool = new pg.Pool({ ...clientConfig, max: poolSize, idleTimeoutMillis: 30_000 });
  // An idle client whose server goes away emits `error` on the pool; unhandled, it would end the process.
  // The pool has already dropped that client, and the next statement reports the outage.
  pool.on('error', () => undefined);
  // The pool listens only to idle clients; a client that is checked out when its server goes away (between
  // two statements of a transaction, say) would raise an unhandled `error` too. Its statements fail anyway.
  pool.on('connect', (client) => client.on('error', () => undefined));
  let ended: Promise<void> | undefined;
  return {
    pool,
    newClient: () => new pg.Client(clientConfig),
    tablePrefix,
    redacted: parsed.redacted,
    queryTimeoutMs: config.query_timeout ?? 30_000,
    mapError: (err) => mapPostgresError(err, { backend: options.backend, secrets, contention: options.contention ?? 'CONFLICT' }),
    end: () => (ended ??= pool.end().catch(() => undefined)),
  };
}

/** SQLSTATE classes and codes → StowageError codes. */
const SQLSTATE: Readonly<Record<string, StowageErrorCode>> = {
  '23505': 'CONFLICT', // unique_violation
  '57014': 'TIMEOUT', // query_canceled (statement_timeout)
  '55P03': 'TIMEOUT', // lock_not_available (lock_timeout)
  '57P01': 'UNAVAILABLE', // admin_shutdown
  '57P02': 'UNAVAILABLE', // crash_shutdown
  '57P03': 'UNAVAILABLE', // cannot_connect_now (starting up, in recovery)
  '53300': 'UNAVAILABLE', // too_many_connections
  '25006': 'UNAVAILABLE', // read_only_sql_transaction (a standby answered)
  '53100': 'RESOURCE_EXHAUSTED', // disk_full
  '53200': 'RESOURCE_EXHAUSTED', // out_of_memory
  '54000': 'RESOURCE_EXHAUSTED', // program_limit_exceeded (row or index entry too large)
  '28000': 'PERMISSION_DENIED', // invalid_authorization_specification
  '28P01': 'PERMISSION_DENIED', // invalid_password
  '42501': 'PERMISSION_DENIED', // insufficient_privilege
  '3D000': 'INVALID_ARGUMENT', // invalid_catalog_name: the database does not exist
  XX001: 'CORRUPTED', // data_corrupted
  XX002: 'CORRUPTED', // index_corrupted
};
/** serialization_failure, deadlock_detected: see {@link PostgresPoolOptions.contention}. */
const CONTENTION = new Set(['40001', '40P01']);
const SQLSTATE_CLASS: Readonly<Record<string, StowageErrorCode>> = {
  '08': 'UNAVAILABLE', // connection exception
  '22': 'INVALID_ARGUMENT', // data exception
  '53': 'RESOURCE_EXHAUSTED', // insufficient resources
  '58': 'UNAVAILABLE', // system error (I/O)
};

/** Messages `pg` and `pg-pool` raise themselves (no SQLSTATE), matched on their stable wording. */
const CLIENT_MESSAGES: readonly (readonly [RegExp, StowageErrorCode])[] = [
  [/timeout exceeded when trying to connect|Connection terminated due to connection timeout|Query read timeout/i, 'TIMEOUT'],
  [/Cannot use a pool after calling end/i, 'CLOSED'],
  [/Connection terminated|not queryable|server closed the connection|Client was closed|does not support SSL/i, 'UNAVAILABLE'],
];

/**
 * Node's codes for a TLS peer whose certificate cannot be trusted (unknown CA, wrong name, expired, …):
 * the server is up but the client refuses it, which retrying does not change.
 */
const TLS_TRUST = /^(ERR_TLS_CERT_ALTNAME_INVALID|DEPTH_ZERO_SELF_SIGNED_CERT|SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_.*|CERT_.*|ERR_SSL_.*)$/;

/**
 * Classifies a `pg` error: unique violation → CONFLICT; serialization failure and deadlock → `contention`
 * (default CONFLICT); statement or lock timeout and the client's own connect/query timeouts → TIMEOUT; a lost
 * or refused connection, a server shutting down or starting, too many connections, a server without TLS when
 * TLS is asked → UNAVAILABLE; disk full, out of memory, a row too large → RESOURCE_EXHAUSTED; authentication,
 * grants and a server certificate that cannot be trusted → PERMISSION_DENIED; bad data → INVALID_ARGUMENT;
 * corrupted data or index → CORRUPTED; an ended pool → CLOSED; a network errno → UNAVAILABLE; another SQLSTATE
 * → INTERNAL; anything else (not an error of `pg` or the server) → undefined. The message names the backend
 * (and the operation, when given); the cause is kept redacted, with every string in `secrets` (the password)
 * removed.
 */
export function mapPostgresError(
  err: unknown,
  context: { backend: string; operation?: string; secrets?: readonly string[]; contention?: 'CONFLICT' | 'UNAVAILABLE' },
): StowageError | undefined {
  if (StowageError.is(err)) return err;
  const cause = safeCause(err, context.secrets ?? []);
  const what = context.operation === undefined ? context.backend : `${context.backend}: ${context.operation} failed`;
  const code = errorCodeOf(err);
  const sqlState = code !== undefined && /^[0-9A-Z]{5}$/.test(code);
  let mapped: StowageErrorCode | undefined;
  if (sqlState) mapped = CONTENTION.has(code) ? (context.contention ?? 'CONFLICT') : (SQLSTATE[code] ?? SQLSTATE_CLASS[code.slice(0, 2)] ?? 'INTERNAL');
  else if (code !== undefined && TLS_TRUST.test(code)) mapped = 'PERMISSION_DENIED';
  else if (code !== undefined && /^E[A-Z]+$/.test(code)) mapped = code === 'ETIMEDOUT' ? 'TIMEOUT' : 'UNAVAILABLE';
  else {
    const message = String((err as { message?: unknown } | null)?.message ?? '');
    mapped = CLIENT_MESSAGES.find(([re]) => re.test(message))?.[1];
  }
  if (mapped === undefined) return undefined;
  return new StowageError(mapped, `${what}: ${cause?.message ?? 'unknown error'}`, { cause });
}

/** A unique violation as `pg` reports it. */
export interface UniqueViolation extends Error {
  /** The unique index or constraint the write broke. */
  constraint?: string;
}

/** Whether `err` is a unique violation (SQLSTATE 23505); `constraint` then names the index. */
export function isUniqueViolation(err: unknown): err is UniqueViolation {
  return errorCodeOf(err) === '23505';
}

/** A statement prepared once per connection and run by name after that (see {@link prepared}). */
export interface PreparedStatement {
  /** Its name on the server: derived from its text, so that two texts never share one. */
  readonly name: string;
  /** Its SQL. */
  readonly text: string;
}

/**
 * A statement `pg` prepares on each connection the first time it runs there, and runs by name after that:
 * the server parses and plans it once per connection instead of once per call. For the statements a port
 * runs on every call (get by id, insert, the config write). Measured on get by id: 0.73× → 1.0× of the
 * `postgres` client's prepared statements (`bench/postgres.bench.ts`, the client rows).
 *
 * Through a pooler in transaction mode, prepared statements need PgBouncer 1.21 or later
 * (`max_prepared_statements`); the adapters' advisory locks and LISTEN need session mode anyway.
 */
export function prepared(text: string): PreparedStatement {
  return { name: `stowage_${createHash('sha256').update(text).digest('hex').slice(0, 24)}`, text };
}

/** A statement to run: prepared once per connection under its name, or run unnamed when it has none. */
export interface Statement {
  /** Its name on the server; absent for a statement run unnamed. */
  readonly name?: string;
  /** Its SQL. */
  readonly text: string;
}

/**
 * The statements a driver writes per call (a compiled filter), by their text: the same text is named and
 * prepared once per connection, as {@link prepared} statements are, so that the server parses and plans a
 * filter of a shape it has seen once per connection rather than once per call. Bounded, since a prepared
 * statement lives as long as its connection: a text is named the second time it is run (a one-off filter
 * takes no room), up to `max` texts of at most `maxText` characters; any other text runs unnamed. `toText`
 * turns a key into the statement's SQL (the documents driver numbers its placeholders there).
 */
export class StatementCache {
  readonly #named = new Map<string, PreparedStatement>();
  /** Keys run once and not named yet (forgotten all at once when it holds four times `max`). */
  readonly #seen = new Set<string>();
  readonly #max: number;
  readonly #maxText: number;
  readonly #toText: (key: string) => string;

  constructor(toText: (key: string) => string, options: { max?: number; maxText?: number } = {}) {
    this.#toText = toText;
    this.#max = options.max ?? 256;
    this.#maxText = options.maxText ?? 4096;
  }

  /** How many texts are named. */
  get size(): number {
    return this.#named.size;
  }

  /** The statement to run for `key`: named when it is cached or there is room, unnamed (no name) otherwise. */
  of(key: string): Statement {
    const found = this.#named.get(key);
    if (found !== undefined) return found;
    const text = this.#toText(key);
    if (this.#named.size >= this.#max || text.length > this.#maxText) return { text };
    if (!this.#seen.has(key)) {
      if (this.#seen.size >= 4 * this.#max) this.#seen.clear();
      this.#seen.add(key);
      return { text };
    }
    this.#seen.delete(key);
    const statement = prepared(text);
    this.#named.set(key, statement);
    return statement;
  }
}

/**
 * Runs a statement, by name when it has one ({@link prepared}, or named by a {@link StatementCache}), on a
 * connection of `on` (a pool) or on `on` itself (a client the caller holds), and resolves with its result.
 *
 * The statement goes to `pg` as a `Query` made from its text, its name set afterwards, rather than as a
 * `{ name, text, values }` object: `pg` copies a query object through its property descriptors before it
 * uses it (`cloneQueryConfig`), about 2.5 µs of CPU per call and an object in dictionary mode for the
 * collector, while a query made from text is not copied. Measured on get by id, one at a time: 72 → 69 µs
 * of client CPU per call. A `Query` handed to `pg-pool` resolves like any other pool query (the pool
 * passes its callback to the client), and the pool's release and error handling are the same; a client
 * runs it with a callback of its own.
 */
export function runPrepared<R extends pg.QueryResultRow = pg.QueryResultRow>(on: pg.Pool | pg.ClientBase, statement: Statement, values: unknown[]): Promise<pg.QueryResult<R>> {
  type NamedQuery = InstanceType<typeof pg.Query> & { name?: string };
  if (on instanceof pg.Pool) {
    const query = new pg.Query<R>(statement.text, values) as NamedQuery;
    if (statement.name !== undefined) query.name = statement.name;
    // @types/pg types `pool.query(submittable)` as returning the submittable, as `client.query` does; the
    // pool returns the promise of its callback. (A query given a callback here would keep the pool's from
    // being set, and the connection would never go back to the pool.)
    return on.query(query) as unknown as Promise<pg.QueryResult<R>>;
  }
  return new Promise((resolve, reject) => {
    const query = new pg.Query<R>(statement.text, values, (err: Error | null | undefined, result: pg.QueryResult<R>) => (err ? reject(err) : resolve(result))) as NamedQuery;
    if (statement.name !== undefined) query.name = statement.name;
    on.query(query);
  });
}

/**
 * Runs `fn` in a transaction on a connection of the pool: COMMIT when it resolves, ROLLBACK when it throws.
 * While the connection is checked out, an error event of its socket (the server going away between two
 * statements) is taken here — the failing statement reports it — instead of crashing the process, as an
 * unheard `error` event would; a connection whose ROLLBACK failed is dropped by the pool, not reused.
 */
export async function inTransaction<T>(pool: pg.Pool, fn: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect();
  const heard = (): void => undefined;
  client.on('error', heard);
  let broken: Error | undefined;
  try {
    await client.query('BEGIN');
    const result = await fn(client);
    await client.query('COMMIT');
    return result;
  } catch (err) {
    await client.query('ROLLBACK').catch((rollbackErr: unknown) => {
      broken = rollbackErr instanceof Error ? rollbackErr : new Error(String(rollbackErr));
    });
    throw err;
  } finally {
    client.removeListener('error', heard);
    client.release(broken);
  }
}
