/**
 * `postgres://` (and `postgresql://`) adapters over `pg` (node-postgres): one database behind documents,
 * config, sealed secrets and the queue.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam, type StowageUrl } from '../../driver/url.js';
import { invalid } from '../../driver/errors.js';
import { openPostgresPool, POSTGRES_CONNECTION_PARAMS, POSTGRES_PARAMS } from './connection.js';
import { PostgresConfigDriver } from './config-driver.js';
import { PostgresDocumentsDriver } from './documents-driver.js';
import { StowageError } from '../../ports/errors.js';
import { PostgresQueueDriver } from './queue-driver.js';

export {
  openPostgresPool,
  postgresConfigFromUrl,
  mapPostgresError,
  isUniqueViolation,
  inTransaction,
  prepared,
  runPrepared,
  StatementCache,
  POSTGRES_CONNECTION_PARAMS,
  POSTGRES_PARAMS,
  type PostgresConnection,
  type PostgresPoolOptions,
  type PostgresUrlConfig,
  type PreparedStatement,
  type Statement,
  type UniqueViolation,
} from './connection.js';
export { PostgresDocumentsDriver } from './documents-driver.js';
export { PostgresConfigDriver, type PostgresConfigOptions } from './config-driver.js';
export { PostgresQueueDriver, type PostgresQueueOptions } from './queue-driver.js';

/**
 * Documents in a PostgreSQL database: `postgres://user@host:5432/database`. Parameters (every postgres URL):
 * `tls=true` (or libpq's `sslmode=require|verify-ca|verify-full`) with `caFile`, `certFile`, `keyFile`; `passwordFile` (the password, better than in the URL);
 * `connectTimeoutMs` (default 5000); `queryTimeoutMs` (default 30000, the bound of one statement);
 * `poolSize` (default 10); `tablePrefix` (lower-case letters, digits, `_`, so several stores can share a
 * database).
 */
function documentsScheme(scheme: 'postgres' | 'postgresql'): SchemeDefinition<'documents'> {
  return {
    port: 'documents',
    scheme,
    params: POSTGRES_PARAMS,
    open: async (url) => new PostgresDocumentsDriver(await openPostgresPool(url, { backend: 'documents (postgres)' })),
  };
}

/**
 * Config in a PostgreSQL database: `postgres://user@host:5432/database`, with the parameters of every
 * postgres URL (see `postgresDocumentsScheme`) and `historyRevisions` (default 100000, at least 10): how
 * many revisions of history watches can resume from; older ones are pruned and a watch needing them gets
 * COMPACTED.
 */
function configScheme(scheme: 'postgres' | 'postgresql'): SchemeDefinition<'config'> {
  return {
    port: 'config',
    scheme,
    params: [...POSTGRES_PARAMS, 'historyRevisions'],
    open: async (url) => {
      const historyRevisions = intParam(url, 'historyRevisions', 100_000, { min: 10, max: Number.MAX_SAFE_INTEGER });
      return new PostgresConfigDriver(await openPostgresPool(url, { backend: 'config (postgres)' }), { historyRevisions });
    },
  };
}

/** `postgres://…` documents (see the parameters above). */
export const postgresDocumentsScheme: SchemeDefinition<'documents'> = documentsScheme('postgres');
/** `postgresql://…` documents: the same as {@link postgresDocumentsScheme}. */
export const postgresqlDocumentsScheme: SchemeDefinition<'documents'> = documentsScheme('postgresql');
/** `postgres://…` config (see the parameters above). */
export const postgresConfigScheme: SchemeDefinition<'config'> = configScheme('postgres');
/** `postgresql://…` config: the same as {@link postgresConfigScheme}. */
export const postgresqlConfigScheme: SchemeDefinition<'config'> = configScheme('postgresql');

// ---- queue port -------------------------------------------------------------------------------------

/** Which name the URL gives the retention limit: `maxAgeMs`, or `maxAge` as the README first called it. */
function maxAgeParam(url: StowageUrl): 'maxAgeMs' | 'maxAge' {
  if (!url.params.has('maxAge')) return 'maxAgeMs';
  if (url.params.has('maxAgeMs')) throw invalid('query parameters "maxAgeMs" and "maxAge" (its older name) are both given; keep "maxAgeMs"');
  return 'maxAge';
}

/**
 * `postgres://user[:password]@host[:port]/database?schema=&dedupeWindowMs=&maxAgeMs=&pollMs=` for the queue
 * port (a function, so `postgresql://` gets the same definition).
 *
 * - `schema` (default `stowage`): the schema that holds the queue's tables, created when absent.
 * - `dedupeWindowMs` (default 120 000): how long a publisher's id is remembered.
 * - `maxAgeMs` (default 0 = no limit): messages older than this are removed (every topic of the schema;
 *   with several processes, the smallest limit wins). `maxAge`, its name before every duration was named
 *   `…Ms`, is still read (giving both is an error).
 * - `pollMs` (default 5 000): how often an idle consumer looks without being woken (a NOTIFY can be lost).
 * - the connection's, as every postgres URL (see `postgresDocumentsScheme`): TLS, `passwordFile`, `poolSize`
 *   (default 10, at least 2), `connectTimeoutMs`, `queryTimeoutMs`.
 */
function queueScheme(scheme: 'postgres' | 'postgresql'): SchemeDefinition<'queue'> {
  return {
    port: 'queue',
    scheme,
    params: [...POSTGRES_CONNECTION_PARAMS, 'schema', 'dedupeWindowMs', 'maxAgeMs', 'maxAge', 'pollMs'],
    open: async (url, context) => {
      const schema = url.params.get('schema') ?? 'stowage';
      if (!/^[a-z_][a-z0-9_]{0,47}$/.test(schema)) {
        throw new StowageError('INVALID_ARGUMENT', `query parameter "schema" must be 1 to 48 characters of a-z 0-9 _ (not starting with a digit), got ${JSON.stringify(schema)}`);
      }
      const options = {
        schema,
        dedupeWindowMs: intParam(url, 'dedupeWindowMs', 120_000, { min: 1 }),
        maxAgeMs: intParam(url, maxAgeParam(url), 0, { min: 0 }),
        pollMs: intParam(url, 'pollMs', 5_000, { min: 10, max: 600_000 }),
      };
      // At least 2, as before the connection code was shared: a publish batch and a consumer's claim then
      // never wait for each other's connection.
      const conn = await openPostgresPool(url, { backend: 'queue (postgres)', minPoolSize: 2, contention: 'UNAVAILABLE' });
      return PostgresQueueDriver.open({
        ...options,
        pool: conn.pool,
        ownsPool: true,
        connectListener: async () => {
          const client = conn.newClient();
          try {
            await client.connect();
          } catch (err) {
            client.on('error', () => undefined);
            await client.end().catch(() => undefined);
            throw conn.mapError(err) ?? err;
          }
          return client;
        },
        mapError: conn.mapError,
        logger: context.logger,
      });
    },
  };
}

/** `postgres://…` queue (see the parameters above). */
export const postgresQueueScheme: SchemeDefinition<'queue'> = queueScheme('postgres');
/** `postgresql://…` queue: the same as {@link postgresQueueScheme}. */
export const postgresqlQueueScheme: SchemeDefinition<'queue'> = queueScheme('postgresql');
