/**
 * The handler form of the queue port: the loop that runs handlers over a consumer and settles each delivery.
 *
 * @module
 */
import type { Delivery, Processor, RateLimit } from '../../ports/queue.js';
import { quote } from '../../driver/validate.js';
import type { Logger } from '../registry.js';
import { describeError, keySeqOf } from './headers.js';
import { runHandler } from './trace-context.js';
import type { CoreConsumer } from './consumer.js';
import type { CoreDelivery } from './delivery.js';
import type { KeyTurns, Turn } from './key-turns.js';
import type { GroupRate } from './group-rate.js';

/** The handler form's default backoff: the first redelivery after about 1 s, doubling per attempt up to 60 s. */
const BACKOFF_FIRST_MS = 1_000;
/** The longest delay of the default backoff. */
export const BACKOFF_MAX_MS = 60_000;

/**
 * The delay before a failed message is delivered again when `backoffMs` is not given: exponential from
 * {@link BACKOFF_FIRST_MS}, doubling per attempt up to {@link BACKOFF_MAX_MS}, with "equal jitter" (half of
 * the delay fixed, half random) so that messages that failed together — a backend that went away — do not
 * all come back at the same moment.
 */
export function defaultBackoffMs(deliveryCount: number): number {
  const ceiling = Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** Math.min(deliveryCount - 1, 30));
  return Math.round(ceiling / 2 + Math.random() * (ceiling / 2));
}

/** What a processor is told by {@link Queue.process} or {@link Queue.processBatch}, checked. */
export interface LoopOptions {
  /** Delays before a failed message comes again, by attempt (undefined: {@link defaultBackoffMs}). */
  readonly backoffMs: readonly number[] | undefined;
  /** Where failures go (undefined: the logger). */
  readonly onError: ((err: unknown, delivery: Delivery) => void) | undefined;
  /** The logger of failures when there is no `onError`. */
  readonly logger: Logger;
  /** The consumer's ackWait: deliveries held back are touched twice within it. */
  readonly ackWaitMs: number;
  /** How long `stop()` keeps the subscription open for running handlers to settle. */
  readonly drainMs: number;
}

/** Options of {@link CoreProcessor} beyond {@link LoopOptions}. */
export interface ProcessorOptions extends LoopOptions {
  /** How many handlers run at once. */
  readonly concurrency: number;
  /** How many handlers of one ordering key run at once. */
  readonly perKeyConcurrency: number;
  /** How many handler starts a window allows, if limited in this processor. */
  readonly rateLimit: RateLimit | undefined;
  /** The turns of ordering keys across processes (see key-turns.ts); undefined: keys are ordered in this processor. */
  readonly turns: KeyTurns | undefined;
  /** The group's rate limit across processes (see group-rate.ts), instead of `rateLimit`. */
  readonly groupRate: GroupRate | undefined;
}

const ignore = (): undefined => undefined;
/** How long a processor waits before asking again for its group's rate limit after the config store failed. */
const RATE_RETRY_MS = 500;

/** What processors share: settling a failed message with the backoff, reporting failures, stopping. */
abstract class Loop implements Processor {
  protected readonly consumer: CoreConsumer;
  protected readonly options: LoopOptions;
  abstract readonly done: Promise<void>;

  constructor(consumer: CoreConsumer, options: LoopOptions) {
    this.consumer = consumer;
    this.options = options;
    consumer.stopWith(() => this.stop());
  }

  /** Starts the loop; subclasses call it last in their constructor and keep the promise as `done`. */
  protected start(loop: () => Promise<void>): Promise<void> {
    const done = loop();
    // `done` is for whoever wants it; nobody awaiting it must not make an unhandled rejection.
    done.catch(ignore);
    return done;
  }

