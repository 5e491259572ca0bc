/**
 * The queue port: durable topics, consumer groups, at-least-once delivery with ack after the handler,
 * redelivery, dead letters.
 *
 * @module
 */
import type { CallOptions, DriverBase, Lifecycle } from './common.js';

/**
 * What a queue adapter can do beyond publish, consume, ack, nak with delay, redelivery after `ackWait`,
 * dead letters, dedupe by id and stats, which every adapter supports.
 *
 * - `purge` — `purge(topic)` removes every message.
 * - `retention` — messages are removed by age, size or count limits set in the URL.
 */
export type QueueCapability = 'purge' | 'retention';

/** Message headers: string names and values (names are case-sensitive, at most 64 of them). */
export type Headers = Readonly<Record<string, string>>;

/** Options of {@link Queue.publish}. */
export interface PublishOptions extends CallOptions {
  /** Headers stored with the message. Names starting with `stowage-` are reserved. */
  headers?: Headers;
  /**
   * An idempotency key. A publish whose `id` was already published to the topic within the dedupe window
   * (default two minutes) stores nothing and resolves with the first one's `seq` and `duplicate: true`.
   */
  id?: string;
  /**
   * Delivers the message no earlier than this many milliseconds from now, to every group (a delayed
   * message). It is stored at once, as any publish: a restart does not lose it. Not with `notBefore`.
   */
  delayMs?: number;
  /** Delivers the message no earlier than this time, to every group. Not with `delayMs`. */
  notBefore?: Date;
  /**
   * An ordering key (1–256 characters, no control characters). {@link Queue.process} runs the messages of one
   * key one at a time, in publish order, across every processor of a group — in every process when the
   * queue has a config store and its driver is not single-process (the README's "Ordering keys" says what
   * that costs) — while other keys run in parallel. `perKeyConcurrency` above 1 is kept per processor.
   */
  key?: string;
}

/** One message of {@link Queue.publishMany}: its payload and the options of {@link Queue.publish}. */
export interface PublishEntry extends Omit<PublishOptions, keyof CallOptions> {
  /** The payload: bytes, or a string stored as UTF-8. */
  payload: Uint8Array | string;
}

/** The result of a publish, given once the message is durable under the adapter's policy. */
export interface PublishResult {
  /**
   * The message's sequence number in its topic: greater than every earlier publish to the topic. It may skip
   * numbers (`nats://` numbers a whole stream, shared by its topics); embedded adapters count 1, 2, 3, ….
   */
  readonly seq: number;
  /** True when `id` had been seen and nothing new was stored. */
  readonly duplicate: boolean;
}

/**
 * One delivery of a message to a consumer of a group.
 *
 * Exactly one of `ack`, `nak` or `term` should be called; until then the message is pending for the group,
 * and if none is called within `ackWaitMs` (counted from the delivery or the last `touch`) it is delivered
 * again with `deliveryCount` one higher. Calls after the first settlement are ignored.
 */
export interface Delivery {
  /** The topic. */
  readonly topic: string;
  /** The consumer group. */
  readonly group: string;
  /** The message's sequence number in the topic. */
  readonly seq: number;
  /** The publisher's idempotency key, if it gave one. */
  readonly id: string | undefined;
  /** The ordering key the message was published with, if any. */
  readonly key: string | undefined;
  /** The headers published with the message. */
  readonly headers: Headers;
  /** The payload bytes. */
  readonly payload: Uint8Array;
  /** 1 on the first delivery to this group, 2 on the first redelivery, … */
  readonly deliveryCount: number;
  /** When the message was published. */
  readonly publishedAt: Date;
  /** The payload decoded as UTF-8. */
  text(): string;
  /** The payload parsed as JSON; INVALID_ARGUMENT if it is not JSON. */
  json<T = unknown>(): T;
  /** Processing succeeded: the group will not see this message again. */
  ack(): Promise<void>;
  /**
   * Processing failed: deliver again after `delayMs` (default 0). On the last allowed attempt
   * (`deliveryCount` = `maxDeliver`) the message goes to the dead-letter topic instead, with `error`
   * recorded as {@link DeadLetter.error}.
   */
  nak(options?: NakOptions): Promise<void>;
  /** Give up on this message now: it goes to the dead-letter topic with `reason`. */
  term(reason?: string): Promise<void>;
  /** Still working: restart the `ackWait` clock. */
  touch(): Promise<void>;
}

