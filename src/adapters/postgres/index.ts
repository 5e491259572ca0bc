/**
 * `postgres://` (and `postgresql://`) adapters over `pg` (node-postgres): one database behind documents,
 * config, sealed secrets and the queue.
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { openPostgresPool, POSTGRES_PARAMS } from './connection.js';
import { PostgresDocumentsDriver } from './documents-driver.js';

export { openPostgresPool, postgresConfigFromUrl, mapPostgresError, isUniqueViolation, POSTGRES_PARAMS, type PostgresConnection, type PostgresPoolOptions } from './connection.js';
export { PostgresDocumentsDriver } from './documents-driver.js';

/**
 * Documents in a PostgreSQL database: `postgres://user@host:5432/database`. Parameters (every postgres URL):
 * `tls=true` with `caFile`, `certFile`, `keyFile`; `passwordFile` (the password, better than in the URL);
 * `connectTimeoutMs` (default 5000); `queryTimeoutMs` (default 30000, the bound of one statement);
 * `poolSize` (default 10); `tablePrefix` (lower-case letters, digits, `_`, so several stores can share a
 * database).
 */
export function postgresDocumentsScheme(scheme: 'postgres' | 'postgresql'): SchemeDefinition<'documents'> {
  return {
    port: 'documents',
    scheme,
    params: POSTGRES_PARAMS,
    open: async (url) => new PostgresDocumentsDriver(await openPostgresPool(url, { backend: 'documents (postgres)' })),
  };
}
