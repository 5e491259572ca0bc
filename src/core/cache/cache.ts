/**
 * The cache port over any {@link CacheDriver}: validation, namespaces, the freshness envelope behind stale
 * serving, single-flight `getOrSet`, the in-memory read fast path, deadlines and the closed state — written
 * once for every adapter.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions, HealthReport, JsonValue } from '../../ports/common.js';
import type {
  Cache,
  CacheCapability,
  CacheDriver,
  CacheEntry,
  CacheLock,
  CacheSetOptions,
  GetOrSetOptions,
} from '../../ports/cache.js';
import { PortRuntime, type RuntimeOptions } from '../runtime.js';
import { quote, serializeJson, validateNonNegativeInt, validateFlatKey, validateName, validatePositiveInt } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';

/** The default largest serialised cache value: 1 MiB. */
export const DEFAULT_CACHE_MAX_VALUE_BYTES = 1024 * 1024;

/**
 * Namespace names: letters, digits, `_`, `-` and `/` (for nesting). Never `:`, which ends the namespace
 * part of a driver key, so the prefixes of two namespaces never overlap.
 */
const NAMESPACE_PATTERN = /^[A-Za-z0-9_/-]+$/;

/**
 * Deadline of work done for several callers at once (a shared load, storing its value, a background
 * refresh) when the cache's `defaultTimeoutMs` is not set.
 */
const BACKGROUND_WRITE_MS = 10_000;

/** Options of {@link createCache}. */
export interface CacheOptions extends RuntimeOptions {
  /**
   * Time to live of entries written without `ttlMs`, in milliseconds.
   *
   * @defaultValue none: such entries live until evicted, deleted or cleared
   */
  defaultTtlMs?: number;
  /**
   * The largest serialised value accepted, in bytes; larger values reject with RESOURCE_EXHAUSTED.
   *
   * @defaultValue 1 MiB ({@link DEFAULT_CACHE_MAX_VALUE_BYTES})
   */
  maxValueBytes?: number;
}

/**
 * Creates the {@link Cache} an application uses, over a driver.
 *
 * **Driver keys.** A key `k` of namespace `ns` reaches the driver as `ns:k`; the root namespace is the
 * empty name, so its keys reach the driver as `:k`. `clear()` of the root therefore removes only keys
 * starting with `:` — never keys another program keeps in the same Redis database, nor any namespace's.
 * `withNamespace` nests with `/`: `cache.withNamespace('a').withNamespace('b')` has keys `a/b:k`, and
 * clearing `a` does not clear `a/b`.
 *
 * **Stored form.** Each entry is stored as `"<freshUntil>|<json>"`, where `freshUntil` is the epoch
 * millisecond at which the value stops being fresh (`0`: never). The driver keeps an entry for its TTL plus
 * the largest stale window `getOrSet` asked for, so a stale copy is there to serve; `get`, `has` and
 * `getMany` treat an entry past `freshUntil` as a miss. `freshUntil` is computed with this process's clock,
 * so on a shared backend clock skew between nodes shifts freshness by the skew.
 *
 * **Lifecycle.** A namespace view shares its parent's backend: closing any view closes the backend for
 * every view.
 *
 * **Fast path.** When the driver holds entries in process memory (`getSync`, `setSync`), `get`, `has`,
 * `getMany` and `set` skip the deadline machinery (no timer, no span): they cannot hang.
 *
 * @example
 * ```ts
 * const cache = createCache(driver, { defaultTtlMs: 60_000 });
 * const users = cache.withNamespace('users');
 * const user = await users.getOrSet(id, () => db.loadUser(id), { ttlMs: 30_000, staleWhileRevalidateMs: 10_000 });
 * ```
 */
export function createCache(driver: CacheDriver, options: CacheOptions = {}): Cache {
  return new CoreCache(new CacheShared(driver, options), '');
}

