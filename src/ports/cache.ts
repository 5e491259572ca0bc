/**
 * The cache port: JSON values with TTL, bulk calls, namespaces, and `getOrSet` with single-flight and
 * stale serving.
 *
 * @module
 */
import type { CallOptions, DriverBase, JsonValue, Lifecycle } from './common.js';

/**
 * What a cache adapter can do beyond get/set/delete/has with TTL, bulk calls, `clear` and `getOrSet`.
 *
 * - `distributedInvalidation` — a write on one node removes stale copies held by other nodes.
 * - `sharedAcrossProcesses` — every process sees the same entries (a networked cache).
 * - `distributedSingleFlight` — concurrent `getOrSet` misses of one key in different processes call the
 *   loader once: the first takes a short lock, the others wait (at most the lock's TTL) for its value.
 */
export type CacheCapability = 'distributedInvalidation' | 'sharedAcrossProcesses' | 'distributedSingleFlight';

/** A cross-process lock taken by {@link CacheDriver.lock} for single-flight across processes. */
export interface CacheLock {
  /** Whether this process holds the lock; false when another process does. */
  readonly acquired: boolean;
  /** How long the lock lives unless released, in milliseconds: how long a waiter waits at most. */
  readonly ttlMs: number;
  /** Releases the lock if this process still holds it (never another's); a no-op when not acquired. */
  release(): Promise<void>;
}

/** Options of {@link Cache.set}. */
export interface CacheSetOptions extends CallOptions {
  /** Time to live in milliseconds; default the cache's `defaultTtlMs` (none when that is unset). */
  ttlMs?: number;
}

/** Options of {@link Cache.getOrSet}. */
export interface GetOrSetOptions extends CacheSetOptions {
  /**
   * For this long after the TTL ends, a stale value is returned at once while one background call of the
   * loader refreshes it.
   */
  staleWhileRevalidateMs?: number;
  /** For this long after the TTL ends, a stale value is returned when the loader throws. */
  staleIfErrorMs?: number;
}

/** One entry of {@link Cache.setMany}. */
export interface CacheEntry {
  /** The key. */
  key: string;
  /** The value. */
  value: JsonValue;
  /** Time to live in milliseconds. */
  ttlMs?: number;
}

/**
 * The cache port.
 *
 * Guarantees, checked by the cache contract suite:
 * - a value is returned as a fresh copy of what was set (mutating it changes nothing stored);
 * - after its TTL an entry is gone for `get`, `has` and `getMany`;
 * - concurrent `getOrSet` misses of one key in one process call the loader once (single-flight) and all
 *   get its result; a loader that throws rejects them all and caches nothing;
 * - with `staleWhileRevalidateMs`, a stale hit returns the old value and refreshes it once in the background;
 * - `clear()` removes every entry of this namespace and none of another;
 * - keys: non-empty, at most 1024 bytes, no NUL or lone surrogate; values at most {@link Cache.maxValueBytes}.
 */
export interface Cache extends Lifecycle {
  /** What this adapter supports. */
  readonly capabilities: ReadonlySet<CacheCapability>;
  /** This cache's namespace (`''` for the root). */
  readonly namespace: string;
  /** The largest serialised value accepted, in bytes. */
  readonly maxValueBytes: number;
  /** Reads a value; undefined on a miss or after its TTL. */
  get<T extends JsonValue = JsonValue>(key: string, options?: CallOptions): Promise<T | undefined>;
  /** Writes a value. */
  set(key: string, value: JsonValue, options?: CacheSetOptions): Promise<void>;
  /** Removes a value; resolves with whether it was there. */
  delete(key: string, options?: CallOptions): Promise<boolean>;
  /** Whether a live value is there. */
  has(key: string, options?: CallOptions): Promise<boolean>;
  /** Reads several values at once, in the order of `keys`. */
  getMany<T extends JsonValue = JsonValue>(keys: readonly string[], options?: CallOptions): Promise<(T | undefined)[]>;
  /** Writes several values at once. */
  setMany(entries: readonly CacheEntry[], options?: CallOptions): Promise<void>;
  /** Removes every entry of this namespace. */
  clear(options?: CallOptions): Promise<void>;
  /**
   * Returns the cached value, or calls `loader` once (however many callers miss at the same time), caches
   * its result and returns it.
   *
   * @example
   * ```ts
   * const user = await cache.getOrSet(`user/${id}`, () => db.loadUser(id), { ttlMs: 60_000 });
   * ```
   */
  getOrSet<T extends JsonValue>(
    key: string,
    loader: (signal: AbortSignal) => Promise<T>,
    options?: GetOrSetOptions,
  ): Promise<T>;
  /** A view of the same backend whose keys live under `name`; `clear()` there clears only that namespace. */
  withNamespace(name: string): Cache;
}

/**
 * What a cache adapter implements: strings under keys with a TTL. Core serialises values and adds the
 * freshness stamp used for stale serving; keys arrive already prefixed with the namespace as
 * `<namespace>:` (namespace names cannot contain `:`, so prefixes never overlap).
 */
export interface CacheDriver extends DriverBase {
  /** What the driver supports. */
  readonly capabilities: ReadonlySet<CacheCapability>;
  /** Reads one entry. */
  get(key: string, signal: AbortSignal): Promise<string | undefined>;
  /** Reads one entry synchronously, for drivers that hold entries in process memory (core's fast path). */
  getSync?(key: string): string | undefined;
  /** Reads entries in the order of `keys`. */
  getMany(keys: readonly string[], signal: AbortSignal): Promise<(string | undefined)[]>;
  /** Writes one entry; `ttlMs` undefined means no expiry. */
  set(key: string, value: string, ttlMs: number | undefined, signal: AbortSignal): Promise<void>;
  /**
   * Writes one entry synchronously, for drivers that hold entries in process memory: like `getSync`, it
   * cannot hang, so core skips the deadline machinery (core's fast path for `set`).
   */
  setSync?(key: string, value: string, ttlMs: number | undefined): void;
  /** Writes entries. */
  setMany(entries: readonly { key: string; value: string; ttlMs: number | undefined }[], signal: AbortSignal): Promise<void>;
  /** Removes one entry; resolves with whether it was there. */
  delete(key: string, signal: AbortSignal): Promise<boolean>;
  /** Removes every key starting with `prefix`. */
  clearPrefix(prefix: string, signal: AbortSignal): Promise<void>;
  /** Takes the short cross-process lock of `key` (capability `distributedSingleFlight`). */
  lock?(key: string, signal: AbortSignal): Promise<CacheLock>;
  /**
   * For a driver that bounds each request itself (a client-side command timeout that also covers requests
   * made while disconnected): the longest, in milliseconds, that a call of `get`, `getMany`, `set`,
   * `setMany` or `delete` can stay unsettled, after which it rejects with an error `mapError` classifies
   * (TIMEOUT, UNAVAILABLE). Core arms no deadline of its own for such a call when the caller gives no
   * signal and the call's deadline is at least this long: it could not fire first. Leave it undefined
   * unless the bound holds for every such call; `clearPrefix`, `lock` and `ping` are never covered by it.
   */
  readonly callBoundMs?: number;
}
