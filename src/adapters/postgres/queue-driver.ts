/**
 * The PostgreSQL queue driver (`postgres://` on the queue port). Tables and functions: see
 * `queue-schema.ts`.
 *
 * **Publish.** Publishes to a topic made while an earlier batch of that topic is on its way are sent
 * together, as one call of `stowage_queue_publish` (one transaction, one commit): a publish resolves once
 * that transaction has committed, with the server's `synchronous_commit` as the durability policy. A
 * publish whose signal aborted before its batch was sent is dropped, never applied.
 *
 * **Consume.** A subscription claims up to `prefetch − held` messages in one call of `stowage_queue_claim`
 * when its iterator waits; when nothing is there it sleeps until one of: a NOTIFY of the topic (sent by
 * every publish at commit, heard on one dedicated connection per driver), a publish or settlement in this
 * process, the group's earliest nak delay or ackWait deadline (read from the database), or the fallback
 * poll (`pollMs`), since a NOTIFY sent while the listening connection was down is lost. Nothing polls hot.
 *
 * **Live consumers.** Each subscription holds a shared advisory lock on its (topic, group) on the listening
 * connection; `seekGroup` takes it exclusively, so it sees the consumers of every process, and a process
 * that dies releases its locks with its connection.
 *
 * @module
 */