/** What every namespace view of one cache shares: the driver, its runtime, the limits and the loads in flight. */
class CacheShared {
  readonly driver: CacheDriver;
  readonly runtime: PortRuntime;
  readonly defaultTtlMs: number | undefined;
  readonly maxValueBytes: number;
  readonly defaultTimeoutMs: number;
  /** Loads in flight by driver key: the single-flight table. Resolves with the loaded value's JSON. */
  readonly loads = new Map<string, Promise<string>>();
  /**
   * `getOrSet`'s reads in flight by driver key, so that concurrent calls for one key (a stampede) make one
   * read, not one each: 1,000 misses of one key sent 1,000 GETs to Redis before joining the one load. A write
   * of this process through any view drops the key's entry when it starts and when it ends, so a call made
   * after a write has resolved never joins a read sent before it.
   */
  readonly reads = new Map<string, Promise<string | undefined>>();

  /** Reads driver key `k`, joining a `getOrSet` read of it already in flight. */
  read(k: string, signal: AbortSignal): Promise<string | undefined> {
    const running = this.reads.get(k);
    if (running !== undefined) return running;
    const read = this.driver.get(k, signal);
    this.reads.set(k, read);
    const forget = (): void => {
      if (this.reads.get(k) === read) this.reads.delete(k);
    };
    read.then(forget, forget);
    return read;
  }

  /** Forgets the reads in flight of the keys a write changes (all of them for a clear): see {@link CacheShared.reads}. */
  wrote(keys: readonly string[] | 'all'): void {
    if (this.reads.size === 0) return;
    if (keys === 'all') this.reads.clear();
    else for (const k of keys) this.reads.delete(k);
  }

  /** Runs a write of `keys`, forgetting their reads in flight when it starts and when it ends. */
  async writing<T>(keys: readonly string[] | 'all', write: () => Promise<T>): Promise<T> {
    this.wrote(keys);
    try {
      return await write();
    } finally {
      this.wrote(keys);
    }
  }

  constructor(driver: CacheDriver, options: CacheOptions) {
    if (typeof options !== 'object' || options === null) {
      throw new StowageError('INVALID_ARGUMENT', 'cache options must be an object');
    }
    this.driver = driver;
    this.runtime = new PortRuntime('cache', driver, options);
    this.defaultTtlMs = options.defaultTtlMs === undefined ? undefined : validatePositiveInt(options.defaultTtlMs, 'defaultTtlMs');
    this.maxValueBytes =
      options.maxValueBytes === undefined
        ? DEFAULT_CACHE_MAX_VALUE_BYTES
        : validatePositiveInt(options.maxValueBytes, 'maxValueBytes', { max: 512 * 1024 * 1024 });
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? BACKGROUND_WRITE_MS;
  }
}

/** A loader failure carried out of the runtime unchanged: the application's own error, not a backend's. */
class LoaderFailure {
  constructor(readonly error: unknown) {}
}

/** Encodes the stored form `"<freshUntil>|<json>"`. */
function envelope(ttlMs: number | undefined, json: string): string {
  return ttlMs === undefined ? `0|${json}` : `${Date.now() + ttlMs}|${json}`;
}

/** The `freshUntil` stamp of a stored entry; CORRUPTED when the entry was not written by Stowage. */
function freshUntilOf(raw: string, bar: number, key: string): number {
  // "0|" is the common case for entries without TTL: skip the number parse.
  if (bar === 1 && raw.charCodeAt(0) === 48) return 0;
  const stamp = bar > 0 ? Number(raw.slice(0, bar)) : Number.NaN;
  if (!Number.isInteger(stamp) || stamp < 0) {
    throw new StowageError('CORRUPTED', `cache entry ${quote(key)} is not in Stowage's stored form ("<freshUntil>|<json>")`);
  }
  return stamp;
}

