/**
 * The RabbitMQ queue driver (`rabbitmq://`, `amqp://`, `amqps://`).
 *
 * **Layout.** Every name starts with the URL's `prefix` (default `stowage`):
 * - one durable topic exchange `<prefix>`; a message of topic `T` is published to it with routing key `T`;
 * - a **stream** `<prefix>.T`, bound with key `T`: the topic's history, which `read` (browse, dead letters),
 *   `stats` and the filling of new groups scan;
 * - a **quorum queue** `<prefix>.T.<group>` per consumer group, bound with key `T`: the group's work queue,
 *   consumed with manual acks (sent after the handler), its `x-delivery-count` giving delivery counts;
 * - a stream `<prefix>.~meta` of small JSON records (topic created, group created or sought, dead letter
 *   removed), tailed by every driver so that `topics`, `stats` and `read` know them.
 *
 * A publish resolves once RabbitMQ confirmed it (publisher confirms), i.e. once the stream and every group's
 * queue hold it. Sequences are the publisher's clock in microseconds, made strictly increasing within a
 * process: AMQP 0-9-1 tells a publisher nothing it could number by, so across publishers on different hosts
 * the order of sequences is that of their clocks.
 *
 * **New groups and seekGroup.** A group queue receives only what is published while it is bound, so a new
 * group is filled from the stream: unbound, purged, every stored message from the wanted sequence copied in,
 * bound, then the messages published meanwhile copied too (a message published during the bind may then be
 * delivered twice: at-least-once). An exclusive queue serialises this across processes.
 *
 * **End of a stream.** AMQP consumers of a stream are never told they reached its end, so a scan first
 * appends a small "fence" record to the stream and reads until it sees its own fence. Fences, like the
 * meta stream's records, are skipped by every reader.
 *
 * **ackWait** is the adapter's own clock: a delivery unsettled after `ackWaitMs` (counted from its arrival
 * or last `touch`) is returned to the queue (basic.nack with requeue), which redelivers it with
 * `x-delivery-count` one higher; a later `ack`, `nak` or `touch` of that delivery is ignored.
 *
 * **Delays.** AMQP has no delayed requeue, and a message kept by its consumer until its time would hold a
 * prefetch slot. So a `nak` with a delay (and a delayed message seen early, which core naks until its time)
 * publishes a copy to a **wait queue** of the group, `<prefix>.T.<group>.~wait.<ms>`: a classic queue whose
 * `x-message-ttl` is a power of two of milliseconds and whose expired messages are dead-lettered back to the
 * group's queue. Once RabbitMQ confirmed the copy the delivery is acked (a crash in between delivers it twice:
 * at-least-once). The copy carries when it is due and how often it was delivered in headers of ours; back in
 * the group's queue before its time it goes to the largest wait queue not longer than what is left, and a
 * remainder under `WAIT_MIN_MS` is waited out by the consumer.
 *
 * @module
 */
import { randomUUID } from 'node:crypto';
import {
  AMQPChannelError,
  AMQPConnectionError,
  AMQPError,
  ConsumerStatus,
  type AsyncMessage,
  type Connection,
  type Consumer,
  type Publisher,
} from 'rabbitmq-client';
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
import { PushIterator, type Logger } from '../../driver/index.js';
import { safeCause } from '../../driver/errors.js';
import { pause, sleep, RETRY_MAX_MS, RETRY_MIN_MS } from '../../driver/sleep.js';
import { GroupConsumer } from './group-consumer.js';

/** Options of {@link RabbitQueueDriver.connect}. */
export interface RabbitQueueOptions {
  /** The connection: hosts, credentials, vhost, TLS (never logged: it holds the password). */
  readonly connection: Connection;
  /** Opens one more connection like it (to probe a new stream without risking the main one). */
  readonly probe: () => Connection;
  /** The password, to remove from error messages. */
  readonly pass?: string;
  /** The prefix of the exchange, streams and queues. */
  readonly prefix: string;
  /** How long the dedupe window is, in milliseconds. */
  readonly dedupeWindowMs: number;
  /** The quorum queues' `x-delivery-limit`, when set (see the README: RabbitMQ 4.x defaults it to 20). */
  readonly deliveryLimit: number | undefined;
  /** Timeout of connecting and of each request. */
  readonly requestTimeoutMs: number;
  /** Where notices (reconnects, consumer errors) go. */
  readonly logger: Logger;
}

/** Header of the message's sequence. */
const SEQ = 'x-stowage-seq';
/** Header of a fence (a scan's end marker). */
const FENCE = 'x-stowage-fence';
/** Header of a message sent to a wait queue: when it is due, in milliseconds since the epoch. */
const DUE = 'x-stowage-due';
/** Header of a message sent to a wait queue: how many times it had been delivered (its count restarts). */
const DELIVERED = 'x-stowage-delivered';
/** The shortest wait queue's TTL: a shorter remainder of a delay is waited out by the consumer. */
const WAIT_MIN_MS = 32;
/** Headers RabbitMQ or this driver set: never an application's. */
const OWN_HEADER = /^x-(stowage-|death$|delivery-count$|stream-offset$|first-death-|last-death-|received-from$)/i;

/** A record of the meta stream. */
type MetaRecord =
  | { readonly kind: 'topic'; readonly topic: string }
  | { readonly kind: 'group'; readonly topic: string; readonly group: string; readonly from: number }
  | { readonly kind: 'remove'; readonly topic: string; readonly seq: number }
  | { readonly kind: 'wait'; readonly topic: string; readonly group: string; readonly ttlMs: number };

/** What the meta stream says about a topic. */
interface TopicMeta {
  /** Each group and the sequence it was last filled (or sought) from. */
  readonly groups: Map<string, number>;
  /** Sequences removed from the topic's stream (replayed dead letters). */
  readonly removed: Set<number>;
  /** Each group's wait queues, by TTL in milliseconds. */
  readonly waits: Map<string, Set<number>>;
}

/** One stored message of a scan. */
interface Scanned extends StoredMessage {
  readonly body: Buffer;
}

/** A scan's fence refused as {@link STREAM_NOT_READY} before the scan read anything (so it may start again). */
/** A stream's probe on the current connection (see #streamLive). */
interface StreamProbe {
  /** Settles when the probe does. */
  readonly done: Promise<void>;
  /** Whether it resolved: the stream takes publishes. */
  passed: boolean;
}

class FenceRefused extends Error {
  constructor(override readonly cause: unknown) {
    super('the fence of a stream scan was refused', { cause });
  }
}

