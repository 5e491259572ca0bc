/**
 * `postgres://` (and `postgresql://`) adapters over `pg` (node-postgres): one database behind documents,
 * config, sealed secrets and the queue.
 *
 * @module
 */
export { openPostgresPool, postgresConfigFromUrl, mapPostgresError, isUniqueViolation, POSTGRES_PARAMS, type PostgresConnection, type PostgresPoolOptions } from './connection.js';