/** Options of {@link Delivery.nak}. */
export interface NakOptions {
  /** How long to wait before the message is delivered again, in milliseconds. @defaultValue 0 */
  delayMs?: number;
  /**
   * The error that made processing fail. When this nak moves the message to the dead-letter topic, the
   * error's message and its string `code` are kept with it ({@link DeadLetter.error}); nothing else of it
   * is stored, so do not put secrets in error messages.
   */
  error?: unknown;
}

/** Options of {@link Queue.consume}. */
export interface ConsumeOptions {
  /** How long a delivery may stay unsettled before it is redelivered (default 30 000 ms). */
  ackWaitMs?: number;
  /** How many deliveries a message gets before it moves to the dead-letter topic (default 5). */
  maxDeliver?: number;
  /** How many unsettled deliveries this consumer holds at once (default 1: strict order). */
  prefetch?: number;
  /** Stops the consumer: the iterator returns once it aborts. */
  signal?: AbortSignal;
}

/** Options of {@link Queue.process}. */
export interface ProcessOptions extends ConsumeOptions {
  /** How many handler calls run at once (default 1). */
  concurrency?: number;
  /**
   * Delay before a failed message is delivered again, by attempt: `[1000, 5000]` waits 1 s after the
   * first failure and 5 s after every later one; `[0]` delivers again at once.
   *
   * @defaultValue exponential with jitter: after attempt n, a delay between half and all of
   * min(1 s × 2^(n−1), 60 s) — so with the default `maxDeliver` of 5 a message is dead-lettered about 8 to
   * 15 s after its first failure, not within milliseconds, and messages that failed together (a backend
   * that went away) do not all come back at once.
   */
  backoffMs?: readonly number[];
  /**
   * Called with every error of the loop: the handler's (after the message was nak'ed) and a failed
   * ack or nak. Without it, each is logged as one line through the store's logger (stderr by default:
   * topic, group, sequence, attempt, the error's code and message; never the payload).
   */
  onError?: (err: unknown, delivery: Delivery) => void;
  /**
   * How many messages of one ordering key (`publish(…, { key })`) run at once (default 1: one at a time, in
   * publish order, across the group's processors where {@link PublishOptions.key} says; above 1, in this
   * processor, in the order received). Messages without a key are not limited.
   */
  perKeyConcurrency?: number;
  /**
   * At most `max` handler calls start within any `perMs` window: across every processor of the group with a
   * rate limit when the queue has a config store and a driver that is not single-process (within the hosts'
   * clock difference), else in this processor. Deliveries waiting for their turn are held (and touched, so
   * that their `ackWait` does not pass).
   */
  rateLimit?: RateLimit;
}

/** A rate limit: at most `max` starts within any window of `perMs` milliseconds. */
export interface RateLimit {
  /** How many starts a window allows (at least 1). */
  max: number;
  /** The window's length in milliseconds (at least 1). */
  perMs: number;
}

/** Options of {@link Queue.processBatch}. */
export interface ProcessBatchOptions extends ConsumeOptions {
  /** The most messages in one batch (default 100). */
  maxMessages?: number;
  /**
   * How long to wait for more messages after the first one of a batch arrived, in milliseconds (default
   * 1000); a batch is handed over once it is full or this time has passed.
   */
  maxWaitMs?: number;
  /** As {@link ProcessOptions.backoffMs}, for each message of a batch that fails. */
  backoffMs?: readonly number[];
  /** As {@link ProcessOptions.onError}: called once per message of a failed batch. */
  onError?: (err: unknown, delivery: Delivery) => void;
}

