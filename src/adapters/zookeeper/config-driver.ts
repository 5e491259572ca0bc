/**
 * `zookeeper://` config with the `node-zookeeper-client` client (pure JavaScript).
 *
 * The layout under the URL's chroot (`/stowage` by default):
 *
 * - `kv/<key>` — one znode per key, flat (the key percent-encoded, `/` included), holding the value's JSON text.
 *   A key bound to a lease is an ephemeral znode of the lease's own session.
 * - `log/e-<seq>` — the change log: one persistent sequential znode per write, created in the same multi-op
 *   transaction as the write, so it exists exactly when the write does. Watches read it; the newest `history`
 *   entries are kept and the zxid of the newest entry removed is kept in `log`'s data (older → COMPACTED).
 * - `rev` — set (unconditionally) in every write's transaction: the transaction's result gives the write's
 *   zxid, and `rev`'s mzxid is the store revision.
 * - `leases/<session>/` — one folder per lease, `alive` (ephemeral, of the lease's session) and one record
 *   `k<key>` per key bound to it, so that whoever sees `alive` vanish can log the lease-expired deletes.
 *
 * Revisions are zxids: store-wide and only growing (also across server restarts); a key's revision is its
 * mzxid, its create revision its czxid. Compare-and-set reads the key's stat and writes with its znode
 * version. A watch lists `log`'s children (with a ZooKeeper watch set, so the next entry wakes it), reads
 * the entries after the last one it delivered, and re-arms: a change between a watch firing and the next
 * read is in the log, so none is missed.
 *
 * Over 600 lines on purpose: writes, the change log, watches and leases are one layout of znodes kept
 * consistent by multi-op transactions; each part reads and writes the others' znodes, so the layout above is
 * the one map to read them by.
 *
 * @module
 */
import zookeeper, { type Client } from 'node-zookeeper-client';
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
import { compareCodePoints } from '../../driver/index.js';
import { revisionConflict, safeCause } from '../../driver/errors.js';
import { parseStoredJson, quote } from '../../driver/validate.js';
import {
  children,
  closeClient,
  commit,
  createClient,
  ensure,
  exists,
  getData,
  versioned,
  zkCode,
  zookeeperOptionsFromUrl,
  zxid,
  ZOOKEEPER_PARAMS,
  type ZookeeperConnection,
} from './connection.js';

const { CreateMode, Exception } = zookeeper;

/** The data of a znode that has none. */
const EMPTY = Buffer.alloc(0);

/** The ephemeral owner of a persistent znode. */
const NO_OWNER = '0000000000000000';

/**
 * The largest value stored: a write carries it twice (the key and its log entry) in one request, and
 * ZooKeeper refuses requests over `jute.maxbuffer` (1 MB by default).
 */
const MAX_VALUE_BYTES = 480 * 1024;

/** How many log entries a watch reads at once. */
const READ_BATCH = 256;

/** How often a watch re-reads the log when no ZooKeeper notification came. */
const WATCH_POLL_MS = 1000;

/** A write trims the log once every this many log sequence numbers. */
const TRIM_EVERY = 64;

