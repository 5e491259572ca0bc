/**
 * The PostgreSQL adapter: `postgres://`.
 *
 * @module
 */
import pg from 'pg';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';
import { StowageError } from '../../ports/errors.js';
import { CONNECTION_PARAMS, mapPostgresError, postgresClientConfig } from './queue-connection.js';
import { PostgresQueueDriver } from './queue-driver.js';

export { PostgresQueueDriver, type PostgresQueueOptions } from './queue-driver.js';
export { mapPostgresError } from './queue-connection.js';

// ---- queue port -------------------------------------------------------------------------------------

/**
 * `postgres://user[:password]@host[:port]/database?schema=&dedupeWindowMs=&maxAge=&pollMs=` for the queue
 * port.
 *
 * - `schema` (default `stowage`): the schema that holds the queue's tables, created when absent.
 * - `dedupeWindowMs` (default 120 000): how long a publisher's id is remembered.
 * - `maxAge` (milliseconds, default 0 = no limit): messages older than this are removed (every topic of the
 *   schema; with several processes, the smallest limit wins).
 * - `pollMs` (default 5 000): how often an idle consumer looks without being woken (a NOTIFY can be lost).
 * - `passwordFile`, `poolSize` (default 10), `connectTimeoutMs` (default 5 000): the connection.
 */
export const postgresQueueScheme: SchemeDefinition<'queue'> = {
  port: 'queue',
  scheme: 'postgres',
  params: [...CONNECTION_PARAMS, 'schema', 'dedupeWindowMs', 'maxAge', 'pollMs'],
  open: async (url, context) => {
    const schema = url.params.get('schema') ?? 'stowage';
    if (!/^[a-z_][a-z0-9_]{0,47}$/.test(schema)) {
      throw new StowageError('INVALID_ARGUMENT', `query parameter "schema" must be 1 to 48 characters of a-z 0-9 _ (not starting with a digit), got ${JSON.stringify(schema)}`);
    }
    const config = await postgresClientConfig(url);
    // The queue's statements are short index lookups: JIT never pays off for them, and the planner's guess
    // on a fresh table (no statistics yet) can cross jit_above_cost and spend seconds of CPU compiling a
    // claim or a stats query.
    const session = { options: '-c jit=off' };
    const options = {
      schema,
      dedupeWindowMs: intParam(url, 'dedupeWindowMs', 120_000, { min: 1 }),
      maxAgeMs: intParam(url, 'maxAge', 0, { min: 0 }),
      pollMs: intParam(url, 'pollMs', 5_000, { min: 10, max: 600_000 }),
    };
    const pool = new pg.Pool({ ...config.pool, ...session });
    return PostgresQueueDriver.open({
      ...options,
      pool,
      ownsPool: true,
      connectListener: async () => {
        const client = new pg.Client({ ...config.client, ...session });
        try {
          await client.connect();
        } catch (err) {
          client.on('error', () => undefined);
          await client.end().catch(() => undefined);
          throw mapPostgresError(err, config.secrets) ?? err;
        }
        return client;
      },
      logger: context.logger,
      secrets: config.secrets,
    });
  },
};
