/**
 * The config port: JSON values under hierarchical keys, with revisions, compare-and-set, watch and leases.
 *
 * @module
 */
import type { CallOptions, DriverBase, JsonValue, Lifecycle } from './common.js';

/**
 * What a config adapter can do beyond the basics (`get`, `list`, `put`, `delete`, compare-and-set), which
 * every adapter supports.
 *
 * - `watch` — `watch(prefix, { afterRevision })` delivers history.
 * - `leases` — `lease(ttlMs)` and `put(…, { lease })` for ephemeral keys.
 * - `externalChanges` — changes made outside this process (another node, a person editing a file) are seen
 *   by `get` and `watch`.
 */
export type ConfigCapability = 'watch' | 'leases' | 'externalChanges';

/**
 * One key as stored.
 *
 * Revisions are store-wide and strictly increasing: every successful write (put, delete, lease expiry) gets
 * a revision greater than every earlier one, and `revision` is the revision of this key's last write
 * (etcd's mod revision).
 */
export interface ConfigEntry {
  /** The key. */
  readonly key: string;
  /** The value. */
  readonly value: JsonValue;
  /** The revision of the last write to this key. Use it for `put(…, { ifRevision })`. */
  readonly revision: number;
  /** The revision at which the key was (last) created. */
  readonly createRevision: number;
  /** The lease the key is bound to, if any: the key is deleted when the lease expires or is revoked. */
  readonly lease?: string;
}

/** A snapshot of every key under a prefix, with the store revision it reflects. */
export interface ConfigSnapshot {
  /** Entries sorted by key (code-point order). */
  readonly entries: readonly ConfigEntry[];
  /**
   * The store revision the snapshot reflects. `watch(prefix, { afterRevision: snapshot.revision })` then
   * delivers exactly the changes after it: nothing missed, nothing twice.
   */
  readonly revision: number;
}

/** Options of {@link ConfigStore.put}. */
export interface ConfigPutOptions extends CallOptions {
  /**
   * Compare-and-set: write only if the key's current revision equals this. `0` means "only if the key does
   * not exist". A mismatch rejects with CONFLICT (details: `{ key, revision }` of the current state) and
   * changes nothing.
   */
  ifRevision?: number;
  /** Bind the key to a lease (from {@link ConfigStore.lease}); it is deleted when the lease ends. */
  lease?: string;
}

/** Options of {@link ConfigStore.delete}. */
export interface ConfigDeleteOptions extends CallOptions {
  /** Compare-and-set: delete only if the key's current revision equals this; else CONFLICT. */
  ifRevision?: number;
}

/** Options of {@link ConfigStore.list}. */
export interface ConfigListOptions extends CallOptions {
  /** At most this many entries (the first ones in key order). */
  limit?: number;
}

/** Options of {@link ConfigStore.watch}. */
export interface ConfigWatchOptions {
  /**
   * Deliver every change with a revision **strictly greater** than this one: the revision of the last
   * change the caller already has (a snapshot's `revision`, the last event's `revision`). `0` delivers the
   * whole history the store keeps. Note that this is not etcd's `startRevision`, which includes the change
   * at that revision: `afterRevision: n` is etcd's `startRevision: n + 1`.
   *
   * When omitted the watch starts at the store's current revision (only future changes). If the backend no
   * longer keeps the history needed, the iterator throws COMPACTED; resync with `list()` and watch after
   * its `revision`.
   */
  afterRevision?: number;
  /**
   * The former name of {@link ConfigWatchOptions.afterRevision}, with the same meaning (strictly after).
   * Giving both with different values is INVALID_ARGUMENT.
   *
   * @deprecated Use `afterRevision`: the old name read as "from this revision on", which it never meant.
   * To be removed in 0.2.
   */
  fromRevision?: number;
  /** Ends the watch: the iterator returns normally. */
  signal?: AbortSignal;
}