function parseJson(json: string, key: string): JsonValue {
  // Primitives are immutable, so returning them is already a fresh copy; these skip the parser. A JSON
  // string with no backslash has no escapes: its value is the text between the quotes.
  const first = json.charCodeAt(0);
  if (first === 34 && json.length >= 2 && json.indexOf('"', 1) === json.length - 1 && !json.includes('\\')) {
    return json.slice(1, -1);
  }
  if (json === 'true') return true;
  if (json === 'false') return false;
  if (json === 'null') return null;
  try {
    return JSON.parse(json) as JsonValue;
  } catch (err) {
    throw new StowageError('CORRUPTED', `cache entry ${quote(key)}: stored value is not valid JSON`, { cause: err });
  }
}

/** The value of a stored entry when it is fresh now, else undefined. */
function freshValue(raw: string | undefined, key: string): JsonValue | undefined {
  if (raw === undefined) return undefined;
  const bar = raw.indexOf('|');
  const freshUntil = freshUntilOf(raw, bar, key);
  if (freshUntil !== 0 && freshUntil <= Date.now()) return undefined;
  return parseJson(raw.slice(bar + 1), key);
}

function isFresh(raw: string | undefined, key: string): boolean {
  if (raw === undefined) return false;
  const freshUntil = freshUntilOf(raw, raw.indexOf('|'), key);
  return freshUntil === 0 || freshUntil > Date.now();
}

/**
 * Serialises a value for `key`, naming the key only in the error: building the label on every call would
 * cost more than the check on the hot path.
 */
function serializeFor(value: unknown, maxBytes: number, key: string, what = 'value'): string {
  try {
    return serializeJson(value, maxBytes, what);
  } catch (err) {
    if (!StowageError.is(err)) throw err;
    throw new StowageError(err.code, `${err.message} (key ${quote(key)})`, { details: err.details });
  }
}

function optionalWindow(value: unknown, what: string): number {
  if (value === undefined) return 0;
  return validateNonNegativeInt(value, what);
}

class CoreCache implements Cache {
  readonly #shared: CacheShared;
  readonly #prefix: string;
  readonly namespace: string;

  constructor(shared: CacheShared, namespace: string) {
    this.#shared = shared;
    this.namespace = namespace;
    this.#prefix = `${namespace}:`;
  }

  get capabilities(): ReadonlySet<CacheCapability> {
    return this.#shared.driver.capabilities;
  }

  get maxValueBytes(): number {
    return this.#shared.maxValueBytes;
  }

  get backend(): string {
    return this.#shared.driver.backend;
  }

  get closed(): boolean {
    return this.#shared.runtime.closed;
  }

