/**
 * The queue port over any {@link QueueDriver}: validation, dead letters and replay, schedules and the
 * closed state. Drivers only store topics and run group subscriptions. The parts live beside it:
 * publish.ts (message checks, key numbering), consumer.ts and delivery.ts (what `consume` hands out),
 * settlement.ts (acks, naks, dead-lettering), processor.ts (the handler form), transfer.ts (copy paths).
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions, HealthReport } from '../../ports/common.js';
import type {
  BrowseOptions,
  ConsumeOptions,
  Consumer,
  DeadLetter,
  Delivery,
  DriverSubscription,
  ProcessBatchOptions,
  ProcessOptions,
  Processor,
  PublishEntry,
  PublishOptions,
  PublishResult,
  Queue,
  ScheduleInfo,
  ScheduleSpec,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import { defaultLogger, type Logger } from '../registry.js';
import { DEFAULT_DRAIN_MS, DEFAULT_TIMEOUT_MS, PortRuntime, type RuntimeOptions } from '../runtime.js';
import { traceHeaders, withTraceContext } from './trace-context.js';
import { quote, validateName, validateNonNegativeInt, validatePositiveInt } from '../../driver/validate.js';
import { invalid, unsupported } from '../../driver/errors.js';
import {
  describeError,
  DLQ_SUFFIX,
  HEADER_DELIVERY_COUNT,
  HEADER_DLQ_ERROR,
  HEADER_DLQ_ERROR_CODE,
  HEADER_DLQ_GROUP,
  HEADER_DLQ_REASON,
  HEADER_KEY,
  HEADER_ORIGINAL_ID,
  HEADER_ORIGINAL_SEQ,
  HEADER_REPLAY_GROUP,
  userHeaders,
} from './headers.js';
import { BACKOFF_MAX_MS, BatchProcessor, CoreProcessor, type LoopOptions } from './processor.js';
import { Scheduler, validateSchedule } from './schedules.js';
import { KeyMarks, keyNumberHeaders, KeySequencer, KeyTurns } from './key-turns.js';
import { KeyPruner } from './key-pruner.js';
import { GroupRate } from './group-rate.js';
import { intOption, MAX_TIMER_MS, validateConsumeOptions, validateRateLimit, type ResolvedConsume } from './options.js';
import { Settler } from './settlement.js';
import { createTransfer, READ_PAGE, readFrom, type QueueTransfer } from './transfer.js';
import { giveBackDuplicates, numberKeys, prepareMessage } from './publish.js';
import { CoreConsumer } from './consumer.js';
import type { ConfigStore } from '../../ports/config.js';

export {
  DLQ_SUFFIX,
  HEADER_DELIVERY_COUNT,
  HEADER_DLQ_ERROR,
  HEADER_DLQ_ERROR_CODE,
  HEADER_DLQ_GROUP,
  HEADER_DLQ_REASON,
  HEADER_ORIGINAL_ID,
  HEADER_ORIGINAL_SEQ,
  HEADER_REPLAY_GROUP,
  MAX_HEADERS,
  RESERVED_HEADER_PREFIX,
} from './headers.js';

/** The default largest payload: 1 MiB. */
export const DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024;

const DEFAULT_DEAD_LETTER_LIMIT = 1000;
const DEFAULT_BROWSE_LIMIT = 1000;
/** `processBatch`'s default `maxMessages` and `maxWaitMs`. */
const DEFAULT_BATCH_MESSAGES = 100;
const DEFAULT_BATCH_WAIT_MS = 1_000;
/** The most messages of one `publishMany`. */
const MAX_PUBLISH_MANY = 10_000;


/** Options of {@link createQueue}. */
export interface QueueOptions extends RuntimeOptions {
  /** The largest payload accepted, in bytes. @default 1 MiB (1 048 576) */
  maxPayloadBytes?: number;
  /**
   * Where handler failures of {@link Queue.process} go when the processor has no `onError` (one line
   * each: topic, group, sequence, attempt, the error's code and message — never the payload).
   * @default stderr (`createStowage` passes its own `logger`)
   */
  logger?: Logger;
  /**
   * The config store that holds {@link Queue.schedule}'s schedules and their progress (shared by every
   * node that runs them). Without it `schedule` is UNSUPPORTED. `createStowage` passes its config port.
   */
  config?: ConfigStore;
}

