/**
 * `postgres://` config with `pg`.
 *
 * - Keys live in one table (`key text COLLATE "C"`: code-point order), values as their JSON text.
 * - Every write runs in one server-side function (one round trip) that takes a transaction-level advisory
 *   lock, checks `ifRevision`, draws the revision from a sequence, changes the key and appends the change to a
 *   revision log, then NOTIFYs. The lock makes commit order equal revision order, so a reader never sees
 *   revision n+1 before n: the log read after any revision is gap-free (a sequence alone does not give that,
 *   since transactions commit in any order).
 * - A watch reads the log after the last revision it delivered. A NOTIFY carries the change itself when it
 *   fits (key, kind and value under {@link NOTIFY_MAX_BYTES}): the listener keeps the last ones, and a watch
 *   takes revision n+1 from them without a query when it has delivered n — notifications arrive in commit
 *   order, which is revision order, so holding n+1 means nothing before it is missing. Whenever the next
 *   revision is not held (a gap, a change too large to carry, a writer of an older version), the watch reads
 *   the log. A notification lost while the listening connection was down costs nothing, since the log is
 *   read again on reconnection and every {@link POLL_MS} anyway. History older than `historyRevisions` is
 *   pruned; a watch that needs it gets COMPACTED.
 * - Leases are rows with an expiry; keep-alive pushes it back (every TTL/3). Each store sweeps expired leases
 *   (deleting their keys, logged as `lease-expired`) twice a second, and a holder is told `lost` when no
 *   keep-alive has succeeded for one TTL, measured from when the last good one was sent.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import { StowageError } from '../../ports/errors.js';
import type { JsonValue, PingResult } from '../../ports/common.js';
import type { ConfigCapability, ConfigDeleteResult, ConfigDriver, ConfigEntry, ConfigEvent, ConfigSnapshot, ConfigWriteResult, Lease } from '../../ports/config.js';
import { revisionConflict, safeCause } from '../../driver/errors.js';
import { parseStoredJson, quote } from '../../driver/validate.js';
import { pause } from '../../driver/sleep.js';
import { prepared, runPrepared, type PostgresConnection, type PreparedStatement } from './connection.js';

/** How often a watch reads the log without being woken (a safety net under LISTEN/NOTIFY). */
const POLL_MS = 2000;
/** How often each store looks for expired leases and history to prune. */
const SWEEP_MS = 500;
/** Log rows a watch reads per statement. */
const WATCH_BATCH = 1000;
/**
 * The largest NOTIFY payload that carries its change (PostgreSQL refuses payloads from 8,000 bytes on);
 * a larger change notifies its revision only, and watches read it from the log.
 */
const NOTIFY_MAX_BYTES = 7900;
/** How many notified changes the listener keeps for watches that are behind (at most ~7.9 MB). */
const RECENT_MAX = 1000;

type EntryRow = { key: string; value: string; revision: string; create_revision: string; lease: string | null };
type LogRow = { revision: string; key: string; kind: 'p' | 'd'; value: string | null; create_revision: string | null; lease: string | null; reason: string | null };

/** Options of {@link PostgresConfigDriver}. */
export interface PostgresConfigOptions {
  /** Log entries kept for watches; older ones are pruned (a watch needing them gets COMPACTED). */
  readonly historyRevisions: number;
}

/** What a watch remembers of the listener before it reads, to tell what happened since. */
interface ListenerMark {
  readonly notes: number;
  readonly resets: number;
}

/**
 * The shared LISTEN connection of a store: keeps the changes that notifications carried, and wakes every
 * waiting watch on a NOTIFY or a reconnection.
 */
class Listener {
  readonly #connection: PostgresConnection;
  readonly #channel: string;
  readonly #waiters = new Set<() => void>();
  /** Changes carried by notifications, by revision, oldest first. */
  readonly #recent = new Map<number, LogRow>();
  #client: Promise<pg.Client> | undefined;
  #closed = false;
  /**
   * Notifications received, and resets (a connection lost, a notification that could not be read): a watch
   * compares them with what it saw before a read.
   */
  #notes = 0;
  #resets = 0;
  /** The highest revision any notification named. */
  newest = 0;