/**
 * A running handler loop started by {@link Queue.process}. While it runs it keeps the process alive (on every
 * adapter), as a server's listening socket does; `stop()`, its signal or closing the queue lets it go.
 */
export interface Processor extends AsyncDisposable {
  /**
   * Stops taking messages, waits for running handlers to finish and settle. Their settlements go through
   * the subscription, which stays open for them for at most the queue's drain time (`drainMs`) and then
   * closes.
   */
  stop(): Promise<void>;
  /** Resolves when the loop has ended (after `stop()` or the signal), rejects if it failed. */
  readonly done: Promise<void>;
}

/** A live consumer: an async iterable of deliveries. Until closed it keeps the process alive (on every adapter). */
export interface Consumer extends AsyncIterable<Delivery>, AsyncDisposable {
  /** Stops the consumer; unsettled deliveries will be redelivered to the group after their `ackWait`. */
  close(): Promise<void>;
}

/** A message in a dead-letter topic. */
export interface DeadLetter {
  /** Its sequence in the dead-letter topic. */
  readonly seq: number;
  /** The topic it came from. */
  readonly topic: string;
  /** The group that failed to process it. */
  readonly group: string;
  /** Its sequence in the topic it came from. */
  readonly originalSeq: number;
  /** Why it was dead-lettered: `max-deliver` or the reason given to `term`. */
  readonly reason: string;
  /**
   * The error of the last failed attempt, when known: the handler's error for a processor, the `error`
   * given to the last `nak` for a consumer. Undefined for `term`, and for a message dead-lettered because
   * its deliveries ran out without a nak (a handler that hung past `ackWait`, a process that crashed).
   */
  readonly error: DeadLetterError | undefined;
  /** How many deliveries it had. */
  readonly deliveryCount: number;
  /** The original headers (reserved `stowage-` headers removed). */
  readonly headers: Headers;
  /** The original payload. */
  readonly payload: Uint8Array;
  /** When it was dead-lettered. */
  readonly deadAt: Date;
}

/** The error recorded with a {@link DeadLetter}. */
export interface DeadLetterError {
  /** The error's message (at most 1024 characters, control characters replaced). */
  readonly message: string;
  /** The error's `code`, when it had a string one (a {@link StowageError}'s code, `ECONNREFUSED`, …). */
  readonly code: string | undefined;
}

/**
 * What a schedule does with slots that passed while no node ran it (more than 30 s ago; a slot less late
 * than that is always published): `none` passes over them, `last` publishes the newest one, `all`
 * publishes each of them, oldest first.
 */
export type CatchUp = 'none' | 'last' | 'all';

/** A schedule: what {@link Queue.schedule} publishes, and when. */
export interface ScheduleSpec {
  /**
   * A cron expression (5 fields, or 6 with seconds first), read by the `croner` package (an optional peer
   * dependency). Not with `everyMs`.
   */
  cron?: string;
  /** An interval of at least 1000 ms; slots are the multiples of it since the Unix epoch. Not with `cron`. */
  everyMs?: number;
  /** The IANA time zone of a cron expression (default UTC). */
  timezone?: string;
  /** The topic each slot is published to. */
  topic: string;
  /** The payload of every slot's message (default empty). */
  payload?: Uint8Array | string;
  /** Headers of every slot's message. */
  headers?: Headers;
  /** What to do with slots missed while no node ran (default `last`). */
  catchUp?: CatchUp;
}

