/**
 * Opening an ioredis client from a Stowage URL, and classifying ioredis errors.
 *
 * URLs: `redis://[user[:password]@]host[:port][/db]`, `rediss://…` (TLS),
 * `redis+sentinel://sentinel1:26379,sentinel2:26379[/db]?name=<master>` and
 * `redis+cluster://node1:6379,node2:6379`. The password comes from the URL's user info or from
 * `?passwordFile=` (never both).
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import type { Cluster, ClusterOptions, Redis, RedisOptions } from 'ioredis';
import { StowageError } from '../../ports/errors.js';
import { safeCause } from '../../driver/errors.js';
import type { Logger } from '../../driver/index.js';
import { boolParam, intParam, urlPassword, type StowageUrl } from '../../driver/url.js';
import { quote } from '../../driver/validate.js';
import { CommandWatchdog } from './watchdog.js';

/** A standalone, Sentinel or Cluster client. */
export type RedisClient = Redis | Cluster;

/** Query parameters every Redis scheme accepts. */
export const REDIS_CONNECTION_PARAMS = ['passwordFile', 'commandTimeoutMs', 'connectTimeoutMs', 'autoPipelining'] as const;
/** Extra parameters of `redis+sentinel://`. */
export const REDIS_SENTINEL_PARAMS = ['name', 'sentinelPasswordFile'] as const;

/**
 * Default deadline of one Redis command, in milliseconds: a paused or partitioned server gives TIMEOUT after
 * this even when the caller's own deadline is longer.
 */
export const DEFAULT_REDIS_COMMAND_TIMEOUT_MS = 2000;
/** Default time allowed to establish a connection, in milliseconds. */
export const DEFAULT_REDIS_CONNECT_TIMEOUT_MS = 3000;
/** Longest pause between reconnection attempts, in milliseconds. */
const MAX_RECONNECT_DELAY_MS = 2000;

/** A connected client and what the driver needs to know about it. */
export interface RedisConnection {
  /** The client, connected and ready. */
  readonly client: RedisClient;
  /** Whether it is a Cluster client (multi-key commands must stay within one slot). */
  readonly cluster: boolean;
  /** The database number (always 0 on a cluster). */
  readonly db: number;
  /** The URL with the password removed, for messages. */
  readonly redacted: string;
  /** The command timeout in effect. */
  readonly commandTimeoutMs: number;
  /** Enforces the command timeout; stop it when the client is closed. */
  readonly watchdog: CommandWatchdog;
}

/** Reads `?sentinelPasswordFile=`; unreadable is PERMISSION_DENIED, as for `?passwordFile=` (see `urlPassword`). */
async function readSentinelPassword(url: StowageUrl, path: string): Promise<string> {
  try {
    return (await readFile(path, 'utf8')).replace(/\r?\n$/, '');
  } catch (err) {
    throw new StowageError('PERMISSION_DENIED', `${url.scheme}: cannot read sentinelPasswordFile ${quote(path, 200)}`, { cause: safeCause(err) });
  }
}

function dbFromPath(url: StowageUrl): number {
  const path = url.path.replace(/^\/+|\/+$/g, '');
  if (path === '') return 0;
  if (!/^\d+$/.test(path) || Number(path) > 65535) {
    throw new StowageError('INVALID_ARGUMENT', `${url.scheme}:// URL path must be a database number such as /0, got ${JSON.stringify(url.path)}`);
  }
  return Number(path);
}

/**
 * Opens and connects a client for `url`, waiting until it is ready (at most the connect timeout).
 *
 * Commands never queue while the connection is down (`enableOfflineQueue: false`) and a command in flight
 * when the connection drops fails at once (`maxRetriesPerRequest: 0`), so a dead server gives UNAVAILABLE
 * quickly; every command has a client-side timeout (a {@link CommandWatchdog} rather than ioredis's
 * `commandTimeout`, which arms a timer per command), so a paused server gives TIMEOUT. The client keeps
 * reconnecting in the background with capped back-off. An unreadable `?passwordFile=` is PERMISSION_DENIED.
 */
