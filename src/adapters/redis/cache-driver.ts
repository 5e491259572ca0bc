/**
 * The `redis://` cache driver (also `rediss://`, `redis+sentinel://`, `redis+cluster://`) on ioredis.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import type { StowageError } from '../../ports/errors.js';
import type { CacheCapability, CacheDriver, CacheLock } from '../../ports/cache.js';
import { mapRedisError, type RedisConnection } from './connection.js';

/** Keys examined per SCAN step and removed per UNLINK when clearing a namespace. */
const CLEAR_BATCH = 500;
/** Lock keys live outside every namespace: `!` cannot start a namespace name, nor `:` the root's keys. */
const LOCK_PREFIX = '!lock:';
/** Deletes the lock only if it still holds this process's token, so a late release never frees another's lock. */
const RELEASE_LOCK = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end";

/** Options of {@link RedisCacheDriver}. */
export interface RedisCacheOptions {
  /**
   * Offer single-flight across processes: a `getOrSet` miss takes `SET <lock> NX PX lockTtlMs` before it
   * calls the loader, and other processes wait for its value.
   */
  lock: boolean;
  /** How long a cross-process lock lives unless released, in milliseconds. */
  lockTtlMs: number;
}

/** Escapes the glob characters of `text` for SCAN's MATCH. */
function globEscape(text: string): string {
  return text.replace(/[*?[\]\\]/g, '\\$&');
}

function throwIfAborted(signal: AbortSignal): void {
  if (signal.aborted) throw signal.reason;
}

/** ioredis's "no such key" (`null`) as the driver contract's `undefined`. */
function orUndefined(value: string | null): string | undefined {
  return value ?? undefined;
}

/**
 * A cache driver on one Redis (standalone, Sentinel-managed or Cluster).
 *
 * TTLs are Redis `PX` expiries; `getMany` is one `MGET` (one pipelined `GET` per key on a cluster, where
 * keys may live in different slots); `setMany` is one pipeline of `SET … PX`; clearing a namespace walks
 * `SCAN MATCH <prefix>*` and `UNLINK`s in batches of 500, never `KEYS`, on every master of
 * a cluster. Commands fail fast while the connection is down (see `connectRedis`).
 *
 * **Write coalescing.** On a standalone or Sentinel connection, a `get`/`set` issued while other commands
 * await their replies corks the socket, and a `process.nextTick` uncorks it: commands issued by the same
 * burst of callbacks and promise reactions leave in one write (one system call) instead of one each.
 * Nothing waits for a later event-loop turn (unlike ioredis's `enableAutoPipelining`, which defers to
 * `setImmediate`), and a call made alone is written at once; 100 calls in flight cost about half the CPU
 * per call.
 */