  #delayMs(deliveryCount: number): number {
    const steps = this.options.backoffMs;
    if (steps === undefined) return defaultBackoffMs(deliveryCount);
    return steps.length === 0 ? 0 : (steps[Math.min(deliveryCount, steps.length) - 1] as number);
  }

  /**
   * A handler failed on `delivery`: nak it with the backoff (a no-op when the handler settled it) and report
   * — unless the handler had settled it and `onlyUnsettled` (a batch: its error is about the other messages).
   */
  protected async failed(delivery: CoreDelivery, err: unknown, { onlyUnsettled = false } = {}): Promise<void> {
    const wasSettled = delivery.settled;
    const delayMs = this.#delayMs(delivery.deliveryCount);
    try {
      await delivery.nak({ delayMs, error: err });
    } catch (nakErr) {
      this.report(nakErr, delivery, 'nak');
    }
    if (!(wasSettled && onlyUnsettled)) this.report(err, delivery, delivery.lastAttempt ? 'dead-lettered' : delayMs);
  }

  /** A handler succeeded: ack (a no-op when the handler settled the delivery itself). */
  protected async succeeded(delivery: CoreDelivery): Promise<void> {
    try {
      await delivery.ack();
    } catch (err) {
      this.report(err, delivery, 'ack');
    }
  }

  /**
   * Hands a failure to `onError`, or logs it when there is none: a failing handler must not go unnoticed.
   * `then` is what followed a handler failure (the redelivery delay, or dead-lettering), or the
   * settlement that failed.
   */
  protected report(err: unknown, delivery: Delivery, then: number | 'dead-lettered' | 'ack' | 'nak'): void {
    const { onError } = this.options;
    if (onError === undefined) {
      const { message, code } = describeError(err);
      const what = `message ${delivery.seq} of topic ${quote(delivery.topic)}, group ${quote(delivery.group)}`;
      const error = code === undefined ? message : `${code}: ${message}`;
      const text =
        then === 'ack' || then === 'nak'
          ? `queue: the ${then} of ${what} failed: ${error}`
          : `queue: the handler failed on ${what} (attempt ${delivery.deliveryCount}): ${error}; ` +
            (then === 'dead-lettered' ? 'moved to the dead-letter topic' : `delivered again in ${then} ms`);
      this.options.logger.warn(text);
      return;
    }
    try {
      onError(err, delivery);
    } catch {
      // An onError that throws must not stop the loop.
    }
  }

  /**
   * Keeps a delivery that waits for its turn (its key, the rate limit) ours: touched twice per ackWait.
   * Returns what ends the hold.
   */
  protected hold(delivery: CoreDelivery): () => void {
    const every = Math.max(1, Math.floor(this.options.ackWaitMs / 2));
    const timer = setInterval(() => void delivery.touch().catch(ignore), every);
    timer.unref();
    return () => clearInterval(timer);
  }

  /** Called once the consumer is halted by `stop()`: a loop waiting for a free slot looks again. */
  protected stopping(): void {}

  /**
   * Resolves once no handler runs any more after the consumer stopped: what `stop()` waits for before it
   * closes the subscription. By default the end of the loop.
   */
  protected handlersSettled(): Promise<void> {
    return this.done;
  }

  /**
   * Takes nothing more, lets the running handlers settle through the still-open subscription (for at most
   * `drainMs`: a backend may redeliver, or lose the commit of, what is settled after its subscription
   * closed), then closes it, and resolves once the loop has ended.
   */
  async stop(): Promise<void> {
    this.consumer.halt();
    this.stopping();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.handlersSettled().catch(ignore), new Promise((resolve) => (timer = setTimeout(resolve, this.options.drainMs)))]);
    clearTimeout(timer);
    await this.consumer.close();
    await this.done.catch(ignore);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}

/** The deliveries of one ordering key in a processor: how many run, and the ones waiting, in order. */
interface KeyLane {
  running: number;
  readonly waiting: CoreDelivery[];
}

/**
 * The handler form ({@link Queue.process}) over a core consumer: runs up to `concurrency` handlers, at
 * most `perKeyConcurrency` of one ordering key (the others of that key wait, in the order received), at
 * most `rateLimit.max` starts per window; acks after a handler resolves, naks with the backoff when it
 * throws, and reports every failure.
 */
