/**
 * The `mem://` cache: an LRU map in process memory with TTLs, bounded by entry count and bytes.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CacheCapability, CacheDriver } from '../../ports/cache.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';

/** Default `maxEntries` of a `mem://` cache. */
export const DEFAULT_MEM_CACHE_MAX_ENTRIES = 100_000;
/** Default `maxBytes` of a `mem://` cache: 64 MiB. */
export const DEFAULT_MEM_CACHE_MAX_BYTES = 64 * 1024 * 1024;
/**
 * What one entry costs besides its strings, in bytes: the list node, the map slot and the strings' headers
 * (measured roughly with V8 heap snapshots; an estimate, not an exact figure).
 */
const ENTRY_OVERHEAD_BYTES = 96;
/** How often expired entries that nobody reads are looked for. */
const SWEEP_INTERVAL_MS = 1000;
/** How many entries one sweep examines at most, so a sweep never blocks the event loop for long. */
const SWEEP_BATCH = 2000;

/** The bytes accounted to an entry: UTF-16 size of key and value plus the fixed overhead. */
function entryBytes(key: string, value: string): number {
  return (key.length + value.length) * 2 + ENTRY_OVERHEAD_BYTES;
}

/** Options of {@link MemoryCacheDriver}. */
export interface MemoryCacheOptions {
  /** The most entries kept; the least recently used go first. */
  maxEntries: number;
  /** The most bytes kept (UTF-16 size of keys and values plus a fixed overhead per entry). */
  maxBytes: number;
}

/**
 * One entry, also a node of the recency list (head: most recently used). Its accounted size is not kept:
 * {@link entryBytes} recomputes it from the two lengths, which saves 8 bytes of heap per entry.
 */
interface Entry {
  readonly key: string;
  value: string;
  /** Epoch millisecond after which the entry is gone; 0: never. */
  expiresAt: number;
  newer: Entry | undefined;
  older: Entry | undefined;
}

/**
 * An LRU cache driver in process memory.
 *
 * Expiry is lazy (an expired entry is dropped when read) plus a bounded sweep every second that looks at
 * up to 2000 entries, resuming where the last one stopped, so memory held by entries nobody
 * reads again is returned too. The recency list is a doubly linked list over the map's entries: a hit moves
 * one node, with no map re-insertion.
 */
export class MemoryCacheDriver implements CacheDriver {
  /** Always `mem`. */
  readonly backend = 'mem';
  /** None: entries live in this process only. */
  readonly capabilities: ReadonlySet<CacheCapability> = new Set();
  readonly #entries = new Map<string, Entry>();
  readonly #maxEntries: number;
  readonly #maxBytes: number;
  #bytes = 0;
  #newest: Entry | undefined;
  #oldest: Entry | undefined;
  #sweepTimer: NodeJS.Timeout | undefined;
  #sweepCursor: Iterator<Entry> | undefined;

  /** @param options - bounds */
  constructor(options: MemoryCacheOptions) {
    this.#maxEntries = options.maxEntries;
    this.#maxBytes = options.maxBytes;
  }

  /** Number of live and not yet swept entries (for tests and metrics). */
  get size(): number {
    return this.#entries.size;
  }

  /** Bytes accounted to the entries held. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Reads an entry from memory: core's fast path. */
  getSync(key: string): string | undefined {
    const entry = this.#entries.get(key);
    if (entry === undefined) return undefined;
    if (entry.expiresAt !== 0 && entry.expiresAt <= Date.now()) {
      this.#remove(entry);
      return undefined;
    }
    this.#touch(entry);
    return entry.value;
  }

  /** Reads an entry. */
  async get(key: string): Promise<string | undefined> {
    return this.getSync(key);
  }

  /** Reads entries in order. */
  async getMany(keys: readonly string[]): Promise<(string | undefined)[]> {
    return keys.map((k) => this.getSync(k));
  }

  /** Writes an entry, evicting the least recently used ones beyond the bounds. */
  async set(key: string, value: string, ttlMs: number | undefined): Promise<void> {
    this.#set(key, value, ttlMs);
  }

  /** Writes an entry in memory: core's fast path. */
  setSync(key: string, value: string, ttlMs: number | undefined): void {
    this.#set(key, value, ttlMs);
  }

  /** Writes entries; all are checked against `maxBytes` before any is written. */
  async setMany(entries: readonly { key: string; value: string; ttlMs: number | undefined }[]): Promise<void> {
    for (const e of entries) this.#checkSize(e.key, e.value);
    for (const e of entries) this.#set(e.key, e.value, e.ttlMs);
  }

  /** Removes an entry. */
  async delete(key: string): Promise<boolean> {
    const entry = this.#entries.get(key);
    if (entry === undefined) return false;
    this.#remove(entry);
    return entry.expiresAt === 0 || entry.expiresAt > Date.now();
  }