  /** Validates a user key and gives the driver key. */
  #key(key: unknown): string {
    return this.#prefix + validateFlatKey(key);
  }

  #ttl(ttlMs: unknown): number | undefined {
    if (ttlMs === undefined) return this.#shared.defaultTtlMs;
    return validatePositiveInt(ttlMs, 'ttlMs');
  }

  async get<T extends JsonValue = JsonValue>(key: string, options?: CallOptions): Promise<T | undefined> {
    const { runtime, driver } = this.#shared;
    runtime.assertOpen('get');
    const k = this.#key(key);
    const getSync = driver.getSync;
    if (getSync !== undefined && !runtime.traced) {
      return freshValue(runtime.runSync('get', options, () => getSync.call(driver, k)), key) as T | undefined;
    }
    const raw = await runtime.runWithin(driver.callBoundMs, 'get', options, (signal) => driver.get(k, signal));
    return freshValue(raw, key) as T | undefined;
  }

  async set(key: string, value: JsonValue, options?: CacheSetOptions): Promise<void> {
    const { runtime, driver, maxValueBytes } = this.#shared;
    runtime.assertOpen('set');
    const k = this.#key(key);
    const ttl = this.#ttl(options?.ttlMs);
    const stored = envelope(ttl, serializeFor(value, maxValueBytes, key));
    const setSync = driver.setSync;
    if (setSync !== undefined && !runtime.traced) {
      runtime.runSync('set', options, () => setSync.call(driver, k, stored, ttl));
      return;
    }
    await this.#shared.writing([k], () => runtime.runWithin(driver.callBoundMs, 'set', options, (signal) => driver.set(k, stored, ttl, signal)));
  }

  async delete(key: string, options?: CallOptions): Promise<boolean> {
    const { runtime, driver } = this.#shared;
    runtime.assertOpen('delete');
    const k = this.#key(key);
    return this.#shared.writing([k], () => runtime.runWithin(driver.callBoundMs, 'delete', options, (signal) => driver.delete(k, signal)));
  }

  async has(key: string, options?: CallOptions): Promise<boolean> {
    const { runtime, driver } = this.#shared;
    runtime.assertOpen('has');
    const k = this.#key(key);
    const getSync = driver.getSync;
    if (getSync !== undefined && !runtime.traced) {
      return isFresh(runtime.runSync('has', options, () => getSync.call(driver, k)), key);
    }
    const raw = await runtime.runWithin(driver.callBoundMs, 'has', options, (signal) => driver.get(k, signal));
    return isFresh(raw, key);
  }

  async getMany<T extends JsonValue = JsonValue>(keys: readonly string[], options?: CallOptions): Promise<(T | undefined)[]> {
    const { runtime, driver } = this.#shared;
    runtime.assertOpen('getMany');
    if (!Array.isArray(keys)) throw invalid('getMany: keys must be an array');
    const driverKeys = keys.map((k) => this.#key(k));
    const getSync = driver.getSync;
    if (getSync !== undefined && !runtime.traced) {
      const raws = runtime.runSync('getMany', options, () => driverKeys.map((k) => getSync.call(driver, k)));
      return raws.map((raw, i) => freshValue(raw, keys[i] as string) as T | undefined);
    }
    if (driverKeys.length === 0) return runtime.run('getMany', options, () => Promise.resolve([]));
    const raws = await runtime.runWithin(driver.callBoundMs, 'getMany', options, (signal) => driver.getMany(driverKeys, signal));
    if (raws.length !== driverKeys.length) {
      throw new StowageError('INTERNAL', `cache (${this.backend}): getMany returned ${raws.length} values for ${driverKeys.length} keys`);
    }
    return raws.map((raw, i) => freshValue(raw, keys[i] as string) as T | undefined);
  }

  async setMany(entries: readonly CacheEntry[], options?: CallOptions): Promise<void> {
    const { runtime, driver, maxValueBytes } = this.#shared;
    runtime.assertOpen('setMany');
    if (!Array.isArray(entries)) throw invalid('setMany: entries must be an array');
    // Everything is checked before anything is written, so a bad entry changes nothing.
    const prepared = entries.map((entry: CacheEntry, i) => {
      if (typeof entry !== 'object' || entry === null) throw invalid(`setMany: entry ${i} must be an object`);
      const ttlMs = this.#ttl(entry.ttlMs);
      const key = this.#key(entry.key);
      const value = envelope(ttlMs, serializeFor(entry.value, maxValueBytes, entry.key));
      return { key, value, ttlMs };
    });
    if (prepared.length === 0) {
      await runtime.run('setMany', options, () => Promise.resolve());
      return;
    }
    await this.#shared.writing(
      prepared.map((e) => e.key),
      () => runtime.runWithin(driver.callBoundMs, 'setMany', options, (signal) => driver.setMany(prepared, signal)),
    );
  }

  async clear(options?: CallOptions): Promise<void> {
    const { runtime, driver } = this.#shared;
    await this.#shared.writing('all', () =>
      runtime.run('clear', options, (signal) => driver.clearPrefix(this.#prefix, signal), { 'stowage.cache.namespace': this.namespace }),
    );
  }

  async getOrSet<T extends JsonValue>(
    key: string,
    loader: (signal: AbortSignal) => Promise<T>,
    options?: GetOrSetOptions,
  ): Promise<T> {
    const { runtime, driver } = this.#shared;
    runtime.assertOpen('getOrSet');
    const k = this.#key(key);
    if (typeof loader !== 'function') throw invalid('getOrSet: loader must be a function');
    const ttl = this.#ttl(options?.ttlMs);
    const swr = optionalWindow(options?.staleWhileRevalidateMs, 'staleWhileRevalidateMs');
    const sie = optionalWindow(options?.staleIfErrorMs, 'staleIfErrorMs');
    if ((swr > 0 || sie > 0) && ttl === undefined) {
      throw invalid('getOrSet: staleWhileRevalidateMs and staleIfErrorMs need a ttlMs (or the cache\'s defaultTtlMs)');
    }
    if (driver.getSync !== undefined && !runtime.traced) {
      // Fast path: a fresh hit in process memory needs no deadline machinery.
      runtime.checkSyncCall('getOrSet', options);
      let raw: string | undefined;
      try {
        raw = driver.getSync(k);
      } catch {
        raw = undefined;
      }
      if (raw !== undefined && isFresh(raw, key)) return parseJson(raw.slice(raw.indexOf('|') + 1), key) as T;
    }
    const loadTimeoutMs = Math.max(options?.timeoutMs ?? 0, this.#shared.defaultTimeoutMs);
    const load = (): Promise<string> =>
      this.#load(k, loader as (signal: AbortSignal) => Promise<JsonValue>, ttl, Math.max(swr, sie), loadTimeoutMs);

    const outcome = await runtime.run('getOrSet', options, async (signal): Promise<string | LoaderFailure> => {
      let raw: string | undefined;
      try {
        raw = driver.getSync !== undefined ? driver.getSync(k) : await this.#shared.read(k, signal);
      } catch (err) {
        // A cache that cannot be read must not stop the application: treat it as a miss and load.
        if (signal.aborted) throw err;
        raw = undefined;
      }
      let stale: string | undefined;
      if (raw !== undefined) {
        const bar = raw.indexOf('|');
        const freshUntil = freshUntilOf(raw, bar, key);
        const json = raw.slice(bar + 1);
        const now = Date.now();
        if (freshUntil === 0 || freshUntil > now) return json;
        if (now < freshUntil + swr) {
          // Serve the stale value now; one background load refreshes it (the single-flight table makes it one).
          load().catch(() => undefined);
          return json;
        }
        if (now < freshUntil + sie) stale = json;
      }
      try {
        return await load();
      } catch (err) {
        if (stale !== undefined && !signal.aborted) return stale;
        if (err instanceof LoaderFailure) return err;
        throw err;
      }
    });
    if (outcome instanceof LoaderFailure) throw outcome.error;
    // Each caller parses its own copy, so no two callers share (and can mutate) one object.
    return parseJson(outcome, key) as T;
  }

  /**
   * The single-flight load of driver key `k`: the first caller starts the loader, later callers join it.
   * Rejects with a {@link LoaderFailure} when the loader throws; stores nothing then.
   */
  #load(
    k: string,
    loader: (signal: AbortSignal) => Promise<JsonValue>,
    ttl: number | undefined,
    staleWindow: number,
    timeoutMs: number,
  ): Promise<string> {
    const shared = this.#shared;
    const running = shared.loads.get(k);
    if (running !== undefined) return running;
    const userKey = k.slice(this.#prefix.length);
    const task = (async (): Promise<string> => {
      const lock = await this.#lockAcrossProcesses(k);
      if (lock !== undefined && !lock.acquired) {
        const theirs = await this.#awaitOtherLoader(k, lock.ttlMs);
        if (theirs !== undefined) return theirs;
      }
      try {
        let value: JsonValue;
        try {
          value = await this.#callLoader(loader, userKey, timeoutMs);
        } catch (err) {
          throw new LoaderFailure(err);
        }
        const json = serializeFor(value, shared.maxValueBytes, userKey, 'loader result');
        const driverTtl = ttl === undefined ? undefined : ttl + staleWindow;
        try {
          await shared.driver.set(k, envelope(ttl, json), driverTtl, this.#backgroundSignal());
        } catch {
          // The value was loaded; failing to cache it must not fail the read. The next call loads again.
        }
        return json;
      } finally {
        if (lock?.acquired === true) await lock.release().catch(() => undefined);
      }
    })();
    shared.loads.set(k, task);
    const forget = (): void => {
      if (shared.loads.get(k) === task) shared.loads.delete(k);
    };
    task.then(forget, forget);
    return task;
  }

  /**
   * Calls the loader with a signal that aborts on close or after `timeoutMs`, and gives up on it then: a
   * loader that never settles must not keep its key's single-flight entry (and every later caller) forever.
   */
  async #callLoader(loader: (signal: AbortSignal) => Promise<JsonValue>, userKey: string, timeoutMs: number): Promise<JsonValue> {
    const controller = new AbortController();
    const onClose = (): void => controller.abort(this.#shared.runtime.closeSignal.reason);
    this.#shared.runtime.closeSignal.addEventListener('abort', onClose, { once: true });
    let timer: NodeJS.Timeout | undefined;
    const stopped = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        const err = new StowageError('TIMEOUT', `cache.getOrSet: the loader for ${quote(userKey)} did not settle within ${timeoutMs} ms`);
        controller.abort(err);
        reject(err);
      }, timeoutMs);
    });
    try {
      const work = Promise.resolve().then(() => loader(controller.signal));
      work.catch(() => undefined);
      return await Promise.race([work, stopped]);
    } finally {
      clearTimeout(timer);
      this.#shared.runtime.closeSignal.removeEventListener('abort', onClose);
    }
  }

  /** A signal for driver calls made on behalf of several callers: the close signal plus the default deadline. */
  #backgroundSignal(): AbortSignal {
    return AbortSignal.any([this.#shared.runtime.closeSignal, AbortSignal.timeout(this.#shared.defaultTimeoutMs)]);
  }

  /** The cross-process lock of `k` when the driver offers one; undefined when it does not or cannot take it now. */
  async #lockAcrossProcesses(k: string): Promise<CacheLock | undefined> {
    const { driver } = this.#shared;
    if (driver.lock === undefined || !driver.capabilities.has('distributedSingleFlight')) return undefined;
    try {
      return await driver.lock(k, this.#backgroundSignal());
    } catch {
      // Without the lock the load still happens here: single-flight across processes is an optimisation.
      return undefined;
    }
  }

  /**
   * Waits (at most `ttlMs`) for the process holding the lock of `k` to store its value; resolves with its
   * JSON, or undefined when none came, and then this process loads itself.
   */
  async #awaitOtherLoader(k: string, ttlMs: number): Promise<string | undefined> {
    const { driver, runtime } = this.#shared;
    const deadline = Date.now() + ttlMs;
    let pause = 10;
    while (Date.now() < deadline && !runtime.closeSignal.aborted) {
      await new Promise((resolve) => setTimeout(resolve, pause));
      pause = Math.min(pause * 2, 100);
      let raw: string | undefined;
      try {
        raw = await driver.get(k, this.#backgroundSignal());
      } catch {
        return undefined;
      }
      if (raw === undefined) continue;
      const bar = raw.indexOf('|');
      const freshUntil = freshUntilOf(raw, bar, k);
      if (freshUntil === 0 || freshUntil > Date.now()) return raw.slice(bar + 1);
    }
    return undefined;
  }

  withNamespace(name: string): Cache {
    validateName(name, 'namespace', NAMESPACE_PATTERN);
    return new CoreCache(this.#shared, this.namespace === '' ? name : `${this.namespace}/${name}`);
  }

  health(options?: CallOptions): Promise<HealthReport> {
    return this.#shared.runtime.health(options);
  }

  close(): Promise<void> {
    return this.#shared.runtime.close();
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}