/** A schedule as {@link Queue.schedules} lists it. */
export interface ScheduleInfo {
  /** Its name. */
  readonly name: string;
  /** Its cron expression, if it has one. */
  readonly cron: string | undefined;
  /** Its interval, if it has one. */
  readonly everyMs: number | undefined;
  /** The time zone of its cron expression. */
  readonly timezone: string | undefined;
  /** The topic it publishes to. */
  readonly topic: string;
  /** Its catch-up policy. */
  readonly catchUp: CatchUp;
  /** The last slot published (or passed over), or when the schedule was defined. */
  readonly lastSlot: Date;
  /** The next slot, as this node computes it. */
  readonly nextSlot: Date | undefined;
}

/** Statistics of one consumer group. */
export interface GroupStats {
  /** The group. */
  readonly group: string;
  /** Messages not yet delivered to the group. */
  readonly backlog: number;
  /** Messages delivered and not yet settled. */
  readonly pending: number;
  /** Deliveries that were redeliveries, since the group was created (or the backend last reset it). */
  readonly redelivered: number;
  /**
   * Every message of the topic with `seq ≤ ackFloor` is acknowledged by the group (or no longer stored).
   * Messages acked out of order above the floor are not described by it: a copy of the group positioned
   * at `ackFloor + 1` (what `stowage migrate` does) delivers them again — at-least-once, never a loss.
   */
  readonly ackFloor: number;
}

/** Options of {@link Queue.browse}. */
export interface BrowseOptions extends CallOptions {
  /** The first sequence to return (default 1: the oldest stored message). */
  fromSeq?: number;
  /** The most messages to return (default 1000, at most 100 000). */
  limit?: number;
}

/** Statistics of a topic. */
export interface TopicStats {
  /** The topic. */
  readonly topic: string;
  /** Messages stored in the topic. */
  readonly messages: number;
  /** The sequence of the newest message (0 when none was ever published). */
  readonly lastSeq: number;
  /** Every group that has consumed from the topic. */
  readonly groups: readonly GroupStats[];
  /** Messages in the topic's dead-letter topic. */
  readonly deadLetters: number;
}

/**
 * The queue port.
 *
 * Guarantees, checked by the queue contract suite:
 * - a publish resolves only once the message is durable under the adapter's policy, and its `seq` is
 *   greater than every earlier publish to the topic (publish order);
 * - every consumer group receives every message published to the topic (a new group starts at the oldest
 *   stored message); within a group each message goes to one consumer at a time;
 * - at-least-once: a message is removed from a group only by `ack` (or by dead-lettering); the handler form
 *   acks after the handler resolves, never before;
 * - a delivery not settled within `ackWaitMs` is delivered again with `deliveryCount` + 1;
 * - after `maxDeliver` failed deliveries (or `term`) the message moves to the topic's dead-letter topic,
 *   which `deadLetters` lists and `replay` sends back to the group that failed;
 * - a repeated `id` within the dedupe window is stored once;
 * - with one consumer and `prefetch: 1` a group processes messages in publish order.
 *
 * Topic and group names: 1–128 characters of `A-Z a-z 0-9 _ -`.
 */
