/**
 * The Kafka queue driver (`kafka://`), on `@platformatic/kafka`.
 *
 * A Stowage topic `T` is the Kafka topic `<prefix>.T` with one partition (so its offsets are its publish
 * order: `seq` = offset + 1); its dead letters are `<prefix>.T.dlq`. A Stowage group `G` is the Kafka consumer
 * group `<prefix>.T.G`. Messages are produced by an idempotent producer with `acks=all`; the publisher's id is
 * the record's key.
 *
 * **Consuming.** Per (topic, group) a driver runs one Kafka group member (a {@link GroupRunner}) shared by
 * every subscription of that group in the process. The member that Kafka assigns the partition to fetches the
 * records and keeps, in memory, each one's state: delivered to which subscription, its deadline (ackWait,
 * pushed back by `touch`), when a nak lets it come back, how many deliveries it had. The group's committed
 * offset only ever moves to the contiguous floor of settled messages: acks out of order are held until the
 * messages before them are settled too.
 *
 * **What survives a consumer restart** (or the partition moving to another process): the committed floor.
 * Messages above it — unsettled, nak'ed, or acked out of order above an unsettled one — are delivered again,
 * with `deliveryCount` starting at 1 again, since Kafka keeps no per-message state for a group. Redelivery
 * counts in `stats` are those of this process. Nothing acknowledged below the floor is delivered again; an
 * `ack()` resolves once the commit that covers it is confirmed when the message is at the floor.
 *
 * **Dedupe** by id is the driver's: ids published in the window (default two minutes) are remembered per
 * topic, seeded on the first publish with an id to a topic by reading the topic's records of the window
 * (so a restarted publisher still sees the ids published before). Two processes publishing the same id at
 * the same moment can both store it: Kafka has no conditional append.
 *
 * **Removing one message** (what core does to a replayed dead letter) is a marker record in the dead-letter
 * topic naming the removed sequence; reads of a dead-letter topic leave out markers and what they name.
 * Kafka cannot remove one record from the middle of a log, so `remove` on any other topic is UNSUPPORTED.
 *
 * @module
 */