  constructor(connection: PostgresConnection, channel: string) {
    this.#connection = connection;
    this.#channel = channel;
  }

  #wakeAll(): void {
    for (const wake of [...this.#waiters]) wake();
  }

  /** Reads one notification: `<revision>`, or a JSON header line and the value (see the write function). */
  #notified(payload: string | undefined): void {
    this.#notes++;
    if (payload !== undefined) {
      const nl = payload.indexOf('\n');
      try {
        if (nl < 0) this.newest = Math.max(this.newest, Number(payload) || 0);
        else {
          const [revision, kind, createRevision, lease, reason, key] = JSON.parse(payload.slice(0, nl)) as [number, 'p' | 'd', number | null, string | null, string | null, string];
          const row: LogRow = { revision: String(revision), key, kind, value: kind === 'p' ? payload.slice(nl + 1) : null, create_revision: createRevision === null ? null : String(createRevision), lease, reason };
          this.#recent.set(revision, row);
          if (this.#recent.size > RECENT_MAX) this.#recent.delete(this.#recent.keys().next().value as number);
          this.newest = Math.max(this.newest, revision);
        }
      } catch {
        // Not ours to read (another program's, or a format of another version): every watch reads the log
        // once, as after a reconnection. Not `newest` set beyond every revision: that made each watch read
        // the log for every change after it, for the life of the store.
        this.#resets++;
      }
    }
    this.#wakeAll();
  }

  /** The change at `revision`, if a notification carried it and it is still kept. */
  change(revision: number): LogRow | undefined {
    return this.#recent.get(revision);
  }

  /** What has happened so far, for {@link wait} and {@link resetSince}. */
  mark(): ListenerMark {
    return { notes: this.#notes, resets: this.#resets };
  }

  /** Whether the connection was lost, or a notification could not be read, since `mark`: the log must be read. */
  resetSince(mark: ListenerMark): boolean {
    return this.#resets !== mark.resets;
  }

  /** Connects and LISTENs, once; after a connection loss, again on the next call. */
  ensure(): Promise<pg.Client> {
    this.#client ??= (async () => {
      const client = this.#connection.newClient();
      const lost = (): void => {
        if (this.#client === current) this.#client = undefined;
        client.end().catch(() => undefined);
        // What was notified while the connection was down is in the log: every watch reads it now.
        this.#resets++;
        this.#wakeAll();
      };
      client.on('error', lost);
      client.on('end', lost);
      client.on('notification', (msg) => this.#notified(msg.payload));
      await client.connect();
      await client.query(`LISTEN ${this.#channel}`);
      if (this.#closed) await client.end();
      return client;
    })();
    const current = this.#client;
    current.catch(() => {
      if (this.#client === current) this.#client = undefined;
    });
    return current;
  }

  /**
   * Resolves on the next NOTIFY or reconnection — at once if one came after `mark` — after `ms`, or when
   * `signal` aborts. Resolves `true` when it waited the whole `ms`.
   */
  wait(ms: number, signal: AbortSignal, mark: ListenerMark): Promise<boolean> {
    if (this.#notes !== mark.notes || this.#resets !== mark.resets || signal.aborted) return Promise.resolve(false);
    return new Promise((resolve) => {
      const done = (timedOut: boolean): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', wake);
        this.#waiters.delete(wake);
        resolve(timedOut);
      };
      const wake = (): void => done(false);
      const timer = setTimeout(() => done(true), ms);
      signal.addEventListener('abort', wake, { once: true });
      this.#waiters.add(wake);
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#wakeAll();
    const client = await this.#client?.catch(() => undefined);
    await client?.end().catch(() => undefined);
  }
}

/** The `postgres://` config driver. */
export class PostgresConfigDriver implements ConfigDriver {
  /** `postgres`. */
  readonly backend = 'postgres';
  /** Watches, leases, and changes made by other processes. */
  readonly capabilities: ReadonlySet<ConfigCapability> = new Set<ConfigCapability>(['watch', 'leases', 'externalChanges']);
  /** Values are kept as their JSON text. */
  readonly storesJson = true;
  readonly #connection: PostgresConnection;
  readonly #history: number;
  readonly #t: Readonly<Record<'config' | 'log' | 'leases' | 'meta' | 'revisions' | 'leaseIds' | 'write' | 'sweep', string>>;
  readonly #channel: string;
  readonly #lockKey: string;
  readonly #listener: Listener;
  readonly #leases = new Set<() => void>();
  readonly #where: string;
  /** The statements of every get, write and watch read, prepared once per connection. */
  readonly #sql: Readonly<Record<'get' | 'write' | 'watch', PreparedStatement>>;
  #ready: Promise<void> | undefined;
  #sweeper: NodeJS.Timeout | undefined;

  /** Wraps a connection (see `openPostgresPool`); the first call creates the tables and functions. */
  constructor(connection: PostgresConnection, options: PostgresConfigOptions) {
    this.#connection = connection;
    this.#history = options.historyRevisions;
    const p = connection.tablePrefix;
    const name = (n: string): string => `"${p}stowage_config${n}"`;
    this.#t = {
      config: name(''),
      log: name('_log'),
      leases: name('_leases'),
      meta: name('_meta'),
      revisions: name('_revision'),
      leaseIds: name('_lease_id'),
      write: name('_write'),
      sweep: name('_sweep'),
    };
    this.#channel = `"${p}stowage_config"`;
    this.#lockKey = createHash('sha256').update(`stowage-config\u0000${p}`).digest().readBigInt64BE(0).toString();
    this.#listener = new Listener(connection, this.#channel);
    this.#where = `config (postgres${p === '' ? '' : ` ${p}`})`;
    const t = this.#t;
    this.#sql = {
      get: prepared(`SELECT key, value, revision, create_revision, lease FROM ${t.config} WHERE key = $1`),
      write: prepared(`SELECT * FROM ${t.write}($1, $2, $3, $4, $5, $6)`),
      watch: prepared(
        `SELECT m.compacted, l.* FROM ${t.meta} m LEFT JOIN LATERAL (
           SELECT revision, key, kind, value, create_revision, lease, reason FROM ${t.log}
           WHERE revision > $1 AND starts_with(key, $2) ORDER BY revision LIMIT ${WATCH_BATCH}
         ) l ON true WHERE m.id = 1`,
      ),
    };
  }

  get #pool(): pg.Pool {
    return this.#connection.pool;
  }

  /** Creates the tables and the write and sweep functions (idempotent, under an advisory lock). */
  #init(): Promise<void> {
    this.#ready ??= (async () => {
      const t = this.#t;
      const client = await this.#pool.connect();
      let broken: Error | undefined;
      try {
        await client.query('BEGIN');
        await client.query('SELECT pg_advisory_xact_lock($1::bigint)', [this.#lockKey]);
        await client.query(`CREATE SEQUENCE IF NOT EXISTS ${t.revisions}`);
        await client.query(`CREATE SEQUENCE IF NOT EXISTS ${t.leaseIds}`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${t.config} (key text COLLATE "C" PRIMARY KEY, value text NOT NULL, revision bigint NOT NULL, create_revision bigint NOT NULL, lease bigint)`,
        );
        await client.query(`CREATE INDEX IF NOT EXISTS "${this.#connection.tablePrefix}stowage_config_by_lease" ON ${t.config} (lease) WHERE lease IS NOT NULL`);
        await client.query(
          `CREATE TABLE IF NOT EXISTS ${t.log} (revision bigint PRIMARY KEY, key text COLLATE "C" NOT NULL, kind char(1) NOT NULL, value text, create_revision bigint, lease bigint, reason text)`,
        );
        await client.query(`CREATE TABLE IF NOT EXISTS ${t.leases} (id bigint PRIMARY KEY, ttl_ms integer NOT NULL, expires_at timestamptz NOT NULL)`);
        await client.query(`CREATE TABLE IF NOT EXISTS ${t.meta} (id integer PRIMARY KEY, compacted bigint NOT NULL)`);
        await client.query(`INSERT INTO ${t.meta} (id, compacted) VALUES (1, 0) ON CONFLICT DO NOTHING`);
        // One function per write: lock, compare, number, change, log, notify — one round trip, one transaction.
        await client.query(`CREATE OR REPLACE FUNCTION ${t.write}(p_key text, p_value text, p_if bigint, p_lease bigint, p_delete boolean, p_reason text)
RETURNS TABLE (ok boolean, rev bigint, current bigint, existed boolean) LANGUAGE plpgsql AS $fn$
DECLARE cur_rev bigint; cur_create bigint; r bigint; note text;
BEGIN
  PERFORM pg_advisory_xact_lock(${this.#lockKey});
  SELECT c.revision, c.create_revision INTO cur_rev, cur_create FROM ${t.config} c WHERE c.key = p_key;
  IF p_if IS NOT NULL AND COALESCE(cur_rev, 0) <> p_if THEN
    RETURN QUERY SELECT false, 0::bigint, COALESCE(cur_rev, 0), cur_rev IS NOT NULL; RETURN;
  END IF;
  IF p_delete THEN
    IF cur_rev IS NULL THEN
      RETURN QUERY SELECT true, GREATEST((SELECT COALESCE(max(l.revision), 0) FROM ${t.log} l), (SELECT m.compacted FROM ${t.meta} m WHERE m.id = 1)), 0::bigint, false; RETURN;
    END IF;
    r := nextval('${t.revisions.replace(/'/g, "''")}');
    DELETE FROM ${t.config} WHERE key = p_key;
    INSERT INTO ${t.log} (revision, key, kind, reason) VALUES (r, p_key, 'd', p_reason);
    note := json_build_array(r, 'd', NULL, NULL, p_reason, p_key)::text || chr(10);
  ELSE
    IF p_lease IS NOT NULL AND NOT EXISTS (SELECT 1 FROM ${t.leases} x WHERE x.id = p_lease AND x.expires_at > clock_timestamp()) THEN
      RAISE EXCEPTION 'lease % not found', p_lease USING ERRCODE = 'P0002';
    END IF;
    r := nextval('${t.revisions.replace(/'/g, "''")}');
    INSERT INTO ${t.config} AS c (key, value, revision, create_revision, lease) VALUES (p_key, p_value, r, r, p_lease)
      ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, revision = EXCLUDED.revision, lease = EXCLUDED.lease;
    INSERT INTO ${t.log} (revision, key, kind, value, create_revision, lease) VALUES (r, p_key, 'p', p_value, COALESCE(cur_create, r), p_lease);
    note := json_build_array(r, 'p', COALESCE(cur_create, r), p_lease::text, NULL, p_key)::text || chr(10) || p_value;
  END IF;
  -- The change itself when it fits (a JSON header line, then the value), else its revision only.
  IF octet_length(note) > ${NOTIFY_MAX_BYTES} THEN note := r::text; END IF;
  PERFORM pg_notify('${this.#channel.slice(1, -1)}', note);
  RETURN QUERY SELECT true, r, r, cur_rev IS NOT NULL;
END $fn$`);
        // Expired (or revoked: p_lease) leases lose their keys, each delete logged; old history is pruned.
        await client.query(`CREATE OR REPLACE FUNCTION ${t.sweep}(p_keep bigint, p_lease bigint) RETURNS void LANGUAGE plpgsql AS $fn$
DECLARE k record; r bigint; top bigint;
BEGIN
  IF p_lease IS NOT NULL OR EXISTS (SELECT 1 FROM ${t.leases} WHERE expires_at <= clock_timestamp()) THEN
    PERFORM pg_advisory_xact_lock(${this.#lockKey});
    FOR k IN SELECT c.key FROM ${t.config} c JOIN ${t.leases} x ON x.id = c.lease
             WHERE x.id = p_lease OR x.expires_at <= clock_timestamp() ORDER BY c.key LOOP
      r := nextval('${t.revisions.replace(/'/g, "''")}');
      DELETE FROM ${t.config} WHERE key = k.key;
      INSERT INTO ${t.log} (revision, key, kind, reason) VALUES (r, k.key, 'd', 'lease-expired');
    END LOOP;
    -- Keys whose lease row is already gone (revoked by a process that died half-way) go too.
    DELETE FROM ${t.leases} WHERE id = p_lease OR expires_at <= clock_timestamp();
    IF r IS NOT NULL THEN PERFORM pg_notify('${this.#channel.slice(1, -1)}', r::text); END IF;
  END IF;
  SELECT max(revision) INTO top FROM ${t.log};
  IF top IS NOT NULL AND EXISTS (SELECT 1 FROM ${t.log} WHERE revision <= top - p_keep) THEN
    UPDATE ${t.meta} SET compacted = GREATEST(compacted, top - p_keep) WHERE id = 1;
    DELETE FROM ${t.log} WHERE revision <= top - p_keep;
  END IF;
END $fn$`);
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: unknown) => {
          broken = e as Error;
        });
        throw err;
      } finally {
        client.release(broken);
      }
      this.#sweeper ??= setInterval(() => void this.#sweep(null).catch(() => undefined), SWEEP_MS);
      this.#sweeper.unref();
    })();
    this.#ready.catch(() => {
      this.#ready = undefined;
    });
    return this.#ready;
  }

  async #sweep(lease: string | null): Promise<void> {
    await this.#pool.query(`SELECT ${this.#t.sweep}($1, $2)`, [this.#history, lease]);
  }

  #entry(row: EntryRow): ConfigEntry {
    let value: JsonValue;
    try {
      value = JSON.parse(row.value) as JsonValue;
    } catch {
      value = parseStoredJson(row.value, `${this.#where}: key ${quote(row.key)}`);
    }
    const entry = { key: row.key, value, revision: Number(row.revision), createRevision: Number(row.create_revision) };
    return row.lease === null ? entry : { ...entry, lease: row.lease };
  }

  mapError(err: unknown): StowageError | undefined {
    if ((err as { code?: unknown } | null)?.code === 'P0002') {
      return new StowageError('NOT_FOUND', `${this.#where}: the lease does not exist or has ended`, { cause: safeCause(err) });
    }
    return this.#connection.mapError(err);
  }

  async get(key: string): Promise<ConfigEntry | undefined> {
    await this.#init();
    const { rows } = await runPrepared<EntryRow>(this.#pool, this.#sql.get, [key]);
    return rows[0] === undefined ? undefined : this.#entry(rows[0]);
  }

  /** One statement, so one snapshot: the entries and the store revision they reflect. */
  async list(prefix: string, limit: number | undefined): Promise<ConfigSnapshot> {
    await this.#init();
    const t = this.#t;
    const { rows } = await this.#pool.query<Partial<EntryRow> & { store_revision: string }>(
      `WITH r AS (SELECT GREATEST((SELECT COALESCE(max(revision), 0) FROM ${t.log}), (SELECT compacted FROM ${t.meta} WHERE id = 1)) AS store_revision)
       SELECT r.store_revision, c.* FROM r LEFT JOIN LATERAL (
         SELECT key, value, revision, create_revision, lease FROM ${t.config} WHERE starts_with(key, $1) ORDER BY key${limit === undefined ? '' : ` LIMIT ${Math.trunc(limit)}`}
       ) c ON true`,
      [prefix],
    );
    const entries = rows.filter((r): r is EntryRow & { store_revision: string } => r.key !== null && r.key !== undefined).map((r) => this.#entry(r));
    return { entries, revision: Number(rows[0]?.store_revision ?? 0) };
  }

  /** Writes `value` under `key`, or deletes the key when `value` is null. */
  async #write(key: string, value: string | null, ifRevision: number | undefined, lease: string | undefined): Promise<{ rev: number; existed: boolean }> {
    await this.#init();
    const remove = value === null;
    const { rows } = await runPrepared<{ ok: boolean; rev: string; current: string; existed: boolean }>(this.#pool, this.#sql.write, [key, value, ifRevision ?? null, lease ?? null, remove, remove ? 'deleted' : null]);
    const row = rows[0];
    if (row === undefined) throw new StowageError('INTERNAL', `${this.#where}: the write function returned nothing`);
    if (!row.ok) throw revisionConflict(key, Number(row.current), ifRevision ?? 0, this.#where);
    return { rev: Number(row.rev), existed: row.existed };
  }

  async put(key: string, value: JsonValue, options: { ifRevision?: number; lease?: string }, _signal?: AbortSignal, json?: string): Promise<ConfigWriteResult> {
    if (options.lease !== undefined && !/^\d{1,18}$/.test(options.lease)) {
      throw new StowageError('NOT_FOUND', `${this.#where}: lease ${quote(options.lease)} does not exist`);
    }
    const { rev } = await this.#write(key, json ?? JSON.stringify(value), options.ifRevision, options.lease);
    return { revision: rev };
  }

  async delete(key: string, options: { ifRevision?: number }): Promise<ConfigDeleteResult> {
    const { rev, existed } = await this.#write(key, null, options.ifRevision, undefined);
    return { deleted: existed, revision: rev };
  }

  /** The revision a watch without `afterRevision` starts after: the last committed one. */
  async #currentRevision(): Promise<number> {
    const { rows } = await this.#pool.query<{ r: string }>(
      `SELECT GREATEST((SELECT COALESCE(max(revision), 0) FROM ${this.#t.log}), (SELECT compacted FROM ${this.#t.meta} WHERE id = 1)) AS r`,
    );
    return Number(rows[0]?.r ?? 0);
  }

  async *watch(prefix: string, afterRevision: number | undefined, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    await this.#init();
    const listener = this.#listener;
    // Listening before the first read: a change committed between the two still wakes this watch.
    await listener.ensure();
    let last = afterRevision ?? (await this.#currentRevision());
    let failures = 0;
    let read = true;
    while (!signal.aborted) {
      const mark = listener.mark();
      if (!read) {
        // The changes notifications carried, in revision order, for as long as the next one is held.
        for (let row = listener.change(last + 1); row !== undefined; row = listener.change(last + 1)) {
          last = Number(row.revision);
          if (row.key.startsWith(prefix)) yield this.#event(row);
          if (signal.aborted) return;
        }
        // A revision named but not held (too large to carry, or no longer kept) is read from the log.
        read = listener.newest > last;
      }
      if (read) {
        let rows: LogRow[];
        let compacted: number;
        try {
          // Reconnect the listener first (a no-op while it is up), so nothing committed after this read is missed.
          await listener.ensure();
          const res = await runPrepared<LogRow & { compacted: string }>(this.#pool, this.#sql.watch, [last, prefix]);
          failures = 0;
          compacted = Number(res.rows[0]?.compacted ?? 0);
          rows = res.rows.filter((r) => r.revision !== null);
        } catch (err) {
          // The server is down or restarting: the watch waits and resumes after `last`, as the log allows.
          if (StowageError.is(err)) throw err;
          failures++;
          await pause(Math.min(1000, 50 * 2 ** Math.min(failures, 5)), signal).catch(() => undefined);
          continue;
        }
        if (last < compacted) {
          throw new StowageError(
            'COMPACTED',
            `${this.#where}: watch of ${quote(prefix)} needs history from revision ${last + 1}, which was pruned (kept: the last ${this.#history}); resync with list() and watch from its revision`,
            { details: { afterRevision: last } },
          );
        }
        for (const row of rows) {
          last = Number(row.revision);
          yield this.#event(row);
          if (signal.aborted) return;
        }
        // A full page: read on. Otherwise the log is read up to what this read's snapshot held — which
        // covers every notification counted in `mark`, as each is sent at its commit.
        read = rows.length === WATCH_BATCH;
        if (read) continue;
      }
      // Woken by a notification, the watch takes its change; after a reconnection, or with nothing heard
      // for POLL_MS (a safety net), it reads the log.
      const timedOut = await listener.wait(POLL_MS, signal, mark);
      read = timedOut || listener.resetSince(mark);
    }
  }

  #event(row: LogRow): ConfigEvent {
    if (row.kind === 'p') {
      const entry = this.#entry({ key: row.key, value: row.value ?? 'null', revision: row.revision, create_revision: row.create_revision ?? row.revision, lease: row.lease });
      return { type: 'put', ...entry };
    }
    return { type: 'delete', key: row.key, revision: Number(row.revision), reason: row.reason === 'lease-expired' ? 'lease-expired' : 'deleted' };
  }

  async lease(ttlMs: number, keepAlive: boolean): Promise<Lease> {
    await this.#init();
    const t = this.#t;
    const sentAt = Date.now();
    const { rows } = await this.#pool.query<{ id: string }>(
      `INSERT INTO ${t.leases} (id, ttl_ms, expires_at) VALUES (nextval('${t.leaseIds.replace(/'/g, "''")}'), $1::integer, clock_timestamp() + $1::integer * interval '1 millisecond') RETURNING id`,
      [ttlMs],
    );
    const id = String(rows[0]?.id);
    const lost = new AbortController();
    let lastOk = sentAt;
    const checkEvery = Math.max(20, Math.min(250, Math.floor(ttlMs / 20)));
    const end = (reason: StowageError): void => {
      if (lost.signal.aborted) return;
      clearInterval(keepTimer);
      clearInterval(checkTimer);
      this.#leases.delete(stop);
      lost.abort(reason);
    };
    const stop = (): void => end(new StowageError('CLOSED', `lease ${id} ended: the store was closed`));
    const keepTimer = keepAlive
      ? setInterval(() => {
          const sent = Date.now();
          this.#pool
            .query(`UPDATE ${t.leases} SET expires_at = clock_timestamp() + ttl_ms * interval '1 millisecond' WHERE id = $1 AND expires_at > clock_timestamp()`, [id])
            .then((res) => {
              if (res.rowCount === 1) lastOk = Math.max(lastOk, sent);
              else end(new StowageError('UNAVAILABLE', `lease ${id} expired at the server`));
            })
            .catch(() => undefined);
        }, Math.max(100, Math.floor(ttlMs / 3)))
      : undefined;
    keepTimer?.unref();
    // Loss is signalled before the server can have dropped the keys: one TTL after the last good keep-alive.
    const checkTimer = setInterval(() => {
      if (Date.now() - lastOk < ttlMs - checkEvery) return;
      end(new StowageError('UNAVAILABLE', keepAlive ? `lease ${id}: no successful keep-alive for ${ttlMs} ms` : `lease ${id} expired after ${ttlMs} ms`));
      // Whoever still sees the keys must not outlive what the holder was told.
      this.#sweep(id).catch(() => undefined);
    }, checkEvery);
    checkTimer.unref();
    this.#leases.add(stop);
    const revoke = async (): Promise<void> => {
      if (lost.signal.aborted) return;
      end(new StowageError('CANCELLED', `lease ${id} was revoked`));
      await this.#sweep(id);
    };
    return { id, ttlMs, lost: lost.signal, revoke, [Symbol.asyncDispose]: revoke };
  }

  async ping(): Promise<PingResult> {
    const { rows } = await this.#pool.query<{ server_version: string }>('SHOW server_version');
    return { serverVersion: `PostgreSQL ${rows[0]?.server_version ?? ''}`.trim() };
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    for (const stop of [...this.#leases]) stop();
    await this.#listener.close();
    await this.#connection.end();
  }

  /** The `pg` pool, for what the port does not cover. */
  native(): pg.Pool {
    return this.#pool;
  }
}
