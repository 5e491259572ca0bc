/**
 * Redis adapters: the cache port on `redis://`, `rediss://` (TLS), `redis+sentinel://` and
 * `redis+cluster://`, with ioredis.
 *
 * Query parameters: `passwordFile` (the password, when not in the URL's user info), `commandTimeoutMs`
 * (default 2000), `connectTimeoutMs` (default 3000), `autoPipelining` (default false: `true` batches calls
 * in flight into one write, faster with many concurrent calls, slower one at a time), `lock` (`true`: single-flight across processes,
 * capability `distributedSingleFlight`), `lockTtlMs` (default 5000); Sentinel also `name` (the master's
 * name, required) and `sentinelPasswordFile`. The path names the database: `redis://cache:6379/2`.
 *
 * @example
 * ```ts
 * registry.register(redisCacheScheme);
 * const driver = await registry.open('cache', 'redis://cache:6379/0?passwordFile=/run/secrets/redis&lock=true', context);
 * ```
 *
 * @module
 */
import type { SchemeDefinition } from '../../driver/index.js';
import { boolParam, intParam, type StowageUrl } from '../../driver/url.js';
import type { OpenContext } from '../../driver/index.js';
import type { CacheDriver } from '../../ports/cache.js';
import { RedisCacheDriver } from './cache-driver.js';
import { connectRedis, REDIS_CONNECTION_PARAMS, REDIS_SENTINEL_PARAMS } from './connection.js';

export { RedisCacheDriver, type RedisCacheOptions } from './cache-driver.js';
export {
  connectRedis,
  mapRedisError,
  DEFAULT_REDIS_COMMAND_TIMEOUT_MS,
  DEFAULT_REDIS_CONNECT_TIMEOUT_MS,
  type RedisClient,
  type RedisConnection,
} from './connection.js';
export { CommandWatchdog } from './watchdog.js';

/** Default lifetime of a cross-process `getOrSet` lock, in milliseconds. */
export const DEFAULT_REDIS_LOCK_TTL_MS = 5000;

const CACHE_PARAMS = [...REDIS_CONNECTION_PARAMS, 'lock', 'lockTtlMs'];

async function openCache(url: StowageUrl, context: OpenContext): Promise<CacheDriver> {
  const lock = boolParam(url, 'lock', false);
  const lockTtlMs = intParam(url, 'lockTtlMs', DEFAULT_REDIS_LOCK_TTL_MS, { min: 10, max: 600_000 });
  const connection = await connectRedis(url, context.logger);
  return new RedisCacheDriver(url.scheme, connection, { lock, lockTtlMs });
}

/** `redis://[user[:password]@]host[:port][/db]` — the cache on one Redis server. */
export const redisCacheScheme: SchemeDefinition<'cache'> = { port: 'cache', scheme: 'redis', params: CACHE_PARAMS, open: openCache };

/** `rediss://…` — the same over TLS (the system's trusted CAs). */
export const redissCacheScheme: SchemeDefinition<'cache'> = { port: 'cache', scheme: 'rediss', params: CACHE_PARAMS, open: openCache };

/** `redis+sentinel://s1:26379,s2:26379[/db]?name=<master>` — the master that Sentinel points to, followed on failover. */
export const redisSentinelCacheScheme: SchemeDefinition<'cache'> = {
  port: 'cache',
  scheme: 'redis+sentinel',
  params: [...CACHE_PARAMS, ...REDIS_SENTINEL_PARAMS],
  open: openCache,
};

/** `redis+cluster://n1:6379,n2:6379` — a Redis Cluster (database 0 only). */
export const redisClusterCacheScheme: SchemeDefinition<'cache'> = {
  port: 'cache',
  scheme: 'redis+cluster',
  params: CACHE_PARAMS,
  open: openCache,
};

/** Every Redis cache scheme, for registering at once. */
export const redisCacheSchemes: readonly SchemeDefinition<'cache'>[] = [
  redisCacheScheme,
  redissCacheScheme,
  redisSentinelCacheScheme,
  redisClusterCacheScheme,
];
