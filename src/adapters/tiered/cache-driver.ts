/**
 * The `tiered://` cache: a memory tier in front of a Redis cache, kept coherent across nodes with
 * invalidation messages on a Redis channel.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import type { Cluster, Redis } from 'ioredis';
import { StowageError } from '../../ports/errors.js';
import type { CacheCapability, CacheDriver, CacheLock } from '../../ports/cache.js';
import type { Logger } from '../../driver/index.js';

/** The part of an ioredis client the tiered driver uses: publish, and a duplicate to subscribe with. */
type PubSubClient = Pick<Redis, 'publish' | 'duplicate'>;

/** Options of {@link TieredCacheDriver}. */
export interface TieredCacheOptions {
  /** The memory tier (a `mem://` driver). */
  local: CacheDriver;
  /** The shared tier (a `redis://` driver). */
  remote: CacheDriver;
  /** The longest a local copy is kept, in milliseconds; bounds staleness if an invalidation is lost. */
  localTtlMs: number;
  /** The Redis channel invalidations travel on. */
  channel: string;
  /** Where subscription trouble is reported. */
  logger: Logger;
}

/** What {@link TieredCacheDriver.native} gives. */
export interface TieredNative {
  /** The memory tier's own native object (its map). */
  readonly local: unknown;
  /** The Redis tier's client (ioredis). */
  readonly remote: unknown;
}

/** An invalidation message: from node `n`, drop keys `k` or every key with prefix `p`. */
interface Invalidation {
  n: string;
  k?: string[];
  p?: string;
}

/** The most keys one invalidation message names. */
const INVALIDATION_BATCH = 1_000;

/** Keys whose invalidation goes out in one message at the end of this turn of the event loop. */
interface InvalidationBatch {
  readonly keys: string[];
  sent: Promise<void>;
}

/** A remote read or write in flight: if an invalidation for its key arrives meanwhile, its result is not kept locally. */
interface Ticket {
  invalidated: boolean;
}

/**
 * A two-tier cache driver.
 *
 * Reads are served from the memory tier when it holds the key, without touching Redis — so they keep
 * working while Redis is down. A miss reads Redis and keeps a local copy for at most `localTtlMs`. Every
 * write (set, delete, clear) goes to Redis, then publishes an invalidation that makes every other node drop
 * its copy. A remote read racing with an invalidation of its key does not store its (possibly old) result.
 * When the subscription reconnects after an outage, the whole memory tier is dropped: invalidations sent
 * meanwhile were lost (Redis pub/sub does not keep them).
 */
export class TieredCacheDriver implements CacheDriver {
  /** Always `tiered`. */
  readonly backend = 'tiered';
  /** `distributedInvalidation`, `sharedAcrossProcesses`, and the remote's `distributedSingleFlight`. */
  readonly capabilities: ReadonlySet<CacheCapability>;
  readonly #local: CacheDriver;
  readonly #remote: CacheDriver;
  readonly #publisher: PubSubClient;
  readonly #subscriber: Redis | Cluster;
  readonly #localTtlMs: number;
  readonly #channel: string;
  readonly #logger: Logger;
  /** This node's id, so it ignores its own invalidations. */
  readonly #nodeId = randomUUID();
  readonly #tickets = new Map<string, Set<Ticket>>();
  /** The invalidation message being gathered in this turn of the event loop ({@link TieredCacheDriver.#invalidate}). */
  #batch: InvalidationBatch | undefined;
  /**
   * Bumped when a clear starts and when it ends here; with the count of clears running, it tells a remote
   * read whether it overlapped a clear, and then it keeps nothing locally.
   */
  #clearGeneration = 0;
  #clearsRunning = 0;
  #connectedOnce = false;