export class CoreProcessor extends Loop {
  readonly #handler: (delivery: Delivery) => Promise<void>;
  readonly #opts: ProcessorOptions;
  readonly #running = new Set<Promise<void>>();
  /** Deliveries whose key lets them run, waiting for a free handler slot or the rate limit, oldest first. */
  readonly #ready: CoreDelivery[] = [];
  readonly #lanes = new Map<string, KeyLane>();
  readonly #holds = new Map<CoreDelivery, () => void>();
  /** Start times within the rate window, oldest first. */
  readonly #starts: number[] = [];
  #rateTimer: NodeJS.Timeout | undefined;
  /** Starts claimed from the group's rate limit and not made yet, until when they may be, and whether a claim is in flight. */
  #tokens = 0;
  #tokensUntil = 0;
  #claiming = false;
  /** Wakes the loop when a slot frees. */
  #wake: (() => void) | undefined;
  /** Resolved by the loop once its running handlers have settled (see {@link Loop.handlersSettled}). */
  #settled!: () => void;
  readonly #handlersSettled = new Promise<void>((resolve) => (this.#settled = resolve));
  readonly done: Promise<void>;

  constructor(consumer: CoreConsumer, handler: (delivery: Delivery) => Promise<void>, options: ProcessorOptions) {
    super(consumer, options);
    this.#handler = handler;
    this.#opts = options;
    this.done = this.start(() => this.#loop());
  }

  async #loop(): Promise<void> {
    try {
      for await (const delivery of this.consumer) {
        this.#admit(delivery);
        this.#pump();
        while (this.#running.size + this.#ready.length >= this.#opts.concurrency && !this.consumer.stopped) {
          await new Promise<void>((resolve) => (this.#wake = resolve));
        }
      }
    } finally {
      clearTimeout(this.#rateTimer);
      // Running handlers first: a waiting message given back before the one of its key ahead of it ends
      // could run elsewhere at the same time. Stopped, nothing more starts (see #startReady).
      await Promise.allSettled([...this.#running]);
      this.#settled();
      // What waits goes back once the subscription is closed: while it is open (stop() keeps it so for the
      // running handlers) the backend could hand it straight back to it.
      await this.consumer.ended;
      // What waits was never started; it goes back to the group now rather than after ackWait.
      const waiting = [...this.#ready, ...[...this.#lanes.values()].flatMap((lane) => lane.waiting), ...(this.#opts.turns?.drain() ?? [])];
      this.#ready.length = 0;
      this.#lanes.clear();
      for (const d of waiting) {
        this.#unhold(d);
        await d.release().catch(ignore);
      }
      // Last: the lease goes, and with it any key lock still held (a delivery given back above).
      await this.#opts.turns?.close();
    }
  }

  /** Takes a new delivery: ready to run, unless its key already runs as many as allowed. */
  #admit(delivery: CoreDelivery): void {
    const key = delivery.key;
    const turns = this.#opts.turns;
    const keySeq = turns === undefined || key === undefined ? undefined : keySeqOf(delivery.storedHeaders);
    if (turns !== undefined && key !== undefined && keySeq !== undefined) {
      // The key's turn is decided with the other processes of the group; held until then.
      this.#holds.set(delivery, this.hold(delivery));
      turns.enter(key, keySeq, delivery, (turn) => this.#turn(delivery, turn));
      return;
    }
    if (key !== undefined) {
      let lane = this.#lanes.get(key);
      if (lane === undefined) this.#lanes.set(key, (lane = { running: 0, waiting: [] }));
      if (lane.running >= this.#opts.perKeyConcurrency) {
        lane.waiting.push(delivery);
        this.#holds.set(delivery, this.hold(delivery));
        return;
      }
      lane.running++;
    }
    this.#makeReady(delivery);
  }

  #makeReady(delivery: CoreDelivery): void {
    this.#ready.push(delivery);
  }

  /** A delivery's key turn came: it runs, or — handled already, its ack lost — it is acked. */
  #turn(delivery: CoreDelivery, turn: Turn): void {
    if (turn === 'done') {
      this.#unhold(delivery);
      void this.succeeded(delivery).finally(() => this.#wakeLoop());
      return;
    }
    this.#makeReady(delivery);
    this.#pump();
  }

  protected override stopping(): void {
    this.#wakeLoop();
  }

  protected override handlersSettled(): Promise<void> {
    return this.#handlersSettled;
  }

  #wakeLoop(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  /** How long until the rate limit allows another start (0: now). */
  #rateLimited(): number {
    const limit = this.#opts.rateLimit;
    if (limit === undefined || this.#starts.length < limit.max) return 0;
    return Math.max(0, (this.#starts[0] as number) + limit.perMs - performance.now());
  }

  /** Starts ready deliveries while handler slots and the rate limit allow; holds the ones left waiting. */
  #pump(): void {
    this.#startReady();
    // Only what waits is held: the common path (a free slot, no limit) sets no timer per message.
    for (const d of this.#ready) if (!this.#holds.has(d)) this.#holds.set(d, this.hold(d));
  }

  #startReady(): void {
    // A stopped processor starts nothing more: what is ready goes back to the group when the loop ends.
    while (this.#ready.length > 0 && this.#running.size < this.#opts.concurrency && !this.consumer.stopped) {
      const waitMs = this.#rateLimited();
      if (waitMs > 0) {
        if (this.#rateTimer === undefined) {
          this.#rateTimer = setTimeout(() => {
            this.#rateTimer = undefined;
            this.#pump();
          }, Math.ceil(waitMs));
        }
        return;
      }
      if (!this.#takeStart()) return;
      const limit = this.#opts.rateLimit;
      if (limit !== undefined) {
        this.#starts.push(performance.now());
        if (this.#starts.length > limit.max) this.#starts.shift();
      }
      const delivery = this.#ready.shift() as CoreDelivery;
      this.#unhold(delivery);
      const task = this.#handle(delivery);
      this.#running.add(task);
      void task.finally(() => {
        this.#running.delete(task);
        this.#finished(delivery);
      });
    }
  }

  /**
   * With a group rate limit: whether a claimed start is left to make. When none is, claims more (as many as
   * there are messages ready and handler slots free) and pumps again once the claim is answered.
   */
  #takeStart(): boolean {
    const rate = this.#opts.groupRate;
    if (rate === undefined) return true;
    if (this.#tokens > 0 && Date.now() <= this.#tokensUntil) {
      this.#tokens--;
      return true;
    }
    // Too late for them: the log counts them at their time, and a start after it could overfill a window.
    this.#tokens = 0;
    if (this.#claiming || this.#rateTimer !== undefined) return false;
    this.#claiming = true;
    const again = (ms: number): void => {
      this.#rateTimer = setTimeout(() => {
        this.#rateTimer = undefined;
        this.#pump();
      }, ms);
    };
    rate.claim(Math.min(this.#ready.length, this.#opts.concurrency - this.#running.size)).then(
      ({ granted, until, retryMs }) => {
        this.#claiming = false;
        this.#tokens = granted;
        this.#tokensUntil = until;
        if (granted > 0) this.#pump();
        else again(retryMs);
      },
      (err: unknown) => {
        this.#claiming = false;
        const { message, code } = describeError(err);
        this.options.logger.warn(`queue: the rate limit of group ${quote(this.consumer.group)} could not be read: ${code === undefined ? message : `${code}: ${message}`}`);
        again(RATE_RETRY_MS);
      },
    );
    return false;
  }

  /** A handler ended: the next of its key may run, and the loop may take more. */
  #finished(delivery: CoreDelivery): void {
    const key = delivery.key;
    if (key !== undefined) {
      const lane = this.#lanes.get(key);
      if (lane !== undefined) {
        const next = lane.waiting.shift();
        if (next === undefined) {
          lane.running--;
          if (lane.running === 0) this.#lanes.delete(key);
        } else {
          // Still held: it stays so until it starts.
          this.#makeReady(next);
        }
      }
    }
    this.#pump();
    this.#wakeLoop();
  }

  #unhold(delivery: CoreDelivery): void {
    this.#holds.get(delivery)?.();
    this.#holds.delete(delivery);
  }

  async #handle(delivery: CoreDelivery): Promise<void> {
    try {
      // In a span that continues the publisher's trace (see trace-context.ts).
      await runHandler(delivery, () => this.#handler(delivery));
    } catch (err) {
      await this.failed(delivery, err);
      await this.#opts.turns?.finish(delivery);
      return;
    }
    // The key moves on before the ack: a crash in between brings the message back, seen as handled.
    await this.#opts.turns?.finish(delivery);
    await this.succeeded(delivery);
  }
}

const TIMEOUT = Symbol('timeout');

/** Options of {@link BatchProcessor} beyond {@link LoopOptions}. */
export interface BatchOptions extends LoopOptions {
  /** The most messages in a batch. */
  readonly maxMessages: number;
  /** How long a batch waits for more messages after its first one. */
  readonly maxWaitMs: number;
}

/**
 * The batch handler form ({@link Queue.processBatch}): collects up to `maxMessages` deliveries (waiting at
 * most `maxWaitMs` after the first), runs the handler on them, then acks the ones it left unsettled — or,
 * when it throws, naks them with the backoff.
 */
export class BatchProcessor extends Loop {
  readonly #handler: (batch: readonly Delivery[]) => Promise<void>;
  readonly #opts: BatchOptions;
  readonly done: Promise<void>;

  constructor(consumer: CoreConsumer, handler: (batch: readonly Delivery[]) => Promise<void>, options: BatchOptions) {
    super(consumer, options);
    this.#handler = handler;
    this.#opts = options;
    this.done = this.start(() => this.#loop());
  }

  async #loop(): Promise<void> {
    const it = this.consumer[Symbol.asyncIterator]();
    // A next() that the last batch stopped waiting for: the next batch starts with it.
    let pending: Promise<IteratorResult<CoreDelivery, void>> | undefined;
    let ended = false;
    while (!ended) {
      const first = await (pending ?? it.next());
      pending = undefined;
      if (first.done === true) break;
      const batch: CoreDelivery[] = [first.value];
      // Held while the batch fills, so that a maxWaitMs near ackWait does not let them go to another consumer.
      const holds = [this.hold(first.value)];
      const until = performance.now() + this.#opts.maxWaitMs;
      while (batch.length < this.#opts.maxMessages) {
        const waitMs = until - performance.now();
        if (waitMs <= 0) break;
        pending = it.next();
        let timer: NodeJS.Timeout | undefined;
        const r = await Promise.race([pending, new Promise<typeof TIMEOUT>((resolve) => (timer = setTimeout(resolve, waitMs, TIMEOUT)))]);
        clearTimeout(timer);
        if (r === TIMEOUT) break;
        pending = undefined;
        if (r.done === true) {
          ended = true;
          break;
        }
        batch.push(r.value);
        holds.push(this.hold(r.value));
      }
      for (const unhold of holds) unhold();
      await this.#handle(batch);
    }
  }

  async #handle(batch: CoreDelivery[]): Promise<void> {
    try {
      await this.#handler(Object.freeze([...batch]));
    } catch (err) {
      await Promise.all(batch.map((d) => this.failed(d, err, { onlyUnsettled: true })));
      return;
    }
    // The keys' marks move together (one write per key), before the acks; what the handler settled itself moved its own.
    await this.consumer.marks?.pass(batch.filter((d) => !d.settled));
    await Promise.all(batch.map((d) => this.succeeded(d)));
  }
}
