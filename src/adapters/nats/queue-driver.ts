/**
 * The NATS JetStream queue driver (`nats://`).
 *
 * One stream holds every topic: topic `T` is subject `<stream>.T` and its dead letters are `<stream>.T.dlq`.
 * Each (topic, group) is one durable pull consumer with explicit acks. Sequences are the stream's, so they
 * increase in publish order but are shared by the topics of a stream (not 1, 2, 3 per topic).
 *
 * **Stale acks.** JetStream acks by stream sequence: an ack sent by a delivery whose ackWait has already
 * passed settles the message even if it was redelivered meanwhile, and the server cannot tell the two
 * deliveries apart. This driver therefore tracks each delivery's own deadline (delivery time + ackWait,
 * pushed back by `touch`): a late `ack` is still sent (the work was done; the redelivery's later ack is then
 * a no-op), while a late `nak` or `touch` is dropped, because it would act on the redelivery held by another
 * consumer (releasing or extending it) rather than on this one.
 *
 * **Backoff.** A handler that fails is nak'ed with the delay `ProcessOptions.backoffMs` gives for its
 * attempt (JetStream's `nak` with a delay), as on every other backend. The consumer's own `backoff`
 * setting is deliberately left unset: JetStream applies it only to deliveries whose ackWait expires, and
 * does so by replacing ackWait with the schedule's value for that attempt. That would make a group's
 * ackWait differ from the one it was given from the second attempt on, which the queue contract (the same
 * ackWait on every backend) does not allow. A delivery whose ackWait passes is redelivered after ackWait.
 *
 * @module
 */
