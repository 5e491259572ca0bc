/**
 * The config port over any {@link ConfigDriver}: validation, deadlines, the closed state, error mapping,
 * the in-memory read fast path, watch wrapping and lease bookkeeping — written once for every adapter.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions, HealthReport, JsonValue } from '../../ports/common.js';
import type {
  ConfigCapability,
  ConfigDeleteOptions,
  ConfigDeleteResult,
  ConfigDriver,
  ConfigEntry,
  ConfigEvent,
  ConfigListOptions,
  ConfigPutOptions,
  ConfigSnapshot,
  ConfigStore,
  ConfigWatchOptions,
  ConfigWriteResult,
  Lease,
  LeaseOptions,
} from '../../ports/config.js';
import { holdEventLoop } from '../keep-alive.js';
import { PortRuntime, type RuntimeOptions } from '../runtime.js';
import {
  quote,
  serializeJson,
  validateKey,
  validateOptionalRevision,
  validatePositiveInt,
  validatePrefix,
} from '../../driver/validate.js';
import { unsupported } from '../../driver/errors.js';

/** The default largest serialised config value: 1 MiB. */
export const DEFAULT_CONFIG_MAX_VALUE_BYTES = 1024 * 1024;
/** The shortest lease accepted, in milliseconds. */
export const MIN_LEASE_TTL_MS = 1000;
/** How many validated keys a store remembers, so hot reads skip re-validating (cleared when full). */
const VALID_KEY_CACHE = 10_000;
/** How long `close()` waits for the driver to revoke each open lease. */
const REVOKE_ON_CLOSE_MS = 2000;

/** Options of {@link createConfigStore}. */
export interface ConfigStoreOptions extends RuntimeOptions {
  /**
   * The largest serialised value accepted by `put`, in bytes; larger values reject with RESOURCE_EXHAUSTED.
   *
   * @defaultValue 1 MiB (1 048 576 bytes)
   */
  maxValueBytes?: number;
}

/**
 * Creates the {@link ConfigStore} an application uses, over a driver.
 *
 * Reads go straight to `driver.getSync` when the driver serves them from memory (no timer, no promise race:
 * it cannot hang); every other call runs through core's port runtime for deadlines, cancellation and error
 * mapping. `close()` ends running watches with CLOSED and revokes the leases this store granted.
 *
 * @example
 * ```ts
 * const config = createConfigStore(driver, { defaultTimeoutMs: 5000 });
 * await config.put('app/feature', { enabled: true });
 * const entry = await config.get('app/feature');
 * ```
 */
export function createConfigStore(driver: ConfigDriver, options: ConfigStoreOptions = {}): ConfigStore {
  return new CoreConfigStore(driver, options);
}

class CoreConfigStore implements ConfigStore {
  readonly #driver: ConfigDriver;
  /** The driver's {@link ConfigDriver.storesJson}. */
  readonly #storesJson: boolean;
  readonly #runtime: PortRuntime;
  readonly #leases = new Set<CoreLease>();
  /** Keys that passed {@link validateKey}: the same string always passes again. */
  readonly #validKeys = new Set<string>();
  readonly capabilities: ReadonlySet<ConfigCapability>;
  readonly maxValueBytes: number;

  constructor(driver: ConfigDriver, options: ConfigStoreOptions) {
    this.#driver = driver;
    this.#storesJson = driver.storesJson === true;
    this.#runtime = new PortRuntime('config', driver, options);
    this.maxValueBytes =
      options.maxValueBytes === undefined
        ? DEFAULT_CONFIG_MAX_VALUE_BYTES
        : validatePositiveInt(options.maxValueBytes, 'maxValueBytes');
    // A capability the driver declares without the method behind it would be a lie to the caller.
    const caps = new Set(driver.capabilities);
    if (!driver.watch) caps.delete('watch');
    if (!driver.lease) caps.delete('leases');
    this.capabilities = caps;
  }