export async function connectRedis(url: StowageUrl, logger: Logger): Promise<RedisConnection> {
  const { Redis, Cluster } = await import('ioredis');
  const commandTimeoutMs = intParam(url, 'commandTimeoutMs', DEFAULT_REDIS_COMMAND_TIMEOUT_MS, { min: 1, max: 600_000 });
  const connectTimeoutMs = intParam(url, 'connectTimeoutMs', DEFAULT_REDIS_CONNECT_TIMEOUT_MS, { min: 1, max: 600_000 });
  const autoPipelining = boolParam(url, 'autoPipelining', false);
  const password = await urlPassword(url);
  const db = dbFromPath(url);
  const hosts = url.hosts.length > 0 ? url.hosts : [{ host: '127.0.0.1', port: undefined }];
  const base: RedisOptions = {
    username: url.username === '' ? undefined : url.username,
    password,
    connectTimeout: connectTimeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 10), MAX_RECONNECT_DELAY_MS),
    lazyConnect: true,
    // Off by default: it batches calls in flight into one write (about 2x with 100 in flight) but delays
    // every command by a tick (about 0.6x one at a time). EVAL is left out when on: auto-pipelining routes
    // it by its first argument, the script (ioredis#2109).
    enableAutoPipelining: autoPipelining,
    autoPipeliningIgnoredCommands: ['eval', 'evalsha'],
    connectionName: 'stowage',
    tls: url.scheme === 'rediss' ? {} : undefined,
  };

  let client: RedisClient;
  const cluster = url.scheme === 'redis+cluster';
  if (cluster) {
    if (db !== 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a Redis Cluster has only database 0`);
    const options: ClusterOptions = {
      enableOfflineQueue: false,
      lazyConnect: true,
      enableAutoPipelining: autoPipelining,
      autoPipeliningIgnoredCommands: ['eval', 'evalsha'],
      clusterRetryStrategy: (times) => Math.min(100 * times, MAX_RECONNECT_DELAY_MS),
      slotsRefreshTimeout: connectTimeoutMs,
      // Per-node options: reconnection and queueing are the cluster client's own (options above).
      redisOptions: { username: base.username, password, connectTimeout: connectTimeoutMs, maxRetriesPerRequest: 0, connectionName: 'stowage' },
    };
    client = new Cluster(
      hosts.map((h) => ({ host: h.host, port: h.port ?? 6379 })),
      options,
    );
  } else if (url.scheme === 'redis+sentinel') {
    const name = url.params.get('name');
    if (name === undefined || name === '') {
      throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: redis+sentinel:// needs ?name=<master name>`);
    }
    const sentinelPasswordFile = url.params.get('sentinelPasswordFile');
    client = new Redis({
      ...base,
      db,
      name,
      sentinels: hosts.map((h) => ({ host: h.host, port: h.port ?? 26379 })),
      sentinelPassword: sentinelPasswordFile === undefined ? undefined : await readSentinelPassword(url, sentinelPasswordFile),
      sentinelRetryStrategy: (times) => Math.min(100 * times, MAX_RECONNECT_DELAY_MS),
    });
  } else {
    if (hosts.length > 1) {
      throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: ${url.scheme}:// takes one host; use redis+sentinel:// or redis+cluster:// for several`);
    }
    const [first] = hosts;
    client = new Redis({ ...base, db, host: first?.host, port: first?.port ?? 6379 });
  }
  // Without a listener ioredis prints every connection error; the driver reports them through calls instead.
  // The last one is kept: a refused password shows up here while connect() only says "Connection is closed".
  let lastError: unknown;
  const onError = (err: unknown): void => {
    lastError = err;
    logger.debug(`redis ${url.redacted}: ${safeCause(err, password ? [password] : [])?.message ?? 'error'}`);
  };
  client.on('error', onError);

  const watchdog = new CommandWatchdog(client, cluster, commandTimeoutMs);
  try {
    await withTimeout(client.connect(), connectTimeoutMs + 500, `${url.redacted}: no connection within ${connectTimeoutMs} ms`);
  } catch (err) {
    watchdog.stop();
    client.disconnect();
    if (StowageError.is(err)) throw err;
    const secrets = password ? [password] : [];
    for (const candidate of [err, lastError]) {
      if (mapRedisError(candidate, url.redacted)?.code === 'PERMISSION_DENIED') {
        throw new StowageError('PERMISSION_DENIED', `redis: ${url.redacted} refused the credentials`, { cause: safeCause(candidate, secrets) });
      }
    }
    throw new StowageError('UNAVAILABLE', `redis: cannot connect to ${url.redacted}`, { cause: safeCause(err, secrets) });
  }
  return { client, cluster, db, redacted: url.redacted, commandTimeoutMs, watchdog };
}

async function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const limit = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new StowageError('UNAVAILABLE', message)), ms);
  });
  try {
    return await Promise.race([promise, limit]);
  } finally {
    clearTimeout(timer);
  }
}

const UNAVAILABLE_REPLIES = /^(LOADING|MASTERDOWN|READONLY|CLUSTERDOWN|TRYAGAIN|MOVED|ASK|BUSY)\b/;

/**
 * Classifies an ioredis error: command timeout → TIMEOUT; connection closed, not writable, retries
 * exhausted, cluster down → UNAVAILABLE; refused credentials → PERMISSION_DENIED; out of memory →
 * RESOURCE_EXHAUSTED. Undefined for anything else (core's generic mapping then applies).
 */
export function mapRedisError(err: unknown, backend: string): StowageError | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const { name, message } = err as { name?: unknown; message?: unknown };
  const text = typeof message === 'string' ? message : '';
  const cause = safeCause(err);
  if (text === 'Command timed out') {
    return new StowageError('TIMEOUT', `${backend}: the server did not answer in time (command timeout)`, { cause });
  }
  if (
    name === 'MaxRetriesPerRequestError' ||
    name === 'ClusterAllFailedError' ||
    /Connection is closed|Stream isn't writeable|enableOfflineQueue|Cluster isn't ready|None of startup nodes is available|All sentinels are unreachable/.test(text)
  ) {
    return new StowageError('UNAVAILABLE', `${backend}: server unreachable (${cause?.message ?? 'connection lost'})`, { cause });
  }
  if (/^(NOAUTH|WRONGPASS|NOPERM)\b/.test(text)) {
    return new StowageError('PERMISSION_DENIED', `${backend}: credentials refused`, { cause });
  }
  if (/^OOM\b/.test(text)) return new StowageError('RESOURCE_EXHAUSTED', `${backend}: server out of memory (maxmemory)`, { cause });
  if (UNAVAILABLE_REPLIES.test(text)) return new StowageError('UNAVAILABLE', `${backend}: ${cause?.message ?? 'server not ready'}`, { cause });
  return undefined;
}