/** A key as a znode name: percent-encoded, `.` too, so no name is `.`/`..` and `/` stays inside the name. */
function encodeKey(key: string): string {
  return encodeURIComponent(key).replace(/[!'()*.~]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * The ephemeral owner of a znode as hex (`0000000000000000` for a persistent one). The owner is read on every get
 * and every write, and most znodes have none: testing its two halves for zero skips the hex string then.
 */
function ownerOf(stat: zookeeper.Stat): string {
  const owner = stat.ephemeralOwner;
  return owner.readUInt32BE(0) === 0 && owner.readUInt32BE(4) === 0 ? NO_OWNER : owner.toString('hex');
}

/** How many key paths {@link ZookeeperConfigDriver} remembers (the cache is emptied when full). */
const PATH_CACHE = 10_000;

/** The sequence number of a log entry's name (`e-0000000042`). */
function seqOf(name: string): number {
  return Number(name.slice(2));
}

/**
 * Log entry names in log order. ZooKeeper writes a sequential znode's counter as ten zero-padded digits
 * (`e-0000000042`), so the names sort as plain strings: a comparator calling {@link seqOf} twice per comparison
 * cost 8 % of a client's CPU under 100 puts in flight, in the trim's sort of 11,000 names.
 */
function inLogOrder(names: string[]): string[] {
  return names.sort();
}

/** What a log entry's first line holds (its second line is the value's JSON text, for a put). */
interface LogHeader {
  /** `p` put, `d` delete. */
  readonly t: 'p' | 'd';
  readonly k: string;
  /** A put's create revision, when it is not the write's own (an update). */
  c?: number;
  /** The lease a put's key is bound to. */
  l?: string;
  /** A delete because the key's lease ended. */
  readonly x?: 1;
}

function logEntry(header: LogHeader, valueText = ''): Buffer {
  return Buffer.from(`${JSON.stringify(header)}\n${valueText}`);
}

/** Where a watch is in the change log. */
interface LogPosition {
  /** The revision of the last change delivered (or the watch's start). */
  last: number;
  /** The sequence number of the last log entry read; undefined until the first read finds it by revision. */
  seq: number | undefined;
}

/** ZooKeeper errors after which a watch reads again once the client is back. */
const TRANSIENT = new Set<number>([Exception.CONNECTION_LOSS, Exception.SESSION_EXPIRED, Exception.OPERATION_TIMEOUT]);

/**
 * The longest a watch waits for one read before it reads again. A request sent as a restarted server drops the
 * connection may never be answered nor failed by the client; the watch would wait on it for ever (seen once:
 * a watch that stopped at a server restart under load, with no error). Reads are idempotent: a watch's
 * position moves only on an answer.
 */
const WATCH_READ_MS = 10_000;

/** Resolves or rejects as `promise` does, or rejects with ZooKeeper's OPERATION_TIMEOUT after `ms`. */
function answeredWithin<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject((Exception as unknown as { create(code: number): Error }).create(Exception.OPERATION_TIMEOUT)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

/** A lease granted by this driver: its own session, which owns the lease's ephemeral znodes. */
interface LocalLease {
  readonly id: string;
  readonly client: Client;
  readonly lost: AbortSignal;
}

/** Resolves once `client` is connected; rejects (and closes it) when `signal` aborts first. */
function connected(client: Client, signal: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onAbort = (): void => {
      closeClient(client);
      reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    };
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    client.once('connected', () => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    });
    client.connect();
  });
}

/** The `zookeeper://` config driver. Open it with {@link ZookeeperConfigDriver.open}. */
export class ZookeeperConfigDriver implements ConfigDriver {
  readonly backend = 'zookeeper';
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases', 'externalChanges']);
  /** ZooKeeper holds a value's JSON text, so core's `put` skips copying the value. */
  readonly storesJson = true;
  readonly #connection: ZookeeperConnection;
  #client: Client;
  readonly #kv: string;
  readonly #log: string;
  readonly #rev: string;
  readonly #leaseDir: string;
  readonly #leases = new Map<string, LocalLease>();
  /** Ends the leases of this driver (on close). */
  readonly #leaseStops = new Set<() => void>();
  /** Wakes every running watch and the reaper: after a reconnection or a new session, re-read and re-arm. */
  readonly #wakers = new Set<() => void>();
  readonly #reaping = new Set<string>();
  /** The znode path of each key seen lately: encoding a key cost a get 1.5 µs of its ~35 µs of client CPU. */
  readonly #paths = new Map<string, string>();
  /** Set while {@link #trim} runs. */
  #trimming = false;
  #ready: Promise<void> | undefined;
  /** Set once the layout exists: calls then skip awaiting {@link #init}. */
  #initialized = false;
  #closed = false;
  /** Names the store in messages: `config (zookeeper /myapp)`. */
  readonly #where: string;

  private constructor(connection: ZookeeperConnection) {
    this.#connection = connection;
    this.#kv = `${connection.root}/kv`;
    this.#log = `${connection.root}/log`;
    this.#rev = `${connection.root}/rev`;
    this.#leaseDir = `${connection.root}/leases`;
    this.#where = `config (zookeeper ${connection.root})`;
    this.#client = this.#newClient();
  }

  /** Creates the client; it connects in the background, and every call waits for it within its deadline. */
  static async open(connection: ZookeeperConnection): Promise<ZookeeperConfigDriver> {
    return new ZookeeperConfigDriver(connection);
  }

  /** The store's own session; when the server expires it, a new one replaces it and every watch re-reads. */
  #newClient(): Client {
    const client = createClient(this.#connection.connectString, { sessionTimeout: this.#connection.sessionTimeoutMs, spinDelay: 200 });
    client.on('connected', () => this.#wakeAll());
    client.on('expired', () => {
      if (this.#closed || this.#client !== client) return;
      closeClient(client);
      this.#client = this.#newClient();
      this.#wakeAll();
    });
    client.connect();
    return client;
  }

  #wakeAll(): void {
    for (const wake of [...this.#wakers]) wake();
  }

  /** Creates the layout (once) and starts the reaper of ended leases. */
  #init(): Promise<void> {
    this.#ready ??= (async () => {
      const client = this.#client;
      for (const path of [this.#kv, this.#log, this.#rev, this.#leaseDir]) await ensure(client, path);
      this.#initialized = true;
      void this.#reaper();
    })().catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    return this.#ready;
  }

  #path(key: string): string {
    let path = this.#paths.get(key);
    if (path === undefined) {
      path = `${this.#kv}/${encodeKey(key)}`;
      if (this.#paths.size >= PATH_CACHE) this.#paths.clear();
      this.#paths.set(key, path);
    }
    return path;
  }

  mapError(err: unknown): StowageError | undefined {
    if (StowageError.is(err)) return err;
    const code = zkCode(err);
    if (code === undefined) return undefined;
    const cause = safeCause(err);
    if (code === Exception.CONNECTION_LOSS || code === Exception.SESSION_EXPIRED || code === Exception.OPERATION_TIMEOUT) {
      return new StowageError('UNAVAILABLE', `${this.#where}: ZooKeeper unreachable: ${String(err)}`, { cause });
    }
    if (code === Exception.NO_AUTH || code === Exception.AUTH_FAILED || code === Exception.INVALID_ACL) {
      return new StowageError('PERMISSION_DENIED', `${this.#where}: ZooKeeper refused: ${String(err)}`, { cause });
    }
    return undefined;
  }

  #entry(key: string, data: Buffer, stat: zookeeper.Stat): ConfigEntry {
    const text = data.toString('utf8');
    let value: JsonValue;
    try {
      value = JSON.parse(text) as JsonValue;
    } catch {
      value = parseStoredJson(text, `${this.#where}: key ${quote(key)}`);
    }
    const owner = ownerOf(stat);
    const base = { key, value, revision: zxid(stat.mzxid), createRevision: zxid(stat.czxid) };
    return owner === NO_OWNER ? base : { ...base, lease: owner };
  }

  /**
   * One read of the key's znode, its entry made in the client's callback: one promise a call, where awaiting
   * the shared `getData` helper took three (a get is one round trip, so those were a tenth of its client CPU).
   */
  get(key: string, _signal?: AbortSignal): Promise<ConfigEntry | undefined> {
    if (!this.#initialized) return this.#init().then(() => this.get(key));
    return new Promise((resolve, reject) => {
      this.#client.getData(this.#path(key), (err, data, stat) => {
        if (err) {
          if (zkCode(err) === Exception.NO_NODE) resolve(undefined);
          else reject(err);
          return;
        }
        try {
          resolve(this.#entry(key, data ?? EMPTY, stat));
        } catch (parseError) {
          reject(parseError);
        }
      });
    });
  }

  /** The store revision: the zxid of the last write. */
  async #storeRevision(client: Client): Promise<number> {
    const stat = await exists(client, this.#rev);
    return stat ? zxid(stat.mzxid) : 0;
  }

  /**
   * Reads the store revision, the keys, their values, and the revision again. Equal revisions mean every
   * read saw the state at that revision (a session's reads see the server's state in order, and every write
   * sets `rev`). Otherwise the reads are tried again; from the third try on (writes keep coming), every key
   * is read and the change log's entries between the two revisions are applied over the reads, which gives
   * the state at the second revision exactly: a key untouched in between was read right, a touched one
   * takes its last logged change.
   */
  async list(prefix: string, limit: number | undefined, signal: AbortSignal): Promise<ConfigSnapshot> {
    if (!this.#initialized) await this.#init();
    for (let attempt = 0; ; attempt++) {
      signal.throwIfAborted();
      const client = this.#client;
      const patch = attempt >= 2;
      const before = await this.#storeRevision(client);
      const keys = (await children(client, this.#kv))
        .map((name) => decodeURIComponent(name))
        .filter((key) => key.startsWith(prefix))
        .sort(compareCodePoints);
      const wanted = limit === undefined || patch ? keys : keys.slice(0, limit);
      const found = await Promise.all(wanted.map((key) => getData(client, this.#path(key))));
      const after = await this.#storeRevision(client);
      const byKey = new Map<string, ConfigEntry>();
      found.forEach((f, i) => {
        if (f) byKey.set(wanted[i]!, this.#entry(wanted[i]!, f.data, f.stat));
      });
      if (before !== after) {
        if (!patch) continue;
        const changes = await this.#changesBetween(client, before, after);
        if (!changes) continue;
        for (const change of changes) {
          if (!change.key.startsWith(prefix)) continue;
          if (change.type === 'delete') byKey.delete(change.key);
          else {
            const { type: _type, ...entry } = change;
            byKey.set(change.key, entry);
          }
        }
      }
      const entries = [...byKey.values()].sort((x, y) => compareCodePoints(x.key, y.key));
      return { entries: limit === undefined ? entries : entries.slice(0, limit), revision: after };
    }
  }

  /** The logged changes with revisions in (`from`, `to`], in order; undefined when the log no longer has them all. */
  async #changesBetween(client: Client, from: number, to: number): Promise<ConfigEvent[] | undefined> {
    const names = inLogOrder(await children(client, this.#log));
    if ((await this.#floor(client)).floor > from) return undefined;
    const changes: ConfigEvent[] = [];
    for (let i = await this.#firstAfter(client, names, from); i < names.length; i += READ_BATCH) {
      const batch = names.slice(i, i + READ_BATCH);
      const read = await Promise.all(batch.map((name) => getData(client, `${this.#log}/${name}`)));
      for (const found of read) {
        if (!found) return undefined;
        const revision = zxid(found.stat.czxid);
        if (revision > to) return changes;
        if (revision > from) changes.push(this.#event(found.data, revision));
      }
    }
    return changes;
  }

  /**
   * Reads the key's stat, then commits one transaction: the write (versioned by that stat), its log entry,
   * and `rev`. A concurrent change fails the transaction on the version; the loop then reads again (and with
   * `ifRevision` reports the CONFLICT). A change of lease (or to or from none) deletes and re-creates the znode,
   * since a znode cannot change owner: its create revision is then this write's.
   */
  async put(key: string, value: JsonValue, options: { ifRevision?: number; lease?: string }, signal: AbortSignal, json?: string): Promise<ConfigWriteResult> {
    if (!this.#initialized) await this.#init();
    const text = json ?? JSON.stringify(value);
    // UTF-8 takes at most 3 bytes per UTF-16 unit: a short text needs no byte count.
    if (text.length * 3 > MAX_VALUE_BYTES && Buffer.byteLength(text) > MAX_VALUE_BYTES) {
      throw new StowageError(
        'RESOURCE_EXHAUSTED',
        `${this.#where}: value of ${quote(key)} is over ${MAX_VALUE_BYTES} bytes, the most a ZooKeeper write can carry here (the value goes twice into one request under jute.maxbuffer)`,
      );
    }
    let lease: LocalLease | undefined;
    if (options.lease !== undefined) {
      lease = this.#leases.get(options.lease);
      if (!lease || lease.lost.aborted) throw new StowageError('NOT_FOUND', `${this.#where}: lease ${options.lease} does not exist or has ended`);
    }
    const client = lease?.client ?? this.#client;
    const path = this.#path(key);
    const data = Buffer.from(text);
    for (;;) {
      signal.throwIfAborted();
      const stat = await exists(client, path);
      const current = stat ? zxid(stat.mzxid) : 0;
      if (options.ifRevision !== undefined && current !== options.ifRevision) throw revisionConflict(key, current, options.ifRevision, this.#where);
      const owner = stat && ownerOf(stat);
      const wanted = lease?.id ?? NO_OWNER;
      const tx = client.transaction();
      let createRevision: number | undefined;
      if (stat && owner === wanted) {
        versioned(tx, 'setData', path, stat.version, data);
        createRevision = zxid(stat.czxid);
      } else {
        if (stat) {
          versioned(tx, 'remove', path, stat.version);
          if (owner !== NO_OWNER) await this.#dropRecord(tx, client, owner!, key);
        }
        tx.create(path, data, lease ? CreateMode.EPHEMERAL : CreateMode.PERSISTENT);
        if (lease) tx.create(`${this.#leaseDir}/${lease.id}/k${encodeKey(key)}`, Buffer.alloc(0), CreateMode.PERSISTENT);
      }
      const header: LogHeader = { t: 'p', k: key };
      if (createRevision !== undefined) header.c = createRevision;
      if (lease) header.l = lease.id;
      tx.create(`${this.#log}/e-`, logEntry(header, text), CreateMode.PERSISTENT_SEQUENTIAL);
      tx.setData(this.#rev, null, -1);
      const revision = await this.#commitWrite(tx);
      if (revision !== undefined) return { revision };
    }
  }

  async delete(key: string, options: { ifRevision?: number }, signal: AbortSignal): Promise<ConfigDeleteResult> {
    if (!this.#initialized) await this.#init();
    const client = this.#client;
    const path = this.#path(key);
    for (;;) {
      signal.throwIfAborted();
      const stat = await exists(client, path);
      const current = stat ? zxid(stat.mzxid) : 0;
      if (options.ifRevision !== undefined && current !== options.ifRevision) throw revisionConflict(key, current, options.ifRevision, this.#where);
      if (!stat) return { deleted: false, revision: await this.#storeRevision(client) };
      const tx = versioned(client.transaction(), 'remove', path, stat.version);
      const owner = ownerOf(stat);
      if (owner !== NO_OWNER) await this.#dropRecord(tx, client, owner, key);
      tx.create(`${this.#log}/e-`, logEntry({ t: 'd', k: key }), CreateMode.PERSISTENT_SEQUENTIAL);
      tx.setData(this.#rev, null, -1);
      const revision = await this.#commitWrite(tx);
      if (revision !== undefined) return { deleted: true, revision };
    }
  }

  /** Adds the removal of a lease's record of `key` to `tx`, when the record is there. */
  async #dropRecord(tx: zookeeper.Transaction, client: Client, owner: string, key: string): Promise<void> {
    const record = `${this.#leaseDir}/${owner}/k${encodeKey(key)}`;
    if (await exists(client, record)) tx.remove(record, -1);
  }

  /**
   * Commits a write whose last op sets `rev`: its zxid is the write's revision. Undefined when a znode
   * changed since it was read (the caller reads again).
   */
  async #commitWrite(tx: zookeeper.Transaction): Promise<number | undefined> {
    try {
      const results = await commit(tx);
      const logPath = results.at(-2)?.path;
      if (logPath !== undefined && seqOf(logPath.slice(logPath.lastIndexOf('/') + 1)) % TRIM_EVERY === 0 && !this.#trimming) {
        // One trim at a time: with many writes in flight, the next 64 land while one is still listing the log.
        this.#trimming = true;
        void this.#trim()
          .catch(() => undefined)
          .finally(() => {
            this.#trimming = false;
          });
      }
      return zxid(results.at(-1)!.stat!.mzxid);
    } catch (err) {
      const code = zkCode(err);
      if (code === Exception.BAD_VERSION || code === Exception.NO_NODE || code === Exception.NODE_EXISTS) return undefined;
      throw err;
    }
  }

  /** The zxid of the newest log entry removed (kept in `log`'s data) and `log`'s data version. */
  async #floor(client: Client): Promise<{ floor: number; version: number }> {
    const found = await getData(client, this.#log);
    return { floor: Number(found?.data.toString('utf8') || 0), version: found?.stat.version ?? -1 };
  }

  /**
   * Keeps the newest `history` log entries, once the log has grown a quarter past them: raises the floor
   * first (a watch that needs what goes then gets COMPACTED rather than a gap), then removes the older entries.
   */
  async #trim(): Promise<void> {
    const client = this.#client;
    // Counting is one cheap read; listing (and removing) waits until a quarter of the history is over, so a
    // write pays for trimming rarely: listing 11,000 names after every 1,000 writes (a tenth) cost about
    // 5 µs of client CPU per write under 100 puts in flight; 12,500 after every 2,500 costs half that.
    const log = await exists(client, this.#log);
    if (!log || log.numChildren <= this.#connection.history + Math.max(TRIM_EVERY, Math.floor(this.#connection.history / 4))) return;
    const names = inLogOrder(await children(client, this.#log));
    const excess = names.length - this.#connection.history;
    if (excess <= 0) return;
    const drop = names.slice(0, excess);
    const newest = await exists(client, `${this.#log}/${drop.at(-1)!}`);
    if (!newest) return;
    const { floor, version } = await this.#floor(client);
    const next = Math.max(floor, zxid(newest.czxid));
    await commit(versioned(client.transaction(), 'setData', this.#log, version, Buffer.from(String(next))));
    for (let i = 0; i < drop.length; i += 500) {
      const tx = client.transaction();
      for (const name of drop.slice(i, i + 500)) tx.remove(`${this.#log}/${name}`, -1);
      await commit(tx).catch(() => undefined); // another node trims the same entries
    }
  }

  /** The position in the sorted log names of the first entry with a revision over `revision` (binary search). */
  async #firstAfter(client: Client, names: readonly string[], revision: number): Promise<number> {
    let lo = 0;
    let hi = names.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const stat = await exists(client, `${this.#log}/${names[mid]!}`);
      // A removed entry was among the oldest: it lies before every one still there.
      if (!stat || zxid(stat.czxid) <= revision) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  async *watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    if (!this.#initialized) await this.#init();
    const position: LogPosition = { last: afterRevision ?? (await this.#storeRevision(this.#client)), seq: undefined };
    let pending = true;
    let wake: (() => void) | undefined;
    /** Set when the safety-net timer, not a notification, woke the loop. */
    let polled = false;
    const notify = (): void => {
      pending = true;
      wake?.();
    };
    this.#wakers.add(notify);
    signal.addEventListener('abort', notify);
    try {
      while (!signal.aborted) {
        if (!pending) {
          // The ZooKeeper watch wakes the loop; the timer is a safety net for a notification lost with a
          // connection (and it makes a dead connection show, so the client reconnects).
          const timer = setTimeout(() => {
            polled = true;
            notify();
          }, WATCH_POLL_MS);
          await new Promise<void>((resolve) => {
            wake = resolve;
            if (pending || signal.aborted) resolve();
          });
          clearTimeout(timer);
          wake = undefined;
          continue;
        }
        pending = false;
        // A timer wake-up with no write since the last read costs one stat read, not a listing of the log
        // (the ZooKeeper watch set by that read is still armed: nothing fired it).
        const cheap = polled && position.seq !== undefined;
        polled = false;
        let step: { events: ConfigEvent[]; more: boolean };
        try {
          if (cheap && (await answeredWithin(this.#storeRevision(this.#client), WATCH_READ_MS)) <= position.last) continue;
          step = await answeredWithin(this.#readLog(prefix, position, notify), WATCH_READ_MS);
        } catch (err) {
          // The connection dropped or the session was replaced: the next connection wakes the watch, which
          // reads on from the same position (a timer too, in case the wake-up came before the failure).
          if (!TRANSIENT.has(zkCode(err) ?? 0)) throw err;
          setTimeout(notify, 500).unref();
          continue;
        }
        if (step.more) pending = true;
        for (const event of step.events) {
          yield event;
          if (signal.aborted) return;
        }
      }
    } finally {
      this.#wakers.delete(notify);
      signal.removeEventListener('abort', notify);
    }
  }

  /**
   * Reads the log entries after `position` (at most one batch), re-arming the ZooKeeper watch on `log`'s
   * children with `notify`, and advances `position` past them. Throws COMPACTED when entries the watch needs
   * were trimmed.
   */
  async #readLog(prefix: string, position: LogPosition, notify: () => void): Promise<{ events: ConfigEvent[]; more: boolean }> {
    const client = this.#client;
    const names = inLogOrder(await children(client, this.#log, notify));
    const { floor } = await this.#floor(client);
    if (floor > position.last) throw this.#compacted(prefix, position.last);
    const from = position.seq === undefined ? await this.#firstAfter(client, names, position.last) : names.findIndex((name) => seqOf(name) > position.seq!);
    if (from < 0 || from >= names.length) return { events: [], more: false };
    const batch = names.slice(from, from + READ_BATCH);
    const read = await Promise.all(batch.map((name) => getData(client, `${this.#log}/${name}`)));
    const events: ConfigEvent[] = [];
    let { last } = position;
    for (let j = 0; j < batch.length; j++) {
      const found = read[j];
      // Entries after the last one delivered are removed only by a trim, which raised the floor past it.
      if (!found) throw this.#compacted(prefix, last);
      const revision = zxid(found.stat.czxid);
      if (revision <= last) continue;
      last = revision;
      const event = this.#event(found.data, revision);
      if (event.key.startsWith(prefix)) events.push(event);
    }
    position.last = last;
    position.seq = seqOf(batch.at(-1)!);
    return { events, more: from + READ_BATCH < names.length };
  }

  #event(data: Buffer, revision: number): ConfigEvent {
    const text = data.toString('utf8');
    const nl = text.indexOf('\n');
    const header = JSON.parse(text.slice(0, nl)) as LogHeader;
    if (header.t === 'd') return { type: 'delete', key: header.k, revision, reason: header.x ? 'lease-expired' : 'deleted' };
    const valueText = text.slice(nl + 1);
    let value: JsonValue;
    try {
      value = JSON.parse(valueText) as JsonValue;
    } catch {
      value = parseStoredJson(valueText, `${this.#where}: log entry of ${quote(header.k)}`);
    }
    const base = { type: 'put' as const, key: header.k, value, revision, createRevision: header.c ?? revision };
    return header.l === undefined ? base : { ...base, lease: header.l };
  }

  #compacted(prefix: string, last: number): StowageError {
    return new StowageError(
      'COMPACTED',
      `${this.#where}: watch of ${quote(prefix)} needs history after revision ${last}, which the change log no longer keeps (history=${this.#connection.history}); resync with list() and watch from its revision`,
      { details: { afterRevision: last } },
    );
  }

  /**
   * Watches the lease folders; when a lease's `alive` znode is gone (its session ended: expired, revoked,
   * or its holder died), logs the deletes of its keys.
   */
  async #reaper(): Promise<void> {
    let pending = true;
    let wake: (() => void) | undefined;
    const notify = (): void => {
      pending = true;
      wake?.();
    };
    this.#wakers.add(notify);
    while (!this.#closed) {
      if (!pending) {
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (pending || this.#closed) resolve();
        });
        wake = undefined;
        continue;
      }
      pending = false;
      try {
        const client = this.#client;
        for (const id of await children(client, this.#leaseDir, notify)) {
          if (!(await exists(client, `${this.#leaseDir}/${id}/alive`, notify))) await this.#reap(id);
        }
      } catch {
        // Unreachable or closing: the next reconnection wakes the loop.
        if (!this.#closed) setTimeout(notify, 1000).unref();
      }
    }
    this.#wakers.delete(notify);
  }

  /**
   * Logs the lease-expired deletes of an ended lease's keys. Each is one transaction that fails when the
   * key exists again (it creates and removes the key's znode) or when another node logged it first (it
   * removes the record): so each delete is logged once, and never over a newer write.
   */
  async #reap(id: string): Promise<void> {
    if (this.#reaping.has(id)) return;
    this.#reaping.add(id);
    try {
      const client = this.#client;
      const dir = `${this.#leaseDir}/${id}`;
      const records = await children(client, dir).catch(() => [] as string[]);
      if (records.includes('alive')) return;
      for (const record of records) {
        const name = record.slice(1);
        const path = `${this.#kv}/${name}`;
        const tx = client
          .transaction()
          .create(path, Buffer.alloc(0), CreateMode.PERSISTENT)
          .remove(path, -1)
          .remove(`${dir}/${record}`, -1)
          .create(`${this.#log}/e-`, logEntry({ t: 'd', k: decodeURIComponent(name), x: 1 }), CreateMode.PERSISTENT_SEQUENTIAL)
          .setData(this.#rev, null, -1);
        try {
          await commit(tx);
        } catch (err) {
          // The key was written again: its record goes, with no delete to log.
          if (zkCode(err) === Exception.NODE_EXISTS) await commit(client.transaction().remove(`${dir}/${record}`, -1)).catch(() => undefined);
        }
      }
      await commit(client.transaction().remove(dir, -1)).catch(() => undefined);
    } finally {
      this.#reaping.delete(id);
    }
  }

  /**
   * A lease is a session of its own, with the lease's TTL as session timeout: ZooKeeper removes its
   * ephemeral znodes when it ends. Its keep-alive is the session's; this driver also checks the session with
   * a read every TTL/3 and signals `lost` when none has succeeded for one TTL (measured from when the last
   * good one was sent), then closes the session, so its keys do not outlive what the holder was told.
   */
  async lease(ttlMs: number, keepAlive: boolean, signal: AbortSignal): Promise<Lease> {
    if (!this.#initialized) await this.#init();
    const client = createClient(this.#connection.connectString, { sessionTimeout: ttlMs, spinDelay: 200 });
    const sentAt = Date.now();
    await connected(client, signal);
    const id = client.getSessionId().toString('hex');
    const dir = `${this.#leaseDir}/${id}`;
    try {
      await commit(client.transaction().create(dir, CreateMode.PERSISTENT).create(`${dir}/alive`, CreateMode.EPHEMERAL));
    } catch (err) {
      closeClient(client);
      throw err;
    }
    const lost = new AbortController();
    let lastOk = sentAt;
    const interval = Math.max(100, Math.floor(ttlMs / 3));
    const checkEvery = Math.max(20, Math.min(250, Math.floor(ttlMs / 20)));
    /** Closes the session (ZooKeeper then removes its znodes) and logs the deletes. */
    const release = async (): Promise<void> => {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ttlMs);
        timer.unref();
        client.once('disconnected', () => {
          clearTimeout(timer);
          resolve();
        });
        closeClient(client);
      });
      if (!this.#closed) await this.#reap(id).catch(() => undefined);
    };
    const end = (reason: StowageError): boolean => {
      if (lost.signal.aborted) return false;
      clearInterval(keepTimer);
      clearInterval(checkTimer);
      this.#leases.delete(id);
      this.#leaseStops.delete(stop);
      lost.abort(reason);
      return true;
    };
    const stop = (): void => {
      if (end(new StowageError('CLOSED', `lease ${id} ended: the store was closed`))) closeClient(client);
    };
    const keepTimer = keepAlive
      ? setInterval(() => {
          const sent = Date.now();
          exists(client, `${dir}/alive`).then(
            (stat) => {
              if (stat) lastOk = Math.max(lastOk, sent);
              else if (end(new StowageError('UNAVAILABLE', `lease ${id} expired at the server`))) void release();
            },
            () => undefined,
          );
        }, interval)
      : undefined;
    keepTimer?.unref();
    const checkTimer = setInterval(() => {
      if (Date.now() - lastOk < ttlMs - checkEvery) return;
      const reason = keepAlive ? `lease ${id}: no successful keep-alive for ${ttlMs} ms` : `lease ${id} expired after ${ttlMs} ms`;
      if (end(new StowageError('UNAVAILABLE', reason))) void release();
    }, checkEvery);
    checkTimer.unref();
    client.on('expired', () => {
      if (end(new StowageError('UNAVAILABLE', `lease ${id} expired at the server`))) void release();
    });
    this.#leases.set(id, { id, client, lost: lost.signal });
    this.#leaseStops.add(stop);
    const revoke = async (): Promise<void> => {
      if (!end(new StowageError('CANCELLED', `lease ${id} was revoked`))) return;
      await release();
    };
    return { id, ttlMs, lost: lost.signal, revoke, [Symbol.asyncDispose]: revoke };
  }

  async ping(_signal?: AbortSignal): Promise<PingResult> {
    await exists(this.#client, '/');
    return {};
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const stop of [...this.#leaseStops]) stop();
    this.#wakeAll();
    closeClient(this.#client);
  }

  /** The `node-zookeeper-client` client of the store's session (paths are absolute: the chroot is not applied). */
  native(): Client {
    return this.#client;
  }
}

/**
 * `zookeeper://host:port[,host:port…]/chroot` for the config port (chroot `/stowage` when none). Parameters:
 * `sessionTimeoutMs` (the store's own session, default 30000), `history` (change log entries kept for
 * watches, default 10000).
 */
export const zookeeperConfigScheme: SchemeDefinition<'config'> = {
  port: 'config',
  scheme: 'zookeeper',
  params: ZOOKEEPER_PARAMS,
  open: async (url) => ZookeeperConfigDriver.open(zookeeperOptionsFromUrl(url)),
};

