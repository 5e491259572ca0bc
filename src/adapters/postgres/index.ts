/**
 * `postgres://` (and `postgresql://`) adapters over `pg` (node-postgres): one database behind documents,
 * config, sealed secrets and the queue.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';
import { openPostgresPool, POSTGRES_PARAMS } from './connection.js';
import { PostgresConfigDriver } from './config-driver.js';
import { PostgresDocumentsDriver } from './documents-driver.js';

export { openPostgresPool, postgresConfigFromUrl, mapPostgresError, isUniqueViolation, POSTGRES_PARAMS, type PostgresConnection, type PostgresPoolOptions } from './connection.js';
export { PostgresDocumentsDriver } from './documents-driver.js';
export { PostgresConfigDriver, type PostgresConfigOptions } from './config-driver.js';

/**
 * Documents in a PostgreSQL database: `postgres://user@host:5432/database`. Parameters (every postgres URL):
 * `tls=true` with `caFile`, `certFile`, `keyFile`; `passwordFile` (the password, better than in the URL);
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
