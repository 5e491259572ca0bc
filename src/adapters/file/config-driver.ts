/**
 * `file://` config: one JSON (or YAML) file, read into memory, written durably, shared safely between
 * processes on one machine, and watched for changes by other processes and by people.
 *
 * How it works:
 * - Reads are served from memory (`getSync`), so `get` costs a Map lookup.
 * - Writes are queued and group-committed: under an inter-process lock file (`<file>.lock`), the file is
 *   re-read if it changed since this process last saw it, the queued writes are applied in order (each with
 *   its own revision, compare-and-set checked against the fresh state), and the file is replaced durably
 *   (temp file → fsync → rename → fsync of the folder). A write resolves only once it is on disk. Two
 *   processes writing the same file therefore never lose a write.
 * - The folder is watched (`fs.watch`, debounced); a change made by another process or a person is
 *   reconciled against the revisions in the file: a stowage write carries its revision; a hand edit (a
 *   value changed, a key added or removed, a plain key → value file) gets fresh revisions, and the file is
 *   rewritten in the full format under the lock so every process agrees on them. Watchers receive each
 *   resulting change once, in revision order. Several writes by another process to the same key between two
 *   reloads arrive as their final state (like a compacted history); writes made through this process's
 *   store are delivered one by one.
 * - A file broken by hand gives CORRUPTED naming the file, line and column: at open, and for writes while it
 *   stays broken. Reads and running watchers keep the last good config; a warning is logged.
 * - Leases live in the memory of the process that holds them (keep-alive is implicit while it runs). The file
 *   records the owner (pid, host, a per-process token) of each lease; any process that finds the owner dead
 *   (same host, pid gone or reused) deletes the lease's keys (`lease-expired`). Owners on another host
 *   (a shared network folder) cannot be checked and are taken as alive.
 *
 * The file format is documented in `config-format.ts`.
 *
 * Over 600 lines on purpose: writes, reloads, watches and leases all go through the one in-memory state
 * and the one write queue under the lock file; the parts that stand alone are elsewhere (`config-format.ts`,
 * `lock-file.ts`, the event history in `stowage/driver`).
 *
 * @module
 */
import { configSnapshot } from '../../driver/config-snapshot.js';
import { compareCodePoints } from '../../driver/index.js';
import { ConfigEventHistory } from '../../driver/config-event-history.js';
import { randomUUID } from 'node:crypto';
import { watch as watchFolder, type BigIntStats, type FSWatcher } from 'node:fs';
import { mkdir, open, stat } from 'node:fs/promises';
import { basename, dirname, isAbsolute, join, resolve } from 'node:path';
import { isDeepStrictEqual } from 'node:util';
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
import type { Logger, SchemeDefinition } from '../../driver/index.js';
import { boolParam, enumParam, intParam, type StowageUrl } from '../../driver/url.js';
import { quote } from '../../driver/validate.js';
import { fileSystemError, writeFileAtomic } from '../../driver/durable-file.js';
import {
  formatConfigFile,
  isYamlPath,
  parseConfigFile,
  type ConfigFileState,
  type StoredKey,
  type StoredLease,
  type StoredTombstone,
} from './config-format.js';
import { hostName, processAlive, removeDeadProcessTemps } from '../../driver/pid-lock.js';
import { withLockFile } from './lock-file.js';
import { revisionConflict } from '../../driver/errors.js';

/** Events a `file://` config store keeps for watches from an earlier revision, by default. */
export const DEFAULT_FILE_CONFIG_HISTORY = 10_000;
/** Deletes remembered in the file, so other processes learn their revisions. */
const TOMBSTONES_KEPT = 1000;
/** How long file-system events are gathered before the file is re-read, by default. */
export const DEFAULT_FILE_CONFIG_DEBOUNCE_MS = 25;
/** How often foreign leases are checked for a dead owner (and the file's stamp is polled). */
const LEASE_CHECK_MS = 1000;
/** How long a write waits for another process to release the lock. */
const LOCK_WAIT_MS = 30_000;
/** How long a stream of writes keeps the lock file before it leaves it free for other processes. */
const LOCK_HOLD_MS = 500;
/** How long the lock is left free after {@link LOCK_HOLD_MS}: more than withLockFile's longest retry pause (20 ms). */
const LOCK_YIELD_MS = 25;