  private constructor(options: TieredCacheOptions, publisher: PubSubClient, subscriber: Redis | Cluster) {
    this.#local = options.local;
    this.#remote = options.remote;
    this.#publisher = publisher;
    this.#subscriber = subscriber;
    this.#localTtlMs = options.localTtlMs;
    this.#channel = options.channel;
    this.#logger = options.logger;
    const capabilities = new Set<CacheCapability>(['distributedInvalidation', 'sharedAcrossProcesses']);
    if (options.remote.capabilities.has('distributedSingleFlight') && options.remote.lock) capabilities.add('distributedSingleFlight');
    this.capabilities = capabilities;
  }

  /**
   * Opens the tiered driver over `local` and `remote`, subscribing to the invalidation channel on a
   * dedicated connection (a subscribed connection can run no other command, and needs no command timeout).
   *
   * @throws StowageError INVALID_ARGUMENT when the remote is not a Redis driver; UNAVAILABLE when the
   *   subscription cannot be made.
   */
  static async open(options: TieredCacheOptions): Promise<TieredCacheDriver> {
    const native = options.remote.native?.() as Partial<PubSubClient> | undefined;
    if (typeof native?.publish !== 'function' || typeof native.duplicate !== 'function') {
      throw new StowageError('INVALID_ARGUMENT', `tiered:// needs a Redis remote (redis://, rediss://, redis+sentinel://), got ${options.remote.backend}://`);
    }
    const publisher = native as PubSubClient;
    // Auto-pipelining off: with it, ioredis may send SELECT after SUBSCRIBE on reconnect (ioredis#1505).
    const override = { commandTimeout: undefined, enableOfflineQueue: true, enableAutoPipelining: false };
    const client = native as unknown as Redis | Cluster;
    const subscriber =
      'nodes' in client && typeof client.nodes === 'function'
        ? client.duplicate([], { ...override, redisOptions: { ...client.options.redisOptions, commandTimeout: undefined } })
        : publisher.duplicate(override);
    const driver = new TieredCacheDriver(options, publisher, subscriber);
    subscriber.on('error', (err: Error) => options.logger.debug(`tiered cache subscription: ${err.message}`));
    subscriber.on('message', (channel: string, message: string) => {
      if (channel === options.channel) driver.#onInvalidation(message);
    });
    subscriber.on('ready', () => driver.#onSubscriberReady());
    try {
      await subscriber.connect();
      await subscriber.subscribe(options.channel);
    } catch (err) {
      subscriber.disconnect();
      throw new StowageError('UNAVAILABLE', `tiered cache: cannot subscribe to the invalidation channel`, { cause: err });
    }
    return driver;
  }

  #onSubscriberReady(): void {
    if (!this.#connectedOnce) {
      this.#connectedOnce = true;
      return;
    }
    // Invalidations published while this node was cut off are lost: no local copy can be trusted now.
    this.#logger.info('tiered cache: invalidation channel reconnected; dropping the memory tier');
    this.#invalidateAllTickets();
    this.#local.clearPrefix('', AbortSignal.timeout(1000)).catch(() => undefined);
  }

  #onInvalidation(message: string): void {
    let parsed: Invalidation;
    try {
      parsed = JSON.parse(message) as Invalidation;
    } catch {
      this.#logger.warn('tiered cache: ignored a malformed invalidation message');
      return;
    }
    if (parsed.n === this.#nodeId) return;
    const signal = AbortSignal.timeout(1000);
    if (typeof parsed.p === 'string') {
      const prefix = parsed.p;
      for (const [key, tickets] of this.#tickets) if (key.startsWith(prefix)) for (const t of tickets) t.invalidated = true;
      this.#local.clearPrefix(prefix, signal).catch(() => undefined);
    }
    if (Array.isArray(parsed.k)) {
      for (const key of parsed.k) {
        for (const t of this.#tickets.get(key) ?? []) t.invalidated = true;
        this.#local.delete(key, signal).catch(() => undefined);
      }
    }
  }

  #invalidateAllTickets(): void {
    for (const tickets of this.#tickets.values()) for (const t of tickets) t.invalidated = true;
  }

  /**
   * Registers a remote operation on `keys`, so invalidations arriving meanwhile mark it. Two operations of
   * this process on one key at once mark each other too: which reached Redis last is unknown, so neither
   * result is kept locally and the next read goes to Redis.
   */
  #issue(keys: readonly string[]): { ticket: Ticket; done: () => void } {
    const ticket: Ticket = { invalidated: false };
    for (const k of keys) {
      let set = this.#tickets.get(k);
      if (set === undefined) this.#tickets.set(k, (set = new Set()));
      if (set.size > 0) {
        ticket.invalidated = true;
        for (const other of set) other.invalidated = true;
      }
      set.add(ticket);
    }
    const done = (): void => {
      for (const k of keys) {
        const set = this.#tickets.get(k);
        set?.delete(ticket);
        if (set?.size === 0) this.#tickets.delete(k);
      }
    };
    return { ticket, done };
  }

  async #publish(invalidation: Omit<Invalidation, 'n'>): Promise<void> {
    await this.#publisher.publish(this.#channel, JSON.stringify({ n: this.#nodeId, ...invalidation }));
  }