/**
 * One change seen by a watch.
 *
 * A watch delivers every change under its prefix after its start revision, in revision order, each exactly
 * once: no gaps, no repeats, also across reconnections of the adapter.
 */
export type ConfigEvent = ConfigPutEvent | ConfigDeleteEvent;

/** A key was written. */
export interface ConfigPutEvent {
  /** Discriminant. */
  readonly type: 'put';
  /** The key. */
  readonly key: string;
  /** The new value. */
  readonly value: JsonValue;
  /** The revision of this write. */
  readonly revision: number;
  /** The revision at which the key was (last) created. */
  readonly createRevision: number;
  /** The lease the key is bound to, if any. */
  readonly lease?: string;
}

/** A key went away. */
export interface ConfigDeleteEvent {
  /** Discriminant. */
  readonly type: 'delete';
  /** The key. */
  readonly key: string;
  /** The revision of the delete. */
  readonly revision: number;
  /** Why the key went away: an explicit delete, or its lease ended. */
  readonly reason: 'deleted' | 'lease-expired';
}

/** The result of a config write. */
export interface ConfigWriteResult {
  /** The store revision of the write. */
  readonly revision: number;
}

/** The result of a config delete. */
export interface ConfigDeleteResult {
  /** Whether the key existed. */
  readonly deleted: boolean;
  /** The store revision after the delete. */
  readonly revision: number;
}

/**
 * A lease for ephemeral keys. The store keeps it alive in the background until `revoke()`; if keep-alive
 * fails for longer than the TTL, the lease is lost: `lost` aborts and every key bound to it is gone.
 */
export interface Lease extends AsyncDisposable {
  /** The lease id, for `put(…, { lease })`. */
  readonly id: string;
  /** The time to live granted, in milliseconds. */
  readonly ttlMs: number;
  /**
   * Aborts when the lease is lost (expired without a successful keep-alive, revoked, or the store
   * closed). Its `reason` is a StowageError explaining why.
   */
  readonly lost: AbortSignal;
  /** Ends the lease now; its keys are deleted. Idempotent. */
  revoke(): Promise<void>;
}

/** Options of {@link ConfigStore.lease}. */
export interface LeaseOptions extends CallOptions {
  /** Keep the lease alive automatically (default true). With false it simply expires after `ttlMs`. */
  keepAlive?: boolean;
}

/**
 * The config port: what the application calls.
 *
 * Guarantees, checked by the config contract suite:
 * - keys are validated once (non-empty, at most 1024 bytes, no NUL, no control characters, no lone
 *   surrogates, no empty, `.` or `..` segment between `/`); bad keys give INVALID_ARGUMENT and change nothing;
 * - values are JSON, at most {@link ConfigStore.maxValueBytes} bytes serialised, else RESOURCE_EXHAUSTED;
 * - every write gets a store-wide revision greater than all before it;
 * - `put` with `ifRevision` is an atomic compare-and-set (`0` = create only);
 * - a watch delivers every later change in revision order without gaps or repeats (capability `watch`);
 * - a key bound to a lease disappears when the lease expires or is revoked, and watchers see the delete
 *   (capability `leases`).
 */