/** Identifies this process in lease records, so a later process that reuses the pid is not mistaken for it. */
const PROCESS_TOKEN = randomUUID();

/** Options of {@link FileConfigDriver.open}. */
export interface FileConfigOptions {
  /** Events kept for watches from an earlier revision; older ones give COMPACTED. @defaultValue 10 000 */
  historySize?: number;
  /** Where warnings go (a broken file while running). */
  logger?: Logger;
  /** How long file-system events are gathered before the file is re-read. @defaultValue 25 */
  debounceMs?: number;
  /** The file's syntax. @defaultValue YAML when the name ends `.yaml`/`.yml`, else JSON */
  format?: 'json' | 'yaml';
  /**
   * Watch the folder for changes by other processes and people. With false, such changes are seen only when
   * this process next writes (it re-reads the file under the lock first). @defaultValue true
   */
  watch?: boolean;
}

interface FileStamp {
  ino: bigint;
  size: bigint;
  mtimeNs: bigint;
}

/** A working copy of the store, changed by a batch and swapped in once the file is written. */
interface Draft {
  entries: Map<string, ConfigEntry>;
  revision: number;
  leases: Map<string, StoredLease>;
  deleted: Map<string, StoredTombstone>;
  events: ConfigEvent[];
  dirty: boolean;
  /** Permission bits of the file as found under the lock (undefined: no file yet), kept by the rewrite. */
  mode: number | undefined;
}

type Op =
  | { kind: 'put'; key: string; value: JsonValue; ifRevision?: number; lease?: string }
  | { kind: 'delete'; key: string; ifRevision?: number }
  | { kind: 'grant'; id: string; ttlMs: number }
  | { kind: 'end'; id: string }
  | { kind: 'sync' };

interface Queued {
  op: Op;
  signal: AbortSignal | undefined;
  resolve: (result: unknown) => void;
  reject: (err: unknown) => void;
  /** Set once resolved or rejected. */
  settled?: boolean;
}

interface OwnLease {
  readonly lost: AbortController;
  timer: NodeJS.Timeout | undefined;
}

function sameStamp(a: FileStamp | undefined, b: FileStamp | undefined): boolean {
  return a !== undefined && b !== undefined && a.ino === b.ino && a.size === b.size && a.mtimeNs === b.mtimeNs;
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const v of Object.values(value)) deepFreeze(v);
  }
  return value;
}

function entryOf(key: string, value: JsonValue, revision: number, createRevision: number, lease: string | undefined): ConfigEntry {
  return deepFreeze({ key, value, revision, createRevision, ...(lease !== undefined ? { lease } : {}) });
}

/** The `file://` config driver. Open it with {@link FileConfigDriver.open}. */
export class FileConfigDriver implements ConfigDriver {
  readonly backend = 'file';
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases', 'externalChanges']);
  readonly #path: string;
  readonly #lockPath: string;
  readonly #yaml: boolean;
  readonly #logger: Logger | undefined;
  readonly #historySize: number;
  readonly #debounceMs: number;
  readonly #watchFolder: boolean;
  #entries = new Map<string, ConfigEntry>();
  #revision = 0;
  #leases = new Map<string, StoredLease>();
  #deleted = new Map<string, StoredTombstone>();
  #stamp: FileStamp | undefined;
  #broken: { stamp: FileStamp; error: StowageError } | undefined;
  readonly #own = new Map<string, OwnLease>();
  /**
   * Events as seen by this process, from the revision it loaded on: made by {@link FileConfigDriver.open}'s
   * load, which runs before anyone holds the driver.
   */
  #events!: ConfigEventHistory;
  #queue: Queued[] = [];
  #draining: Promise<void> | undefined;
  /** Set when the lock was released after {@link LOCK_HOLD_MS}: the next drain round pauses first. */
  #yieldLock = false;
  #syncQueued = false;
  #watcher: FSWatcher | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #leaseTimer: NodeJS.Timeout | undefined;
  #closed = false;

  private constructor(path: string, options: FileConfigOptions) {
    this.#path = path;
    this.#lockPath = `${path}.lock`;
    this.#yaml = options.format === undefined ? isYamlPath(path) : options.format === 'yaml';
    this.#logger = options.logger;
    this.#historySize = options.historySize ?? DEFAULT_FILE_CONFIG_HISTORY;
    this.#debounceMs = options.debounceMs ?? DEFAULT_FILE_CONFIG_DEBOUNCE_MS;
    this.#watchFolder = options.watch ?? true;
  }