import type { Client, Pool, QueryResultRow } from 'pg';
import { StowageError } from '../../ports/errors.js';
import type {
  DriverDelivery,
  DriverSubscription,
  Headers,
  PublishResult,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import type { Logger } from '../../driver/index.js';
import { closed } from '../../driver/errors.js';
import { pause, RETRY_MAX_MS, RETRY_MIN_MS } from '../../driver/sleep.js';
import { PushIterator } from '../../driver/push-iterator.js';
import { inTransaction, runPrepared } from './connection.js';
import { ensureQueueSchema, ident, notifyChannel } from './queue-schema.js';

/** Options of {@link PostgresQueueDriver.open}. */
export interface PostgresQueueOptions {
  /** The pool every call uses. */
  readonly pool: Pool;
  /** Whether `close()` ends the pool (true when the driver made it). */
  readonly ownsPool: boolean;
  /** Opens and connects a dedicated client for LISTEN and the consumers' advisory locks. */
  readonly connectListener: () => Promise<Client>;
  /** The schema holding the queue's tables (created when absent). */
  readonly schema: string;
  /** How long a publisher's id is remembered for dedupe, in milliseconds. */
  readonly dedupeWindowMs: number;
  /** Messages older than this are removed, in milliseconds (0: kept until removed or purged). */
  readonly maxAgeMs: number;
  /** The fallback poll of an idle consumer, in milliseconds (a NOTIFY can be lost). */
  readonly pollMs: number;
  /** Where connection notices go. */
  readonly logger: Logger;
  /** Maps an error of `pg` to a StowageError, password removed (the connection's `mapError`). */
  readonly mapError: (err: unknown) => StowageError | undefined;
}

/** The most messages, and about the most payload bytes, of one publish batch. */
const BATCH_MESSAGES = 500;
const BATCH_BYTES = 4 * 1024 * 1024;
/** How long `close()` waits for the server before it lets the connections go. */
const CLOSE_WAIT_MS = 2_000;

interface QueuedPublish {
  readonly payload: Uint8Array;
  readonly headers: Headers;
  readonly id: string | undefined;
  readonly signal: AbortSignal;
  readonly resolve: (r: PublishResult) => void;
  readonly reject: (err: unknown) => void;
}

interface QueuedAck {
  readonly seq: number;
  readonly count: number;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

interface ClaimRow extends QueryResultRow {
  o_seq: string;
  o_deliveries: number;
  o_id: string | null;
  o_headers: Record<string, string>;
  o_payload: Buffer;
  o_published_at: Date;
}

interface MessageRow extends QueryResultRow {
  seq: string;
  id: string | null;
  headers: Record<string, string>;
  payload: Buffer;
  published_at: Date;
}

const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** The SQL of one schema, written once per driver; named so that each connection prepares it once. */
function statements(schema: string) {
  const s = ident(schema);
  const named = (name: string, text: string) => ({ name: `stowage_q_${name}:${schema}`, text });
  return {
    publish: named('publish', `SELECT o_seq, o_duplicate FROM ${s}.stowage_queue_publish($1, $2, $3, $4, $5)`),
    claim: named('claim', `SELECT * FROM ${s}.stowage_queue_claim($1, $2, $3, $4, $5, $6)`),
    nextVisible: named(
      'next',
      `SELECT (extract(epoch FROM min(d.visible_at) - clock_timestamp()) * 1000)::float8 AS ms
       FROM ${s}.stowage_queue_deliveries d
       WHERE d.topic = $1 AND d.grp = $2
         AND d.seq >= coalesce((SELECT g.floor_seq FROM ${s}.stowage_queue_groups g WHERE g.topic = $1 AND g.grp = $2), 0)`,
    ),
    ack: named(
      'ack',
      `SELECT ${s}.stowage_queue_ack($1, $2, $3::bigint[], $4::int[])`,
    ),
    // Only while the delivery is still the current one and its ackWait has not passed: a late nak or touch
    // would otherwise act on the redelivery another consumer holds, or on a message waiting for redelivery.
    nak: named(
      'nak',
      `WITH u AS (UPDATE ${s}.stowage_queue_deliveries SET visible_at = clock_timestamp() + $5 * interval '1 millisecond'
         WHERE topic = $1 AND grp = $2 AND seq = $3 AND deliveries = $4 AND visible_at > clock_timestamp() RETURNING 1)
       SELECT pg_notify($6, $1) FROM u WHERE $5 = 0`,
    ),
    touch: named(
      'touch',
      `UPDATE ${s}.stowage_queue_deliveries SET visible_at = clock_timestamp() + $5 * interval '1 millisecond'
       WHERE topic = $1 AND grp = $2 AND seq = $3 AND deliveries = $4 AND visible_at > clock_timestamp()`,
    ),
    // Claimed but never handed out (the subscription closed): due again at once, the claim not counted.
    unclaim: named(
      'unclaim',
      `UPDATE ${s}.stowage_queue_deliveries d SET visible_at = clock_timestamp(), deliveries = d.deliveries - 1
       FROM unnest($3::bigint[], $4::int[]) AS a(seq, n)
       WHERE d.topic = $1 AND d.grp = $2 AND d.seq = a.seq AND d.deliveries = a.n`,
    ),
    read: named(
      'read',
      `SELECT seq, id, headers, payload, published_at FROM ${s}.stowage_queue_messages
       WHERE topic = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
    ),
  };
}

/**
 * A {@link QueueDriver} over PostgreSQL. Open it with {@link PostgresQueueDriver.open} (or the `postgres://`
 * scheme); {@link PostgresQueueDriver.native} gives the `pg.Pool`.
 */
/** What a subscription uses of its driver (kept off the driver's public surface). */
interface SubscriptionHost {
  /** The fallback poll of an idle subscription, in milliseconds. */
  readonly pollMs: number;
  /** Where notices go. */
  readonly logger: Logger;
  mapError(err: unknown): StowageError | undefined;
  claim(topic: string, group: string, limit: number, ackWaitMs: number, ackSeqs: number[], ackCounts: number[]): Promise<ClaimRow[]>;
  nextVisible(topic: string, group: string): Promise<number | undefined>;
  ack(topic: string, group: string, seq: number, count: number): Promise<void>;
  settle(kind: 'touch' | 'nak', topic: string, group: string, seq: number, count: number, ms: number): Promise<boolean>;
  unclaim(topic: string, group: string, seqs: number[], counts: number[]): void;
  wakeGroup(topic: string, group: string): void;
  unsubscribed(sub: PgSubscription): void;
}

export class PostgresQueueDriver implements QueueDriver {
  readonly backend = 'postgres';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>(['purge', 'retention']);
  readonly #o: PostgresQueueOptions;
  readonly #sql: ReturnType<typeof statements>;
  readonly #s: string;
  readonly #channel: string;
  readonly #publishes = new Map<string, QueuedPublish[]>();
  /** Acks waiting for the statement of their group, by `topic/group`. */
  readonly #acks = new Map<string, { readonly topic: string; readonly group: string; readonly queue: QueuedAck[] }>();
  readonly #subs = new Map<string, Set<PgSubscription>>();
  #closed = false;
  readonly #closing = new AbortController();
  #listener: Client | undefined;
  /** Shared advisory locks wanted (one per live subscription) and held on the current listening connection. */
  readonly #locksWanted = new Map<string, number>();
  #locksHeld = new Map<string, number>();
  #lockSync: Promise<void> = Promise.resolve();
  #housekeeping: NodeJS.Timeout | undefined;
  #housekeepingRuns = false;
  readonly #listening: Promise<void>;
  /** Work started by the driver itself (unclaims, lock changes) that `close()` waits for, briefly. */
  readonly #background = new Set<Promise<unknown>>();
  /** What the driver's subscriptions may use of it. */
  readonly #host: SubscriptionHost;

  private constructor(options: PostgresQueueOptions) {
    this.#o = options;
    this.#sql = statements(options.schema);
    this.#s = ident(options.schema);
    this.#channel = notifyChannel(options.schema);
    this.#host = {
      pollMs: options.pollMs,
      logger: options.logger,
      mapError: (err) => this.mapError(err),
      claim: (...args) => this.#claim(...args),
      nextVisible: (topic, group) => this.#nextVisible(topic, group),
      ack: (...args) => this.#ack(...args),
      settle: (...args) => this.#settle(...args),
      unclaim: (...args) => this.#unclaim(...args),
      wakeGroup: (topic, group) => this.#wakeGroup(topic, group),
      unsubscribed: (sub) => this.#unsubscribed(sub),
    };
    // An idle pooled connection that breaks (a server restart) is reported here; the pool replaces it.
    options.pool.on('error', (err) => options.logger.debug(`postgres queue: idle connection lost (${options.mapError(err)?.message ?? String(err)})`));
    this.#listening = this.#listen();
    const everyMs = options.maxAgeMs > 0 ? Math.min(60_000, Math.max(250, Math.floor(options.maxAgeMs / 4))) : 60_000;
    this.#housekeeping = setInterval(() => void this.#housekeep(), everyMs).unref();
  }

  /** Creates the schema when needed and starts listening. */
  static async open(options: PostgresQueueOptions): Promise<PostgresQueueDriver> {
    try {
      await ensureQueueSchema(options.pool, options.schema);
    } catch (err) {
      if (options.ownsPool) await options.pool.end().catch(() => undefined);
      throw options.mapError(err) ?? err;
    }
    return new PostgresQueueDriver(options);
  }

  /** The pool, for what the port does not cover. */
  native(): Pool {
    return this.#o.pool;
  }

  mapError(err: unknown): StowageError | undefined {
    return this.#o.mapError(err);
  }

  #assertOpen(): void {
    if (this.#closed) throw closed('postgres queue driver');
  }

  publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined, signal: AbortSignal): Promise<PublishResult> {
    this.#assertOpen();
    return new Promise((resolve, reject) => {
      const queued = this.#publishes.get(topic);
      const item: QueuedPublish = { payload, headers, id, signal, resolve, reject };
      if (queued !== undefined) {
        queued.push(item);
        return;
      }
      this.#publishes.set(topic, [item]);
      // The rest of this event-loop turn joins the first batch.
      setImmediate(() => void this.#flush(topic));
    });
  }

  /** Sends the topic's queued publishes, a batch at a time, until none is left. */
  async #flush(topic: string): Promise<void> {
    const queue = this.#publishes.get(topic) as QueuedPublish[];
    while (queue.length > 0) {
      let taken = 0;
      let bytes = 0;
      while (taken < queue.length && taken < BATCH_MESSAGES && (taken === 0 || bytes < BATCH_BYTES)) bytes += (queue[taken++] as QueuedPublish).payload.byteLength;
      const batch: QueuedPublish[] = [];
      for (const item of queue.splice(0, taken)) {
        if (item.signal.aborted) item.reject(item.signal.reason);
        else batch.push(item);
      }
      if (batch.length === 0) continue;
      try {
        const result = await runPrepared<{ o_seq: string; o_duplicate: boolean }>(this.#o.pool, this.#sql.publish, [
            topic,
            batch.map((b) => b.id ?? null),
            batch.map((b) => JSON.stringify(b.headers)),
            batch.map((b) => Buffer.from(b.payload.buffer, b.payload.byteOffset, b.payload.byteLength)),
            this.#o.dedupeWindowMs,
          ]);
        for (const [i, item] of batch.entries()) {
          const row = result.rows[i];
          if (row === undefined) item.reject(new StowageError('INTERNAL', 'postgres queue: the publish function returned too few rows'));
          else item.resolve({ seq: Number(row.o_seq), duplicate: row.o_duplicate });
        }
        this.#wake(topic);
      } catch (err) {
        for (const item of batch) item.reject(err);
      }
    }
    this.#publishes.delete(topic);
  }

  subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    this.#assertOpen();
    const sub = new PgSubscription(this.#host, topic, group, options.ackWaitMs, options.prefetch);
    let subs = this.#subs.get(topic);
    if (subs === undefined) {
      subs = new Set();
      this.#subs.set(topic, subs);
    }
    subs.add(sub);
    const key = this.#lockKey(topic, group);
    this.#locksWanted.set(key, (this.#locksWanted.get(key) ?? 0) + 1);
    this.#syncLocks();
    return sub;
  }

  /** Called by a subscription as it closes. */
  #unsubscribed(sub: PgSubscription): void {
    const subs = this.#subs.get(sub.topic);
    subs?.delete(sub);
    if (subs?.size === 0) this.#subs.delete(sub.topic);
    const key = this.#lockKey(sub.topic, sub.group);
    const n = (this.#locksWanted.get(key) ?? 1) - 1;
    if (n > 0) this.#locksWanted.set(key, n);
    else this.#locksWanted.delete(key);
    this.#syncLocks();
  }

  /** Runs a promise the driver started by itself: its failure is only logged, and `close()` waits for it. */
  #track(work: Promise<unknown>, what: string): void {
    const p = work.catch((err: unknown) => this.#o.logger.debug(`postgres queue: ${what} failed (${this.mapError(err)?.message ?? String(err)})`));
    this.#background.add(p);
    void p.finally(() => this.#background.delete(p));
  }

  #lockKey(topic: string, group: string): string {
    return `stowage_queue_group:${this.#o.schema}/${topic}/${group}`;
  }

  /** Brings the shared locks held on the listening connection in line with the live subscriptions. */
  #syncLocks(): void {
    this.#lockSync = this.#lockSync.then(async () => {
      const client = this.#listener;
      if (client === undefined) return;
      const held = this.#locksHeld;
      for (const key of new Set([...held.keys(), ...this.#locksWanted.keys()])) {
        let diff = (this.#locksWanted.get(key) ?? 0) - (held.get(key) ?? 0);
        for (; diff > 0; diff--) {
          await client.query('SELECT pg_advisory_lock_shared(hashtextextended($1, 0))', [key]);
          held.set(key, (held.get(key) ?? 0) + 1);
        }
        for (; diff < 0; diff++) {
          await client.query('SELECT pg_advisory_unlock_shared(hashtextextended($1, 0))', [key]);
          const n = (held.get(key) ?? 1) - 1;
          if (n > 0) held.set(key, n);
          else held.delete(key);
        }
      }
    }).catch((err: unknown) => this.#o.logger.debug(`postgres queue: consumer lock update failed (${this.mapError(err)?.message ?? String(err)})`));
    this.#background.add(this.#lockSync);
    const sync = this.#lockSync;
    void sync.finally(() => this.#background.delete(sync));
  }

  /** Keeps one connection listening for publishes; reconnects with backoff when it breaks. */
  async #listen(): Promise<void> {
    let failures = 0;
    while (!this.#closed) {
      let client: Client | undefined;
      try {
        client = await this.#o.connectListener();
        const ended = new Promise<void>((resolve) => {
          client?.on('error', (err) => {
            this.#o.logger.debug(`postgres queue: listening connection lost (${this.mapError(err)?.message ?? String(err)})`);
            resolve();
          });
          client?.on('end', () => resolve());
        });
        client.on('notification', (n) => {
          if (n.channel === this.#channel && n.payload !== undefined) this.#wake(n.payload);
        });
        await client.query(`LISTEN ${ident(this.#channel)}`);
        if (this.#closed) {
          await client.end();
          return;
        }
        this.#listener = client;
        this.#locksHeld = new Map();
        this.#syncLocks();
        failures = 0;
        // Publishes made while no connection listened were not heard: every consumer looks again.
        for (const subs of this.#subs.values()) for (const sub of subs) sub.wake();
        await Promise.race([ended, new Promise((resolve) => this.#closing.signal.addEventListener('abort', resolve, { once: true }))]);
      } catch (err) {
        if (!this.#closed) this.#o.logger.debug(`postgres queue: cannot listen (${this.mapError(err)?.message ?? String(err)})`);
      }
      if (this.#listener === client) this.#listener = undefined;
      if (client !== undefined) {
        client.removeAllListeners('notification');
        client.on('error', () => undefined);
        void client.end().catch(() => undefined);
      }
      if (this.#closed) return;
      failures++;
      await pause(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(failures, 5)), this.#closing.signal);
    }
  }

  /** Wakes this process's consumers of `topic`. */
  #wake(topic: string): void {
    const subs = this.#subs.get(topic);
    if (subs !== undefined) for (const sub of subs) sub.wake();
  }

  /** Wakes this process's other consumers of a group (a message of theirs was released). */
  #wakeGroup(topic: string, group: string): void {
    const subs = this.#subs.get(topic);
    if (subs !== undefined) for (const sub of subs) if (sub.group === group) sub.wake();
  }

  /** Removes expired dedupe ids and, with an age limit, old messages and the deliveries they leave behind. */
  async #housekeep(): Promise<void> {
    if (this.#housekeepingRuns || this.#closed) return;
    this.#housekeepingRuns = true;
    const s = this.#s;
    try {
      await this.#o.pool.query(`DELETE FROM ${s}.stowage_queue_dedupe WHERE expires_at <= clock_timestamp()`);
      if (this.#o.maxAgeMs > 0) {
        const gone = await this.#o.pool.query(
          `DELETE FROM ${s}.stowage_queue_messages WHERE published_at < clock_timestamp() - $1 * interval '1 millisecond'`,
          [this.#o.maxAgeMs],
        );
        if ((gone.rowCount ?? 0) > 0) {
          await this.#o.pool.query(
            `DELETE FROM ${s}.stowage_queue_deliveries d
             WHERE NOT EXISTS (SELECT 1 FROM ${s}.stowage_queue_messages m WHERE m.topic = d.topic AND m.seq = d.seq)`,
          );
        }
      }
    } catch (err) {
      this.#o.logger.debug(`postgres queue: housekeeping failed (${this.mapError(err)?.message ?? String(err)})`);
    } finally {
      this.#housekeepingRuns = false;
    }
  }

  /** Acks the deliveries given (sequences and their delivery counts), then claims up to `limit` for a consumer of the group. */
  async #claim(topic: string, group: string, limit: number, ackWaitMs: number, ackSeqs: number[], ackCounts: number[]): Promise<ClaimRow[]> {
    return (await runPrepared<ClaimRow>(this.#o.pool, this.#sql.claim, [topic, group, limit, ackWaitMs, ackSeqs, ackCounts])).rows;
  }

  /** Milliseconds until the group's earliest unsettled message is due, or undefined when it has none. */
  async #nextVisible(topic: string, group: string): Promise<number | undefined> {
    const r = await runPrepared<{ ms: number | null }>(this.#o.pool, this.#sql.nextVisible, [topic, group]);
    const ms = r.rows[0]?.ms;
    return ms === null || ms === undefined ? undefined : ms;
  }

  /**
   * Acks a delivery (the `count`-th of the message): acks of a group made while an earlier statement of
   * theirs is on its way are sent together, one statement and one commit; each resolves once committed.
   */
  #ack(topic: string, group: string, seq: number, count: number): Promise<void> {
    return new Promise((resolve, reject) => {
      const key = `${topic}/${group}`;
      const queued = this.#acks.get(key);
      if (queued !== undefined) {
        queued.queue.push({ seq, count, resolve, reject });
        return;
      }
      const batch = { topic, group, queue: [{ seq, count, resolve, reject }] };
      this.#acks.set(key, batch);
      setImmediate(() => void this.#flushAcks(key, batch));
    });
  }

  async #flushAcks(key: string, batch: { readonly topic: string; readonly group: string; readonly queue: QueuedAck[] }): Promise<void> {
    while (batch.queue.length > 0) {
      const acks = batch.queue.splice(0, BATCH_MESSAGES);
      try {
        await runPrepared(this.#o.pool, this.#sql.ack, [batch.topic, batch.group, acks.map((a) => a.seq), acks.map((a) => a.count)]);
        for (const a of acks) a.resolve();
      } catch (err) {
        for (const a of acks) a.reject(err);
      }
    }
    this.#acks.delete(key);
  }

  /** Naks or touches one delivery (see the statements); resolves with whether it was still current. */
  async #settle(kind: 'touch' | 'nak', topic: string, group: string, seq: number, count: number, ms: number): Promise<boolean> {
    if (kind === 'touch') return ((await runPrepared(this.#o.pool, this.#sql.touch, [topic, group, seq, count, ms])).rowCount ?? 0) > 0;
    await runPrepared(this.#o.pool, this.#sql.nak, [topic, group, seq, count, ms, this.#channel]);
    return true;
  }

  /** Gives back deliveries claimed but never handed out. */
  #unclaim(topic: string, group: string, seqs: number[], counts: number[]): void {
    if (seqs.length === 0) return;
    this.#track(runPrepared(this.#o.pool, this.#sql.unclaim, [topic, group, seqs, counts]), 'giving back unhanded deliveries');
    this.#wakeGroup(topic, group);
  }

  async read(topic: string, fromSeq: number, limit: number): Promise<StoredMessage[]> {
    this.#assertOpen();
    const r = await runPrepared<MessageRow>(this.#o.pool, this.#sql.read, [topic, fromSeq, limit]);
    return r.rows.map((m) => ({
      seq: Number(m.seq),
      id: m.id ?? undefined,
      headers: Object.freeze(m.headers),
      payload: asBytes(m.payload),
      publishedAt: m.published_at,
    }));
  }

  async remove(topic: string, seq: number): Promise<void> {
    this.#assertOpen();
    const s = this.#s;
    await this.#o.pool.query(
      `WITH m AS (DELETE FROM ${s}.stowage_queue_messages WHERE topic = $1 AND seq = $2)
       DELETE FROM ${s}.stowage_queue_deliveries WHERE topic = $1 AND seq = $2`,
      [topic, seq],
    );
  }

  async stats(topic: string): Promise<Omit<TopicStats, 'deadLetters'>> {
    this.#assertOpen();
    const s = this.#s;
    const [t, g] = await Promise.all([
      this.#o.pool.query<{ messages: string; last_seq: string | null }>(
        `SELECT (SELECT count(*) FROM ${s}.stowage_queue_messages WHERE topic = $1) AS messages,
                (SELECT last_seq FROM ${s}.stowage_queue_topics WHERE topic = $1) AS last_seq`,
        [topic],
      ),
      this.#o.pool.query<{ grp: string; next_seq: string; redelivered: string; backlog: string; pending: string; min_pending: string | null }>(
        `SELECT g.grp, g.next_seq, g.redelivered,
                (SELECT count(*) FROM ${s}.stowage_queue_messages m WHERE m.topic = g.topic AND m.seq >= g.next_seq) AS backlog,
                (SELECT count(*) FROM ${s}.stowage_queue_deliveries d WHERE d.topic = g.topic AND d.grp = g.grp AND d.seq >= g.floor_seq) AS pending,
                (SELECT min(d.seq) FROM ${s}.stowage_queue_deliveries d WHERE d.topic = g.topic AND d.grp = g.grp AND d.seq >= g.floor_seq) AS min_pending
         FROM ${s}.stowage_queue_groups g WHERE g.topic = $1 ORDER BY g.grp`,
        [topic],
      ),
    ]);
    return {
      topic,
      messages: Number(t.rows[0]?.messages ?? 0),
      lastSeq: Number(t.rows[0]?.last_seq ?? 0),
      groups: g.rows.map((row) => ({
        group: row.grp,
        backlog: Number(row.backlog),
        pending: Number(row.pending),
        redelivered: Number(row.redelivered),
        ackFloor: Math.min(Number(row.next_seq) - 1, row.min_pending === null ? Infinity : Number(row.min_pending) - 1),
      })),
    };
  }

  async purge(topic: string): Promise<void> {
    this.#assertOpen();
    const s = this.#s;
    await inTransaction(this.#o.pool, async (client) => {
      // The topic row first: no publish of the topic commits between the deletes and the cursor move.
      const t = await client.query<{ last_seq: string }>(`SELECT last_seq FROM ${s}.stowage_queue_topics WHERE topic = $1 FOR UPDATE`, [topic]);
      await client.query(`DELETE FROM ${s}.stowage_queue_messages WHERE topic = $1`, [topic]);
      await client.query(`DELETE FROM ${s}.stowage_queue_deliveries WHERE topic = $1`, [topic]);
      await client.query(`UPDATE ${s}.stowage_queue_groups SET next_seq = $2 WHERE topic = $1`, [topic, Number(t.rows[0]?.last_seq ?? 0) + 1]);
    });
  }

  async topics(): Promise<string[]> {
    this.#assertOpen();
    const s = this.#s;
    const r = await this.#o.pool.query<{ topic: string }>(
      `SELECT topic FROM ${s}.stowage_queue_groups
       UNION
       SELECT t.topic FROM ${s}.stowage_queue_topics t WHERE EXISTS (SELECT 1 FROM ${s}.stowage_queue_messages m WHERE m.topic = t.topic)
       ORDER BY 1`,
    );
    return r.rows.map((row) => row.topic);
  }

  async seekGroup(topic: string, group: string, seq: number): Promise<void> {
    this.#assertOpen();
    const conflict = (): StowageError =>
      new StowageError('CONFLICT', `group "${group}" of topic "${topic}" has running consumers or unsettled deliveries; stop them before moving it`);
    if ([...(this.#subs.get(topic) ?? [])].some((sub) => sub.group === group)) throw conflict();
    const s = this.#s;
    await inTransaction(this.#o.pool, async (client) => {
      const created = await client.query(
        `INSERT INTO ${s}.stowage_queue_groups (topic, grp, next_seq) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
        [topic, group, seq],
      );
      if ((created.rowCount ?? 0) > 0) return;
      await client.query(`SELECT 1 FROM ${s}.stowage_queue_groups WHERE topic = $1 AND grp = $2 FOR UPDATE`, [topic, group]);
      const live = await client.query<{ free: boolean }>('SELECT pg_try_advisory_xact_lock(hashtextextended($1, 0)) AS free', [this.#lockKey(topic, group)]);
      if (live.rows[0]?.free !== true) throw conflict();
      const held = await client.query(`SELECT 1 FROM ${s}.stowage_queue_deliveries WHERE topic = $1 AND grp = $2 LIMIT 1`, [topic, group]);
      if ((held.rowCount ?? 0) > 0) throw conflict();
      // No unsettled delivery is left, so the floor may move with the cursor, also back.
      await client.query(`UPDATE ${s}.stowage_queue_groups SET next_seq = $3, floor_seq = $3 WHERE topic = $1 AND grp = $2`, [topic, group, seq]);
    });
  }

  async ping(): ReturnType<QueueDriver['ping']> {
    this.#assertOpen();
    const r = await this.#o.pool.query<{ v: string }>(`SELECT current_setting('server_version') AS v`);
    return { serverVersion: r.rows[0]?.v };
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#housekeeping);
    for (const subs of [...this.#subs.values()]) for (const sub of [...subs]) await sub.close();
    this.#closing.abort();
    const bounded = (p: Promise<unknown>): Promise<unknown> =>
      Promise.race([p.catch(() => undefined), new Promise((resolve) => setTimeout(resolve, CLOSE_WAIT_MS).unref())]);
    await bounded(Promise.all([...this.#background]));
    await bounded(this.#listening);
    if (this.#o.ownsPool) await bounded(this.#o.pool.end());
  }
}

/** One claimed message held by a subscription until it is settled or its ackWait passes. */
class Held {
  settled = false;
  timer: NodeJS.Timeout | undefined;
  constructor(
    readonly seq: number,
    readonly count: number,
  ) {}
}

/** A delivery of a {@link PgSubscription}, with the claim it stands for. */
type PgDelivery = DriverDelivery & { readonly held: Held };

class PgSubscription implements DriverSubscription {
  readonly #driver: SubscriptionHost;
  readonly topic: string;
  readonly group: string;
  readonly #ackWaitMs: number;
  readonly #prefetch: number;
  /**
   * Claimed, and handed to the application as it asks. A `next()` that waits is what makes a claim due; a
   * delivery whose ackWait passed while it waited here may be another consumer's by now, and is skipped.
   */
  readonly #deliveries = new PushIterator<PgDelivery>({
    onDemand: () => this.wake(),
    onReturn: () => this.close(),
    stale: (d) => d.held.settled,
  });
  /** Claimed and neither settled nor past ackWait (the buffered ones included). */
  #held = 0;
  #working = false;
  /** Acks waiting to go with the next claim, or on their own. */
  readonly #acks: { readonly held: Held; readonly resolve: () => void; readonly reject: (err: unknown) => void }[] = [];
  /** A wake came while a claim was in flight: look again before sleeping. */
  #again = false;
  #failures = 0;
  #timer: NodeJS.Timeout | undefined;
  #scheduled: NodeJS.Immediate | undefined;

  constructor(driver: SubscriptionHost, topic: string, group: string, ackWaitMs: number, prefetch: number) {
    this.#driver = driver;
    this.topic = topic;
    this.group = group;
    this.#ackWaitMs = ackWaitMs;
    this.#prefetch = prefetch;
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this.#deliveries;
  }

  /** Something may have become claimable: claim if a `next()` waits and the prefetch has room. */
  wake(): void {
    if (!this.#deliveries.waiting) return;
    this.#kick();
  }

  /**
   * Acks a delivery of this subscription. While the subscription is open the ack goes with its next
   * claim (one statement and one commit for both) or, when no claim is due, with the other acks of its
   * group; it resolves once committed.
   */
  ack(held: Held): Promise<void> {
    if (this.#deliveries.ended) return this.#driver.ack(this.topic, this.group, held.seq, held.count);
    return new Promise((resolve, reject) => {
      this.#acks.push({ held, resolve, reject });
      this.#kick();
    });
  }

  #kick(): void {
    if (this.#working) {
      this.#again = true;
      return;
    }
    // On the next turn of the event loop: the acks of one turn go together, and the room they free is
    // claimed at once rather than one message at a time.
    this.#scheduled ??= setImmediate(() => {
      this.#scheduled = undefined;
      if (this.#working) this.#again = true;
      else void this.#work();
    });
  }

  /** Sends the queued acks, with a claim when a `next()` waits and the prefetch has room, until neither is due. */
  async #work(): Promise<void> {
    this.#working = true;
    try {
      for (;;) {
        clearTimeout(this.#timer);
        this.#timer = undefined;
        this.#again = false;
        const acks = this.#acks.splice(0, BATCH_MESSAGES);
        const room = this.#prefetch - this.#held + acks.filter((a) => !a.held.settled).length;
        // Acks ride with a claim whenever the prefetch has room, also when no `next()` waits yet: a consumer
        // that acks is iterating, and the messages claimed wait in the buffer for its next `next()`.
        const claim = !this.#deliveries.ended && (this.#deliveries.waiting || acks.length > 0) && room > 0;
        if (!claim) {
          if (acks.length === 0) return;
          await Promise.all(
            acks.map((a) =>
              this.#driver.ack(this.topic, this.group, a.held.seq, a.held.count).then(() => {
                this.#release(a.held);
                a.resolve();
              }, a.reject),
            ),
          );
          continue;
        }
        let rows: ClaimRow[];
        try {
          rows = await this.#driver.claim(this.topic, this.group, room, this.#ackWaitMs, acks.map((a) => a.held.seq), acks.map((a) => a.held.count));
        } catch (err) {
          for (const a of acks) a.reject(err);
          if (this.#deliveries.ended) return;
          this.#failures++;
          if (this.#failures === 1) {
            this.#driver.logger.debug(`postgres queue: ${this.topic}/${this.group}: claim failed, retrying (${this.#driver.mapError(err)?.message ?? String(err)})`);
          }
          this.#sleep(Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(this.#failures - 1, 5)));
          return;
        }
        this.#failures = 0;
        // The room these acks free was counted already: their releases are no reason to claim again.
        const again = this.#again;
        for (const a of acks) {
          this.#release(a.held);
          a.resolve();
        }
        this.#again = again;
        if (rows.length > 0) {
          this.#take(rows);
          continue;
        }
        if (this.#again || this.#acks.length > 0) continue;
        const dueInMs = await this.#driver.nextVisible(this.topic, this.group).catch(() => undefined);
        if (this.#again || this.#acks.length > 0) continue;
        // Due now but not claimed: a row another statement held (SKIP LOCKED). Look again shortly.
        this.#sleep(dueInMs === undefined ? this.#driver.pollMs : Math.min(this.#driver.pollMs, Math.max(20, Math.ceil(dueInMs))));
        return;
      }
    } finally {
      this.#working = false;
      // Acks queued by a late kick while the loop was returning.
      if (this.#acks.length > 0) this.#kick();
    }
  }

  #sleep(ms: number): void {
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.wake();
    }, ms).unref();
  }

  #take(rows: ClaimRow[]): void {
    if (this.#deliveries.ended) {
      this.#driver.unclaim(this.topic, this.group, rows.map((r) => Number(r.o_seq)), rows.map((r) => r.o_deliveries));
      return;
    }
    for (const row of rows) {
      const held = new Held(Number(row.o_seq), row.o_deliveries);
      this.#held++;
      held.timer = setTimeout(() => this.#release(held), this.#ackWaitMs).unref();
      this.#deliveries.push(this.#delivery(row, held));
    }
  }

  /** The delivery no longer counts against the prefetch (settled, or its ackWait passed). */
  #release(held: Held): void {
    if (held.settled) return;
    held.settled = true;
    clearTimeout(held.timer);
    this.#held--;
    this.wake();
  }

  #delivery(row: ClaimRow, held: Held): PgDelivery {
    const { topic, group } = this;
    const driver = this.#driver;
    const ackWaitMs = this.#ackWaitMs;
    return {
      held,
      seq: held.seq,
      id: row.o_id ?? undefined,
      headers: Object.freeze(row.o_headers),
      payload: asBytes(row.o_payload),
      publishedAt: row.o_published_at,
      deliveryCount: held.count,
      ack: async () => {
        // Also after ackWait: the work was done. If the message was redelivered meanwhile, the count no
        // longer matches and the ack changes nothing (the new delivery owns it).
        await this.ack(held);
        this.#release(held);
      },
      nak: async (delayMs: number) => {
        if (held.settled) return;
        await driver.settle('nak', topic, group, held.seq, held.count, delayMs);
        this.#release(held);
        if (delayMs === 0) driver.wakeGroup(topic, group);
      },
      touch: async () => {
        if (held.settled) return;
        if (await driver.settle('touch', topic, group, held.seq, held.count, ackWaitMs)) {
          clearTimeout(held.timer);
          held.timer = setTimeout(() => this.#release(held), ackWaitMs).unref();
        }
      },
    };
  }

  async close(): Promise<void> {
    if (this.#deliveries.ended) return;
    const unhanded = this.#deliveries.stop().map((d) => d.held);
    clearTimeout(this.#timer);
    clearImmediate(this.#scheduled);
    this.#scheduled = undefined;
    // Acks still queued go with the other acks of the group (or, while #work runs, with its next statement).
    if (!this.#working) {
      for (const a of this.#acks.splice(0)) {
        this.#driver.ack(this.topic, this.group, a.held.seq, a.held.count).then(() => {
          this.#release(a.held);
          a.resolve();
        }, a.reject);
      }
    }
    for (const held of unhanded) {
      held.settled = true;
      clearTimeout(held.timer);
    }
    this.#driver.unclaim(this.topic, this.group, unhanded.map((h) => h.seq), unhanded.map((h) => h.count));
    this.#driver.unsubscribed(this);
  }
}