  /** Removes every entry whose key starts with `prefix`. */
  async clearPrefix(prefix: string): Promise<void> {
    for (const [key, entry] of this.#entries) if (key.startsWith(prefix)) this.#remove(entry);
  }

  /** Nothing to reach: always answers. */
  async ping(): ReturnType<CacheDriver['ping']> {
    return {};
  }

  /** Drops every entry and stops the sweep timer. */
  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#sweepTimer = undefined;
    this.#sweepCursor = undefined;
    this.#entries.clear();
    this.#newest = this.#oldest = undefined;
    this.#bytes = 0;
  }

  /** The map itself: there is no other client. */
  native(): unknown {
    return this.#entries;
  }

  #checkSize(key: string, value: string): number {
    const bytes = entryBytes(key, value);
    if (bytes > this.#maxBytes) {
      throw new StowageError(
        'RESOURCE_EXHAUSTED',
        `mem cache: an entry of ${bytes} bytes does not fit in maxBytes=${this.#maxBytes}`,
        { details: { limit: this.#maxBytes } },
      );
    }
    return bytes;
  }

  #set(key: string, value: string, ttlMs: number | undefined): void {
    const bytes = this.#checkSize(key, value);
    const expiresAt = ttlMs === undefined ? 0 : Date.now() + ttlMs;
    const existing = this.#entries.get(key);
    if (existing !== undefined) {
      this.#bytes += bytes - entryBytes(key, existing.value);
      existing.value = value;
      existing.expiresAt = expiresAt;
      this.#touch(existing);
    } else {
      const entry: Entry = { key, value, expiresAt, newer: undefined, older: this.#newest };
      if (this.#newest !== undefined) this.#newest.newer = entry;
      this.#newest = entry;
      this.#oldest ??= entry;
      this.#entries.set(key, entry);
      this.#bytes += bytes;
    }
    while (this.#oldest !== undefined && (this.#entries.size > this.#maxEntries || this.#bytes > this.#maxBytes)) {
      this.#remove(this.#oldest);
    }
    if (expiresAt !== 0 && this.#sweepTimer === undefined) {
      this.#sweepTimer = setInterval(() => this.#sweep(), SWEEP_INTERVAL_MS);
      this.#sweepTimer.unref();
    }
  }

  /** Makes `entry` the most recently used. */
  #touch(entry: Entry): void {
    if (entry === this.#newest) return;
    // Unlink: entry is not the newest, so it has a newer neighbour.
    (entry.newer as Entry).older = entry.older;
    if (entry.older !== undefined) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    entry.older = this.#newest;
    entry.newer = undefined;
    (this.#newest as Entry).newer = entry;
    this.#newest = entry;
  }

  #remove(entry: Entry): void {
    if (this.#entries.get(entry.key) !== entry) return;
    this.#entries.delete(entry.key);
    this.#bytes -= entryBytes(entry.key, entry.value);
    if (entry.newer !== undefined) entry.newer.older = entry.older;
    else this.#newest = entry.older;
    if (entry.older !== undefined) entry.older.newer = entry.newer;
    else this.#oldest = entry.newer;
    entry.newer = entry.older = undefined;
  }

  #sweep(): void {
    if (this.#entries.size === 0) {
      clearInterval(this.#sweepTimer);
      this.#sweepTimer = undefined;
      this.#sweepCursor = undefined;
      return;
    }
    const now = Date.now();
    // Map iterators stay valid across deletes and inserts, so a sweep resumes where the last one stopped.
    this.#sweepCursor ??= this.#entries.values();
    for (let i = 0; i < SWEEP_BATCH; i++) {
      const next = this.#sweepCursor.next();
      if (next.done === true) {
        this.#sweepCursor = undefined;
        return;
      }
      const entry = next.value;
      if (entry.expiresAt !== 0 && entry.expiresAt <= now) this.#remove(entry);
    }
  }
}

/**
 * The `mem://` cache scheme: `mem://?maxEntries=100000&maxBytes=67108864`. Each URL opened gives a new,
 * empty cache private to this process.
 */
export const memCacheScheme: SchemeDefinition<'cache'> = {
  port: 'cache',
  scheme: 'mem',
  params: ['maxEntries', 'maxBytes'],
  open: async (url) =>
    new MemoryCacheDriver({
      maxEntries: intParam(url, 'maxEntries', DEFAULT_MEM_CACHE_MAX_ENTRIES, { min: 1 }),
      maxBytes: intParam(url, 'maxBytes', DEFAULT_MEM_CACHE_MAX_BYTES, { min: 1024 }),
    }),
};