/** What RabbitMQ 3.10 answers a publish to a stream that is declared but not yet running (see `#streamRunning`). */
const STREAM_NOT_READY = ['RESOURCE_ERROR', 'INTERNAL_ERROR'] as const;

function isAmqpCode(err: unknown, ...codes: string[]): boolean {
  return err instanceof AMQPError && codes.includes(err.code);
}

/** What a message without application headers carries: one frozen object for all of them. */
const NO_HEADERS: Headers = Object.freeze({});

/**
 * The application headers of a message (RabbitMQ's and Stowage's own removed). Every message of ours has
 * its sequence header, so this runs once per delivery: a name that does not start with `x-` cannot be an
 * own header and skips the pattern, and a message with no header left shares {@link NO_HEADERS}.
 */
function appHeaders(h: Record<string, unknown> | undefined): Headers {
  let out: Record<string, string> | undefined;
  // The client decodes a header table into a plain object: its keys are all own.
  for (const name in h) {
    const c = name.charCodeAt(0);
    if ((c === 0x78 || c === 0x58) && name.charCodeAt(1) === 0x2d && OWN_HEADER.test(name)) continue;
    const value = h[name];
    (out ??= {})[name] = typeof value === 'string' ? value : Buffer.isBuffer(value) ? value.toString('utf8') : String(value);
  }
  return out === undefined ? NO_HEADERS : Object.freeze(out);
}

/** A positive integer header of ours (0 when absent or not one). */
function intHeader(h: Record<string, unknown> | undefined, name: string): number {
  const raw = h?.[name];
  const n = typeof raw === 'string' ? Number(raw) : typeof raw === 'number' ? raw : 0;
  return Number.isSafeInteger(n) && n > 0 ? n : 0;
}

/** The sequence a message was published with (0 for a fence or a message not published by Stowage). */
function seqOf(h: Record<string, unknown> | undefined): number {
  return intHeader(h, SEQ);
}

/** The TTL of the wait queue a delay of `ms` (at least `WAIT_MIN_MS`) goes to: the largest power of two not above it. */
function waitTtl(ms: number): number {
  return 2 ** Math.floor(Math.log2(ms));
}

/** How many times a message was delivered before: those counted in our header, plus the quorum queue's returns. */
function deliveriesBefore(h: Record<string, unknown> | undefined): number {
  // Quorum queues count the times a message was returned (absent before the first return).
  const returned = Number(h?.['x-delivery-count'] ?? 0);
  return intHeader(h, DELIVERED) + (Number.isSafeInteger(returned) && returned > 0 ? returned : 0);
}

/** A message's body as bytes (the client decodes JSON and text bodies by their content type). */
function bodyOf(m: { body: unknown }): Buffer {
  return Buffer.isBuffer(m.body) ? m.body : Buffer.from(typeof m.body === 'string' ? m.body : JSON.stringify(m.body ?? ''));
}

/** The message id, when it has one. */
function idOf(m: { messageId?: string }): string | undefined {
  return m.messageId === undefined || m.messageId === '' ? undefined : m.messageId;
}

function stored(m: { headers?: Record<string, unknown>; messageId?: string; body: unknown }, seq: number): Scanned {
  const body = bodyOf(m);
  return {
    seq,
    id: idOf(m),
    headers: appHeaders(m.headers),
    payload: new Uint8Array(body.buffer, body.byteOffset, body.byteLength),
    publishedAt: new Date(Math.floor(seq / 1000)),
    body,
  };
}

/**
 * A {@link QueueDriver} over RabbitMQ quorum queues and streams. Open it with {@link RabbitQueueDriver.connect}
 * (or the `rabbitmq://` scheme); {@link RabbitQueueDriver.native} gives the `rabbitmq-client` Connection.
 */
export class RabbitQueueDriver implements QueueDriver {
  readonly backend = 'rabbitmq';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>();
  readonly #conn: Connection;
  readonly #options: RabbitQueueOptions;
  readonly #publisher: Publisher;
  readonly #subs = new Set<RabbitSubscription>();
  /** Topics whose stream and binding this process has declared, each with its stream's name (made once, not per publish). */
  readonly #ready = new Map<string, string>();
  /** The meta stream's state, and the tailing consumer keeping it. */
  readonly #topics = new Map<string, TopicMeta>();
  readonly #fences = new Map<string, () => void>();
  #metaTail: Consumer | undefined;
  /** Ids published within the dedupe window: `topic\0id` → seq and when. */
  readonly #dedupe = new Map<string, { seq: number; at: number }>();
  #lastSeq = 0;
  /** In-process locks of group filling (the exclusive queue only excludes other connections). */
  readonly #groupLocks = new Map<string, Promise<void>>();
  /** The group queues this process is filling. */
  readonly #filling = new Set<string>();
  /** The wait queues this process has declared. */
  readonly #waitQueues = new Set<string>();
  /**
   * Streams probed since the connection was last made: each probe, shared by the calls that wait on it, and
   * whether it has passed. A publish to a topic whose stream is declared, bound and has passed goes straight
   * out, with no await before it (one microtask and one promise less per publish).
   */
  readonly #live = new Map<string, StreamProbe>();
  /** How many times the connection was made: a publish that spans a reconnect is checked again. */
  #connections = 0;

