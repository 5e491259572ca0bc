/**
 * `mem://` config: keys in a Map, store-wide revisions, a bounded history for watches, leases on timers.
 * Nothing survives the process; meant for tests and throwaway use.
 *
 * @module
 */
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
import type { SchemeDefinition } from '../../core/registry.js';
import { intParam } from '../../core/url.js';
import { quote } from '../../core/validate.js';

/** How many events a `mem://` config store keeps for `watch(…, { fromRevision })` by default. */
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

type Listener = (event: ConfigEvent) => void;

/**
 * The in-memory config driver. Entries and event values are deep-frozen, so reads hand them out without
 * copying (core gives the driver its own copy of every written value).
 */
export class MemoryConfigDriver implements ConfigDriver {
  readonly backend = 'mem';
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases']);
  readonly #entries = new Map<string, ConfigEntry>();
  readonly #leases = new Map<string, MemLease>();
  readonly #listeners = new Set<Listener>();
  readonly #historySize: number;
  /** A ring of the last events; one event per revision, so revision r sits at r % historySize. */
  readonly #history: ConfigEvent[] = [];
  #revision = 0;

  /** @param options - history size */
  constructor(options: MemoryConfigOptions = {}) {
    this.#historySize = options.historySize ?? DEFAULT_MEM_CONFIG_HISTORY;
  }

  /** Serves a read from memory: core's fast path. */
  getSync(key: string): ConfigEntry | undefined {
    return this.#entries.get(key);
  }

  async get(key: string, _signal?: AbortSignal): Promise<ConfigEntry | undefined> {
    return this.#entries.get(key);
  }

  async list(prefix: string, limit: number | undefined, _signal?: AbortSignal): Promise<ConfigSnapshot> {
    const entries: ConfigEntry[] = [];
    for (const entry of this.#entries.values()) if (entry.key.startsWith(prefix)) entries.push(entry);
    entries.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    return { entries: limit === undefined ? entries : entries.slice(0, limit), revision: this.#revision };
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
      throw new StowageError(
        'CONFLICT',
        `config (mem): key ${quote(key)} is at revision ${actual}${actual === 0 ? ' (absent)' : ''}, not ${ifRevision}`,
        { details: { key, revision: actual } },
      );
    }
  }

  #remove(key: string, reason: 'deleted' | 'lease-expired'): number {
    this.#entries.delete(key);
    const revision = ++this.#revision;
    this.#emit(Object.freeze({ type: 'delete', key, revision, reason }));
    return revision;
  }

  #emit(event: ConfigEvent): void {
    this.#history[event.revision % this.#historySize] = event;
    for (const listener of this.#listeners) listener(event);
  }

  /** The oldest revision still in the history (every later one is there too). */
  #oldestKept(): number {
    return Math.max(1, this.#revision - this.#historySize + 1);
  }

  async *watch(prefix: string, fromRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    const start = fromRevision ?? this.#revision;
    if (start + 1 < this.#oldestKept()) {
      throw new StowageError(
        'COMPACTED',
        `config (mem): watch of ${quote(prefix)} from revision ${start} needs history older than the last ${this.#historySize} events; resync with list() and watch from its revision`,
        { details: { fromRevision: start, oldestRevision: this.#oldestKept() } },
      );
    }
    const queue: ConfigEvent[] = [];
    // Replay and subscribe in the same synchronous step: no event can fall between the two.
    for (let r = start + 1; r <= this.#revision; r++) {
      const event = this.#history[r % this.#historySize];
      if (event && event.key.startsWith(prefix)) queue.push(event);
    }
    let wake: (() => void) | undefined;
    let overflow = false;
    const listener: Listener = (event) => {
      if (event.revision <= start || !event.key.startsWith(prefix)) return;
      // A watcher that stops reading must not grow memory without bound: it falls out of the history.
      if (queue.length >= this.#historySize) overflow = true;
      else queue.push(event);
      wake?.();
    };
    const onAbort = (): void => wake?.();
    this.#listeners.add(listener);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        const event = queue.shift();
        if (event) {
          yield event;
          continue;
        }
        if (overflow) {
          throw new StowageError('COMPACTED', `config (mem): watch of ${quote(prefix)} fell more than ${this.#historySize} events behind; resync with list()`);
        }
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
    } finally {
      this.#listeners.delete(listener);
      signal.removeEventListener('abort', onAbort);
    }
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
    this.#listeners.clear();
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