import { Admin, Consumer, GenericError, MultipleErrors, Producer, ProduceAcks, type KafkaRecord, type MessageToProduce } from '@platformatic/kafka';
import { StowageError } from '../../ports/errors.js';
import type {
  DriverDelivery,
  DriverSubscription,
  GroupStats,
  Headers,
  PublishResult,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import type { PingResult } from '../../ports/common.js';
import { PushIterator, redact, safeCause, type Logger } from '../../driver/index.js';
import { sleep, RETRY_MAX_MS, RETRY_MIN_MS } from '../../driver/sleep.js';

/** The `@platformatic/kafka` clients behind a {@link KafkaQueueDriver}. */
export interface KafkaNativeClients {
  /** The admin client (topics, groups, offsets). */
  readonly admin: Admin;
  /** The idempotent producer in use now (replaced after a failed send, see the driver). */
  readonly producer: Producer;
}

/** Options of {@link KafkaQueueDriver.connect}. */
export interface KafkaQueueOptions {
  /** `host:port` of each bootstrap broker. */
  readonly brokers: readonly string[];
  /** The prefix of every Kafka topic and group id this driver uses. @defaultValue `stowage` */
  readonly prefix: string;
  /** Replication factor of the topics the driver creates (-1: the broker's default). */
  readonly replicas: number;
  /** How long a publish id is remembered, in milliseconds. */
  readonly dedupeWindowMs: number;
  /** Timeout of each request to a broker, in milliseconds. */
  readonly requestTimeoutMs: number;
  /** A group member that stops heartbeating for this long loses its partition (ms). */
  readonly sessionTimeoutMs: number;
  /** Where background failures (fetch, join) are reported. */
  readonly logger: Logger;
}

/** The header of a marker record that removes one message from a dead-letter topic. */
const REMOVES_HEADER = 'stowage-kafka-removes';
const DLQ_SUFFIX = '.dlq';
/** How many records a group member holds in memory before it stops fetching (unsettled ones included). */
const WINDOW = 1000;
const FETCH_WAIT_MS = 300;
const FETCH_MAX_BYTES = 8 * 1024 * 1024;
const EARLIEST = -2n;
const LATEST = -1n;
/** Kafka error names that say a group has members or is rebalancing: it cannot be moved now. */
const GROUP_BUSY = new Set(['UNKNOWN_MEMBER_ID', 'REBALANCE_IN_PROGRESS', 'ILLEGAL_GENERATION', 'NON_EMPTY_GROUP', 'GROUP_SUBSCRIBED_TO_TOPIC']);

/** Whether a client error (or one it aggregates) has `property` equal to `value` (e.g. `apiId`, `code`). */
function has(err: unknown, property: string, value: unknown): boolean {
  if (err instanceof MultipleErrors) return err.findBy(property, value) !== null;
  if (err instanceof GenericError) return err.findBy(property, value) !== null;
  return false;
}

function isGroupBusy(err: unknown): boolean {
  return [...GROUP_BUSY].some((id) => has(err, 'apiId', id));
}

function isTopicMissing(err: unknown): boolean {
  return has(err, 'apiId', 'UNKNOWN_TOPIC_OR_PARTITION');
}

/** Decodes the records of fetched batches at or after `from` into stored messages (offset order). */
function decode(batches: readonly { firstOffset: bigint; firstTimestamp: bigint; attributes: number; records: KafkaRecord[] }[], from: bigint): { offset: bigint; message: StoredMessage; removes: number | undefined }[] {
  const out: { offset: bigint; message: StoredMessage; removes: number | undefined }[] = [];
  for (const batch of batches) {
    // Control batches (transaction markers) hold no application record.
    if ((batch.attributes & 0x20) !== 0) continue;
    for (const record of batch.records) {
      const offset = batch.firstOffset + BigInt(record.offsetDelta);
      if (offset < from) continue;
      const headers: Record<string, string> = {};
      let removes: number | undefined;
      for (const [key, value] of record.headers) {
        const name = key?.toString('utf8') ?? '';
        const text = value?.toString('utf8') ?? '';
        if (name === REMOVES_HEADER) removes = Number(text);
        else headers[name] = text;
      }
      out.push({
        offset,
        removes,
        message: Object.freeze({
          seq: Number(offset) + 1,
          id: record.key === null || record.key.length === 0 ? undefined : record.key.toString('utf8'),
          headers: Object.freeze(headers),
          payload: record.value === null ? new Uint8Array(0) : new Uint8Array(record.value.buffer, record.value.byteOffset, record.value.byteLength),
          publishedAt: new Date(Number(batch.firstTimestamp + record.timestampDelta)),
        }),
      });
    }
  }
  return out;
}

/** Where a topic's partition is: for fetches. */
interface PartitionAddress {
  readonly topicId: string;
  readonly leader: number;
}

/** Reads a topic's partition 0 from an offset with a client that joins no group. */
async function fetchFrom(client: Consumer, name: string, offset: bigint, waitMs: number): Promise<{ records: ReturnType<typeof decode>; start: bigint; end: bigint; outOfRange: boolean }> {
  const address = await partitionAddress(client, name);
  const response = await client.fetch({
    node: address.leader,
    maxWaitTime: waitMs,
    minBytes: 1,
    maxBytes: FETCH_MAX_BYTES,
    topics: [{ topicId: address.topicId, partitions: [{ partition: 0, currentLeaderEpoch: -1, fetchOffset: offset, lastFetchedEpoch: -1, partitionMaxBytes: FETCH_MAX_BYTES }] }],
  });
  const partition = response.responses[0]?.partitions[0];
  if (partition === undefined) return { records: [], start: 0n, end: 0n, outOfRange: false };
  // 1: OFFSET_OUT_OF_RANGE (the records were deleted, or the offset is past the end).
  if (partition.errorCode === 1) return { records: [], start: partition.logStartOffset, end: partition.highWatermark, outOfRange: true };
  if (partition.errorCode !== 0) throw new StowageError('UNAVAILABLE', `kafka: fetching ${name} failed with error code ${partition.errorCode}`, { retryable: true });
  return { records: decode(partition.records ?? [], offset), start: partition.logStartOffset, end: partition.highWatermark, outOfRange: false };
}

async function partitionAddress(client: Consumer, name: string): Promise<PartitionAddress> {
  const metadata = await client.metadata({ topics: [name] });
  const topic = metadata.topics.get(name);
  const leader = topic?.partitions[0]?.leader;
  if (topic === undefined || leader === undefined || leader < 0) {
    throw new StowageError('UNAVAILABLE', `kafka: topic ${name} has no leader now`, { retryable: true });
  }
  return { topicId: topic.id, leader };
}

/**
 * The offset of a topic's partition 0 for `timestamp` (EARLIEST, LATEST, or a time in ms).
 *
 * The client sends the partition leader's epoch from its metadata cache (kept for five seconds). After a
 * broker restart or a leader change the broker answers FENCED_LEADER_EPOCH, and the client's own retry
 * reuses the same stale metadata; it drops its cache only once the call has failed. So a call that failed
 * on stale metadata is made once more, with metadata read afresh, instead of reporting a broker that is up
 * as unavailable.
 */
async function listOffset(client: Consumer, name: string, timestamp: bigint): Promise<bigint | undefined> {
  const call = (): Promise<bigint | undefined> => client.listOffsets({ topics: [name], timestamp }).then((found) => found.get(name)?.[0]);
  try {
    return await call();
  } catch (err) {
    if (!has(err, 'hasStaleMetadata', true)) throw err;
    return call();
  }
}

/** The first and next offsets of a topic's partition 0. */
async function bounds(client: Consumer, name: string): Promise<{ start: bigint; end: bigint }> {
  const [start, end] = await Promise.all([listOffset(client, name, EARLIEST), listOffset(client, name, LATEST)]);
  return { start: start ?? 0n, end: end ?? 0n };
}

/**
 * A {@link QueueDriver} over Kafka. Open it with {@link KafkaQueueDriver.connect} (or the `kafka://` scheme);
 * {@link KafkaQueueDriver.native} gives the `@platformatic/kafka` admin client and producer.
 */
export class KafkaQueueDriver implements QueueDriver {
  readonly backend = 'kafka';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>(['purge']);
  readonly #options: KafkaQueueOptions;
  readonly #admin: Admin;
  #producer: Producer;
  readonly #writers = new Map<string, TopicWriter>();
  readonly #base: { bootstrapBrokers: string[]; timeout: number; connectTimeout: number; retries: number; retryDelay: number };
  /** Reads and lists offsets; never joins a group. */
  readonly #reader: Consumer;
  readonly #runners = new Map<string, GroupRunner>();
  readonly #dedupe = new Map<string, DedupeWindow>();
  /** Kafka topics known to exist (created or seen), so a publish does not ask each time. */
  readonly #known = new Set<string>();
  #closed = false;

  private constructor(options: KafkaQueueOptions) {
    this.#options = options;
    const base = { bootstrapBrokers: [...options.brokers], timeout: options.requestTimeoutMs, connectTimeout: options.requestTimeoutMs, retries: 1, retryDelay: 100 };
    this.#base = base;
    this.#admin = new Admin({ ...base, clientId: 'stowage-admin' });
    this.#producer = this.#newProducer();
    this.#reader = new Consumer({ ...base, clientId: 'stowage-reader', groupId: `${options.prefix}.stowage-reader` });
  }

  /** Connects (one metadata round-trip, so a wrong address fails here). */
  static async connect(options: KafkaQueueOptions): Promise<KafkaQueueDriver> {
    const driver = new KafkaQueueDriver(options);
    try {
      await driver.#admin.metadata({ topics: [], forceUpdate: true });
      return driver;
    } catch (err) {
      await driver.close();
      throw err;
    }
  }

  /** The admin client and the producer, for what the port does not cover. */
  native(): KafkaNativeClients {
    return { admin: this.#admin, producer: this.#producer };
  }

  #name(topic: string): string {
    return `${this.#options.prefix}.${topic}`;
  }

  /** Creates the Kafka topic (one partition) unless it is known to exist. */
  async #ensureTopic(name: string): Promise<void> {
    if (this.#known.has(name)) return;
    try {
      await this.#admin.createTopics({ topics: [name], partitions: 1, replicas: this.#options.replicas });
    } catch (err) {
      if (!has(err, 'apiId', 'TOPIC_ALREADY_EXISTS')) throw err;
    }
    this.#known.add(name);
  }

  async #exists(name: string): Promise<boolean> {
    if (this.#known.has(name)) return true;
    const names = await this.#admin.listTopics();
    if (!names.includes(name)) return false;
    this.#known.add(name);
    return true;
  }

  async publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined, signal: AbortSignal): Promise<PublishResult> {
    const name = this.#name(topic);
    await this.#ensureTopic(name);
    if (id === undefined) return { seq: await this.#produce(name, payload, headers, undefined), duplicate: false };
    let window = this.#dedupe.get(name);
    if (window === undefined) {
      window = new DedupeWindow(this.#options.dedupeWindowMs, () => this.#recentIds(name, signal));
      this.#dedupe.set(name, window);
    }
    return window.publish(id, () => this.#produce(name, payload, headers, id));
  }

  /** Appends one record to a topic's partition; resolves with its sequence once the broker confirmed it. */
  #produce(name: string, payload: Uint8Array, headers: Headers, id: string | undefined): Promise<number> {
    let writer = this.#writers.get(name);
    if (writer === undefined) {
      writer = new TopicWriter(name, () => this.#producer, (failed) => this.#replaceProducer(failed));
      this.#writers.set(name, writer);
    }
    return writer.write({
      topic: name,
      partition: 0,
      key: id === undefined ? undefined : Buffer.from(id, 'utf8'),
      value: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength),
      // A Map of buffers: with a plain object the client's default serializers never settle the send.
      headers: new Map(Object.entries(headers).map(([k, v]) => [Buffer.from(k, 'utf8'), Buffer.from(v, 'utf8')])),
    });
  }

  /**
   * Drops a producer whose send failed and starts a new one (a new producer id, sequences from 0). The
   * client counts a partition's sequence only on success: a batch that timed out here but that the broker
   * stored later would make the next batch's sequence look like a retry of it, and the broker would answer
   * that batch with the stored one's offset without storing it — an acknowledged write lost.
   */
  #replaceProducer(failed: Producer): void {
    if (this.#producer !== failed || this.#closed) return;
    this.#producer = this.#newProducer();
    failed.close().catch(() => undefined);
  }

  #newProducer(): Producer {
    return new Producer({ ...this.#base, clientId: 'stowage-producer', idempotent: true, acks: ProduceAcks.ALL, autocreateTopics: false });
  }

  /** The ids published to a topic within the dedupe window (read once per topic and process). */
  async #recentIds(name: string, signal: AbortSignal): Promise<Map<string, { seq: number; at: number }>> {
    const ids = new Map<string, { seq: number; at: number }>();
    const since = Date.now() - this.#options.dedupeWindowMs;
    let offset = (await listOffset(this.#reader, name, BigInt(since))) ?? LATEST;
    if (offset < 0n) return ids;
    const { end } = await bounds(this.#reader, name);
    while (offset < end && !signal.aborted) {
      const page = await fetchFrom(this.#reader, name, offset, 0);
      if (page.outOfRange) offset = page.start;
      for (const { offset: at, message } of page.records) {
        if (message.id !== undefined) ids.set(message.id, { seq: message.seq, at: message.publishedAt.getTime() });
        offset = at + 1n;
      }
      if (page.records.length === 0 && !page.outOfRange) break;
    }
    return ids;
  }

  subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const key = `${topic}\u0000${group}`;
    let runner = this.#runners.get(key);
    if (runner === undefined || runner.closing) {
      const created = new GroupRunner(this.#name(topic), `${this.#name(topic)}.${group}`, this.#options, () => this.#ensureTopic(this.#name(topic)), () => {
        if (this.#runners.get(key) === created) this.#runners.delete(key);
      });
      runner = created;
      this.#runners.set(key, runner);
    }
    return runner.subscribe(options.ackWaitMs, options.prefetch);
  }

  async read(topic: string, fromSeq: number, limit: number, signal: AbortSignal): Promise<StoredMessage[]> {
    const name = this.#name(topic);
    if (!(await this.#exists(name))) return [];
    if (topic.endsWith(DLQ_SUFFIX)) return (await this.#liveLetters(name, signal)).filter((m) => m.seq >= fromSeq).slice(0, limit);
    const out: StoredMessage[] = [];
    const { end } = await bounds(this.#reader, name);
    let offset = BigInt(fromSeq - 1);
    while (out.length < limit && offset < end && !signal.aborted) {
      const page = await fetchFrom(this.#reader, name, offset, 0);
      if (page.outOfRange) {
        if (page.start <= offset) break;
        offset = page.start;
        continue;
      }
      if (page.records.length === 0) break;
      for (const { offset: at, message } of page.records) {
        if (out.length < limit) out.push(message);
        offset = at + 1n;
      }
    }
    return out;
  }

  /** The letters of a dead-letter topic that no marker removed (such topics stay small: every record is read). */
  async #liveLetters(name: string, signal: AbortSignal): Promise<StoredMessage[]> {
    const { start, end } = await bounds(this.#reader, name);
    const letters: StoredMessage[] = [];
    const removed = new Set<number>();
    let offset = start;
    while (offset < end && !signal.aborted) {
      const page = await fetchFrom(this.#reader, name, offset, 0);
      if (page.outOfRange) {
        offset = page.start;
        continue;
      }
      if (page.records.length === 0) break;
      for (const { offset: at, message, removes } of page.records) {
        if (removes === undefined) letters.push(message);
        else removed.add(removes);
        offset = at + 1n;
      }
    }
    return letters.filter((m) => !removed.has(m.seq));
  }

  async remove(topic: string, seq: number): Promise<void> {
    if (!topic.endsWith(DLQ_SUFFIX)) {
      throw new StowageError('UNSUPPORTED', `kafka: a single message cannot be removed from topic ${JSON.stringify(topic)} (Kafka deletes only a log's prefix)`);
    }
    const name = this.#name(topic);
    await this.#ensureTopic(name);
    await this.#produce(name, new Uint8Array(0), { [REMOVES_HEADER]: String(seq) }, undefined);
  }

  async stats(topic: string, signal: AbortSignal): Promise<Omit<TopicStats, 'deadLetters'>> {
    const name = this.#name(topic);
    if (!(await this.#exists(name))) return { topic, messages: 0, lastSeq: 0, groups: [] };
    const { start, end } = await bounds(this.#reader, name);
    if (topic.endsWith(DLQ_SUFFIX)) return { topic, messages: (await this.#liveLetters(name, signal)).length, lastSeq: Number(end), groups: [] };
    const prefix = `${name}.`;
    const ids = new Set<string>();
    for (const id of (await this.#admin.listGroups()).keys()) {
      if (id.startsWith(prefix) && !id.slice(prefix.length).includes('.')) ids.add(id);
    }
    const local = new Map<string, GroupRunner>();
    for (const [key, runner] of this.#runners) {
      if (key.startsWith(`${topic}\u0000`)) {
        local.set(runner.groupId, runner);
        ids.add(runner.groupId);
      }
    }
    const committed = new Map<string, bigint>();
    if (ids.size > 0) {
      for (const g of await this.#admin.listConsumerGroupOffsets({ groups: [...ids].map((groupId) => ({ groupId, topics: [{ name, partitionIndexes: [0] }] })) })) {
        const offset = g.topics.find((t) => t.name === name)?.partitions[0]?.committedOffset;
        if (offset !== undefined && offset >= 0n) committed.set(g.groupId, offset);
      }
    }
    const groups: GroupStats[] = [...ids].sort().map((id) => {
      // A commit below the log's start (records deleted since) counts from the start.
      const floor = Math.max(Number(committed.get(id) ?? start), Number(start));
      const runner = local.get(id);
      const view = runner?.view();
      const ackFloor = Math.max(floor, view?.floor ?? 0);
      const pending = view?.pending ?? 0;
      const settledAbove = view?.settledAbove ?? 0;
      return {
        group: id.slice(prefix.length),
        backlog: Math.max(0, Number(end) - ackFloor - pending - settledAbove),
        pending,
        redelivered: view?.redelivered ?? 0,
        ackFloor,
      };
    });
    return { topic, messages: Number(end - start), lastSeq: Number(end), groups };
  }

  async purge(topic: string): Promise<void> {
    const name = this.#name(topic);
    if (!(await this.#exists(name))) return;
    const { end } = await bounds(this.#reader, name);
    await this.#admin.deleteRecords({ topics: [{ name, partitions: [{ partition: 0, offset: end }] }] });
  }

  async topics(): Promise<string[]> {
    const prefix = `${this.#options.prefix}.`;
    return (await this.#admin.listTopics())
      .filter((name) => name.startsWith(prefix))
      .map((name) => name.slice(prefix.length))
      .sort();
  }

  async seekGroup(topic: string, group: string, seq: number): Promise<void> {
    const runner = this.#runners.get(`${topic}\u0000${group}`);
    if (runner !== undefined && !runner.closing) {
      throw new StowageError('CONFLICT', `kafka: group ${JSON.stringify(group)} of topic ${JSON.stringify(topic)} has running consumers in this process; stop them first`);
    }
    const name = this.#name(topic);
    await this.#ensureTopic(name);
    await runner?.closed;
    try {
      await this.#admin.alterConsumerGroupOffsets({ groupId: `${name}.${group}`, topics: [{ name, partitionOffsets: [{ partition: 0, offset: BigInt(seq - 1) }] }] });
    } catch (err) {
      if (isGroupBusy(err)) {
        throw new StowageError('CONFLICT', `kafka: group ${JSON.stringify(group)} of topic ${JSON.stringify(topic)} has live members; stop them first`, { cause: safeCause(err) });
      }
      throw err;
    }
  }

  async ping(): Promise<PingResult> {
    // forceUpdate: the client otherwise answers from its metadata cache without asking a broker.
    await this.#admin.metadata({ topics: [], forceUpdate: true });
    return {};
  }

  mapError(err: unknown): StowageError | undefined {
    if (err instanceof StowageError) return err;
    if (!(err instanceof GenericError || err instanceof MultipleErrors)) return undefined;
    const message = redact(err.message);
    if (has(err, 'code', 'PLT_KFK_NETWORK') || has(err, 'code', 'PLT_KFK_TIMEOUT') || has(err, 'canRetry', true)) {
      return new StowageError('UNAVAILABLE', `kafka: unavailable (${message})`, { cause: safeCause(err), retryable: true });
    }
    if (isTopicMissing(err)) return new StowageError('NOT_FOUND', `kafka: ${message}`, { cause: safeCause(err) });
    if (has(err, 'apiId', 'MESSAGE_TOO_LARGE') || has(err, 'apiId', 'RECORD_LIST_TOO_LARGE')) {
      return new StowageError('RESOURCE_EXHAUSTED', `kafka: the record is larger than the broker accepts (its message.max.bytes): ${message}`, { cause: safeCause(err) });
    }
    if (has(err, 'code', 'PLT_KFK_AUTHENTICATION')) return new StowageError('PERMISSION_DENIED', `kafka: ${message}`, { cause: safeCause(err) });
    return undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#runners.values()].map((r) => r.close()));
    await Promise.allSettled([this.#producer.close(), this.#admin.close(), this.#reader.close(true)]);
  }
}

/** A record as the client sends it. */
type OutgoingRecord = MessageToProduce<Buffer, Buffer, Buffer, Buffer> & { partition: number };

/** Most bytes of payload in one produce request (under the broker's default `message.max.bytes`, ~1 MiB). */
const BATCH_BYTES = 512 * 1024;
const BATCH_RECORDS = 500;

/**
 * The producer side of one topic: at most one produce request in flight, carrying every record queued
 * meanwhile (group commit), so record `i` of a batch is at the confirmed base offset + `i`.
 *
 * One at a time because `@platformatic/kafka` 1.x numbers an idempotent producer's batches when their
 * response arrives: concurrent sends to one partition carry the same sequence number, and the broker
 * stores the first and answers the others, as retries of it, with its offset (acknowledged, never stored).
 */
class TopicWriter {
  readonly #topic: string;
  readonly #producer: () => Producer;
  readonly #onFailure: (failed: Producer) => void;
  #queue: { record: OutgoingRecord; resolve: (seq: number) => void; reject: (err: unknown) => void }[] = [];
  #running = false;

  constructor(topic: string, producer: () => Producer, onFailure: (failed: Producer) => void) {
    this.#topic = topic;
    this.#producer = producer;
    this.#onFailure = onFailure;
  }

  write(record: OutgoingRecord): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      this.#queue.push({ record, resolve, reject });
      if (!this.#running) void this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#running = true;
    try {
      while (this.#queue.length > 0) {
        let bytes = 0;
        let n = 0;
        while (n < this.#queue.length && n < BATCH_RECORDS && (n === 0 || bytes + (this.#queue[n]?.record.value?.byteLength ?? 0) <= BATCH_BYTES)) {
          bytes += this.#queue[n]?.record.value?.byteLength ?? 0;
          n++;
        }
        const batch = this.#queue.splice(0, n);
        const producer = this.#producer();
        try {
          const result = await producer.send({ messages: batch.map((b) => b.record) });
          const base = result.offsets?.find((o) => o.topic === this.#topic)?.offset;
          if (base === undefined) throw new StowageError('INTERNAL', `kafka: the broker confirmed a publish to ${this.#topic} without its offset`);
          batch.forEach((b, i) => b.resolve(Number(base) + i + 1));
        } catch (err) {
          this.#onFailure(producer);
          for (const b of batch) b.reject(err);
        }
      }
    } finally {
      this.#running = false;
    }
  }
}

/**
 * The ids a topic saw within the dedupe window. Publishes of one id in this process run one after the
 * other, so the second sees the first's result.
 */
class DedupeWindow {
  readonly #windowMs: number;
  readonly #seed: () => Promise<Map<string, { seq: number; at: number }>>;
  #ids: Map<string, { seq: number; at: number }> | undefined;
  #seeding: Promise<Map<string, { seq: number; at: number }>> | undefined;
  readonly #inFlight = new Map<string, Promise<PublishResult>>();

  constructor(windowMs: number, seed: () => Promise<Map<string, { seq: number; at: number }>>) {
    this.#windowMs = windowMs;
    this.#seed = seed;
  }

  async publish(id: string, produce: () => Promise<number>): Promise<PublishResult> {
    const before = this.#inFlight.get(id);
    const run = (async (): Promise<PublishResult> => {
      await before?.catch(() => undefined);
      const ids = await this.#load();
      const now = Date.now();
      const seen = ids.get(id);
      if (seen !== undefined && now - seen.at < this.#windowMs) return { seq: seen.seq, duplicate: true };
      const seq = await produce();
      ids.set(id, { seq, at: now });
      this.#expire(ids, now);
      return { seq, duplicate: false };
    })();
    this.#inFlight.set(id, run);
    try {
      return await run;
    } finally {
      if (this.#inFlight.get(id) === run) this.#inFlight.delete(id);
    }
  }

  async #load(): Promise<Map<string, { seq: number; at: number }>> {
    if (this.#ids !== undefined) return this.#ids;
    this.#seeding ??= this.#seed().finally(() => (this.#seeding = undefined));
    this.#ids ??= await this.#seeding;
    return this.#ids;
  }

  /** Drops ids older than the window (Map order is insertion order: the oldest come first). */
  #expire(ids: Map<string, { seq: number; at: number }>, now: number): void {
    for (const [id, { at }] of ids) {
      if (now - at < this.#windowMs) break;
      ids.delete(id);
    }
  }
}

/** How long a closed subscription's member waits for the deliveries it handed out to be settled. */
const SETTLE_ON_CLOSE_MS = 5_000;

/** One record a group member holds: fetched, maybe delivered, not yet below the committed floor. */
interface Entry {
  readonly offset: number;
  readonly message: StoredMessage;
  /** Deliveries so far. */
  count: number;
  /** Bumped on each delivery: a settlement carrying an older value acts on a delivery that was taken back. */
  attempt: number;
  acked: boolean;
  /** The subscription that holds it now. */
  holder: Subscription | undefined;
  /** The ackWait timer of the current delivery, or the nak delay's. */
  timer: NodeJS.Timeout | undefined;
}

/** One consumer of a group in this process. */
interface Subscription {
  readonly ackWaitMs: number;
  readonly prefetch: number;
  held: number;
  /** Handed over up to its prefetch, buffered until read. */
  readonly deliveries: PushIterator<DriverDelivery>;
}

/**
 * The Kafka group member of one (topic, group) in this process, shared by its subscriptions: joins the group,
 * fetches the partition while it is assigned, hands records to subscriptions, tracks ackWait and nak delays,
 * and commits the contiguous floor of settled offsets.
 */
class GroupRunner {
  readonly groupId: string;
  readonly #topic: string;
  readonly #options: KafkaQueueOptions;
  readonly #member: Consumer;
  readonly #fetcher: Consumer;
  readonly #subs: Subscription[] = [];
  readonly #entries = new Map<number, Entry>();
  /** Offsets ready to be delivered, ascending. */
  #ready: number[] = [];
  #assigned = false;
  /** Every offset below it is settled (and committed once {@link #committed} reaches it). */
  #floor = -1;
  #committed = -1;
  /** The next offset to fetch; -1 until the partition is assigned and the committed offset read. */
  #next = -1;
  #redelivered = 0;
  #commit: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #roundRobin = 0;
  closing = false;
  readonly closed: Promise<void>;
  #markClosed!: () => void;
  readonly #onClosed: () => void;
  readonly #ensureTopic: () => Promise<void>;

  constructor(topic: string, groupId: string, options: KafkaQueueOptions, ensureTopic: () => Promise<void>, onClosed: () => void) {
    this.#topic = topic;
    this.groupId = groupId;
    this.#options = options;
    this.#ensureTopic = ensureTopic;
    this.#onClosed = onClosed;
    this.closed = new Promise((resolve) => (this.#markClosed = resolve));
    const base = { bootstrapBrokers: [...options.brokers], timeout: options.requestTimeoutMs, connectTimeout: options.requestTimeoutMs, retries: 1, retryDelay: 100 };
    this.#member = new Consumer({
      ...base,
      clientId: 'stowage-consumer',
      groupId,
      sessionTimeout: options.sessionTimeoutMs,
      heartbeatInterval: Math.max(100, Math.floor(options.sessionTimeoutMs / 5)),
      rebalanceTimeout: options.sessionTimeoutMs,
    });
    // Fetches run on their own connections: a long poll would otherwise hold up commits behind it.
    this.#fetcher = new Consumer({ ...base, clientId: 'stowage-fetcher', groupId });
    this.#member.on('consumer:group:join', () => this.#onAssignment());
    this.#member.on('consumer:group:leave', () => this.#onAssignment());
    // The client rejoins on its own when a heartbeat is answered "rejoin" (the broker dropped the member
    // after a freeze, a rebalance), and reports a rejoin that failed as an 'error' event: with no listener,
    // that event is an uncaught exception in the user's process. The member is then inactive, and the run
    // loop joins again (with its backoff); the failure is only logged.
    this.#member.on('error', (err: unknown) => {
      if (this.closing) return;
      this.#options.logger.debug?.(`kafka: group ${this.groupId}: ${redact(err instanceof Error ? err.message : String(err))}`);
      this.#wakeUp();
    });
    void this.#run();
  }

  subscribe(ackWaitMs: number, prefetch: number): DriverSubscription {
    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => (closing ??= this.#unsubscribe(sub));
    const sub: Subscription = { ackWaitMs, prefetch, held: 0, deliveries: new PushIterator<DriverDelivery>({ onReturn: close }) };
    this.#subs.push(sub);
    this.#dispatch();
    return { close, [Symbol.asyncIterator]: () => sub.deliveries };
  }

  async #unsubscribe(sub: Subscription): Promise<void> {
    const i = this.#subs.indexOf(sub);
    if (i >= 0) this.#subs.splice(i, 1);
    // Handed over but never read: back to the group at once, for the other subscriptions.
    for (const d of sub.deliveries.stop()) await d.nak(0);
    // A processor settles its running handlers before it closes its subscription, but a consumer may be
    // closed with deliveries still in the application's hands, and acked after: the member stays in the
    // group until they are settled, for at most SETTLE_ON_CLOSE_MS — an ack after it has left could not be
    // committed, and the message would come again.
    const until = Date.now() + Math.min(sub.ackWaitMs, SETTLE_ON_CLOSE_MS);
    while (sub.held > 0 && !this.closing && Date.now() < until) await sleep(5);
    if (this.#subs.length === 0) await this.close();
  }

  /** What stats need from this member. */
  view(): { floor: number; pending: number; settledAbove: number; redelivered: number } {
    let pending = 0;
    let settledAbove = 0;
    for (const entry of this.#entries.values()) {
      if (entry.acked) settledAbove++;
      else if (entry.count > 0) pending++;
    }
    return { floor: Math.max(this.#committed, 0), pending, settledAbove, redelivered: this.#redelivered };
  }

  #onAssignment(): void {
    const assigned = this.#member.assignments?.some((a) => a.topic === this.#topic && a.partitions.includes(0)) ?? false;
    if (assigned === this.#assigned) return;
    this.#assigned = assigned;
    // Gained or lost, what was held belongs to an older generation: deliveries of it settle nothing now,
    // and the partition is read again from the committed floor.
    this.#reset();
    this.#wakeUp();
  }

  #reset(): void {
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.timer);
      if (entry.holder !== undefined) entry.holder.held--;
    }
    this.#entries.clear();
    this.#ready = [];
    this.#next = -1;
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #idle(ms: number): Promise<void> {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      this.#wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });
  }

  async #run(): Promise<void> {
    let backoff = RETRY_MIN_MS;
    while (!this.closing) {
      try {
        if (this.#member.memberId === null || !this.#member.isActive()) {
          await this.#ensureTopic();
          this.#member.topics.track(this.#topic);
          await this.#member.joinGroup({
            sessionTimeout: this.#options.sessionTimeoutMs,
            heartbeatInterval: Math.max(100, Math.floor(this.#options.sessionTimeoutMs / 5)),
            rebalanceTimeout: this.#options.sessionTimeoutMs,
          });
          this.#onAssignment();
          continue;
        }
        if (!this.#assigned || this.#entries.size >= WINDOW) {
          await this.#idle(500);
          continue;
        }
        if (this.#next < 0) {
          const committed = (await this.#member.listCommittedOffsets({ topics: [{ topic: this.#topic, partitions: [0] }] })).get(this.#topic)?.[0] ?? -1n;
          const { start } = await bounds(this.#fetcher, this.#topic);
          const from = committed >= start ? committed : start;
          this.#floor = Number(from);
          this.#committed = Number(committed);
          this.#next = Number(from);
        }
        const from = this.#next;
        const page = await fetchFrom(this.#fetcher, this.#topic, BigInt(from), FETCH_WAIT_MS);
        // A reset (the partition moved) while the fetch was out makes its records stale.
        if (this.closing || this.#next !== from) continue;
        if (page.outOfRange) {
          // The records were deleted (purge, retention): carry on from the oldest one kept.
          if (page.start > BigInt(from)) this.#skipTo(Number(page.start));
          else await this.#idle(FETCH_WAIT_MS);
          continue;
        }
        for (const { offset, message } of page.records) {
          const at = Number(offset);
          this.#entries.set(at, { offset: at, message, count: 0, attempt: 0, acked: false, holder: undefined, timer: undefined });
          this.#ready.push(at);
          this.#next = at + 1;
        }
        this.#dispatch();
        backoff = RETRY_MIN_MS;
      } catch (err) {
        if (this.closing) break;
        this.#options.logger.debug?.(`kafka: group ${this.groupId}: ${redact(err instanceof Error ? err.message : String(err))}`);
        await this.#idle(backoff);
        backoff = Math.min(backoff * 2, RETRY_MAX_MS);
      }
    }
  }

  /** Moves the floor past deleted records. */
  #skipTo(offset: number): void {
    for (const [at, entry] of this.#entries) {
      if (at >= offset) break;
      clearTimeout(entry.timer);
      if (entry.holder !== undefined) entry.holder.held--;
      this.#entries.delete(at);
    }
    this.#ready = this.#ready.filter((at) => at >= offset);
    if (this.#floor < offset) this.#floor = offset;
    if (this.#next < offset) this.#next = offset;
  }

  /** Hands ready records to subscriptions with room, round-robin. */
  #dispatch(): void {
    while (this.#ready.length > 0 && this.#subs.length > 0) {
      let sub: Subscription | undefined;
      for (let i = 0; i < this.#subs.length; i++) {
        const candidate = this.#subs[(this.#roundRobin + i) % this.#subs.length];
        if (candidate !== undefined && candidate.held < candidate.prefetch) {
          sub = candidate;
          this.#roundRobin = (this.#roundRobin + i + 1) % this.#subs.length;
          break;
        }
      }
      if (sub === undefined) return;
      const offset = this.#ready.shift() as number;
      const entry = this.#entries.get(offset);
      if (entry === undefined || entry.acked) continue;
      this.#deliver(entry, sub);
    }
  }

  #deliver(entry: Entry, sub: Subscription): void {
    entry.count++;
    entry.attempt++;
    if (entry.count > 1) this.#redelivered++;
    entry.holder = sub;
    sub.held++;
    const attempt = entry.attempt;
    this.#armAckWait(entry, sub.ackWaitMs);
    const m = entry.message;
    sub.deliveries.push({
      seq: m.seq,
      id: m.id,
      headers: m.headers,
      payload: m.payload,
      publishedAt: m.publishedAt,
      deliveryCount: entry.count,
      ack: () => this.#ack(entry),
      nak: async (delayMs: number) => this.#nak(entry, attempt, delayMs),
      touch: async () => {
        if (this.#current(entry, attempt)) this.#armAckWait(entry, sub.ackWaitMs);
      },
    });
  }

  #current(entry: Entry, attempt: number): boolean {
    return !entry.acked && entry.attempt === attempt && entry.holder !== undefined && this.#entries.get(entry.offset) === entry;
  }

  #armAckWait(entry: Entry, ackWaitMs: number): void {
    clearTimeout(entry.timer);
    const attempt = entry.attempt;
    entry.timer = setTimeout(() => {
      if (this.#current(entry, attempt)) this.#release(entry, 0);
    }, ackWaitMs);
    entry.timer.unref();
  }

  /** Takes a delivery back from its holder; it is ready again after `delayMs`. */
  #release(entry: Entry, delayMs: number): void {
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.holder !== undefined) entry.holder.held--;
    entry.holder = undefined;
    const ready = (): void => {
      entry.timer = undefined;
      if (entry.acked || this.#entries.get(entry.offset) !== entry) return;
      // Back in offset order, so a redelivery comes before the records fetched after it.
      let i = this.#ready.length;
      while (i > 0 && (this.#ready[i - 1] as number) > entry.offset) i--;
      this.#ready.splice(i, 0, entry.offset);
      this.#dispatch();
    };
    if (delayMs > 0) {
      entry.timer = setTimeout(ready, delayMs);
      entry.timer.unref();
    } else ready();
    this.#dispatch();
  }

  #nak(entry: Entry, attempt: number, delayMs: number): void {
    if (this.#current(entry, attempt)) this.#release(entry, delayMs);
  }

  async #ack(entry: Entry): Promise<void> {
    // A late ack (after ackWait took the delivery back) still settles the message: the work was done.
    if (entry.acked || this.#entries.get(entry.offset) !== entry) return;
    entry.acked = true;
    clearTimeout(entry.timer);
    entry.timer = undefined;
    if (entry.holder !== undefined) entry.holder.held--;
    entry.holder = undefined;
    while (this.#entries.get(this.#floor)?.acked === true) {
      this.#entries.delete(this.#floor);
      this.#floor++;
    }
    this.#dispatch();
    this.#wakeUp();
    if (entry.offset < this.#floor) await this.#flush();
  }

  /** Commits the floor; resolves once a commit at or past the floor as it was on entry is confirmed. */
  async #flush(): Promise<void> {
    const target = this.#floor;
    while (this.#committed < target) {
      if (this.#commit !== undefined) {
        await this.#commit;
        continue;
      }
      const floor = this.#floor;
      this.#commit = this.#member
        .commit({ offsets: [{ topic: this.#topic, partition: 0, offset: BigInt(floor), leaderEpoch: -1 }] })
        .then(() => {
          if (floor > this.#committed) this.#committed = floor;
        })
        .finally(() => (this.#commit = undefined));
      await this.#commit;
    }
  }

  /** Ends every subscription, commits what is settled, leaves the group. */
  async close(): Promise<void> {
    if (this.closing) return this.closed;
    this.closing = true;
    this.#onClosed();
    // What was settled is committed before the member leaves (a failure leaves it to be delivered again).
    if (this.#floor > this.#committed) await this.#flush().catch(() => undefined);
    for (const sub of this.#subs.splice(0)) sub.deliveries.stop();
    this.#reset();
    this.#wakeUp();
    await Promise.allSettled([this.#member.close(), this.#fetcher.close(true)]);
    this.#markClosed();
  }
}