  /** Validates a key, remembering good ones: validation costs more than the in-memory read it guards. */
  #key(key: string): void {
    if (this.#validKeys.has(key)) return;
    validateKey(key);
    if (this.#validKeys.size >= VALID_KEY_CACHE) this.#validKeys.clear();
    this.#validKeys.add(key);
  }

  get backend(): string {
    return this.#runtime.backend;
  }

  get closed(): boolean {
    return this.#runtime.closed;
  }

  // get, put and delete are not async: checks run inside the call, so a bad argument still becomes the
  // call's rejection, and the call's own promise is returned without another around it (the hot path).
  get(key: string, options?: CallOptions): Promise<ConfigEntry | undefined> {
    const getSync = this.#driver.getSync;
    if (getSync !== undefined && !this.#runtime.traced) {
      // A synchronous read from memory cannot hang, so no deadline timer is armed. runSync's work inlined:
      // a closure per call costs this path (~100 ns a call) a measurable share.
      try {
        this.#runtime.checkSyncCall('get', options);
        this.#key(key);
        return Promise.resolve(getSync.call(this.#driver, key));
      } catch (err) {
        return Promise.reject(this.#runtime.mapError(err, 'get'));
      }
    }
    return this.#runtime.run('get', options, (signal) => {
      this.#key(key);
      return this.#driver.get(key, signal);
    });
  }

  async list(prefix: string, options?: ConfigListOptions): Promise<ConfigSnapshot> {
    this.#runtime.assertOpen('list');
    validatePrefix(prefix);
    const limit = options?.limit === undefined ? undefined : validatePositiveInt(options.limit, 'limit');
    return this.#runtime.run('list', options, (signal) => this.#driver.list(prefix, limit, signal));
  }

  put(key: string, value: JsonValue, options?: ConfigPutOptions): Promise<ConfigWriteResult> {
    return this.#runtime.run('put', options, (signal) => {
      this.#key(key);
      const text = serializeJson(value, this.maxValueBytes, () => `value of ${quote(key)}`);
      const ifRevision = validateOptionalRevision(options?.ifRevision, 'ifRevision');
      const lease = options?.lease;
      if (lease !== undefined) {
        if (typeof lease !== 'string' || lease.length === 0) {
          throw new StowageError('INVALID_ARGUMENT', 'lease must be a non-empty lease id from config.lease()');
        }
        if (!this.capabilities.has('leases')) throw unsupported('put(…, { lease })', `config (${this.backend})`, 'leases');
      }
      // A driver that keeps values gets its own copy, so the caller may reuse or change `value` after the call;
      // one that stores text only (`storesJson`) has no use for a copy.
      const copy = this.#storesJson ? value : (JSON.parse(text) as JsonValue);
      return this.#driver.put(key, copy, { ifRevision, lease }, signal, text);
    });
  }