  /**
   * Opens (creating the folder if needed) the config file at an absolute `path`.
   *
   * @throws StowageError CORRUPTED when the file exists and cannot be read as config.
   */
  static async open(path: string, options: FileConfigOptions = {}): Promise<FileConfigDriver> {
    const driver = new FileConfigDriver(resolve(path), options);
    await driver.#load();
    return driver;
  }

  async #load(): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    // Temp files of writers that died between creating and renaming them.
    await removeDeadProcessTemps(this.#path);
    const read = await this.#read();
    if (read) {
      if (read.error) throw read.error;
      this.#stamp = read.stamp;
      this.#adopt(read.state);
    }
    this.#events = new ConfigEventHistory(this.#historySize, `config file ${this.#path}`, this.#revision);
    if (this.#watchFolder) {
      this.#watcher = watchFolder(dirname(this.#path), { persistent: false }, (_event, name) => {
        if (name === null || name === basename(this.#path)) this.#scheduleSync();
      });
      this.#watcher.on('error', (err) => this.#logger?.warn(`config file ${this.#path}: watching the folder failed: ${err.message}`));
    }
    this.#leaseTimer = setInterval(() => {
      if ([...this.#leases.values()].some((l) => this.#leaseDead(l))) this.#scheduleSync({ force: true });
      // A slow poll behind fs.watch, which can miss events (network file systems, some editors' saves).
      else if (this.#watchFolder && this.#draining === undefined) void this.#syncIfChanged({ force: false });
    }, LEASE_CHECK_MS);
    this.#leaseTimer.unref();
    if ([...this.#leases.values()].some((l) => this.#leaseDead(l))) this.#scheduleSync({ force: true });
  }

  /** Takes a freshly opened file as the state, assigning revisions (in key order) to keys that lack them. */
  #adopt(state: ConfigFileState): void {
    let revision = state.revision ?? 0;
    for (const stored of state.keys.values()) revision = Math.max(revision, stored.revision ?? 0);
    for (const key of [...state.keys.keys()].sort(compareCodePoints)) {
      const stored = state.keys.get(key) as StoredKey;
      const rev = stored.revision ?? ++revision;
      this.#entries.set(key, entryOf(key, stored.value, rev, stored.createRevision ?? rev, stored.lease));
    }
    this.#revision = revision;
    this.#leases = state.leases;
    this.#deleted = state.deleted;
  }

  /** Reads and parses the file; undefined when it does not exist. A parse failure is returned, not thrown. */
  async #read(): Promise<{ stamp: FileStamp; state: ConfigFileState; error?: undefined } | { stamp: FileStamp; error: StowageError } | undefined> {
    let text: string;
    let stamp: FileStamp;
    try {
      // One handle for stat and read, so the stamp describes exactly the text read.
      const handle = await open(this.#path, 'r');
      try {
        const s = await handle.stat({ bigint: true });
        text = await handle.readFile('utf8');
        stamp = { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
      } finally {
        await handle.close();
      }
    } catch (err) {
      if ((err as { code?: string }).code === 'ENOENT') return undefined;
      throw err;
    }
    try {
      return { stamp, state: parseConfigFile(text, this.#path, this.#yaml) };
    } catch (err) {
      if (StowageError.is(err, 'CORRUPTED')) return { stamp, error: err };
      throw err;
    }
  }

  #scheduleSync({ force = false } = {}): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => void this.#syncIfChanged({ force }), this.#debounceMs);
    this.#debounce.unref();
  }

  /** Queues a reload unless the file is the one this process last wrote or read (its own writes wake fs.watch too). */
  async #syncIfChanged({ force }: { force: boolean }): Promise<void> {
    if (this.#syncQueued || this.#closed) return;
    if (!force) {
      const now = await stat(this.#path, { bigint: true }).then(
        (st): FileStamp | undefined => ({ ino: st.ino, size: st.size, mtimeNs: st.mtimeNs }),
        () => undefined,
      );
      if (now === undefined ? this.#stamp === undefined : sameStamp(this.#stamp, now) || sameStamp(this.#broken?.stamp, now)) return;
      if (this.#syncQueued || this.#closed) return;
    }
    this.#syncQueued = true;
    this.#enqueue({ kind: 'sync' }, undefined).catch((err: unknown) => {
      this.#logger?.warn(`config file ${this.#path}: reloading failed: ${(err as Error).message}`);
    });
  }

  #leaseDead(lease: StoredLease): boolean {
    if (lease.host !== hostName()) return false;
    if (lease.pid === process.pid) return lease.token !== PROCESS_TOKEN;
    return !processAlive(lease.pid);
  }

  #enqueue<T>(op: Op, signal: AbortSignal | undefined): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#queue.push({ op, signal, resolve: resolve as (r: unknown) => void, reject });
      // The queue is not empty, so #drain reaches an await before it could clear #draining: this assigns a
      // drain still running.
      this.#draining ??= this.#drain();
    });
  }