/**
 * Creates the {@link Queue} port over a driver.
 *
 * Dead letters are kept by core, not the driver: a message whose delivery count passes `maxDeliver`, that
 * is nak'ed on its last allowed attempt, or that is `term`inated is published to `<topic>.dlq` (with the
 * group, reason, original sequence and delivery count in reserved headers, and an id that makes a repeated
 * move a duplicate) and then acked in the original topic.
 *
 * @example
 * ```ts
 * const queue = createQueue(driver);
 * await queue.publish('orders', JSON.stringify(order), { id: order.id });
 * const worker = queue.process('orders', 'billing', async (d) => bill(d.json()), { concurrency: 4 });
 * ```
 */
export function createQueue(driver: QueueDriver, options: QueueOptions = {}): Queue {
  return new CoreQueue(driver, options);
}

/** The copy paths of a `CoreQueue`: set by its static block, which alone may read its private fields. */
let transferOf: (queue: CoreQueue) => QueueTransfer;

class CoreQueue implements Queue {
  static {
    transferOf = (queue) => createTransfer(queue.#driver, queue.#runtime, queue.maxPayloadBytes);
  }

  readonly #driver: QueueDriver;
  readonly #runtime: PortRuntime;
  readonly #drainMs: number;
  readonly #consumers = new Set<CoreConsumer>();
  readonly #processors = new Set<Processor>();
  /** Settles what consumers hand out; `close()` drains it. */
  readonly #settler: Settler;
  readonly #config: ConfigStore | undefined;
  #scheduler: Scheduler | undefined;
  /**
   * Numbers keyed messages at publish when the group's consumers may live in several processes (a driver
   * not declared `singleProcess`, a config store with leases): see key-turns.ts. Undefined otherwise.
   */
  readonly #sequencer: KeySequencer | undefined;
  readonly maxPayloadBytes: number;
  /** Where processors without `onError` report failures. */
  readonly logger: Logger;

  constructor(driver: QueueDriver, options: QueueOptions) {
    this.#driver = driver;
    this.#config = options.config;
    const config = options.config;
    this.#sequencer = config !== undefined && config.capabilities.has('leases') && driver.singleProcess !== true ? new KeySequencer(config) : undefined;
    this.#runtime = new PortRuntime('queue', driver, options);
    this.#settler = new Settler(driver, this.#runtime, options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS);
    this.#drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
    this.maxPayloadBytes = intOption(options.maxPayloadBytes, 'maxPayloadBytes', DEFAULT_MAX_PAYLOAD_BYTES, 1, 2 ** 31 - 1);
    this.logger = options.logger ?? defaultLogger;
  }

  get capabilities(): ReadonlySet<QueueCapability> {
    return this.#driver.capabilities;
  }

  get backend(): string {
    return this.#runtime.backend;
  }

  get closed(): boolean {
    return this.#runtime.closed;
  }

  health(options?: CallOptions): Promise<HealthReport> {
    return this.#runtime.health(options);
  }

  async publish(topic: string, payload: Uint8Array | string, options?: PublishOptions): Promise<PublishResult> {
    this.#runtime.assertOpen('publish');
    validateName(topic, 'topic');
    const m = prepareMessage(topic, payload, options, this.maxPayloadBytes);
    const key = m.headers[HEADER_KEY];
    const sequencer = this.#sequencer;
    if (key === undefined || sequencer === undefined) {
      // The trace headers are taken inside the call, where the publish span is the active context.
      return this.#runtime.run('publish', options, (signal) => this.#driver.publish(topic, m.payload, withTraceContext(m.headers), m.id, signal), {
        'stowage.topic': topic,
      });
    }
    return this.#runtime.run(
      'publish',
      options,
      async (signal) => {
        const reservation = await sequencer.reserve(topic, key, 1, signal);
        const n = reservation.first;
        const result = await this.#driver.publish(topic, m.payload, withTraceContext({ ...m.headers, ...keyNumberHeaders(reservation, n) }), m.id, signal);
        if (result.duplicate) await sequencer.giveBack(topic, key, n, signal);
        return result;
      },
      { 'stowage.topic': topic },
    );
  }

  async publishMany(topic: string, messages: readonly PublishEntry[], options?: CallOptions): Promise<PublishResult[]> {
    this.#runtime.assertOpen('publishMany');
    validateName(topic, 'topic');
    if (!Array.isArray(messages)) throw invalid('messages must be an array of { payload, headers?, id?, key?, delayMs?, notBefore? }');
    if (messages.length > MAX_PUBLISH_MANY) throw invalid(`publishMany takes at most ${MAX_PUBLISH_MANY} messages, got ${messages.length}`);
    // Every message is checked before any is stored: bad input stores nothing.
    const prepared = messages.map((entry: unknown, i) => {
      if (typeof entry !== 'object' || entry === null) throw invalid(`messages[${i}] must be an object with a payload`);
      const e = entry as PublishEntry;
      try {
        return prepareMessage(topic, e.payload, e, this.maxPayloadBytes);
      } catch (err) {
        if (StowageError.is(err)) throw new StowageError(err.code, `messages[${i}]: ${err.message}`, { details: err.details });
        throw err;
      }
    });
    if (prepared.length === 0) return [];
    const publishMany = this.#driver.publishMany?.bind(this.#driver);
    return this.#runtime.run(
      'publishMany',
      options,
      async (signal) => {
        // Every message carries the trace context of the publishMany span (active inside the call).
        const traced = prepared.map((m) => ({ ...m, headers: withTraceContext(m.headers) }));
        const numbered = await numberKeys(this.#sequencer, topic, traced, signal);
        let results: PublishResult[];
        if (publishMany !== undefined) results = await publishMany(topic, numbered, signal);
        else {
          // In order, one at a time: publish order is the contract, and a driver may not keep it for calls in flight together.
          results = [];
          for (const m of numbered) results.push(await this.#driver.publish(topic, m.payload, m.headers, m.id, signal));
        }
        await giveBackDuplicates(this.#sequencer, topic, numbered, results, signal);
        return results;
      },
      { 'stowage.topic': topic },
    );
  }

  consume(topic: string, group: string, options?: ConsumeOptions): Consumer {
    this.#runtime.assertOpen('consume');
    validateName(topic, 'topic');
    validateName(group, 'group');
    const resolved = validateConsumeOptions(options);
    return this.#openConsumer(topic, group, resolved, this.#keyMarks(topic, group));
  }

  #openConsumer(topic: string, group: string, options: ResolvedConsume, marks?: KeyMarks): CoreConsumer {
    const consumer = new CoreConsumer(this.#settler, () => this.#subscribe(topic, group, options), topic, group, options, marks);
    this.#consumers.add(consumer);
    consumer.ended.then(() => this.#consumers.delete(consumer));
    return consumer;
  }

  process(
    topic: string,
    group: string,
    handler: (delivery: Delivery) => Promise<void>,
    options?: ProcessOptions,
  ): Processor {
    this.#runtime.assertOpen('process');
    validateName(topic, 'topic');
    validateName(group, 'group');
    if (typeof handler !== 'function') throw invalid('handler must be a function');
    const resolved = validateConsumeOptions(options);
    const loop = this.#loopOptions(resolved, options);
    const concurrency = intOption(options?.concurrency, 'concurrency', 1, 1, 10_000);
    const perKeyConcurrency = intOption(options?.perKeyConcurrency, 'perKeyConcurrency', 1, 1, 10_000);
    const rateLimit = validateRateLimit(options?.rateLimit);
    // Where the group may span processes, keys (one at a time) and the rate limit are kept in the config store.
    const config = this.#config;
    const sequencer = this.#sequencer;
    const shared = config !== undefined && sequencer !== undefined;
    // Not raised for keys: a driver may fetch up to the prefetch ahead, and what it holds unfetched by the
    // processor is not touched (a slow handler would let it expire). The README says when to raise it.
    const consumer = this.#openConsumer(topic, group, { ...resolved, prefetch: Math.max(resolved.prefetch, concurrency) });
    const turns =
      shared && perKeyConcurrency === 1
        ? new KeyTurns(config, sequencer, topic, group, {
            ackWaitMs: resolved.ackWaitMs,
            maxBackoffMs: loop.backoffMs === undefined ? BACKOFF_MAX_MS : Math.max(0, ...loop.backoffMs),
            onError: (err) => this.#keysFailed(topic, group, err, 'trying again'),
            pruner: (t) =>
              new KeyPruner(config, topic, group, {
                quietMs: t.gapMs,
                active: (key) => t.active(key),
                groups: async () => (await this.stats(topic)).groups.map((g) => g.group),
                onError: (err) => this.#keysFailed(topic, group, err, 'the key is kept'),
              }),
          })
        : undefined;
    const groupRate = shared && rateLimit !== undefined ? new GroupRate(config, topic, group, rateLimit) : undefined;
    return this.#track(
      new CoreProcessor(consumer, handler, { ...loop, concurrency, perKeyConcurrency, rateLimit: groupRate === undefined ? rateLimit : undefined, turns, groupRate }),
    );
  }

  processBatch(
    topic: string,
    group: string,
    handler: (batch: readonly Delivery[]) => Promise<void>,
    options?: ProcessBatchOptions,
  ): Processor {
    this.#runtime.assertOpen('processBatch');
    validateName(topic, 'topic');
    validateName(group, 'group');
    if (typeof handler !== 'function') throw invalid('handler must be a function');
    const resolved = validateConsumeOptions(options);
    const loop = this.#loopOptions(resolved, options);
    const maxMessages = intOption(options?.maxMessages, 'maxMessages', DEFAULT_BATCH_MESSAGES, 1, 10_000);
    const maxWaitMs = options?.maxWaitMs === undefined ? DEFAULT_BATCH_WAIT_MS : validateNonNegativeInt(options.maxWaitMs, 'maxWaitMs', MAX_TIMER_MS);
    // The driver must hand over a whole batch at once.
    const consumer = this.#openConsumer(topic, group, { ...resolved, prefetch: Math.max(resolved.prefetch, maxMessages) }, this.#keyMarks(topic, group));
    return this.#track(new BatchProcessor(consumer, handler, { ...loop, maxMessages, maxWaitMs }));
  }

  /**
   * Where the group may span processes: what keeps its keys' turns as `consume` and `processBatch` settle
   * keyed messages (see {@link KeyMarks}). Undefined otherwise.
   */
  #keyMarks(topic: string, group: string): KeyMarks | undefined {
    const config = this.#config;
    if (config === undefined || this.#sequencer === undefined) return undefined;
    return new KeyMarks(config, topic, group, (err) => this.#keysFailed(topic, group, err, 'its next message waits the gap time'));
  }

  #keysFailed(topic: string, group: string, err: unknown, then: string): void {
    const { message, code } = describeError(err);
    this.logger.warn(`queue: ordering keys of group ${quote(group)} of ${quote(topic)}: ${code === undefined ? message : `${code}: ${message}`}; ${then}`);
  }

  /** Checks what every handler form takes: backoff and onError. */
  #loopOptions(resolved: ResolvedConsume, options: ProcessOptions | ProcessBatchOptions | undefined): LoopOptions {
    const backoffMs = options?.backoffMs;
    if (backoffMs !== undefined) {
      if (!Array.isArray(backoffMs)) throw invalid('backoffMs must be an array of delays in milliseconds');
      backoffMs.forEach((ms, i) => validateNonNegativeInt(ms, `backoffMs[${i}]`, MAX_TIMER_MS));
    }
    const onError = options?.onError;
    if (onError !== undefined && typeof onError !== 'function') throw invalid('onError must be a function');
    return { backoffMs: backoffMs === undefined ? undefined : [...backoffMs], onError, logger: this.logger, ackWaitMs: resolved.ackWaitMs, drainMs: this.#drainMs };
  }

  #track(processor: Processor): Processor {
    this.#processors.add(processor);
    processor.done.then(
      () => this.#processors.delete(processor),
      () => this.#processors.delete(processor),
    );
    return processor;
  }

  async schedule(name: string, spec: ScheduleSpec, options?: CallOptions): Promise<void> {
    this.#runtime.assertOpen('schedule');
    const scheduler = this.#schedulerOf('schedule');
    const { stored } = await validateSchedule(name, spec);
    if (Buffer.from(stored.payload, 'base64').byteLength > this.maxPayloadBytes) {
      throw new StowageError('RESOURCE_EXHAUSTED', `schedule ${quote(name)}: payload is larger than ${this.maxPayloadBytes} bytes`);
    }
    await scheduler.define(name, stored, options);
  }

  async schedules(options?: CallOptions): Promise<ScheduleInfo[]> {
    this.#runtime.assertOpen('schedules');
    return this.#schedulerOf('schedules').list(options);
  }

  async unschedule(name: string, options?: CallOptions): Promise<boolean> {
    this.#runtime.assertOpen('unschedule');
    validateName(name, 'schedule name');
    return this.#schedulerOf('unschedule').remove(name, options);
  }

  #schedulerOf(operation: string): Scheduler {
    const config = this.#config;
    if (config === undefined) {
      throw new StowageError('UNSUPPORTED', `queue (${this.backend}): ${operation} needs a config store to keep schedules in (createQueue(driver, { config }); createStowage passes its own)`);
    }
    this.#scheduler ??= new Scheduler(
      config,
      (topic, payload, headers, id) => this.#runtime.run('schedule.publish', undefined, (signal) => this.#driver.publish(topic, payload, headers, id, signal)),
      (err) => {
        const { message, code } = describeError(err);
        this.logger.warn(`queue: a schedule tick failed: ${code === undefined ? message : `${code}: ${message}`}`);
      },
    );
    return this.#scheduler;
  }

  async stats(topic: string, options?: CallOptions): Promise<TopicStats> {
    this.#runtime.assertOpen('stats');
    validateName(topic, 'topic');
    return this.#runtime.run(
      'stats',
      options,
      async (signal) => {
        const [main, dlq] = await Promise.all([
          this.#driver.stats(topic, signal),
          this.#driver.stats(topic + DLQ_SUFFIX, signal),
        ]);
        return { ...main, deadLetters: dlq.messages };
      },
      { 'stowage.topic': topic },
    );
  }

  async deadLetters(topic: string, options?: CallOptions & { limit?: number }): Promise<DeadLetter[]> {
    this.#runtime.assertOpen('deadLetters');
    validateName(topic, 'topic');
    const limit = intOption(options?.limit, 'limit', DEFAULT_DEAD_LETTER_LIMIT, 1, 100_000);
    return this.#runtime.run(
      'deadLetters',
      options,
      async (signal) => (await readFrom(this.#driver, topic + DLQ_SUFFIX, 1, limit, signal)).map((m) => toDeadLetter(topic, m)),
      { 'stowage.topic': topic },
    );
  }

  async replay(topic: string, options?: CallOptions & { seqs?: readonly number[] }): Promise<number> {
    this.#runtime.assertOpen('replay');
    validateName(topic, 'topic');
    const seqs = options?.seqs;
    if (seqs !== undefined) {
      if (!Array.isArray(seqs)) throw invalid('seqs must be an array of dead-letter sequence numbers');
      seqs.forEach((s, i) => validatePositiveInt(s, `seqs[${i}]`));
    }
    const dlq = topic + DLQ_SUFFIX;
    return this.#runtime.run(
      'replay',
      options,
      async (signal) => {
        const replayOne = async (letter: StoredMessage): Promise<void> => {
          const group = letter.headers[HEADER_DLQ_GROUP] ?? '';
          const originalId = letter.headers[HEADER_ORIGINAL_ID];
          const headers: Record<string, string> = { ...userHeaders(letter.headers), ...traceHeaders(letter.headers), [HEADER_REPLAY_GROUP]: group };
          if (originalId !== undefined) headers[HEADER_ORIGINAL_ID] = originalId;
          // The id makes a replay repeated after a failure between publish and remove a duplicate.
          await this.#driver.publish(topic, letter.payload, headers, `replay:${topic}:${letter.seq}`, signal);
          await this.#driver.remove(dlq, letter.seq, signal);
        };
        let replayed = 0;
        if (seqs === undefined) {
          // Page by page, so a large dead-letter topic is never held in memory at once.
          let from = 1;
          for (;;) {
            const page = await this.#driver.read(dlq, from, READ_PAGE, signal);
            if (page.length === 0) break;
            for (const letter of page) await replayOne(letter);
            replayed += page.length;
            from = (page.at(-1)?.seq ?? from) + 1;
          }
        } else {
          for (const seq of [...new Set(seqs)].sort((a, b) => a - b)) {
            const [letter] = await this.#driver.read(dlq, seq, 1, signal);
            if (letter === undefined || letter.seq !== seq) continue;
            await replayOne(letter);
            replayed++;
          }
        }
        return replayed;
      },
      { 'stowage.topic': topic },
    );
  }

  async purge(topic: string, options?: CallOptions): Promise<void> {
    this.#runtime.assertOpen('purge');
    validateName(topic, 'topic');
    const purge = this.#driver.purge?.bind(this.#driver);
    if (!this.#driver.capabilities.has('purge') || purge === undefined) {
      throw unsupported('purge', `queue (${this.backend})`, 'purge');
    }
    await this.#runtime.run('purge', options, (signal) => purge(topic, signal), { 'stowage.topic': topic });
  }

  async topics(options?: CallOptions): Promise<string[]> {
    this.#runtime.assertOpen('topics');
    return this.#runtime.run('topics', options, async (signal) => {
      const names = new Set<string>();
      for (const name of await this.#driver.topics(signal)) {
        names.add(name.endsWith(DLQ_SUFFIX) ? name.slice(0, -DLQ_SUFFIX.length) : name);
      }
      return [...names].sort();
    });
  }

  async browse(topic: string, options?: BrowseOptions): Promise<StoredMessage[]> {
    this.#runtime.assertOpen('browse');
    validateName(topic, 'topic');
    const fromSeq = intOption(options?.fromSeq, 'fromSeq', 1, 1, Number.MAX_SAFE_INTEGER);
    const limit = intOption(options?.limit, 'limit', DEFAULT_BROWSE_LIMIT, 1, 100_000);
    return this.#runtime.run('browse', options, (signal) => readFrom(this.#driver, topic, fromSeq, limit, signal), { 'stowage.topic': topic });
  }

  async seekGroup(topic: string, group: string, seq: number, options?: CallOptions): Promise<void> {
    this.#runtime.assertOpen('seekGroup');
    validateName(topic, 'topic');
    validateName(group, 'group');
    validatePositiveInt(seq, 'seq');
    await this.#runtime.run('seekGroup', options, (signal) => this.#driver.seekGroup(topic, group, seq, signal), {
      'stowage.topic': topic,
    });
  }

  #subscribe(topic: string, group: string, options: ResolvedConsume): DriverSubscription {
    return this.#driver.subscribe(topic, group, {
      ackWaitMs: options.ackWaitMs,
      maxDeliver: options.maxDeliver,
      prefetch: options.prefetch,
    });
  }

  close(): Promise<void> {
    // Consumers stop taking messages at once (the iterators end); processors then finish their running
    // handlers, which settle through subscriptions still open, and only then are the subscriptions closed
    // (the driver stays open until this returns), all bounded by the drain time.
    if (!this.#runtime.closed) for (const consumer of this.#consumers) consumer.halt();
    return this.#runtime.close(async () => {
      await this.#scheduler?.close();
      const drained = Promise.allSettled([...this.#processors].map((p) => p.stop()))
        .then(() => Promise.allSettled([...this.#consumers].map((c) => c.close())))
        .then(() => this.#settler.drained());
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([drained, new Promise((resolve) => (timer = setTimeout(resolve, this.#drainMs)))]);
      clearTimeout(timer);
      // Past the drain time, what is still open closes now (each consumer keeps the process alive until then).
      for (const consumer of this.#consumers) void consumer.close();
      this.#settler.driverClosed();
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export type { QueueTransfer } from './transfer.js';

/**
 * The copy paths of a queue made by {@link createQueue} (for `stowage migrate`; applications have no use
 * for them). UNSUPPORTED for any other {@link Queue} implementation.
 */
export function queueTransfer(queue: Queue): QueueTransfer {
  if (!(queue instanceof CoreQueue)) throw new StowageError('UNSUPPORTED', `queue (${queue.backend}) was not made by createQueue: it cannot be copied`);
  return transferOf(queue);
}

function toDeadLetter(topic: string, m: StoredMessage): DeadLetter {
  const h = m.headers;
  return Object.freeze({
    seq: m.seq,
    topic,
    group: h[HEADER_DLQ_GROUP] ?? '',
    originalSeq: Number(h[HEADER_ORIGINAL_SEQ] ?? 0),
    reason: h[HEADER_DLQ_REASON] ?? '',
    error: h[HEADER_DLQ_ERROR] === undefined ? undefined : Object.freeze({ message: h[HEADER_DLQ_ERROR], code: h[HEADER_DLQ_ERROR_CODE] }),
    deliveryCount: Number(h[HEADER_DELIVERY_COUNT] ?? 0),
    headers: userHeaders(h),
    payload: m.payload,
    deadAt: m.publishedAt,
  });
}