export interface ConfigStore extends Lifecycle {
  /** What this adapter supports beyond the basics. */
  readonly capabilities: ReadonlySet<ConfigCapability>;
  /** The largest serialised value accepted, in bytes. */
  readonly maxValueBytes: number;
  /** Reads one key; undefined when it does not exist. */
  get(key: string, options?: CallOptions): Promise<ConfigEntry | undefined>;
  /** Reads every key starting with `prefix` (`''` for all), sorted by key, with the revision they reflect. */
  list(prefix: string, options?: ConfigListOptions): Promise<ConfigSnapshot>;
  /** Writes a key; resolves with the new revision once the write is durable under the adapter's policy. */
  put(key: string, value: JsonValue, options?: ConfigPutOptions): Promise<ConfigWriteResult>;
  /** Deletes a key; resolves with whether it existed. */
  delete(key: string, options?: ConfigDeleteOptions): Promise<ConfigDeleteResult>;
  /**
   * Changes under `prefix`, as an async iterable. Ending the loop (`break`) or aborting the signal stops
   * the watch; closing the store ends it with CLOSED (unless its signal aborted first: then it just ends).
   * While it runs it keeps the process alive, on every adapter.
   *
   * @example
   * ```ts
   * const { entries, revision } = await config.list('app/');
   * for await (const ev of config.watch('app/', { afterRevision: revision })) apply(ev);
   * ```
   */
  watch(prefix: string, options?: ConfigWatchOptions): AsyncIterable<ConfigEvent>;
  /** Grants a lease of `ttlMs` milliseconds (at least 1000), kept alive until revoked (capability `leases`). */
  lease(ttlMs: number, options?: LeaseOptions): Promise<Lease>;
}

/**
 * What a config adapter implements. Core has validated every key and value, and passes a signal carrying the
 * call's deadline.
 */
export interface ConfigDriver extends DriverBase {
  /** What the driver supports. */
  readonly capabilities: ReadonlySet<ConfigCapability>;
  /**
   * Set when the driver stores a written value only as its JSON text (`put`'s `json`) and never keeps the
   * value itself. Core then passes `put` the caller's own value instead of making a copy that would go unused
   * (one parse per write less); the driver must neither keep nor change it.
   *
   * @defaultValue false
   */
  readonly storesJson?: boolean;
  /** Reads one key. */
  get(key: string, signal: AbortSignal): Promise<ConfigEntry | undefined>;
  /**
   * Reads one key synchronously from memory, when the driver serves reads from memory (it cannot hang, so
   * core skips the deadline machinery: this is the fast path of in-memory and file-backed config).
   */
  getSync?(key: string): ConfigEntry | undefined;
  /** Reads keys under a prefix in key order, with the revision they reflect. */
  list(prefix: string, limit: number | undefined, signal: AbortSignal): Promise<ConfigSnapshot>;
  /**
   * Writes atomically, honouring `ifRevision` and `lease`. On an `ifRevision` mismatch throw
   * `new StowageError('CONFLICT', …, { details: { key, revision } })`, `revision` being the key's current revision
   * (0 when it does not exist): callers retry from it, and the contract suite checks `details.revision`.
   *
   * The value arrives twice: `value`, a deep copy the driver may keep (unless it declares
   * {@link ConfigDriver.storesJson}), and `json`, the JSON text core validated and measured against the size
   * limit (`JSON.stringify(value)` gives the same text). A driver that stores text stores `json` instead of
   * serialising again; one that keeps values ignores it. Core always passes `json`; it is optional so that
   * drivers and callers written before it keep working, and a driver that uses it falls back to
   * `JSON.stringify(value)` when it is absent.
   *
   * @param json - the JSON text of `value`, from core
   */
  put(
    key: string,
    value: JsonValue,
    options: { ifRevision?: number; lease?: string },
    signal: AbortSignal,
    json?: string,
  ): Promise<ConfigWriteResult>;
  /** Deletes atomically, honouring `ifRevision` (a mismatch is CONFLICT with `details: { key, revision }`, as for `put`). */
  delete(key: string, options: { ifRevision?: number }, signal: AbortSignal): Promise<ConfigDeleteResult>;
  /**
   * Changes under `prefix` with revision > `afterRevision` (strictly after; from now when undefined), in
   * order, until `signal` aborts, then returns. Throws COMPACTED when the history is gone.
   */
  watch?(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncIterable<ConfigEvent>;
  /** Grants a lease; the driver keeps it alive when `keepAlive` is set and aborts `lost` when it ends. */
  lease?(ttlMs: number, keepAlive: boolean, signal: AbortSignal): Promise<Lease>;
}