  async #drain(): Promise<void> {
    try {
      while (this.#queue.length > 0) {
        let batch = this.#take();
        let failure: { error: unknown } | undefined;
        try {
          await withLockFile(this.#lockPath, AbortSignal.timeout(LOCK_WAIT_MS), async () => {
            const heldSince = performance.now();
            // Operations queued while a batch was written, or by callers resuming from it, are written under
            // the same lock: taking and releasing the lock file costs about as much as the write itself.
            while ((failure = await this.#runBatch(batch)) === undefined && (await this.#moreUnderLock(heldSince))) batch = this.#take();
          });
        } catch (err) {
          // Taking (or releasing) the lock failed: the batch that was waiting for it is not written.
          failure ??= { error: err };
        }
        // A failed batch is rejected once the lock is released, so its callers find no lock file left behind.
        if (failure !== undefined) for (const item of batch) this.#settle(item, { ok: false, error: failure.error });
        if (this.#yieldLock) {
          this.#yieldLock = false;
          // Held for LOCK_HOLD_MS without a pause: leave the lock free for longer than another process's
          // longest wait between two tries (20 ms in withLockFile), so a writer there is not starved.
          await new Promise((resolve) => setTimeout(resolve, LOCK_YIELD_MS));
        }
      }
    } finally {
      // Cleared in the same turn as the loop's last look at the queue, so that an operation queued after
      // it starts a new drain. (Cleared by a `.finally` on this promise, a few ticks later, an operation that
      // a caller queued on resuming from the last batch waited, unseen, until another one started a drain.)
      this.#draining = undefined;
    }
  }