  private constructor(options: RabbitQueueOptions) {
    this.#conn = options.connection;
    this.#options = options;
    this.#publisher = this.#conn.createPublisher({ confirm: true, maxAttempts: 1 });
    this.#conn.on('error', (err: unknown) => this.warn('connection error', err));
    // After a broker restart every stream is probed again before it is written to (see #streamLive).
    this.#conn.on('connection', () => {
      this.#connections++;
      this.#live.clear();
    });
  }

  /** Connects, declares the exchange and the meta stream, and starts tailing it. */
  static async connect(options: RabbitQueueOptions): Promise<RabbitQueueDriver> {
    const driver = new RabbitQueueDriver(options);
    try {
      await options.connection.onConnect(options.requestTimeoutMs);
      await options.connection.exchangeDeclare({ exchange: options.prefix, type: 'topic', durable: true });
      await options.connection.queueDeclare({ queue: driver.#metaStream, durable: true, arguments: { 'x-queue-type': 'stream' } });
      // The driver's first record or fence goes to the meta stream on the main connection: it must take them.
      await driver.#streamLive(driver.#metaStream);
      driver.#tailMeta();
      return driver;
    } catch (err) {
      // A connection that never opened has nothing to drain; its graceful close would wait for a socket
      // event that already happened.
      options.connection.unsafeDestroy();
      throw err;
    }
  }

  /** Logs a warning; the client appends to the message of an error it reports again, so it is cut short. */
  warn(what: string, err: unknown): void {
    const text = safeCause(err, this.#secrets())?.message ?? String(err);
    this.#options.logger.warn(`rabbitmq queue: ${what}: ${text.length > 300 ? `${text.slice(0, 300)}…` : text}`);
  }

  #secrets(): string[] {
    return this.#options.pass === undefined ? [] : [this.#options.pass];
  }

  get #metaStream(): string {
    return `${this.#options.prefix}.~meta`;
  }

  /** The stream holding a topic's history. */
  streamOf(topic: string): string {
    return `${this.#options.prefix}.${topic}`;
  }

  /** The quorum queue of a group. */
  queueOf(topic: string, group: string): string {
    return `${this.#options.prefix}.${topic}.${group}`;
  }

  /** A wait queue of a group: what it holds goes back to the group's queue after `ttlMs`. */
  waitQueueOf(topic: string, group: string, ttlMs: number): string {
    return `${this.queueOf(topic, group)}.~wait.${ttlMs}`;
  }

  /**
   * Sends a delivered message back to its group at `due` (milliseconds since the epoch, at least
   * `WAIT_MIN_MS` ahead) through the wait queue of the largest TTL not above what is left; resolves
   * once RabbitMQ confirmed the copy. `delivered` is how many times the message was delivered so far.
   */
  async sendToWait(topic: string, group: string, m: Pick<StoredMessage, 'seq' | 'id' | 'headers' | 'payload'>, due: number, delivered: number): Promise<void> {
    const ttlMs = waitTtl(Math.max(WAIT_MIN_MS, due - Date.now()));
    const queue = this.waitQueueOf(topic, group, ttlMs);
    if (!this.#waitQueues.has(queue)) {
      await this.#conn.queueDeclare({
        queue,
        durable: true,
        arguments: { 'x-queue-type': 'classic', 'x-message-ttl': ttlMs, 'x-dead-letter-exchange': '', 'x-dead-letter-routing-key': this.queueOf(topic, group) },
      });
      // Recorded so that stats count what waits there and seekGroup purges it, in every process.
      if (this.#topics.get(topic)?.waits.get(group)?.has(ttlMs) !== true) await this.#record({ kind: 'wait', topic, group, ttlMs });
      this.#waitQueues.add(queue);
    }
    const body = Buffer.from(m.payload.buffer, m.payload.byteOffset, m.payload.byteLength);
    const headers = { ...m.headers, [SEQ]: String(m.seq), [DUE]: String(due), [DELIVERED]: String(delivered) };
    await this.#publisher.send({ exchange: '', routingKey: queue, durable: true, messageId: m.id, headers }, body);
  }

  /** How many messages of a group wait in its wait queues. */
  async #waiting(topic: string, group: string, signal: AbortSignal): Promise<number> {
    let n = 0;
    for (const ttlMs of this.#topics.get(topic)?.waits.get(group) ?? []) {
      n += (await this.#declareAlone({ queue: this.waitQueueOf(topic, group, ttlMs), passive: true }, signal))?.messageCount ?? 0;
    }
    return n;
  }

  /** Empties a group's wait queues (a sought group starts over from the stream). */
  async #purgeWaits(topic: string, group: string, signal: AbortSignal): Promise<void> {
    for (const ttlMs of this.#topics.get(topic)?.waits.get(group) ?? []) {
      const ch = await abortable(this.#conn.acquire(), signal);
      try {
        await abortable(ch.queuePurge({ queue: this.waitQueueOf(topic, group, ttlMs) }), signal);
      } catch (err) {
        if (!isAmqpCode(err, 'NOT_FOUND')) throw err;
      } finally {
        await ch.close().catch(() => undefined);
      }
    }
  }

  #meta(topic: string): TopicMeta {
    let meta = this.#topics.get(topic);
    if (meta === undefined) {
      meta = { groups: new Map(), removed: new Set(), waits: new Map() };
      this.#topics.set(topic, meta);
    }
    return meta;
  }

  /** Tails the meta stream from its start (again after a reconnect: applying a record twice changes nothing). */
  #tailMeta(): void {
    this.#metaTail = this.#conn.createConsumer(
      { queue: this.#metaStream, queueOptions: { passive: true }, qos: { prefetchCount: 1000 }, arguments: { 'x-stream-offset': 'first' } },
      (m: AsyncMessage) => {
        const fence = m.headers?.[FENCE];
        if (typeof fence === 'string') {
          this.#fences.get(fence)?.();
          return;
        }
        try {
          this.#apply(JSON.parse(String(m.body)) as MetaRecord);
        } catch {
          // Not a record of ours: skipped.
        }
      },
    );
    this.#metaTail.on('error', (err: unknown) => this.warn('meta stream', err));
  }

  #apply(r: MetaRecord): void {
    const meta = this.#meta(r.topic);
    if (r.kind === 'group') meta.groups.set(r.group, r.from);
    else if (r.kind === 'remove') meta.removed.add(r.seq);
    else if (r.kind === 'wait') {
      const ttls = meta.waits.get(r.group) ?? new Set<number>();
      ttls.add(r.ttlMs);
      meta.waits.set(r.group, ttls);
    }
  }

  /** Appends a record to the meta stream and waits until the tail has applied it. */
  async #record(r: MetaRecord): Promise<void> {
    await this.#streamLive(this.#metaStream);
    await this.#publisher.send({ exchange: '', routingKey: this.#metaStream, durable: true }, JSON.stringify(r));
    this.#apply(r);
  }

  /** Waits until the tail has read everything the meta stream held when called. */
  async #syncMeta(signal: AbortSignal): Promise<void> {
    const token = randomUUID();
    const seen = new Promise<void>((resolve) => this.#fences.set(token, resolve));
    try {
      await abortable(this.#streamLive(this.#metaStream), signal);
      await abortable(this.#publisher.send({ exchange: '', routingKey: this.#metaStream, headers: { [FENCE]: token } }, ''), signal);
      await abortable(seen, signal);
    } finally {
      this.#fences.delete(token);
    }
  }

  /**
   * Declares a queue on a channel of its own and closes it: the declarations that may fail (passive ones,
   * an exclusive queue held elsewhere) close their channel, which must not be the one other calls share.
   * Resolves with undefined when the queue does not exist (passive) or is locked (exclusive).
   */
  async #declareAlone(
    params: { queue: string; passive?: boolean; exclusive?: boolean; autoDelete?: boolean },
    signal: AbortSignal,
  ): Promise<{ messageCount: number; consumerCount: number } | undefined> {
    const ch = await abortable(this.#conn.acquire(), signal);
    try {
      return await abortable(ch.queueDeclare(params), signal);
    } catch (err) {
      if (isAmqpCode(err, 'NOT_FOUND', 'RESOURCE_LOCKED')) return undefined;
      throw err;
    } finally {
      await ch.close().catch(() => undefined);
    }
  }

  /** Declares the topic's stream and binds it (once per process and topic); then waits until it takes publishes. */
  async #ensureTopic(topic: string): Promise<void> {
    const stream = this.streamOf(topic);
    if (this.#ready.has(topic)) {
      await this.#streamLive(stream);
    } else {
      await this.#conn.queueDeclare({ queue: stream, durable: true, arguments: { 'x-queue-type': 'stream' } });
      await this.#streamLive(stream);
      await this.#conn.queueBind({ queue: stream, exchange: this.#options.prefix, routingKey: topic });
      if (!this.#topics.has(topic)) await this.#record({ kind: 'topic', topic });
      this.#ready.set(topic, stream);
    }
  }

  /**
   * Whether a publish to `topic` can go straight out: its stream is declared and bound, and its probe on the
   * current connection has passed. (A reconnection empties #live: a probe made
   * before it no longer counts.)
   */
  #publishable(topic: string): boolean {
    const stream = this.#ready.get(topic);
    return stream !== undefined && this.#live.get(stream)?.passed === true;
  }

  /**
   * Waits until a stream takes publishes, probing it once per connection (see #streamRunning). After a broker
   * restart RabbitMQ 3.10 lets clients in before the stream coordinator has restarted each stream and put its
   * queue record back ("resource for stream id … not found, recovering from rabbit_durable_queue" in the
   * broker's debug log); a publish through the topic exchange meanwhile reaches the group queues but not the
   * stream, and is confirmed: the topic's history would miss an acknowledged message.
   */
  #streamLive(stream: string): Promise<void> {
    let probe = this.#live.get(stream);
    if (probe === undefined) {
      const made: StreamProbe = { done: this.#streamRunning(stream), passed: false };
      // Registered before any caller awaits it: a caller that resumes sees `passed` set.
      made.done.then(
        () => (made.passed = true),
        () => {
          if (this.#live.get(stream) === made) this.#live.delete(stream);
        },
      );
      this.#live.set(stream, made);
      probe = made;
    }
    return probe.done;
  }

  /**
   * Waits until a stream takes publishes. RabbitMQ 3.10 answers the declaration before that, and
   * a publish routed to the stream in between fails with RESOURCE_ERROR "Stream not found", or crashes the
   * channel (the stream has no writer yet: `osiris_writer:write(none, …)`, fixed in RabbitMQ 4.0 by
   * rabbitmq-server#12969), which the broker answers by closing the connection with INTERNAL_ERROR. Either
   * would close every channel and consumer of this driver. And while a stream has no queue record (a restart,
   * see #streamLive) a publish to it is routed nowhere and still confirmed. So a fence is published to it,
   * mandatory, on a connection of its own, again until it is confirmed and not returned.
   */
  async #streamRunning(stream: string): Promise<void> {
    const deadline = Date.now() + this.#options.requestTimeoutMs;
    let wait = 20;
    for (;;) {
      const probe = this.#options.probe();
      try {
        await probe.onConnect(this.#options.requestTimeoutMs);
        const publisher = probe.createPublisher({ confirm: true, maxAttempts: 1 });
        let returned = false;
        // RabbitMQ sends basic.return before the confirm of the same message.
        publisher.on('basic.return', () => (returned = true));
        await publisher.send({ exchange: '', routingKey: stream, mandatory: true, headers: { [FENCE]: randomUUID() } }, '');
        await publisher.close();
        if (!returned) return;
        if (Date.now() + wait > deadline) throw new StowageError('UNAVAILABLE', `rabbitmq: stream ${stream} takes no publishes yet`, { retryable: true });
      } catch (err) {
        if (!isAmqpCode(err, ...STREAM_NOT_READY) || Date.now() + wait > deadline) throw err;
      } finally {
        probe.unsafeDestroy();
      }
      await pause(wait);
      wait = Math.min(wait * 2, 500);
    }
  }

  #nextSeq(): number {
    // Microseconds of the wall clock: comparable across processes, as far as their clocks agree.
    const now = Math.floor((performance.timeOrigin + performance.now()) * 1000);
    this.#lastSeq = Math.max(this.#lastSeq + 1, now);
    return this.#lastSeq;
  }

  async publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined): Promise<PublishResult> {
    let any = false;
    for (const name in headers) {
      any = true;
      if (OWN_HEADER.test(name)) throw new StowageError('INVALID_ARGUMENT', `header name "${name}" is reserved by RabbitMQ or the rabbitmq adapter`);
    }
    const key = id === undefined ? undefined : `${topic}\0${id}`;
    if (key !== undefined) {
      const seen = this.#dedupe.get(key);
      if (seen !== undefined && Date.now() - seen.at < this.#options.dedupeWindowMs) return { seq: seen.seq, duplicate: true };
    }
    if (!this.#publishable(topic)) await this.#ensureTopic(topic);
    const seq = this.#nextSeq();
    const body = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    // Without headers, a literal (SEQ's name written out): built from a fixed shape, where a spread and a computed key are not.
    const stamped = any ? { ...headers, [SEQ]: String(seq) } : { 'x-stowage-seq': String(seq) };
    const envelope = { exchange: this.#options.prefix, routingKey: topic, durable: true, messageId: id, headers: stamped };
    const connections = this.#connections;
    try {
      await this.#publisher.send(envelope, body);
      if (this.#connections !== connections) {
        // Sent after a reconnect, maybe before the stream was back (see #streamLive): once it is, publish once
        // more (the group queues may then hold it twice: at-least-once).
        await this.#ensureTopic(topic);
        await this.#publisher.send(envelope, body);
      }
    } catch (err) {
      if (isAmqpCode(err, ...STREAM_NOT_READY)) {
        // RabbitMQ 3.10 sometimes refuses the first publish to a stream just declared (see #streamRunning),
        // closing the connection: once the client has reconnected, publish once more (if the first attempt
        // was routed after all, the message is stored twice: at-least-once).
        await this.#conn.onConnect(this.#options.requestTimeoutMs, true);
        await this.#publisher.send(envelope, body);
      } else {
        // The stream was deleted behind our back: declare it again and publish once more.
        if (!isAmqpCode(err, 'NOT_FOUND')) throw err;
        this.#ready.delete(topic);
        await this.#ensureTopic(topic);
        await this.#publisher.send(envelope, body);
      }
    }
    if (key !== undefined) this.#remember(key, seq);
    return { seq, duplicate: false };
  }

  #remember(key: string, seq: number): void {
    const now = Date.now();
    // Map order is insertion order: the oldest entries are first.
    for (const [k, v] of this.#dedupe) {
      if (now - v.at < this.#options.dedupeWindowMs) break;
      this.#dedupe.delete(k);
    }
    this.#dedupe.set(key, { seq, at: now });
  }

  /**
   * Reads a topic's stream from its start up to a fence appended now, calling `each` for every stored
   * message (fences and removed messages skipped) until it returns false.
   */
  async #scan(topic: string, signal: AbortSignal, each: (m: Scanned) => boolean): Promise<void> {
    try {
      await this.#scanOnce(topic, signal, each);
    } catch (err) {
      if (!(err instanceof FenceRefused)) throw err;
      // The fence was refused before anything was read (RabbitMQ 3.10: "Stream not found" for a stream whose
      // writer is not running yet, which closes the connection): once reconnected and the stream takes
      // publishes, scan again.
      this.#live.delete(this.streamOf(topic));
      await abortable(this.#conn.onConnect(this.#options.requestTimeoutMs, true), signal);
      await this.#scanOnce(topic, signal, each).catch((again: unknown) => {
        throw again instanceof FenceRefused ? again.cause : again;
      });
    }
  }

  async #scanOnce(topic: string, signal: AbortSignal, each: (m: Scanned) => boolean): Promise<void> {
    const stream = this.streamOf(topic);
    const removed = this.#topics.get(topic)?.removed;
    const ch = await abortable(this.#conn.acquire(), signal);
    try {
      try {
        await abortable(ch.queueDeclare({ queue: stream, passive: true }), signal);
      } catch (err) {
        if (isAmqpCode(err, 'NOT_FOUND')) return;
        throw err;
      }
      const token = randomUUID();
      await abortable(this.#streamLive(stream), signal);
      await abortable(this.#publisher.send({ exchange: '', routingKey: stream, headers: { [FENCE]: token } }, ''), signal).catch((err: unknown) => {
        throw isAmqpCode(err, ...STREAM_NOT_READY) ? new FenceRefused(err) : err;
      });
      await abortable(ch.basicQos({ prefetchCount: 1000 }), signal);
      let finish!: () => void;
      const done = new Promise<void>((resolve) => (finish = resolve));
      let stopped = false;
      const consuming = ch.basicConsume({ queue: stream, arguments: { 'x-stream-offset': 'first' } }, (m) => {
        if (stopped) return;
        try {
          // A stream consumer gets credit back only through acks.
          ch.basicAck({ deliveryTag: m.deliveryTag });
        } catch {
          // The channel closed under the scan (the call was cancelled, the connection dropped): it has ended.
          return;
        }
        if (m.headers?.[FENCE] === token) {
          stopped = true;
          finish();
          return;
        }
        const seq = seqOf(m.headers);
        if (seq === 0 || removed?.has(seq) === true) return;
        if (!each(stored(m, seq))) {
          stopped = true;
          finish();
        }
      });
      await abortable(consuming, signal);
      await abortable(done, signal);
    } finally {
      // Not awaited beyond a moment: closing waits for the server, which may be the reason we stopped.
      void ch.close().catch(() => undefined);
    }
  }

  async read(topic: string, fromSeq: number, limit: number, signal: AbortSignal): Promise<StoredMessage[]> {
    await this.#syncMeta(signal);
    const out: StoredMessage[] = [];
    if (limit <= 0) return out;
    await this.#scan(topic, signal, (m) => {
      if (m.seq >= fromSeq) out.push({ seq: m.seq, id: m.id, headers: m.headers, payload: m.payload, publishedAt: m.publishedAt });
      return out.length < limit;
    });
    return out;
  }

  /** Streams are append-only: the removal is a record of the meta stream that every reader applies. */
  async remove(topic: string, seq: number): Promise<void> {
    await this.#record({ kind: 'remove', topic, seq });
  }

  async stats(topic: string, signal: AbortSignal): Promise<Omit<TopicStats, 'deadLetters'>> {
    await this.#syncMeta(signal);
    const seqs: number[] = [];
    await this.#scan(topic, signal, (m) => {
      seqs.push(m.seq);
      return true;
    });
    const lastSeq = seqs.length === 0 ? 0 : (seqs[seqs.length - 1] as number);
    const groups = [];
    const known = new Map(this.#topics.get(topic)?.groups);
    // A consumer of this process whose group is still being created counts as a group starting at the oldest.
    for (const s of this.#subs) if (s.topic === topic && !known.has(s.group)) known.set(s.group, 1);
    for (const [group, from] of [...known].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
      // While this process fills the queue it holds only part of what the group has yet to receive.
      const declared = this.#filling.has(this.queueOf(topic, group)) ? undefined : await this.#declareAlone({ queue: this.queueOf(topic, group), passive: true }, signal);
      const ready = declared?.messageCount ?? seqs.filter((seq) => seq >= from).length;
      const waiting = await this.#waiting(topic, group, signal);
      const local = this.#local(topic, group);
      // Ready messages are the newest of the topic (a quorum queue is FIFO); the oldest one not acknowledged
      // is the older of the first ready one and the oldest held here.
      const firstReady = ready > 0 ? seqs[Math.max(0, seqs.length - ready)] : undefined;
      const oldest = Math.min(firstReady ?? Infinity, local.oldestHeld);
      let ackFloor: number;
      if (oldest === Infinity) ackFloor = lastSeq;
      else {
        const i = seqs.findIndex((s) => s >= oldest);
        ackFloor = i > 0 ? (seqs[i - 1] as number) : 0;
      }
      // Which messages wait in a wait queue cannot be read without taking them: while any does, the floor
      // stays where the group started (a seek there delivers again what was acked since: at-least-once).
      ackFloor = waiting > 0 ? from - 1 : Math.max(ackFloor, from - 1);
      groups.push({ group, backlog: ready + waiting, pending: local.pending, redelivered: local.redelivered, ackFloor });
    }
    return { topic, messages: seqs.length, lastSeq, groups };
  }

  /** What this process's consumers of a group hold. */
  #local(topic: string, group: string): { pending: number; redelivered: number; oldestHeld: number } {
    let pending = 0;
    let redelivered = 0;
    let oldestHeld = Infinity;
    for (const s of this.#subs) {
      if (s.topic !== topic || s.group !== group) continue;
      pending += s.held.size;
      redelivered += s.redelivered;
      for (const d of s.held) oldestHeld = Math.min(oldestHeld, d.seq);
    }
    return { pending, redelivered, oldestHeld };
  }

  async topics(signal: AbortSignal): Promise<string[]> {
    await this.#syncMeta(signal);
    return [...this.#topics.keys()].sort();
  }

  /** Whether this process or another has a consumer on the group's queue. */
  async #busy(topic: string, group: string, signal: AbortSignal): Promise<boolean> {
    for (const s of this.#subs) if (s.topic === topic && s.group === group && s.held.size > 0) return true;
    return ((await this.#declareAlone({ queue: this.queueOf(topic, group), passive: true }, signal))?.consumerCount ?? 0) > 0;
  }

  async seekGroup(topic: string, group: string, seq: number, signal: AbortSignal): Promise<void> {
    await this.#syncMeta(signal);
    await this.#withGroupLock(topic, group, signal, async () => {
      if (await this.#busy(topic, group, signal)) {
        throw new StowageError('CONFLICT', `rabbitmq: group ${group} of topic ${topic} has consumers or unsettled deliveries; stop them first`);
      }
      await this.#fill(topic, group, seq, signal);
    });
  }

  /** Creates the group's queue, filled from the topic's oldest stored message, unless it exists. */
  async ensureGroup(topic: string, group: string, signal: AbortSignal): Promise<void> {
    await this.#ensureTopic(topic);
    await this.#withGroupLock(topic, group, signal, async () => {
      // A group is complete once its record is in the meta stream (the last step of a fill). A queue without
      // one is a fill that was interrupted — maybe before the queue was bound — so it is filled again
      // (messages it already held come twice: at-least-once).
      await this.#syncMeta(signal);
      const recorded = this.#topics.get(topic)?.groups.has(group) === true;
      if (recorded && (await this.#declareAlone({ queue: this.queueOf(topic, group), passive: true }, signal)) !== undefined) return;
      await this.#fill(topic, group, 1, signal);
    });
  }

  /**
   * Runs `fn` holding the group's lock: an in-process one, and an exclusive queue (which RabbitMQ lets one
   * connection hold at a time, and drops with the connection) for other processes.
   */
  async #withGroupLock(topic: string, group: string, signal: AbortSignal, fn: () => Promise<void>): Promise<void> {
    const name = `${this.queueOf(topic, group)}.~lock`;
    const before = this.#groupLocks.get(name) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const chain = before.then(() => mine);
    this.#groupLocks.set(name, chain);
    try {
      await abortable(before, signal);
      let wait = RETRY_MIN_MS;
      while ((await this.#declareAlone({ queue: name, exclusive: true, autoDelete: true }, signal)) === undefined) {
        await pause(wait, signal);
        wait = Math.min(wait * 2, RETRY_MAX_MS);
      }
      try {
        await fn();
      } finally {
        // Not awaited: the next holder in this process shares the connection that owns the lock, and one in
        // another process gets it once the delete lands (or this connection closes).
        this.#conn.queueDelete({ queue: name }).catch(() => undefined);
      }
    } finally {
      release();
      if (this.#groupLocks.get(name) === chain) this.#groupLocks.delete(name);
    }
  }

  /**
   * Makes the group's queue hold exactly the stored messages with `seq ≥ from`: unbound, purged, filled
   * from the stream, bound, then topped up with what was published while it was unbound.
   */
  async #fill(topic: string, group: string, from: number, signal: AbortSignal): Promise<void> {
    const queue = this.queueOf(topic, group);
    this.#filling.add(queue);
    try {
      // First the wait queues: what expires from them meanwhile the group's purge removes.
      await this.#purgeWaits(topic, group, signal);
      await this.#fillQueue(topic, queue, from, signal);
    } finally {
      this.#filling.delete(queue);
    }
    await this.#record({ kind: 'group', topic, group, from });
  }

  async #fillQueue(topic: string, queue: string, from: number, signal: AbortSignal): Promise<void> {
    const args: Record<string, unknown> = { 'x-queue-type': 'quorum' };
    if (this.#options.deliveryLimit !== undefined) args['x-delivery-limit'] = this.#options.deliveryLimit;
    await abortable(this.#conn.queueDeclare({ queue, durable: true, arguments: args }), signal);
    await abortable(this.#conn.queueUnbind({ queue, exchange: this.#options.prefix, routingKey: topic }), signal);
    await abortable(this.#conn.queuePurge({ queue }), signal);
    let copied = from - 1;
    const copy = async (): Promise<void> => {
      const sends: Promise<void>[] = [];
      const floor = copied;
      await this.#scan(topic, signal, (m) => {
        if (m.seq > floor) {
          sends.push(this.#publisher.send({ exchange: '', routingKey: queue, durable: true, messageId: m.id, headers: { ...m.headers, [SEQ]: String(m.seq) } }, m.body));
          copied = Math.max(copied, m.seq);
        }
        return true;
      });
      await abortable(Promise.all(sends), signal);
    };
    await copy();
    await abortable(this.#conn.queueBind({ queue, exchange: this.#options.prefix, routingKey: topic }), signal);
    await copy();
  }

  subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const sub = new RabbitSubscription(this, topic, group, options, (s) => this.#subs.delete(s));
    this.#subs.add(sub);
    return sub;
  }

  /** How long one attempt at creating a group may take before it is given up and made again. */
  get attemptMs(): number {
    return 6 * this.#options.requestTimeoutMs;
  }

  async ping(): ReturnType<QueueDriver['ping']> {
    await this.#conn.exchangeDeclare({ exchange: this.#options.prefix, type: 'topic', durable: true, passive: true });
    return { serverVersion: undefined };
  }

  mapError(err: unknown): StowageError | undefined {
    const cause = safeCause(err, this.#secrets());
    const text = cause?.message ?? '';
    if (isAmqpCode(err, 'ACCESS_REFUSED')) return new StowageError('PERMISSION_DENIED', `rabbitmq: ${text}`, { cause });
    if (isAmqpCode(err, 'NOT_FOUND')) return new StowageError('NOT_FOUND', `rabbitmq: ${text}`, { cause });
    if (isAmqpCode(err, 'FRAME_ERROR', 'CONTENT_TOO_LARGE')) return new StowageError('RESOURCE_EXHAUSTED', `rabbitmq: ${text}`, { cause });
    if (err instanceof AMQPConnectionError || (err instanceof AMQPError && /timeout|closed|connection/i.test(err.code + text))) {
      return new StowageError('UNAVAILABLE', `rabbitmq: server not answering: ${text}`, { cause });
    }
    if (err instanceof AMQPChannelError) return new StowageError('INTERNAL', `rabbitmq: ${text}`, { cause });
    return undefined;
  }

  native(): Connection {
    return this.#conn;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#subs].map((s) => s.close()));
    await this.#metaTail?.close().catch(() => undefined);
    await this.#publisher.close().catch(() => undefined);
    // A graceful close waits for the server; one that is frozen or gone must not hold close() for ever.
    let timer: NodeJS.Timeout | undefined;
    const late = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.#options.requestTimeoutMs)));
    try {
      await Promise.race([this.#conn.close().catch(() => undefined), late]);
    } finally {
      clearTimeout(timer);
      this.#conn.unsafeDestroy();
    }
  }
}

/** `promise`, or a rejection with the signal's reason once it aborts. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error);
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error);
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err as Error);
      },
    );
  });
}

/**
 * What every `ack` returns: AMQP acks are not answered, the client sends one once the handler's promise resolves.
 * One promise for all lets core's acks made together share one deadline (see `Settler.ack`) instead of a
 * timer each.
 */
const SENT: Promise<void> = Promise.resolve();

/** One delivery: its settlement resolves the {@link GroupConsumer} handler, which then acks or returns it. */
class RabbitDelivery implements DriverDelivery {
  readonly seq: number;
  readonly id: string | undefined;
  readonly headers: Headers;
  readonly payload: Uint8Array;
  readonly publishedAt: Date;
  readonly deliveryCount: number;
  readonly settled: Promise<ConsumerStatus>;
  /** When its ackWait ends (`performance.now()` time), kept by its subscription's sweep (see `RabbitSubscription.hold`). */
  deadline = 0;
  #settle!: (status: ConsumerStatus) => void;
  /** The timer of a short nak's delay, the only timer a delivery has of its own. */
  #timer: NodeJS.Timeout | undefined;
  #done = false;

  constructor(
    m: AsyncMessage,
    readonly sub: RabbitSubscription,
  ) {
    // Built field by field rather than from `stored()`: this runs once per delivery.
    const h = m.headers;
    const seq = intHeader(h, SEQ);
    const body = bodyOf(m);
    this.seq = seq;
    this.id = idOf(m);
    this.headers = appHeaders(h);
    this.payload = new Uint8Array(body.buffer, body.byteOffset, body.byteLength);
    this.publishedAt = new Date(Math.floor(seq / 1000));
    this.deliveryCount = deliveriesBefore(h) + 1;
    this.settled = new Promise((resolve) => (this.#settle = resolve));
  }

  /** Whether it was settled, or given back when its ackWait passed. */
  get done(): boolean {
    return this.#done;
  }

  /** Settles once; later calls (a late ack after ackWait) do nothing. */
  finish(status: ConsumerStatus): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.sub.release(this);
    this.#settle(status);
  }

  ack(): Promise<void> {
    this.finish(ConsumerStatus.ACK);
    return SENT;
  }

  async nak(delayMs: number): Promise<void> {
    if (this.#done) return;
    if (delayMs >= WAIT_MIN_MS) {
      // A copy in a wait queue first, the ack once it is confirmed: a crash in between delivers it twice, never
      // loses it. ackWait still runs meanwhile: a publish that never ends leaves the message to come again.
      await this.sub.sendToWait(this, Date.now() + delayMs);
      this.finish(ConsumerStatus.ACK);
      return;
    }
    // Too short for a wait queue: kept by this consumer until then, a prefetch slot held for a moment.
    if (delayMs > 0) {
      this.sub.rest(this);
      this.#timer = setTimeout(() => this.finish(ConsumerStatus.REQUEUE), delayMs);
    } else this.finish(ConsumerStatus.REQUEUE);
  }

  touch(): Promise<void> {
    if (!this.#done) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.sub.hold(this);
    }
    return Promise.resolve();
  }
}

/** How long a closed subscription waits for the deliveries it handed out to be settled. */
const SETTLE_ON_CLOSE_MS = 5_000;

/** One consumer of a group. */
class RabbitSubscription implements DriverSubscription {
  readonly #driver: RabbitQueueDriver;
  readonly topic: string;
  readonly group: string;
  readonly #options: { ackWaitMs: number; maxDeliver: number; prefetch: number };
  readonly #unregister: (s: RabbitSubscription) => void;
  readonly #stop = new AbortController();
  /**
   * Deliveries received and not yet settled (buffered or handed out) whose ackWait runs, in the order it
   * ends: each is added, or moved to the end by `touch`, with its deadline `ackWaitMs` from now, and every
   * delivery has the same `ackWaitMs`. One timer (`#sweeper`) then serves them all instead of one per delivery.
   */
  readonly held = new Set<RabbitDelivery>();
  /** Deliveries naked with a delay too short for a wait queue, waiting it out on their own timers. */
  readonly #resting = new Set<RabbitDelivery>();
  /** Armed while `held` is not empty, to fire at or before the deadline of its first delivery. */
  #sweeper: NodeJS.Timeout | undefined;
  /** Deliveries that were redeliveries. */
  redelivered = 0;
  /**
   * Received, and handed to the application as it asks. The consumer starts on the first `next()`; a
   * delivery whose ackWait passed while it waited here is back in the queue already, and is skipped.
   */
  readonly #deliveries = new PushIterator<RabbitDelivery>({
    onDemand: () => void (this.#started ??= this.#start()),
    onReturn: () => this.close(),
    stale: (d) => d.done,
  });
  #consumer: GroupConsumer | undefined;
  #started: Promise<void> | undefined;
  #closing: Promise<void> | undefined;

  constructor(
    driver: RabbitQueueDriver,
    topic: string,
    group: string,
    options: { ackWaitMs: number; maxDeliver: number; prefetch: number },
    unregister: (s: RabbitSubscription) => void,
  ) {
    this.#driver = driver;
    this.topic = topic;
    this.group = group;
    this.#options = options;
    this.#unregister = unregister;
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this.#deliveries;
  }

  /** Creates the group if new, then consumes its queue; retried while the server is away. */
  async #start(): Promise<void> {
    const signal = this.#stop.signal;
    let wait = RETRY_MIN_MS;
    while (!signal.aborted) {
      try {
        // Bounded, so that an attempt stuck on a connection that went away is given up and made again.
        await this.#driver.ensureGroup(this.topic, this.group, AbortSignal.any([signal, AbortSignal.timeout(this.#driver.attemptMs)]));
        break;
      } catch {
        await pause(wait, signal).catch(() => undefined);
        wait = Math.min(wait * 2, RETRY_MAX_MS);
      }
    }
    if (signal.aborted) return;
    // It subscribes again by itself after a reconnect.
    const queue = this.#driver.queueOf(this.topic, this.group);
    this.#consumer = new GroupConsumer(this.#driver.native(), queue, this.#options.prefetch, (m) => this.#arrive(m), (what, err) => this.#driver.warn(what, err));
  }

  /** Sends a delivery back to the group at `due` through a wait queue (see {@link RabbitQueueDriver.sendToWait}). */
  sendToWait(d: RabbitDelivery, due: number): Promise<void> {
    return this.#driver.sendToWait(this.topic, this.group, d, due, d.deliveryCount);
  }

  #arrive(m: AsyncMessage): Promise<ConsumerStatus> {
    const due = intHeader(m.headers, DUE);
    return due !== 0 && due > Date.now() ? this.#early(m, due) : this.#handOut(m);
  }

  /** A message back from a wait queue before its time: on to the next wait queue, not counted as a delivery. */
  async #early(m: AsyncMessage, due: number): Promise<ConsumerStatus> {
    const signal = this.#stop.signal;
    while (due - Date.now() >= WAIT_MIN_MS && !signal.aborted) {
      try {
        await this.#driver.sendToWait(this.topic, this.group, stored(m, seqOf(m.headers)), due, deliveriesBefore(m.headers));
        return ConsumerStatus.ACK;
      } catch (err) {
        this.#driver.warn(`wait queue of group ${this.group} of topic ${this.topic}`, err);
        await pause(Math.min(due - Date.now(), RETRY_MAX_MS), signal);
      }
    }
    // What is left is shorter than the shortest wait queue: waited out here.
    if (due > Date.now()) await pause(due - Date.now(), signal);
    return this.#handOut(m);
  }

  #handOut(m: AsyncMessage): Promise<ConsumerStatus> {
    const d = new RabbitDelivery(m, this);
    this.hold(d, true);
    // Closed meanwhile: straight back to the queue.
    if (!this.#deliveries.push(d)) d.finish(ConsumerStatus.REQUEUE);
    else if (d.deliveryCount > 1) this.redelivered++;
    return d.settled;
  }

  /**
   * Starts (or, touched, starts again) a delivery's ackWait: it ends `ackWaitMs` from now. `fresh` says
   * it was just received, so that it is in neither set yet (this runs for every delivery).
   */
  hold(d: RabbitDelivery, fresh = false): void {
    d.deadline = performance.now() + this.#options.ackWaitMs;
    if (!fresh) {
      this.#resting.delete(d);
      // Moved to the end: the set stays in the order of deadlines.
      this.held.delete(d);
    }
    this.held.add(d);
    if (this.#sweeper === undefined) this.#armSweep(this.#options.ackWaitMs);
  }

  /** A delivery waits out a short nak's delay: its ackWait no longer runs. */
  rest(d: RabbitDelivery): void {
    this.held.delete(d);
    this.#resting.add(d);
  }

  /** A delivery was settled (or its ackWait passed): it no longer counts as held. */
  release(d: RabbitDelivery): void {
    this.held.delete(d);
    if (this.#resting.size !== 0) this.#resting.delete(d);
  }

  #armSweep(ms: number): void {
    // Not holding the process open: the connection does while it lasts, and without it RabbitMQ returns
    // every unacknowledged message itself.
    this.#sweeper = setTimeout(this.#sweep, Math.max(1, Math.ceil(ms))).unref();
  }

  /**
   * ackWait passed: gives back every delivery whose deadline is reached (RabbitMQ redelivers it with
   * x-delivery-count + 1), then waits for the next one. A timer may fire a little early (Node counts from
   * the event loop's cached time): a delivery is never given back before its deadline, the timer is set again.
   */
  readonly #sweep = (): void => {
    this.#sweeper = undefined;
    const now = performance.now();
    for (const d of this.held) {
      if (d.deadline > now) {
        this.#armSweep(d.deadline - now);
        return;
      }
      d.finish(ConsumerStatus.REQUEUE);
    }
  };

  close(): Promise<void> {
    return (this.#closing ??= this.#close());
  }

  async #close(): Promise<void> {
    this.#stop.abort();
    this.#unregister(this);
    const unread = this.#deliveries.stop();
    // Anything received means the consumer exists already.
    await this.#started;
    // The AMQP consumer is cancelled first: a message given back to the queue while it is still subscribed
    // would come straight back to it, again and again until it is gone, each time counted as one more
    // delivery (towards maxDeliver). Its channel stays open until every delivery it made is settled, so
    // acks still reach RabbitMQ; what arrives meanwhile it returns with the channel.
    // Awaited only once the deliveries are settled; GroupConsumer.close reports its own failures and never rejects.
    const cancelled = this.#consumer?.close();
    // Received and never read: back to the queue at once, for the group's other consumers.
    for (const d of unread) d.finish(ConsumerStatus.REQUEUE);
    // A processor settles its running handlers before it closes its subscription, but a consume() iterator
    // may be closed with deliveries still in the application's hands, and acked after: the channel stays
    // until they are settled, for at most SETTLE_ON_CLOSE_MS — an ack sent after it has closed could not
    // reach RabbitMQ, and the message would come again. What is still unsettled then goes back.
    const until = Date.now() + Math.min(this.#options.ackWaitMs, SETTLE_ON_CLOSE_MS);
    while (this.held.size + this.#resting.size > 0 && Date.now() < until) await sleep(5);
    for (const d of [...this.held, ...this.#resting]) d.finish(ConsumerStatus.REQUEUE);
    clearTimeout(this.#sweeper);
    this.#sweeper = undefined;
    await cancelled;
  }

}