import { readFile } from 'node:fs/promises';
import {
  AuthorizationError,
  ClosedConnectionError,
  ConnectionError,
  credsAuthenticator,
  headers as natsHeaders,
  NoRespondersError,
  PermissionViolationError,
  RequestError,
  TimeoutError,
  type NatsConnection,
} from '@nats-io/nats-core';
import { connect } from '@nats-io/transport-node';
import {
  DeliverPolicy,
  JetStreamApiCodes,
  JetStreamApiError,
  jetstream,
  jetstreamManager,
  type ConsumeCallback,
  type ConsumerMessages,
  type ConsumerNotification,
  type FetchOptions,
  type JetStreamClient,
  type JetStreamManager,
  type JsMsg,
} from '@nats-io/jetstream';
import { StowageError } from '../../ports/errors.js';
import type {
  DriverDelivery,
  DriverMessage,
  DriverSubscription,
  Headers,
  PublishResult,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import type { Logger } from '../../driver/index.js';
import { safeCause, type ErrorReason } from '../../driver/errors.js';
import { ensureConsumer, ensureStream, groupOf, isApiError, seekConsumer, type StreamSettings } from './provisioning.js';
import { pause, RETRY_MAX_MS, RETRY_MIN_MS } from '../../driver/sleep.js';
import { PushIterator } from '../../driver/push-iterator.js';

/** Options of {@link NatsQueueDriver.connect}. */
export interface NatsQueueOptions extends StreamSettings {
  /** `host:port` of each server. */
  readonly servers: readonly string[];
  /** User name and password from the URL, if any. */
  readonly user?: string;
  /** The password (never logged). */
  readonly pass?: string;
  /** A NATS `.creds` file (JWT + NKey seed). */
  readonly credsFile?: string;
  /** Timeout of connecting and of each JetStream API request. */
  readonly requestTimeoutMs: number;
  /**
   * Whether `ack()` waits for the server to confirm the ack (one round-trip; a failure is reported and the
   * ack may be retried). When false an ack is sent like the JetStream client's `msg.ack()`, with the others
   * of the same event-loop turn: faster, but an ack lost with the connection only shows as a redelivery.
   * @default true
   */
  readonly ackConfirm?: boolean;
  /** Where status notices (heartbeats missed, consumer deleted, reconnects) go. */
  readonly logger: Logger;
}

/** A status notice from a consumer or the connection, for logs and monitoring. */
export interface NatsQueueStatus {
  /** What happened: the JetStream notification type (`heartbeats_missed`, `consumer_deleted`, …), `reconnect`, `fetch_error`… */
  readonly type: string;
  /** The topic and group, for consumer notices. */
  readonly topic?: string;
  /** The group. */
  readonly group?: string;
  /** Details for people. */
  readonly message: string;
}

const ACK = new TextEncoder().encode('+ACK');
/** Notices that are part of normal operation: logged at debug level only. */
const ROUTINE = new Set(['heartbeat', 'next', 'debug', 'ping', 'reconnecting', 'close']);
const FETCH_EXPIRES_MS = 5_000;

/**
 * Whether a JetStream request found nobody answering its subject (the client calls this "JetStream not
 * enabled", and does not export the class): no stream for a publish, or no JetStream at all.
 */
function isNoResponders(err: unknown): boolean {
  return err instanceof Error && err.name === 'JetStreamNotEnabled';
}

/** The Stowage id and headers of a stored message (NATS's own `Nats-*` headers are not the application's). */
function fromNats(topic: string, h: { keys(): string[]; get(k: string): string } | undefined): { id: string | undefined; headers: Headers } {
  const headers: Record<string, string> = {};
  let id: string | undefined;
  for (const key of h?.keys() ?? []) {
    if (key === 'Nats-Msg-Id') {
      const value = h?.get(key) ?? '';
      id = value.startsWith(`${topic}/`) ? value.slice(topic.length + 1) : value;
    } else if (!key.toLowerCase().startsWith('nats-')) {
      headers[key] = h?.get(key) ?? '';
    }
  }
  return { id, headers: Object.freeze(headers) };
}

/**
 * A {@link QueueDriver} over NATS JetStream. Open it with {@link NatsQueueDriver.connect} (or the `nats://`
 * scheme); {@link NatsQueueDriver.native} gives the `NatsConnection`.
 */
export class NatsQueueDriver implements QueueDriver {
  readonly backend = 'nats';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>(['purge', 'retention']);
  readonly #nc: NatsConnection;
  readonly #js: JetStreamClient;
  readonly #jsm: JetStreamManager;
  readonly #options: NatsQueueOptions;
  readonly #subs = new Set<NatsSubscription>();
  readonly #listeners = new Set<(status: NatsQueueStatus) => void>();
  /** Unconfirmed acks waiting for the event loop to turn (see {@link NatsQueueDriver.ackDelivery}). */
  #acks: JsMsg[] = [];
  #ackTurn: NodeJS.Immediate | undefined;

  private constructor(nc: NatsConnection, jsm: JetStreamManager, options: NatsQueueOptions) {
    this.#nc = nc;
    this.#jsm = jsm;
    this.#js = jetstream(nc, { timeout: options.requestTimeoutMs });
    this.#options = options;
    void this.#watchConnection();
  }

  /** Connects, then creates or checks the stream. */
  static async connect(options: NatsQueueOptions): Promise<NatsQueueDriver> {
    let creds: Uint8Array | undefined;
    if (options.credsFile !== undefined) {
      try {
        creds = await readFile(options.credsFile);
      } catch (err) {
        const code = (err as { code?: unknown }).code;
        throw new StowageError(
          code === 'EACCES' || code === 'EPERM' ? 'PERMISSION_DENIED' : 'INVALID_ARGUMENT',
          `nats: credsFile ${JSON.stringify(options.credsFile)} cannot be read (${String(code ?? 'error')})`,
        );
      }
    }
    const nc = await connect({
      servers: [...options.servers],
      name: 'stowage-queue',
      user: options.user,
      pass: options.pass,
      authenticator: creds === undefined ? undefined : credsAuthenticator(creds),
      timeout: options.requestTimeoutMs,
      // Consumers resume by themselves after a server restart: keep reconnecting for ever.
      maxReconnectAttempts: -1,
      reconnectTimeWait: 250,
      // The client otherwise builds two or three Errors per request (its caller's stack, a timeout error
      // made in advance, a "cancelled" one once answered): that cost more than the rest of a publish.
      // Errors are mapped to StowageError anyway; a timeout then carries the timer's stack, not the caller's.
      noAsyncTraces: true,
    }).catch((err: unknown) => {
      throw mapNatsError(err, options.pass === undefined ? [] : [options.pass]) ?? err;
    });
    try {
      const jsm = await jetstreamManager(nc, { timeout: options.requestTimeoutMs });
      await ensureStream(jsm, options);
      return new NatsQueueDriver(nc, jsm, options);
    } catch (err) {
      await nc.close();
      throw err;
    }
  }

  /** Subscribes to status notices (returns the unsubscribe function). Notices are also logged. */
  onStatus(listener: (status: NatsQueueStatus) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Reports a notice to the logger and the listeners; a listener that throws is ignored. */
  status(status: NatsQueueStatus): void {
    const where = status.topic === undefined ? '' : ` (topic ${status.topic}, group ${status.group ?? ''})`;
    const line = `nats queue: ${status.type}${where}: ${status.message}`;
    if (ROUTINE.has(status.type)) this.#options.logger.debug(line);
    else if (status.type === 'disconnect' || status.type === 'error' || status.type === 'consumer_deleted') this.#options.logger.warn(line);
    else this.#options.logger.info(line);
    for (const listener of this.#listeners) {
      try {
        listener(status);
      } catch {
        // A listener's failure is not the queue's.
      }
    }
  }

  async #watchConnection(): Promise<void> {
    try {
      for await (const s of this.#nc.status()) {
        const server = 'server' in s ? String(s.server) : '';
        this.status({ type: s.type, message: server === '' ? s.type : `${s.type} ${server}` });
      }
    } catch {
      // The status stream ends with the connection; nothing to report then.
    }
  }

  /** The JetStream stream holding every topic. */
  get stream(): string {
    return this.#options.name;
  }

  /** The subject of a topic. */
  subject(topic: string): string {
    return `${this.#options.name}.${topic}`;
  }

  /** The `Nats-Msg-Id` of a Stowage id: dedupe is per stream, so the topic is part of it. */
  #msgId(topic: string, id: string): string {
    return `${topic}/${id}`;
  }

  /**
   * Publishes every message without waiting for the previous one's ack: the client writes them in order on
   * one connection, so JetStream stores them in that order, and the batch costs about one round trip.
   */
  async publishMany(topic: string, messages: readonly DriverMessage[]): Promise<PublishResult[]> {
    const [first, ...rest] = messages;
    if (first === undefined) return [];
    // The first alone: it puts a deleted stream back (see publish) before the rest is in flight.
    const head = await this.publish(topic, first.payload, first.headers, first.id);
    return [head, ...(await Promise.all(rest.map((m) => this.publish(topic, m.payload, m.headers, m.id))))];
  }

  async publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined): Promise<PublishResult> {
    // No header block at all when there are none: it is what the raw client sends, and costs bytes.
    let h: ReturnType<typeof natsHeaders> | undefined;
    for (const [name, value] of Object.entries(headers)) {
      if (name.toLowerCase().startsWith('nats-')) {
        throw new StowageError('INVALID_ARGUMENT', `header name "${name}" is reserved by NATS (names starting with "Nats-")`);
      }
      h ??= natsHeaders();
      h.set(name, value);
    }
    const options = id === undefined ? (h === undefined ? undefined : { headers: h }) : { headers: h, msgID: this.#msgId(topic, id) };
    let ack;
    try {
      ack = await this.#js.publish(this.subject(topic), payload, options);
    } catch (err) {
      // No stream answers the subject: it was deleted (or lost with memory storage in a restart). Put it
      // back, with the URL's settings, and publish once more.
      if (!isNoResponders(err)) throw err;
      await ensureStream(this.#jsm, this.#options);
      ack = await this.#js.publish(this.subject(topic), payload, options);
    }
    return { seq: ack.seq, duplicate: ack.duplicate };
  }

  subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const sub = new NatsSubscription(this, topic, group, options, (s) => this.#subs.delete(s));
    this.#subs.add(sub);
    return sub;
  }

  /** Creates or updates the group's durable consumer; resolves with the bound pull consumer. */
  async consumer(topic: string, group: string, g: { ackWaitMs: number; maxDeliver: number }) {
    let name: string;
    try {
      name = await ensureConsumer(this.#jsm, this.#options.name, topic, group, g);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
      await ensureStream(this.#jsm, this.#options);
      name = await ensureConsumer(this.#jsm, this.#options.name, topic, group, g);
    }
    return this.#js.consumers.get(this.#options.name, name);
  }

  /**
   * Acks a delivery and, unless `ackConfirm` is false, waits for the server to confirm it (so that a lost
   * ack is an error the caller sees and may retry, not a silent redelivery). Unconfirmed acks are queued
   * and sent together once the event loop turns (undefined is returned then): the client writes each
   * message to the socket in a write of its own otherwise, and that system call cost more than the rest of
   * a delivery. They are sent just as `msg.ack()` sends them, only in fewer writes.
   */
  ackDelivery(m: JsMsg): Promise<unknown> | undefined {
    if (this.#options.ackConfirm === false) {
      this.#acks.push(m);
      this.#ackTurn ??= setImmediate(this.#sendAcks);
      return undefined;
    }
    const reply = (m as JsMsg & { reply?: string }).reply;
    if (reply === undefined || reply === '') {
      m.ack();
      return this.#nc.flush();
    }
    return this.#nc.request(reply, ACK, { timeout: this.#options.requestTimeoutMs });
  }

  /** Hands the queued unconfirmed acks to the client, which writes them together. */
  readonly #sendAcks = (): void => {
    if (this.#ackTurn !== undefined) clearImmediate(this.#ackTurn);
    this.#ackTurn = undefined;
    const acks = this.#acks;
    if (acks.length === 0) return;
    this.#acks = [];
    for (const m of acks) {
      try {
        m.ack();
      } catch {
        // The connection is closed: the server redelivers after ackWait, as for any lost unconfirmed ack.
      }
    }
  };

  /** Sends what the client buffered (queued acks, naks, in-progress acks) and waits for the server to have read it. */
  flush(): Promise<void> {
    this.#sendAcks();
    return this.#nc.flush();
  }

  async read(topic: string, fromSeq: number, limit: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    let seq = fromSeq;
    while (out.length < limit) {
      const m = await this.#jsm.direct.getMessage(this.#options.name, { seq, next_by_subj: this.subject(topic) });
      if (m === null) break;
      const { id, headers } = fromNats(topic, m.header);
      out.push({ seq: m.seq, id, headers, payload: m.data, publishedAt: m.time });
      seq = m.seq + 1;
    }
    return out;
  }

  async remove(_topic: string, seq: number): Promise<void> {
    try {
      await this.#jsm.streams.deleteMessage(this.#options.name, seq, false);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.NoMessageFound)) throw err;
    }
  }

  async stats(topic: string): Promise<Omit<TopicStats, 'deadLetters'>> {
    const subject = this.subject(topic);
    const stream = this.#options.name;
    const info = await this.#jsm.streams.info(stream, { subjects_filter: subject });
    const messages = info.state.subjects?.[subject] ?? 0;
    let lastSeq = 0;
    if (messages > 0) {
      const last = await this.#jsm.direct.getMessage(stream, { last_by_subj: subject });
      lastSeq = last?.seq ?? 0;
    }
    const groups = [];
    for await (const ci of this.#jsm.consumers.list(stream)) {
      const group = groupOf(ci);
      if (group === undefined || ci.config.filter_subject !== subject) continue;
      // A consumer created at a start sequence reports an ack floor of 0 until its first ack (nats-server
      // 2.9), though everything before its start counts as acknowledged.
      const start = ci.config.deliver_policy === DeliverPolicy.StartSequence ? (ci.config.opt_start_seq ?? 1) - 1 : 0;
      const ackFloor = Math.max(ci.ack_floor.stream_seq, start);
      groups.push({ group, backlog: ci.num_pending, pending: ci.num_ack_pending, redelivered: ci.num_redelivered, ackFloor });
    }
    groups.sort((a, b) => (a.group < b.group ? -1 : a.group > b.group ? 1 : 0));
    return { topic, messages, lastSeq, groups };
  }

  /** Topics from the stream's subjects that hold messages, plus the filter subjects of Stowage's consumers. */
  async topics(): Promise<string[]> {
    const stream = this.#options.name;
    const prefix = `${stream}.`;
    const names = new Set<string>();
    try {
      const info = await this.#jsm.streams.info(stream, { subjects_filter: `${prefix}>` });
      for (const subject of Object.keys(info.state.subjects ?? {})) if (subject.startsWith(prefix)) names.add(subject.slice(prefix.length));
      for await (const ci of this.#jsm.consumers.list(stream)) {
        const filter = ci.config.filter_subject ?? '';
        if (groupOf(ci) !== undefined && filter.startsWith(prefix)) names.add(filter.slice(prefix.length));
      }
    } catch (err) {
      if (isApiError(err, JetStreamApiCodes.StreamNotFound)) return [];
      throw err;
    }
    return [...names].sort();
  }

  /** Re-creates the group's consumer at stream sequence `seq` (see `seekConsumer`). */
  async seekGroup(topic: string, group: string, seq: number): Promise<void> {
    try {
      await seekConsumer(this.#jsm, this.#options.name, topic, group, seq);
    } catch (err) {
      if (!isApiError(err, JetStreamApiCodes.StreamNotFound)) throw err;
      await ensureStream(this.#jsm, this.#options);
      await seekConsumer(this.#jsm, this.#options.name, topic, group, seq);
    }
  }

  async purge(topic: string): Promise<void> {
    await this.#jsm.streams.purge(this.#options.name, { filter: this.subject(topic) });
  }

  async ping(): ReturnType<QueueDriver['ping']> {
    await this.#nc.rtt();
    return { serverVersion: this.#nc.info?.version };
  }

  mapError(err: unknown): StowageError | undefined {
    return mapNatsError(err, this.#options.pass === undefined ? [] : [this.#options.pass]);
  }

  native(): NatsConnection {
    return this.#nc;
  }

  async close(): Promise<void> {
    await Promise.allSettled([...this.#subs].map((s) => s.close()));
    // Unconfirmed acks given before close go out with the client's last write, as `msg.ack()`'s would.
    this.#sendAcks();
    await this.#nc.close();
  }
}

/**
 * Classifies a nats.js error (password removed), for calls and for the connect itself: a refused or dropped
 * connection is UNAVAILABLE, a refused login PERMISSION_DENIED, an oversize message RESOURCE_EXHAUSTED.
 */
function mapNatsError(err: unknown, secrets: readonly string[]): StowageError | undefined {
  const cause = safeCause(err, secrets);
  const text = cause?.message ?? '';
  if (err instanceof AuthorizationError || err instanceof PermissionViolationError) {
    return new StowageError('PERMISSION_DENIED', `nats: permission denied: ${text}`, { cause });
  }
  if (/max(imum)?[ _]payload/i.test(text)) {
    return new StowageError('RESOURCE_EXHAUSTED', `nats: message larger than the server's max_payload: ${text}`, { cause });
  }
  if (
    err instanceof TimeoutError ||
    err instanceof NoRespondersError ||
    err instanceof ClosedConnectionError ||
    err instanceof ConnectionError ||
    err instanceof RequestError ||
    isNoResponders(err)
  ) {
    return new StowageError('UNAVAILABLE', `nats: server not answering: ${text}`, { cause });
  }
  if (err instanceof JetStreamApiError) {
    if (err.code === JetStreamApiCodes.NoMessageFound) return new StowageError('NOT_FOUND', `nats: ${text}`, { cause });
    if (err.code === JetStreamApiCodes.StreamNotFound) {
      return new StowageError('NOT_FOUND', `nats: ${text}`, { cause, details: { reason: 'missing-stream' satisfies ErrorReason } });
    }
    if (err.status === 503) return new StowageError('UNAVAILABLE', `nats: JetStream unavailable: ${text}`, { cause });
    if (/insufficient resources|maximum (messages|bytes|consumers)/i.test(text)) {
      return new StowageError('RESOURCE_EXHAUSTED', `nats: ${text}`, { cause });
    }
  }
  return undefined;
}

const NO_HEADERS: Headers = Object.freeze({});
const RESOLVED = Promise.resolve();

/**
 * One delivery of a {@link NatsSubscription}. It keeps its own ackWait deadline (see "Stale acks" above):
 * a late `nak` or `touch` is dropped, a late `ack` is still sent.
 */
class NatsDelivery implements DriverDelivery {
  readonly seq: number;
  readonly id: string | undefined;
  readonly headers: Headers;
  readonly payload: Uint8Array;
  readonly publishedAt: Date;
  readonly deliveryCount: number;
  /** When ackWait passes, on the `performance.now()` clock; pushed back by `touch`. */
  deadline: number;
  /** Whether this delivery no longer counts against prefetch (settled, or its ackWait passed). */
  released = false;

  constructor(
    readonly m: JsMsg,
    readonly sub: NatsSubscription,
    topic: string,
    ackWaitMs: number,
  ) {
    this.deadline = performance.now() + ackWaitMs;
    const info = m.info;
    this.seq = info.streamSequence;
    this.deliveryCount = info.deliveryCount;
    this.publishedAt = new Date(Math.floor(info.timestampNanos / 1_000_000));
    this.payload = m.data;
    if (m.headers === undefined) {
      this.headers = NO_HEADERS;
    } else {
      const stored = fromNats(topic, m.headers);
      this.id = stored.id;
      this.headers = stored.headers;
    }
  }

  /** True once ackWait passed without a settlement. */
  expired(): boolean {
    return this.released && this.late();
  }

  /** Whether ackWait has passed: the server may have redelivered the message to someone else. */
  late(): boolean {
    return performance.now() > this.deadline;
  }

  ack(): Promise<void> {
    return this.sub.ack(this);
  }

  nak(delayMs: number): Promise<void> {
    return this.sub.nak(this, delayMs);
  }

  touch(): Promise<void> {
    return this.sub.touch(this);
  }
}

/**
 * One consumer of a group: pulls at most `prefetch` unsettled messages at a time.
 *
 * A delivery whose ackWait passes unsettled gives its room back (the server redelivers it, maybe here).
 * Deadlines are all "arrival (or last touch) + ackWait", so they are kept in arrival order in one list
 * with one timer for the oldest, not a timer per delivery.
 */
class NatsSubscription implements DriverSubscription {
  readonly #driver: NatsQueueDriver;
  readonly #topic: string;
  readonly #group: string;
  readonly #ackWaitMs: number;
  readonly #maxDeliver: number;
  readonly #prefetch: number;
  /** How much room there must be before pulling again. */
  readonly #refill: number;
  readonly #unregister: (s: NatsSubscription) => void;
  readonly #stop = new AbortController();
  /**
   * Received, and handed to the application as it asks. The pull loop starts on the first `next()`; one
   * whose ackWait passed while it waited here is the server's to redeliver: handing it out would only make
   * a duplicate whose ack is late.
   */
  readonly #deliveries = new PushIterator<NatsDelivery>({
    onDemand: () => void (this.#loop ??= this.#run()),
    onReturn: () => this.close(),
    stale: (d) => d.expired(),
  });
  /** Deliveries held (buffered or handed out) and not yet settled or expired. */
  #held = 0;
  #roomChanged: (() => void) | undefined;
  /** Messages asked for by pulls still open and not yet arrived. */
  #outstanding = 0;
  /** The pulls still open. */
  readonly #batches = new Set<ConsumerMessages>();
  /** Why a pull failed, for the loop to report and recover from. */
  #failure: unknown;
  #loop: Promise<void> | undefined;
  /** Deliveries in deadline order (a touched one again at the end) and the deadline each was listed with. */
  #expiring: NatsDelivery[] = [];
  #expiringAt: number[] = [];
  #expiringHead = 0;
  #expiryTimer: NodeJS.Timeout | undefined;

  constructor(
    driver: NatsQueueDriver,
    topic: string,
    group: string,
    options: { ackWaitMs: number; maxDeliver: number; prefetch: number },
    unregister: (s: NatsSubscription) => void,
  ) {
    this.#driver = driver;
    this.#topic = topic;
    this.#group = group;
    this.#ackWaitMs = options.ackWaitMs;
    this.#maxDeliver = options.maxDeliver;
    this.#prefetch = options.prefetch;
    this.#refill = Math.max(1, Math.ceil(options.prefetch / 2));
    this.#unregister = unregister;
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this.#deliveries;
  }

  #status(type: string, message: string): void {
    this.#driver.status({ type, topic: this.#topic, group: this.#group, message });
  }

  /**
   * The pull loop: whenever at least half the prefetch is free — counting deliveries held and messages
   * asked for but not yet arrived — ask for that many more. Pulls overlap, so the server always has one
   * to fill while the application works through what arrived; messages of every pull arrive through
   * callbacks in the order the server sent them. A failed pull is reported and the consumer checked (and
   * re-created if deleted) before pulling again, with a growing pause.
   */
  async #run(): Promise<void> {
    const signal = this.#stop.signal;
    let retryMs = RETRY_MIN_MS;
    // Provisioned once and reused; after an error it is checked (and re-created if deleted) again.
    let consumer: Awaited<ReturnType<NatsQueueDriver['consumer']>> | undefined;
    while (!signal.aborted) {
      // Pull again only once half the prefetch is free: refilling one message at a time would cost a round
      // trip per message.
      while (!signal.aborted && this.#failure === undefined && this.#prefetch - this.#held - this.#outstanding < this.#refill) {
        await new Promise<void>((resolve) => {
          this.#roomChanged = resolve;
        });
      }
      if (signal.aborted) break;
      let failure = this.#failure;
      this.#failure = undefined;
      if (failure === undefined) {
        try {
          consumer ??= await this.#driver.consumer(this.#topic, this.#group, { ackWaitMs: this.#ackWaitMs, maxDeliver: this.#maxDeliver });
          if (signal.aborted) break;
          await this.#pull(consumer, this.#prefetch - this.#held - this.#outstanding);
          retryMs = RETRY_MIN_MS;
        } catch (err) {
          failure = err;
        }
      }
      if (failure === undefined || signal.aborted) continue;
      consumer = undefined;
      // The server may be restarting or the consumer gone: report it and try again (re-creating the
      // consumer if needed), never end the iterator for a backend hiccup.
      this.#status('fetch_error', safeCause(failure)?.message ?? String(failure));
      await pause(retryMs, signal);
      retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
    }
  }

  /** Asks for `count` messages; they arrive in {@link NatsSubscription.#arrive}. */
  async #pull(consumer: Awaited<ReturnType<NatsQueueDriver['consumer']>>, count: number): Promise<void> {
    let received = 0;
    this.#outstanding += count;
    let batch: ConsumerMessages;
    try {
      // The client's fetch takes a callback as its consume does (only consume's options declare it): the
      // messages of overlapping pulls then come in the order the server sent them — the server fills its
      // waiting pulls in turn, so iterating each pull on its own would interleave them.
      const options: FetchOptions & ConsumeCallback = {
        max_messages: count,
        expires: FETCH_EXPIRES_MS,
        callback: (m) => {
          received++;
          this.#outstanding--;
          this.#arrive(m);
        },
      };
      batch = await consumer.fetch(options);
    } catch (err) {
      this.#outstanding -= count;
      throw err;
    }
    this.#batches.add(batch);
    void this.#watch(batch);
    // Closed while the pull was being made: close() has already closed the others.
    if (this.#stop.signal.aborted) await batch.close();
    void batch.closed().then((err) => {
      this.#batches.delete(batch);
      // An expired or failed pull asks for nothing more.
      this.#outstanding -= count - received;
      if (err !== undefined && err !== null) this.#failure ??= err;
      this.#wake();
    });
  }

  /** A message of a pull: made a delivery at once (the ackWait clock runs from the server's delivery). */
  #arrive(m: JsMsg): void {
    this.#held++;
    if (this.#stop.signal.aborted) {
      m.nak();
      return;
    }
    const d = new NatsDelivery(m, this, this.#topic, this.#ackWaitMs);
    this.#expireAt(d);
    this.#deliveries.push(d);
  }

  #wake(): void {
    const wake = this.#roomChanged;
    this.#roomChanged = undefined;
    wake?.();
  }

  async #watch(batch: ConsumerMessages): Promise<void> {
    try {
      for await (const s of batch.status()) this.#notice(s);
    } catch {
      // The status stream ends with its batch.
    }
  }

  #notice(s: ConsumerNotification): void {
    if (s.type === 'next' || s.type === 'heartbeat' || s.type === 'debug') return;
    const { type, ...rest } = s as { type: string };
    this.#status(type, JSON.stringify(rest));
  }

  /** Gives a delivery's room back (once), so that the loop may pull again. */
  #release(d: NatsDelivery): void {
    if (d.released) return;
    d.released = true;
    this.#held--;
    this.#wake();
    // Settled in order (the usual case): drop the head of the deadline list now rather than at its deadline.
    if (this.#expiring[this.#expiringHead] === d) this.#dropSettledHead();
  }

  /** Lists `d` at its current deadline, and arms the timer if none is. */
  #expireAt(d: NatsDelivery): void {
    this.#expiring.push(d);
    this.#expiringAt.push(d.deadline);
    // Dead entries (settled out of order, or before the head) would otherwise pile up while deliveries keep
    // coming, holding their messages.
    if (this.#expiringHead >= 1024 || this.#expiring.length - this.#expiringHead > 2 * this.#prefetch + 64) this.#compact();
    this.#expiryTimer ??= this.#armExpiry(d.deadline);
  }

  #armExpiry(at: number): NodeJS.Timeout {
    return setTimeout(this.#expire, Math.max(0, Math.ceil(at - performance.now())) + 1).unref();
  }

  /** Whether the entry at `i` still stands for its delivery (not settled, not touched since). */
  #live(i: number): boolean {
    const d = this.#expiring[i]!;
    return !d.released && this.#expiringAt[i] === d.deadline;
  }

  #dropSettledHead(): void {
    while (this.#expiringHead < this.#expiring.length && !this.#live(this.#expiringHead)) this.#expiringHead++;
    if (this.#expiringHead === this.#expiring.length) {
      this.#expiring = [];
      this.#expiringAt = [];
      this.#expiringHead = 0;
    }
  }

  /** Keeps only the live entries (deliveries settled out of order leave dead ones behind). */
  #compact(): void {
    const deliveries: NatsDelivery[] = [];
    const at: number[] = [];
    for (let i = this.#expiringHead; i < this.#expiring.length; i++) {
      if (!this.#live(i)) continue;
      deliveries.push(this.#expiring[i]!);
      at.push(this.#expiringAt[i]!);
    }
    this.#expiring = deliveries;
    this.#expiringAt = at;
    this.#expiringHead = 0;
  }

  /** The timer: releases every delivery whose ackWait passed, then waits for the next deadline. */
  readonly #expire = (): void => {
    this.#expiryTimer = undefined;
    const now = performance.now();
    for (;;) {
      this.#dropSettledHead();
      if (this.#expiringHead === this.#expiring.length) return;
      const at = this.#expiringAt[this.#expiringHead]!;
      if (at >= now) {
        if (!this.#stop.signal.aborted) this.#expiryTimer = this.#armExpiry(at);
        return;
      }
      // When ackWait passes the server will redeliver; make room so that this consumer can take it.
      this.#release(this.#expiring[this.#expiringHead]!);
    }
  };

  ack(d: NatsDelivery): Promise<void> {
    const sent = this.#driver.ackDelivery(d.m);
    if (sent === undefined) {
      this.#release(d);
      return RESOLVED;
    }
    return sent.then(() => this.#release(d));
  }

  async nak(d: NatsDelivery, delayMs: number): Promise<void> {
    if (d.late()) return;
    d.m.nak(delayMs > 0 ? delayMs : undefined);
    await this.#driver.flush();
    this.#release(d);
  }

  async touch(d: NatsDelivery): Promise<void> {
    if (d.late() || d.released) return;
    // The server restarts its clock when the notice arrives, after this: ours never runs past the server's.
    const from = performance.now();
    d.m.working();
    await this.#driver.flush();
    d.deadline = from + this.#ackWaitMs;
    if (!d.released) this.#expireAt(d);
  }

  async close(): Promise<void> {
    if (this.#stop.signal.aborted) return;
    this.#stop.abort();
    clearTimeout(this.#expiryTimer);
    this.#wake();
    this.#unregister(this);
    // Messages fetched but never handed out go back at once instead of waiting out their ackWait.
    for (const d of this.#deliveries.stop()) {
      try {
        d.m.nak();
      } catch {
        // The connection is gone: the server redelivers after ackWait anyway.
      }
    }
    await Promise.all([...this.#batches].map((b) => b.close()));
    await this.#loop;
    await this.#driver.flush().catch(() => undefined);
  }
}