  /** Takes the queued operations as one batch. */
  #take(): Queued[] {
    const batch = this.#queue;
    this.#queue = [];
    if (batch.some((q) => q.op.kind === 'sync')) this.#syncQueued = false;
    return batch;
  }

  /**
   * Under the lock: applies and writes one batch, then commits it and settles its callers (the file is
   * on disk by then). Returns the error when the batch failed as a whole (no caller is settled then), so
   * the lock is released before they learn it and before anything else is tried.
   */
  async #runBatch(batch: Queued[]): Promise<{ error: unknown } | undefined> {
    const results = new Map<Queued, { ok: true; value: unknown } | { ok: false; error: unknown }>();
    let draft: Draft;
    try {
      draft = await this.#prepare();
      for (const item of batch) {
        if (item.signal?.aborted) {
          results.set(item, { ok: false, error: item.signal.reason ?? new StowageError('CANCELLED', 'cancelled') });
          continue;
        }
        try {
          results.set(item, { ok: true, value: this.#apply(draft, item.op) });
        } catch (err) {
          results.set(item, { ok: false, error: err });
        }
      }
      if (draft.dirty) await this.#write(draft);
    } catch (err) {
      return { error: err };
    }
    this.#commit(draft);
    for (const item of batch) this.#settle(item, results.get(item) ?? { ok: false, error: new StowageError('INTERNAL', 'config file: operation lost') });
    return undefined;
  }

  /** Resolves or rejects a caller, once. */
  #settle(item: Queued, result: { ok: true; value: unknown } | { ok: false; error: unknown }): void {
    if (item.settled === true) return;
    item.settled = true;
    if (result.ok) item.resolve(result.value);
    else item.reject(result.error);
  }

  /**
   * Under the lock, after a batch: whether more operations arrived by the next turn of the event loop
   * (callers awaiting the batch just settled have resumed by then) and the lock may be kept for them.
   */
  async #moreUnderLock(heldSince: number): Promise<boolean> {
    if (this.#queue.length === 0) await new Promise((resolve) => setImmediate(resolve));
    if (this.#queue.length === 0) return false;
    if (performance.now() - heldSince >= LOCK_HOLD_MS) {
      this.#yieldLock = true;
      return false;
    }
    return true;
  }

  /** Under the lock: a working copy of the current state, reconciled with the file if it changed. */
  async #prepare(): Promise<Draft> {
    const draft: Draft = {
      entries: new Map(this.#entries),
      revision: this.#revision,
      leases: new Map(this.#leases),
      deleted: new Map(this.#deleted),
      events: [],
      dirty: false,
      mode: undefined,
    };
    const s = await stat(this.#path, { bigint: true }).catch((err: { code?: string }) => {
      if (err.code === 'ENOENT') return undefined;
      throw err;
    });
    const now: FileStamp | undefined = s && { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
    // Known here, so the rewrite need not stat the file again to keep its mode.
    draft.mode = s && Number(s.mode & 0o777n);
    if (this.#broken && sameStamp(this.#broken.stamp, now)) throw this.#broken.error;
    if (!sameStamp(this.#stamp, now)) {
      if (now === undefined && this.#stamp === undefined) {
        // Still no file: nothing to reconcile.
      } else {
        const read = await this.#read();
        if (read?.error) {
          if (!sameStamp(this.#broken?.stamp, read.stamp)) this.#logger?.warn(`${read.error.message}; keeping the last good config`);
          this.#broken = { stamp: read.stamp, error: read.error };
          throw read.error;
        }
        this.#broken = undefined;
        this.#reconcile(draft, read?.state ?? { revision: undefined, keys: new Map(), leases: new Map(), deleted: new Map() });
        this.#stamp = read?.stamp;
      }
    }
    for (const [id, lease] of draft.leases) if (this.#leaseDead(lease)) this.#endLease(draft, id);
    return draft;
  }

  /**
   * Brings the draft to the file's content. Changes carrying a revision newer than ours were written by
   * another stowage process and keep it; anything else that differs is a hand edit and gets a fresh revision
   * (then the file is rewritten, so every process agrees on the numbers).
   */
  #reconcile(draft: Draft, file: ConfigFileState): void {
    const known: ConfigEvent[] = [];
    const handPuts: string[] = [];
    const handDeletes: string[] = [];
    for (const [key, stored] of file.keys) {
      const mine = draft.entries.get(key);
      if (stored.revision !== undefined && stored.revision > (mine?.revision ?? draft.revision)) {
        const entry = entryOf(key, stored.value, stored.revision, stored.createRevision ?? stored.revision, stored.lease);
        known.push({ type: 'put', ...entry });
      } else if (mine === undefined || !isDeepStrictEqual(mine.value, stored.value)) {
        handPuts.push(key);
      } else if (stored.revision === undefined && file.revision !== undefined) {
        draft.dirty = true; // a revision was removed by hand: write it back
      }
    }
    for (const [key, mine] of draft.entries) {
      if (file.keys.has(key)) continue;
      const tomb = file.deleted.get(key);
      if (tomb && tomb.revision > mine.revision) known.push({ type: 'delete', key, revision: tomb.revision, reason: tomb.reason });
      else handDeletes.push(key);
    }
    known.sort((a, b) => a.revision - b.revision);
    let revision = Math.max(draft.revision, file.revision ?? 0, known.at(-1)?.revision ?? 0);
    for (const event of known) this.#record(draft, event);
    for (const key of handPuts.sort(compareCodePoints)) {
      const stored = file.keys.get(key) as StoredKey;
      const mine = draft.entries.get(key);
      const rev = ++revision;
      this.#record(draft, { type: 'put', ...entryOf(key, stored.value, rev, mine?.createRevision ?? rev, stored.lease) });
    }
    for (const key of handDeletes.sort(compareCodePoints)) this.#record(draft, { type: 'delete', key, revision: ++revision, reason: 'deleted' });
    if (handPuts.length > 0 || handDeletes.length > 0) draft.dirty = true;
    draft.revision = revision;
    draft.leases = new Map(file.leases);
    for (const [key, tomb] of file.deleted) if (!draft.deleted.has(key) || (draft.deleted.get(key) as StoredTombstone).revision < tomb.revision) draft.deleted.set(key, tomb);
  }

  /** Applies one event to the draft (entries, tombstones) and queues it for watchers. */
  #record(draft: Draft, event: ConfigEvent): void {
    if (event.type === 'put') {
      const { type: _type, ...entry } = event;
      draft.entries.set(event.key, deepFreeze(entry));
      draft.deleted.delete(event.key);
    } else {
      draft.entries.delete(event.key);
      draft.deleted.set(event.key, { revision: event.revision, reason: event.reason });
    }
    draft.events.push(Object.freeze(event));
  }

  #apply(draft: Draft, op: Op): unknown {
    switch (op.kind) {
      case 'put': {
        const current = draft.entries.get(op.key);
        this.#check(op.key, current, op.ifRevision);
        if (op.lease !== undefined && !draft.leases.has(op.lease)) {
          throw new StowageError('NOT_FOUND', `config (file): lease ${quote(op.lease)} does not exist or has ended`);
        }
        const revision = ++draft.revision;
        this.#record(draft, { type: 'put', ...entryOf(op.key, op.value, revision, current?.createRevision ?? revision, op.lease) });
        draft.dirty = true;
        return { revision };
      }
      case 'delete': {
        const current = draft.entries.get(op.key);
        this.#check(op.key, current, op.ifRevision);
        if (!current) return { deleted: false, revision: draft.revision };
        const revision = ++draft.revision;
        this.#record(draft, { type: 'delete', key: op.key, revision, reason: 'deleted' });
        draft.dirty = true;
        return { deleted: true, revision };
      }
      case 'grant':
        draft.leases.set(op.id, { pid: process.pid, host: hostName(), token: PROCESS_TOKEN, ttlMs: op.ttlMs });
        draft.dirty = true;
        return undefined;
      case 'end':
        this.#endLease(draft, op.id);
        return undefined;
      case 'sync':
        return undefined;
    }
  }

  #endLease(draft: Draft, id: string): void {
    if (!draft.leases.delete(id)) return;
    draft.dirty = true;
    const keys = [...draft.entries.values()].filter((e) => e.lease === id).map((e) => e.key).sort(compareCodePoints);
    for (const key of keys) this.#record(draft, { type: 'delete', key, revision: ++draft.revision, reason: 'lease-expired' });
  }

  #check(key: string, current: ConfigEntry | undefined, ifRevision: number | undefined): void {
    if (ifRevision === undefined) return;
    const actual = current?.revision ?? 0;
    if (actual !== ifRevision) {
      throw revisionConflict(key, actual, ifRevision, 'config (file)');
    }
  }

  async #write(draft: Draft): Promise<void> {
    if (draft.deleted.size > TOMBSTONES_KEPT) {
      const oldest = [...draft.deleted.entries()].sort((a, b) => a[1].revision - b[1].revision);
      for (const [key] of oldest.slice(0, draft.deleted.size - TOMBSTONES_KEPT)) draft.deleted.delete(key);
    }
    const keys = new Map<string, StoredKey>();
    for (const e of draft.entries.values()) {
      keys.set(e.key, { value: e.value, revision: e.revision, createRevision: e.createRevision, ...(e.lease !== undefined ? { lease: e.lease } : {}) });
    }
    const text = formatConfigFile({ revision: draft.revision, keys, leases: draft.leases, deleted: draft.deleted }, this.#yaml);
    let s: BigIntStats | undefined;
    try {
      // A config file is not secret (it may be edited by hand): a new one is 0644; an existing one keeps its mode.
      s = await writeFileAtomic(this.#path, text, draft.mode === undefined ? { mode: 0o644, stat: true } : { mode: draft.mode, keepMode: false, stat: true });
    } catch (err) {
      // The file is as it was (the temporary file is removed) and nothing in memory changed: once space is back
      // the next write goes through.
      throw fileSystemError(err, 'replace the config file', this.#path);
    }
    this.#stamp = s && { ino: s.ino, size: s.size, mtimeNs: s.mtimeNs };
    this.#broken = undefined;
  }

  /** Swaps the written draft in, tells watchers, and notices own leases that ended. */
  #commit(draft: Draft): void {
    this.#entries = draft.entries;
    this.#revision = draft.revision;
    this.#leases = draft.leases;
    this.#deleted = draft.deleted;
    for (const event of draft.events) this.#events.emit(event);
    for (const [id, own] of this.#own) {
      if (this.#leases.has(id)) continue;
      this.#own.delete(id);
      clearTimeout(own.timer);
      own.lost.abort(new StowageError('UNAVAILABLE', `lease ${id} ended`));
    }
  }

  getSync(key: string): ConfigEntry | undefined {
    return this.#entries.get(key);
  }

  async get(key: string, _signal?: AbortSignal): Promise<ConfigEntry | undefined> {
    return this.#entries.get(key);
  }

  async list(prefix: string, limit: number | undefined, _signal?: AbortSignal): Promise<ConfigSnapshot> {
    return configSnapshot(this.#entries.values(), prefix, limit, this.#revision);
  }

  put(key: string, value: JsonValue, options: { ifRevision?: number; lease?: string }, signal: AbortSignal): Promise<ConfigWriteResult> {
    return this.#enqueue({ kind: 'put', key, value, ifRevision: options.ifRevision, lease: options.lease }, signal);
  }

  delete(key: string, options: { ifRevision?: number }, signal: AbortSignal): Promise<ConfigDeleteResult> {
    return this.#enqueue({ kind: 'delete', key, ifRevision: options.ifRevision }, signal);
  }

  watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    return this.#events.watch(prefix, afterRevision ?? this.#revision, signal);
  }

  async lease(ttlMs: number, keepAlive: boolean, signal: AbortSignal): Promise<Lease> {
    const id = randomUUID();
    await this.#enqueue({ kind: 'grant', id, ttlMs }, signal);
    const own: OwnLease = { lost: new AbortController(), timer: undefined };
    this.#own.set(id, own);
    // Keep-alive is implicit while this process runs; without it the lease simply expires after its TTL.
    if (!keepAlive) {
      own.timer = setTimeout(() => void this.#enqueue({ kind: 'end', id }, undefined).catch(() => undefined), ttlMs);
      own.timer.unref();
    }
    const revoke = async (): Promise<void> => {
      if (own.lost.signal.aborted) return;
      await this.#enqueue({ kind: 'end', id }, undefined);
    };
    return { id, ttlMs, lost: own.lost.signal, revoke, [Symbol.asyncDispose]: revoke };
  }

  async ping(_signal?: AbortSignal): Promise<PingResult> {
    await stat(dirname(this.#path));
    return {};
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    const mine = [...this.#own.keys()];
    await Promise.allSettled(mine.map((id) => this.#enqueue({ kind: 'end', id }, undefined)));
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearInterval(this.#leaseTimer);
    this.#watcher?.close();
    await this.#draining;
    this.#events.clear();
  }

  /** The path of the config file. */
  native(): unknown {
    return { path: this.#path };
  }
}

/**
 * The file a `file://` config URL names: its absolute path, or `config.json` in the data folder for `file://`
 * alone.
 *
 * @throws StowageError INVALID_ARGUMENT for a host or a relative path.
 */
export function fileConfigPath(url: StowageUrl, dataDir: string): string {
  if (url.hosts.length > 0) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a file URL takes no host; write file:///absolute/path/config.json`);
  }
  const path = url.path === '' || url.path === '/' ? join(dataDir, 'config.json') : url.path;
  if (!isAbsolute(path)) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: the path must be absolute`);
  return path;
}

/**
 * `file://` for the config port: `file:///absolute/path/config.json` (or `.yaml`/`.yml`); `file://` alone
 * means `config.json` in the data folder. Parameters: `historySize` (events kept for watches, default
 * 10 000), `debounceMs` (default 25), `format` (`json` or `yaml`; default from the file name), `watch`
 * (`false` to not watch the folder).
 */
export const fileConfigScheme: SchemeDefinition<'config'> = {
  port: 'config',
  scheme: 'file',
  params: ['historySize', 'debounceMs', 'format', 'watch'],
  localPath: (url, dataDir) => fileConfigPath(url, dataDir),
  open: async (url, context) => {
    return FileConfigDriver.open(fileConfigPath(url, context.dataDir), {
      historySize: intParam(url, 'historySize', DEFAULT_FILE_CONFIG_HISTORY, { min: 1, max: 10_000_000 }),
      debounceMs: intParam(url, 'debounceMs', DEFAULT_FILE_CONFIG_DEBOUNCE_MS, { min: 0, max: 60_000 }),
      format: url.params.has('format') ? enumParam<'json' | 'yaml'>(url, 'format', ['json', 'yaml'], 'json') : undefined,
      watch: boolParam(url, 'watch', true),
      logger: context.logger,
    });
  },
};