export interface Queue extends Lifecycle {
  /** What this adapter supports. */
  readonly capabilities: ReadonlySet<QueueCapability>;
  /** The largest payload accepted, in bytes. */
  readonly maxPayloadBytes: number;
  /** Appends a message to a topic. */
  publish(topic: string, payload: Uint8Array | string, options?: PublishOptions): Promise<PublishResult>;
  /**
   * Appends several messages to a topic, in order, and resolves with their results in the same order.
   * Every message is checked before any is stored (bad input stores nothing). Drivers that can store them
   * in one round trip do; the others publish them one after the other, so a failure part-way leaves the
   * earlier ones stored: give each an `id` so that publishing the whole list again stores none twice.
   * At most 10 000 messages per call.
   */
  publishMany(topic: string, messages: readonly PublishEntry[], options?: CallOptions): Promise<PublishResult[]>;
  /** Consumes a topic as a member of `group`. */
  consume(topic: string, group: string, options?: ConsumeOptions): Consumer;
  /**
   * Runs `handler` for every message of the topic in the group: ack after it resolves, nak (with
   * `backoffMs`) when it throws.
   */
  process(
    topic: string,
    group: string,
    handler: (delivery: Delivery) => Promise<void>,
    options?: ProcessOptions,
  ): Processor;
  /**
   * Runs `handler` on batches of up to `maxMessages` messages of the topic in the group. Each message is
   * settled on its own: the handler may `ack`, `nak` or `term` any of them; when it resolves, the ones it
   * left unsettled are acked, and when it throws they are nak'ed (with `backoffMs`) — messages it settled
   * itself are not touched.
   */
  processBatch(
    topic: string,
    group: string,
    handler: (batch: readonly Delivery[]) => Promise<void>,
    options?: ProcessBatchOptions,
  ): Processor;
  /**
   * Creates or updates a schedule: a message published to `spec.topic` at every slot of `spec.cron` or
   * `spec.everyMs`, once per slot across every node that shares the config store (each slot's message has
   * the id `schedule-<name>-<slot ms>`, so that two nodes firing it store it once). This node takes part
   * in publishing the slots of every schedule from this call until the queue closes. An update that
   * keeps the timing keeps the schedule's place; one that changes it starts from now. Needs a config
   * store (`createStowage` gives its own); UNSUPPORTED without one.
   */
  schedule(name: string, spec: ScheduleSpec, options?: CallOptions): Promise<void>;
  /** Every schedule, sorted by name. */
  schedules(options?: CallOptions): Promise<ScheduleInfo[]>;
  /** Removes a schedule (on every node); false when there was none. */
  unschedule(name: string, options?: CallOptions): Promise<boolean>;
  /** Statistics of a topic and its groups. */
  stats(topic: string, options?: CallOptions): Promise<TopicStats>;
  /** Lists the topic's dead letters, oldest first. */
  deadLetters(topic: string, options?: CallOptions & { limit?: number }): Promise<DeadLetter[]>;
  /**
   * Sends dead letters back to the group that failed them (all, or the `seqs` given, which are dead-letter
   * sequences) and removes them from the dead-letter topic. Resolves with how many were replayed.
   */
  replay(topic: string, options?: CallOptions & { seqs?: readonly number[] }): Promise<number>;
  /** Removes every message of a topic (capability `purge`). */
  purge(topic: string, options?: CallOptions): Promise<void>;
  /**
   * The topics that have stored messages, consumer groups or dead letters, sorted. Dead-letter topics are
   * never listed themselves: they are reached through {@link Queue.deadLetters}.
   */
  topics(options?: CallOptions): Promise<string[]>;
  /**
   * Reads stored messages with `seq ≥ fromSeq`, oldest first, without joining or affecting any group.
   * Headers are returned as stored, including Stowage's reserved `stowage-` ones (so that a copy can carry
   * them), and `id` is the stored id (for a replayed message, Stowage's; the publisher's is in the
   * `stowage-original-id` header).
   */
  browse(topic: string, options?: BrowseOptions): Promise<StoredMessage[]>;
  /**
   * Positions a consumer group (creating it if new) so that its next delivery is the first stored message
   * with `seq ≥ seq`; every message before is treated as acknowledged by the group, every message from
   * `seq` on as not yet delivered. Rejects with CONFLICT when the group has unsettled deliveries or running
   * consumers (stop them first): moving a group under its consumers' feet would lose track of what they hold.
   */
  seekGroup(topic: string, group: string, seq: number, options?: CallOptions): Promise<void>;
}

/** A message as a driver stores it. */
export interface StoredMessage {
  /** The sequence in its topic. */
  readonly seq: number;
  /** The idempotency key. */
  readonly id: string | undefined;
  /** Headers, including reserved ones. */
  readonly headers: Headers;
  /** The payload. */
  readonly payload: Uint8Array;
  /** Publish time. */
  readonly publishedAt: Date;
}