  delete(key: string, options?: ConfigDeleteOptions): Promise<ConfigDeleteResult> {
    return this.#runtime.run('delete', options, (signal) => {
      this.#key(key);
      const ifRevision = validateOptionalRevision(options?.ifRevision, 'ifRevision');
      return this.#driver.delete(key, { ifRevision }, signal);
    });
  }

  watch(prefix: string, options: ConfigWatchOptions = {}): AsyncIterable<ConfigEvent> {
    return { [Symbol.asyncIterator]: () => this.#watch(prefix, options) };
  }

  async *#watch(prefix: string, options: ConfigWatchOptions): AsyncGenerator<ConfigEvent, void, undefined> {
    this.#runtime.assertOpen('watch');
    validatePrefix(prefix);
    const afterRevision = validateOptionalRevision(options.afterRevision, 'afterRevision');
    const oldName = validateOptionalRevision(options.fromRevision, 'fromRevision');
    if (afterRevision !== undefined && oldName !== undefined && afterRevision !== oldName) {
      throw new StowageError(
        'INVALID_ARGUMENT',
        `give afterRevision only (fromRevision is its deprecated former name), got afterRevision ${afterRevision} and fromRevision ${oldName}`,
      );
    }
    const userSignal = options.signal;
    if (userSignal !== undefined && !(userSignal instanceof AbortSignal)) {
      throw new StowageError('INVALID_ARGUMENT', 'signal must be an AbortSignal');
    }
    const driverWatch = this.#driver.watch;
    if (!this.capabilities.has('watch') || driverWatch === undefined) throw unsupported('watch()', `config (${this.backend})`, 'watch');
    if (userSignal?.aborted) return;

    const closeSignal = this.#runtime.closeSignal;
    const controller = new AbortController();
    // The watch must stop whatever the driver does once the caller aborts or the store closes: the pending
    // step then settles with 'stop'. One settle function per step (not a race against one long-lived promise,
    // which would keep a reaction, and with it every delivered event, for as long as the watch runs).
    let stopping = false;
    let stopStep: ((step: 'stop') => void) | undefined;
    const onStop = (): void => {
      controller.abort(closeSignal.aborted ? closeSignal.reason : userSignal?.reason);
      stopping = true;
      stopStep?.('stop');
    };
    userSignal?.addEventListener('abort', onStop, { once: true });
    closeSignal.addEventListener('abort', onStop, { once: true });
    const closedError = (): StowageError =>
      new StowageError('CLOSED', `config (${this.backend}): watch of ${quote(prefix)} ended because the store was closed`);

    const iterator = driverWatch.call(this.#driver, prefix, afterRevision ?? oldName, controller.signal)[Symbol.asyncIterator]();
    // A running watch is work the process waits for, even when the driver's own timers are unref'd.
    const release = holdEventLoop();
    try {
      while (true) {
        let step: IteratorResult<ConfigEvent> | 'stop';
        try {
          const next = iterator.next();
          step = await new Promise<IteratorResult<ConfigEvent> | 'stop'>((resolve, reject) => {
            stopStep = resolve;
            if (stopping) resolve('stop');
            // Handled even when it settles after a stop: no unhandled rejection from a late driver.
            next.then(resolve, reject);
          });
        } catch (err) {
          // The caller's own stop wins over a close at the same time (Stowage's `closing` signal aborts
          // just before its ports close): the caller asked for the end, so it is quiet, not CLOSED.
          if (userSignal?.aborted) return;
          if (closeSignal.aborted) throw closedError();
          throw this.#runtime.mapError(err, 'watch');
        }
        stopStep = undefined;
        if (userSignal?.aborted) return;
        if (closeSignal.aborted) throw closedError();
        if (step === 'stop') return;
        if (step.done) return;
        yield step.value;
      }
    } finally {
      release();
      userSignal?.removeEventListener('abort', onStop);
      closeSignal.removeEventListener('abort', onStop);
      controller.abort();
      // Let the driver release its watch; its own errors at this point are of no interest.
      void Promise.resolve(iterator.return?.()).catch(() => undefined);
    }
  }

  async lease(ttlMs: number, options?: LeaseOptions): Promise<Lease> {
    this.#runtime.assertOpen('lease');
    validatePositiveInt(ttlMs, 'ttlMs', { min: MIN_LEASE_TTL_MS, max: 2_147_483_647 });
    const keepAlive = options?.keepAlive ?? true;
    if (typeof keepAlive !== 'boolean') throw new StowageError('INVALID_ARGUMENT', 'keepAlive must be a boolean');
    const driverLease = this.#driver.lease;
    if (!this.capabilities.has('leases') || driverLease === undefined) throw unsupported('lease()', `config (${this.backend})`, 'leases');
    const inner = await this.#runtime.run('lease', options, (signal) => driverLease.call(this.#driver, ttlMs, keepAlive, signal));
    if (this.#runtime.closed) {
      // The store closed while the grant was in flight: nobody will revoke this lease later.
      await inner.revoke().catch(() => undefined);
      throw new StowageError('CLOSED', `config (${this.backend}): lease() finished after close()`);
    }
    const lease = new CoreLease(inner, this.#runtime, () => this.#leases.delete(lease));
    this.#leases.add(lease);
    return lease;
  }

  health(options?: CallOptions): Promise<HealthReport> {
    return this.#runtime.health(options);
  }

  close(): Promise<void> {
    return this.#runtime.close(async () => {
      // Keys bound to this store's leases must not outlive it (they announce a live process).
      await Promise.allSettled([...this.#leases].map((lease) => lease.endOnClose()));
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** The lease the application sees: the driver's lease, plus loss on store close and error mapping. */
class CoreLease implements Lease {
  readonly #inner: Lease;
  readonly #runtime: PortRuntime;
  readonly #forget: () => void;
  readonly #lost = new AbortController();
  #revoking: Promise<void> | undefined;

  constructor(inner: Lease, runtime: PortRuntime, forget: () => void) {
    this.#inner = inner;
    this.#runtime = runtime;
    this.#forget = forget;
    const follow = (): void => {
      this.#lost.abort(inner.lost.reason);
      forget();
    };
    if (inner.lost.aborted) follow();
    else inner.lost.addEventListener('abort', follow, { once: true });
  }

  get id(): string {
    return this.#inner.id;
  }

  get ttlMs(): number {
    return this.#inner.ttlMs;
  }

  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  revoke(): Promise<void> {
    this.#revoking ??= (async () => {
      this.#forget();
      try {
        // Through the runtime while the store is open, so a backend that never answers gives TIMEOUT.
        if (!this.#inner.lost.aborted) {
          if (this.#runtime.closed) await this.#inner.revoke();
          else await this.#runtime.run('lease.revoke', undefined, () => this.#inner.revoke());
        }
      } catch (err) {
        throw this.#runtime.mapError(err, 'lease.revoke');
      } finally {
        this.#lost.abort(new StowageError('CANCELLED', `lease ${this.id} was revoked`));
      }
    })();
    return this.#revoking;
  }

  /** Revokes within a bounded time while the store closes, and marks the lease lost with CLOSED. */
  async endOnClose(): Promise<void> {
    const closed = new StowageError('CLOSED', `lease ${this.id} ended because the config store was closed`);
    let timer: NodeJS.Timeout | undefined;
    const limit = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, REVOKE_ON_CLOSE_MS);
    });
    // Lost first, so holders see CLOSED as the reason rather than the revoke that follows.
    this.#lost.abort(closed);
    try {
      if (!this.#inner.lost.aborted) await Promise.race([this.#inner.revoke().catch(() => undefined), limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.revoke();
  }
}