export class RedisCacheDriver implements CacheDriver {
  /** The URL scheme, e.g. `redis`. */
  readonly backend: string;
  /** `sharedAcrossProcesses`, plus `distributedSingleFlight` with `?lock=true`. */
  readonly capabilities: ReadonlySet<CacheCapability>;
  /**
   * The command watchdog's bound on a standalone or Sentinel connection (every command fails within it, and
   * none queues while disconnected), so core arms no deadline of its own for calls it covers. Undefined on a
   * cluster, whose client may hold commands between nodes (redirections, retries) outside any reply queue.
   */
  readonly callBoundMs: number | undefined;
  readonly #connection: RedisConnection;
  readonly #client: Redis | Cluster;
  readonly #lockTtlMs: number;
  #serverVersion: string | undefined;
  /** The socket corked by {@link RedisCacheDriver.#coalesce} until the next tick, if any. */
  #corked: { uncork(): void } | undefined;
  /** Uncorks the socket corked this tick (bound once: it runs on every tick with commands). */
  readonly #uncork = (): void => {
    const socket = this.#corked;
    this.#corked = undefined;
    socket?.uncork();
  };

  /**
   * @param backend - the scheme
   * @param connection - a connected client
   * @param options - cross-process lock
   */
  constructor(backend: string, connection: RedisConnection, options: RedisCacheOptions) {
    this.backend = backend;
    this.#connection = connection;
    this.#client = connection.client;
    this.#lockTtlMs = options.lockTtlMs;
    this.callBoundMs = connection.cluster ? undefined : connection.watchdog.boundMs;
    this.capabilities = new Set<CacheCapability>(
      options.lock ? ['sharedAcrossProcesses', 'distributedSingleFlight'] : ['sharedAcrossProcesses'],
    );
  }

  /**
   * Holds this tick's writes on the standalone socket so they leave together (see the class notes). A
   * command issued while none awaits a reply is written at once: a call made alone gets its request on the
   * wire before the rest of its bookkeeping. A cluster's commands go to several sockets: written as issued.
   */
  #coalesce(): void {
    if (this.#corked !== undefined || this.#connection.cluster) return;
    const client = this.#client as Redis;
    const socket = client.stream as Redis['stream'] | undefined;
    if (socket === undefined || client.commandQueue.length === 0) return;
    socket.cork();
    this.#corked = socket;
    process.nextTick(this.#uncork);
  }

  /** Reads one key. */
  get(key: string): Promise<string | undefined> {
    this.#coalesce();
    return this.#client.get(key).then(orUndefined);
  }

  /** Reads keys in order: one MGET, or pipelined GETs on a cluster. */
  async getMany(keys: readonly string[]): Promise<(string | undefined)[]> {
    if (keys.length === 0) return [];
    if (this.#connection.cluster) {
      // Keys may sit in different slots, so no MGET; with ?autoPipelining=true these go out per node in one write.
      return Promise.all(keys.map((k) => this.get(k)));
    }
    const values = await this.#client.mget(...keys);
    return values.map((v) => v ?? undefined);
  }

  /** Writes one key, with `PX` when a TTL is given. Resolves with Redis's `OK`, which callers ignore. */
  set(key: string, value: string, ttlMs: number | undefined): Promise<void> {
    this.#coalesce();
    // No `await`: a wrapper promise per call is measurable at this rate; the reply is a plain `OK`.
    const reply: Promise<unknown> = ttlMs === undefined ? this.#client.set(key, value) : this.#client.set(key, value, 'PX', ttlMs);
    return reply as Promise<void>;
  }

  /** Writes keys in one pipeline (per node on a cluster). */
  async setMany(entries: readonly { key: string; value: string; ttlMs: number | undefined }[]): Promise<void> {
    if (entries.length === 0) return;
    if (this.#connection.cluster) {
      await Promise.all(entries.map((e) => this.set(e.key, e.value, e.ttlMs)));
      return;
    }
    const pipeline = this.#client.pipeline();
    for (const e of entries) {
      if (e.ttlMs === undefined) pipeline.set(e.key, e.value);
      else pipeline.set(e.key, e.value, 'PX', e.ttlMs);
    }
    const results = (await pipeline.exec()) ?? [];
    for (const [err] of results) if (err) throw err;
  }

  /** Removes one key. */
  async delete(key: string): Promise<boolean> {
    return (await this.#client.unlink(key)) > 0;
  }

  /** Removes every key with `prefix`: SCAN + UNLINK in batches, on every master of a cluster. */
  async clearPrefix(prefix: string, signal: AbortSignal): Promise<void> {
    const nodes: Redis[] = this.#connection.cluster ? (this.#client as Cluster).nodes('master') : [this.#client as Redis];
    const match = `${globEscape(prefix)}*`;
    for (const node of nodes) {
      let cursor = '0';
      do {
        throwIfAborted(signal);
        const [next, keys] = await node.scan(cursor, 'MATCH', match, 'COUNT', CLEAR_BATCH);
        cursor = next;
        if (keys.length === 0) continue;
        if (this.#connection.cluster) {
          // Keys of one node may sit in different slots; a multi-key UNLINK would be refused (CROSSSLOT).
          const pipeline = node.pipeline();
          for (const k of keys) pipeline.unlink(k);
          const results = (await pipeline.exec()) ?? [];
          for (const [err] of results) if (err) throw err;
        } else {
          await node.unlink(...keys);
        }
      } while (cursor !== '0');
    }
  }

  /** Takes `SET !lock:<key> <token> NX PX lockTtlMs`. */
  async lock(key: string): Promise<CacheLock> {
    const lockKey = LOCK_PREFIX + key;
    const token = randomUUID();
    const ttlMs = this.#lockTtlMs;
    const taken = (await this.#client.set(lockKey, token, 'PX', ttlMs, 'NX')) === 'OK';
    const client = this.#client;
    return {
      acquired: taken,
      ttlMs,
      release: async () => {
        if (taken) await client.eval(RELEASE_LOCK, 1, lockKey, token);
      },
    };
  }

  /** One round-trip (`INFO server`), giving the server version. */
  async ping(): ReturnType<CacheDriver['ping']> {
    const info = await this.#client.info('server');
    this.#serverVersion = /^redis_version:(.+)$/m.exec(info)?.[1]?.trim() ?? this.#serverVersion;
    return { serverVersion: this.#serverVersion };
  }

  /** Classifies ioredis errors (timeouts, lost connections, refused credentials). */
  mapError(err: unknown): StowageError | undefined {
    return mapRedisError(err, `${this.backend} (${this.#connection.redacted})`);
  }

  /** Quits politely, and drops the connection if the server does not answer. */
  async close(): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, this.#connection.commandTimeoutMs);
    });
    await Promise.race([this.#client.quit().catch(() => undefined), limit]);
    clearTimeout(timer);
    this.#connection.watchdog.stop();
    this.#client.disconnect();
  }

  /** The ioredis client (`Redis` or `Cluster`). */
  native(): Redis | Cluster {
    return this.#client;
  }
}