/** One delivery as a driver produces it; core wraps it into a {@link Delivery}. */
export interface DriverDelivery extends StoredMessage {
  /** 1 on the first delivery to the group. */
  readonly deliveryCount: number;
  /** Removes the message from the group. */
  ack(): Promise<void>;
  /** Makes the message deliverable again after `delayMs`. */
  nak(delayMs: number): Promise<void>;
  /** Restarts the ackWait clock. */
  touch(): Promise<void>;
}

/** A message handed to {@link QueueDriver.publishMany}. */
export interface DriverMessage {
  /** The payload. */
  readonly payload: Uint8Array;
  /** Headers, including reserved ones. */
  readonly headers: Headers;
  /** The idempotency key. */
  readonly id: string | undefined;
}

/** A driver's live subscription. */
export interface DriverSubscription extends AsyncIterable<DriverDelivery> {
  /** Stops fetching; the iterator returns. Unsettled deliveries are redelivered after ackWait. */
  close(): Promise<void>;
}

/**
 * What a queue adapter implements: durable topics with dedupe, and group subscriptions with ackWait
 * redelivery and delivery counts. Core builds dead letters, replay, the handler form and validation on top.
 *
 * Dead letters live in the topic named `<topic>.dlq` in the driver (core publishes to it, reads it with
 * `read`, and removes replayed ones with `remove`).
 */
export interface QueueDriver extends DriverBase {
  /** What the driver supports. */
  readonly capabilities: ReadonlySet<QueueCapability>;
  /**
   * True when every consumer of the driver's groups lives in this process (an embedded store such as
   * `disk://` or `mem://`). Core then orders keys and limits rates in the processor, without the config
   * store's round trips that it pays where a group can span processes.
   *
   * @defaultValue false
   */
  readonly singleProcess?: boolean;
  /** Stores a message durably; dedupes by `id` within the window. */
  publish(
    topic: string,
    payload: Uint8Array,
    headers: Headers,
    id: string | undefined,
    signal: AbortSignal,
  ): Promise<PublishResult>;
  /**
   * Subscribes a consumer to a group (creating the group at the oldest stored message if new). A message
   * whose deliveries reach `maxDeliver + 1` must still be delivered (core dead-letters it then), so drivers
   * must not stop redelivering before that.
   */
  subscribe(
    topic: string,
    group: string,
    options: { ackWaitMs: number; maxDeliver: number; prefetch: number },
  ): DriverSubscription;
  /** Stored messages with seq ≥ `fromSeq`, oldest first, at most `limit`; no group is affected. */
  read(topic: string, fromSeq: number, limit: number, signal: AbortSignal): Promise<StoredMessage[]>;
  /**
   * Optional: stores several messages of one topic in one round trip, in order, each deduped by its id as
   * {@link QueueDriver.publish} does. Without it core publishes them one after the other.
   */
  publishMany?(topic: string, messages: readonly DriverMessage[], signal: AbortSignal): Promise<PublishResult[]>;
  /** Removes one message from a topic (used for replayed dead letters). */
  remove(topic: string, seq: number, signal: AbortSignal): Promise<void>;
  /** Statistics; `deadLetters` is filled in by core. */
  stats(topic: string, signal: AbortSignal): Promise<Omit<TopicStats, 'deadLetters'>>;
  /** Removes every message (capability `purge`). */
  purge?(topic: string, signal: AbortSignal): Promise<void>;
  /**
   * Every driver topic that has stored messages or groups, dead-letter topics (`<topic>.dlq`) included;
   * core maps those to their topic.
   */
  topics(signal: AbortSignal): Promise<string[]>;
  /**
   * Creates the group, or moves an existing one, so that its next delivery is the first stored message with
   * `seq ≥ seq` (every earlier one counts as acknowledged). Rejects with CONFLICT when the group has
   * unsettled deliveries or live consumers.
   */
  seekGroup(topic: string, group: string, seq: number, signal: AbortSignal): Promise<void>;
}