  /**
   * Publishes the invalidation of `keys`, in one message with the keys of the other writes that reach this
   * point in the same turn of the event loop (at most {@link INVALIDATION_BATCH} keys a message). Each
   * caller's keys are in Redis already, so the message still follows every write it names. With 100 sets
   * in flight, one PUBLISH per set was a third of the client's CPU per set; one set alone waits only for
   * the end of the turn.
   */
  #invalidate(keys: readonly string[]): Promise<void> {
    let batch = this.#batch;
    if (batch === undefined || batch.keys.length >= INVALIDATION_BATCH) {
      const next: InvalidationBatch = { keys: [], sent: Promise.resolve() };
      next.sent = new Promise<void>((resolve) => setImmediate(resolve)).then(() => {
        if (this.#batch === next) this.#batch = undefined;
        return this.#publish({ k: next.keys });
      });
      this.#batch = batch = next;
    }
    for (const key of keys) batch.keys.push(key);
    return batch.sent;
  }

  #localTtl(ttlMs: number | undefined): number {
    return ttlMs === undefined ? this.#localTtlMs : Math.min(ttlMs, this.#localTtlMs);
  }

  async #localGet(key: string, signal: AbortSignal): Promise<string | undefined> {
    return this.#local.getSync !== undefined ? this.#local.getSync(key) : this.#local.get(key, signal);
  }

  /** Reads the memory tier, then Redis (keeping a local copy). */
  async get(key: string, signal: AbortSignal): Promise<string | undefined> {
    const local = await this.#localGet(key, signal);
    if (local !== undefined) return local;
    const { ticket, done } = this.#issue([key]);
    const generation = this.#clearGeneration;
    try {
      const value = await this.#remote.get(key, signal);
      if (value !== undefined && !ticket.invalidated && this.#noClearSince(generation)) {
        await this.#local.set(key, value, this.#localTtlMs, signal);
      }
      return value;
    } finally {
      done();
    }
  }

  /** Reads what the memory tier holds and the rest from Redis in one call. */
  async getMany(keys: readonly string[], signal: AbortSignal): Promise<(string | undefined)[]> {
    const values: (string | undefined)[] = [];
    const missing: number[] = [];
    for (const [i, k] of keys.entries()) {
      const v = await this.#localGet(k, signal);
      values.push(v);
      if (v === undefined) missing.push(i);
    }
    if (missing.length === 0) return values;
    const missingKeys = missing.map((i) => keys[i] as string);
    const { ticket, done } = this.#issue(missingKeys);
    const generation = this.#clearGeneration;
    try {
      const remote = await this.#remote.getMany(missingKeys, signal);
      const keep: { key: string; value: string; ttlMs: number }[] = [];
      for (const [j, i] of missing.entries()) {
        const v = remote[j];
        values[i] = v;
        if (v !== undefined) keep.push({ key: keys[i] as string, value: v, ttlMs: this.#localTtlMs });
      }
      if (!ticket.invalidated && this.#noClearSince(generation) && keep.length > 0) await this.#local.setMany(keep, signal);
      return values;
    } finally {
      done();
    }
  }

  /** Writes Redis, tells the other nodes, and keeps a local copy. */
  async set(key: string, value: string, ttlMs: number | undefined, signal: AbortSignal): Promise<void> {
    const { ticket, done } = this.#issue([key]);
    try {
      await this.#local.delete(key, signal);
      await this.#remote.set(key, value, ttlMs, signal);
      await this.#invalidate([key]);
      if (!ticket.invalidated) await this.#local.set(key, value, this.#localTtl(ttlMs), signal);
    } finally {
      done();
    }
  }

  /** Writes Redis in one pipeline, tells the other nodes in one message, and keeps local copies. */
  async setMany(entries: readonly { key: string; value: string; ttlMs: number | undefined }[], signal: AbortSignal): Promise<void> {
    const keys = entries.map((e) => e.key);
    const { ticket, done } = this.#issue(keys);
    try {
      for (const k of keys) await this.#local.delete(k, signal);
      await this.#remote.setMany(entries, signal);
      await this.#invalidate(keys);
      if (!ticket.invalidated) {
        await this.#local.setMany(
          entries.map((e) => ({ key: e.key, value: e.value, ttlMs: this.#localTtl(e.ttlMs) })),
          signal,
        );
      }
    } finally {
      done();
    }
  }

  /** Deletes from both tiers and tells the other nodes. */
  async delete(key: string, signal: AbortSignal): Promise<boolean> {
    // The ticket makes a read of this key racing with the delete keep nothing locally.
    const { done } = this.#issue([key]);
    try {
      await this.#local.delete(key, signal);
      const existed = await this.#remote.delete(key, signal);
      await this.#invalidate([key]);
      return existed;
    } finally {
      done();
    }
  }

  /** Clears a prefix in both tiers and tells the other nodes. */
  async clearPrefix(prefix: string, signal: AbortSignal): Promise<void> {
    this.#clearGeneration++;
    this.#clearsRunning++;
    try {
      await this.#local.clearPrefix(prefix, signal);
      await this.#remote.clearPrefix(prefix, signal);
      await this.#publish({ p: prefix });
    } finally {
      this.#clearsRunning--;
      this.#clearGeneration++;
    }
  }

  #noClearSince(generation: number): boolean {
    return this.#clearsRunning === 0 && generation === this.#clearGeneration;
  }

  /** The remote's cross-process lock (`?lock=true` on the remote URL). */
  async lock(key: string, signal: AbortSignal): Promise<CacheLock> {
    if (this.#remote.lock === undefined) throw new StowageError('UNSUPPORTED', 'tiered cache: the remote offers no lock (add lock=true to its URL)');
    return this.#remote.lock(key, signal);
  }

  /**
   * A round-trip to Redis; also fails (UNAVAILABLE) while the invalidation channel is not subscribed, since
   * this node's local copies may then go stale without it knowing.
   */
  async ping(signal: AbortSignal): ReturnType<CacheDriver['ping']> {
    const result = await this.#remote.ping(signal);
    if (this.#subscriber.status !== 'ready') {
      throw new StowageError('UNAVAILABLE', `tiered cache: the invalidation channel is not subscribed (connection ${this.#subscriber.status})`);
    }
    return result;
  }

  /** Redis errors are classified by the remote driver. */
  mapError(err: unknown): StowageError | undefined {
    return this.#remote.mapError?.(err);
  }

  /** Stops the subscription and closes both tiers. */
  async close(): Promise<void> {
    this.#subscriber.disconnect();
    await Promise.allSettled([this.#remote.close(), this.#local.close()]);
  }

  /** The memory tier's map and the ioredis client. */
  native(): TieredNative {
    return { local: this.#local.native?.(), remote: this.#remote.native?.() };
  }
}
