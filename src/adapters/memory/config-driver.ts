/**
 * `mem://` config: keys in a Map, store-wide revisions, a bounded history for watches, leases on timers.
 * Nothing survives the process; meant for tests and throwaway use.
 *
 * @module
 */
import { configSnapshot } from '../../driver/config-snapshot.js';
import { ConfigEventHistory } from '../../driver/config-event-history.js';
import { randomUUID } from 'node:crypto';
import { StowageError } from '../../ports/errors.js';
import type { JsonValue, PingResult } from '../../ports/common.js';
import type {
  ConfigCapability,
  ConfigDeleteResult,
  ConfigDriver,
  ConfigEntry,
  ConfigEvent,
  ConfigSnapshot,
  ConfigWriteResult,
  Lease,
} from '../../ports/config.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';
import { quote } from '../../driver/validate.js';
import { revisionConflict } from '../../driver/errors.js';

/** How many events a `mem://` config store keeps for `watch(…, { afterRevision })` by default. */
export const DEFAULT_MEM_CONFIG_HISTORY = 10_000;

/** Options of {@link MemoryConfigDriver}. */
export interface MemoryConfigOptions {
  /**
   * How many past events are kept for watches that start from an earlier revision; a watch that needs an
   * older one, or falls this far behind, ends with COMPACTED.
   *
   * @defaultValue 10 000
   */
  historySize?: number;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

interface MemLease {
  readonly id: string;
  readonly keys: Set<string>;
  readonly lost: AbortController;
  timer: NodeJS.Timeout | undefined;
}

/**
 * The in-memory config driver. Entries and event values are deep-frozen, so reads hand them out without
 * copying (core gives the driver its own copy of every written value).
 */
export class MemoryConfigDriver implements ConfigDriver {
  readonly backend = 'mem';
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases']);
  readonly #entries = new Map<string, ConfigEntry>();
  readonly #leases = new Map<string, MemLease>();
  readonly #events: ConfigEventHistory;
  #revision = 0;

  /** @param options - history size */
  constructor(options: MemoryConfigOptions = {}) {
    this.#events = new ConfigEventHistory(options.historySize ?? DEFAULT_MEM_CONFIG_HISTORY, 'config (mem)');
  }

  /** Serves a read from memory: core's fast path. */
  getSync(key: string): ConfigEntry | undefined {
    return this.#entries.get(key);
  }

  async get(key: string, _signal?: AbortSignal): Promise<ConfigEntry | undefined> {
    return this.#entries.get(key);
  }

  async list(prefix: string, limit: number | undefined, _signal?: AbortSignal): Promise<ConfigSnapshot> {
    return configSnapshot(this.#entries.values(), prefix, limit, this.#revision);
  }

  async put(key: string, value: JsonValue, options: { ifRevision?: number; lease?: string }, _signal?: AbortSignal): Promise<ConfigWriteResult> {
    const current = this.#entries.get(key);
    this.#check(key, current, options.ifRevision);
    let lease: MemLease | undefined;
    if (options.lease !== undefined) {
      lease = this.#leases.get(options.lease);
      if (!lease) throw new StowageError('NOT_FOUND', `config (mem): lease ${quote(options.lease)} does not exist or has ended`);
    }
    if (current?.lease !== undefined) this.#leases.get(current.lease)?.keys.delete(key);
    lease?.keys.add(key);
    const revision = ++this.#revision;
    const entry: ConfigEntry = deepFreeze({
      key,
      value,
      revision,
      createRevision: current?.createRevision ?? revision,
      ...(lease ? { lease: lease.id } : {}),
    });
    this.#entries.set(key, entry);
    this.#emit(Object.freeze({ type: 'put', ...entry }));
    return { revision };
  }

  async delete(key: string, options: { ifRevision?: number }, _signal?: AbortSignal): Promise<ConfigDeleteResult> {
    const current = this.#entries.get(key);
    this.#check(key, current, options.ifRevision);
    if (!current) return { deleted: false, revision: this.#revision };
    if (current.lease !== undefined) this.#leases.get(current.lease)?.keys.delete(key);
    return { deleted: true, revision: this.#remove(key, 'deleted') };
  }

  #check(key: string, current: ConfigEntry | undefined, ifRevision: number | undefined): void {
    if (ifRevision === undefined) return;
    const actual = current?.revision ?? 0;
    if (actual !== ifRevision) {
      throw revisionConflict(key, actual, ifRevision, 'config (mem)');
    }
  }

  #remove(key: string, reason: 'deleted' | 'lease-expired'): number {
    this.#entries.delete(key);
    const revision = ++this.#revision;
    this.#emit(Object.freeze({ type: 'delete', key, revision, reason }));
    return revision;
  }

  #emit(event: ConfigEvent): void {
    this.#events.emit(event);
  }

  watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    return this.#events.watch(prefix, afterRevision ?? this.#revision, signal);
  }

  async lease(ttlMs: number, keepAlive: boolean, _signal?: AbortSignal): Promise<Lease> {
    const id = randomUUID();
    const record: MemLease = { id, keys: new Set(), lost: new AbortController(), timer: undefined };
    this.#leases.set(id, record);
    // In one process keep-alive always succeeds, so a kept-alive lease lives until revoked.
    if (!keepAlive) {
      record.timer = setTimeout(() => {
        this.#end(record, new StowageError('UNAVAILABLE', `lease ${id} expired after ${ttlMs} ms without keep-alive`));
      }, ttlMs);
      record.timer.unref();
    }
    const end = (reason: StowageError): void => this.#end(record, reason);
    return {
      id,
      ttlMs,
      lost: record.lost.signal,
      revoke: async () => end(new StowageError('CANCELLED', `lease ${id} was revoked`)),
      [Symbol.asyncDispose]: async () => end(new StowageError('CANCELLED', `lease ${id} was revoked`)),
    };
  }

  #end(record: MemLease, reason: StowageError): void {
    if (!this.#leases.delete(record.id)) return;
    clearTimeout(record.timer);
    for (const key of [...record.keys].sort()) this.#remove(key, 'lease-expired');
    record.keys.clear();
    record.lost.abort(reason);
  }

  async ping(_signal?: AbortSignal): Promise<PingResult> {
    return {};
  }

  async close(): Promise<void> {
    for (const record of [...this.#leases.values()]) this.#end(record, new StowageError('CLOSED', `lease ${record.id} ended: store closed`));
    this.#events.clear();
  }

  /** The driver itself: there is no other client. */
  native(): unknown {
    return this;
  }
}

/** `mem://` for the config port. Parameters: `historySize` (events kept for watches, default 10 000). */
export const memConfigScheme: SchemeDefinition<'config'> = {
  port: 'config',
  scheme: 'mem',
  params: ['historySize'],
  open: async (url) => new MemoryConfigDriver({ historySize: intParam(url, 'historySize', DEFAULT_MEM_CONFIG_HISTORY, { min: 1, max: 10_000_000 }) }),
};
