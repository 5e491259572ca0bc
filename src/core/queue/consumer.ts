/**
 * A consumer of one group and its iteration: the driver's subscription wrapped with the port's closing
 * rules, delayed messages held until their time, and deliveries past `maxDeliver` dead-lettered.
 *
 * @module
 */
import type { Consumer, DriverDelivery, DriverSubscription } from '../../ports/queue.js';
import { quote } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';
import { holdEventLoop } from '../keep-alive.js';
import { HEADER_REPLAY_GROUP, notBeforeOf } from './headers.js';
import { MAX_TIMER_MS, type ResolvedConsume } from './options.js';
import type { Settler } from './settlement.js';
import { CoreDelivery } from './delivery.js';
import type { KeyMarks } from './key-turns.js';

const DEAD_LETTER_RETRY_MS = [100, 400, 1_600, 3_200];
const ignore = (): undefined => undefined;
const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/** A consumer of one group: the driver's subscription wrapped with the port's closing rules. */
export class CoreConsumer implements Consumer {
  readonly settler: Settler;
  readonly topic: string;
  readonly group: string;
  readonly options: ResolvedConsume;
  readonly sub: DriverSubscription | undefined;
  /** Moves the group's key marks as deliveries are settled (see {@link KeyMarks}); undefined when nothing should. */
  readonly marks: KeyMarks | undefined;
  #stopped = false;
  #iterating = false;
  #closing: Promise<void> | undefined;
  /** Ends the pending `next()` of the iteration, if one is waiting. */
  #pendingStop: (() => void) | undefined;
  #resolveEnded!: () => void;
  /** What the caller's signal does: close, unless a processor drives the consumer (see {@link CoreConsumer.stopWith}). */
  #onSignal: () => void = () => void this.close();
  /** Lets the process exit again once the consumer is closed (see {@link holdEventLoop}). */
  #release: () => void = ignore;
  /** Resolves once the consumer is closed (by `close()`, its signal or the store). */
  readonly ended: Promise<void>;

  /**
   * `subscribe` opens the driver's subscription (not called when the caller's signal is already aborted);
   * `marks` is given to every delivery.
   */
  constructor(settler: Settler, subscribe: () => DriverSubscription, topic: string, group: string, options: ResolvedConsume, marks?: KeyMarks) {
    this.settler = settler;
    this.marks = marks;
    this.topic = topic;
    this.group = group;
    this.options = options;
    this.ended = new Promise((resolve) => (this.#resolveEnded = resolve));
    const onStop = (): void => this.#onSignal();
    if (options.signal?.aborted) {
      this.sub = undefined;
      void this.close();
      return;
    }
    // The queue closes its consumers itself (it keeps a set of them), so only the caller's signal is heard.
    this.sub = subscribe();
    // A running consumer is work the process waits for, even when the driver's own timers are unref'd.
    this.#release = holdEventLoop();
    options.signal?.addEventListener('abort', onStop, { once: true });
    void this.ended.then(() => options.signal?.removeEventListener('abort', onStop));
  }

  /** Whether the consumer was told to stop (halted or closed): it hands out nothing more. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /**
   * Makes the caller's signal call `stop` (a processor's, which halts, lets its handlers settle, then
   * closes) rather than close the subscription under running handlers.
   */
  stopWith(stop: () => Promise<void>): void {
    this.#onSignal = () => void stop();
  }

  /** Whether `close()` was called (a halted consumer keeps its subscription open until then). */
  get closing(): boolean {
    return this.#closing !== undefined;
  }

  /**
   * Stops handing out deliveries (a waiting `next()` returns done at once) but keeps the subscription open,
   * so that deliveries already handed out still settle through it — on Kafka an ack commits only while the
   * group member is in the group. A processor stopping does this, then `close()` once its handlers settled.
   */
  halt(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#pendingStop?.();
  }

  close(): Promise<void> {
    if (this.#closing === undefined) {
      this.#stopped = true;
      this.#closing = this.#close();
      this.#pendingStop?.();
    }
    return this.#closing;
  }

  async #close(): Promise<void> {
    try {
      await this.sub?.close();
    } finally {
      this.#release();
      this.#resolveEnded();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Claims the consumer for one iteration (an error if one already runs); `onStop` is called when the
   * consumer stops while a `next()` waits.
   */
  claim(onStop: () => void): void {
    if (this.#iterating) throw invalid(`consumer of ${quote(this.topic)}/${quote(this.group)} is already being iterated`);
    this.#iterating = true;
    this.#pendingStop = onStop;
  }

  [Symbol.asyncIterator](): AsyncIterator<CoreDelivery, void, undefined> {
    return new ConsumerIterator(this);
  }
}

/**
 * The iteration of a {@link CoreConsumer}. Written by hand rather than as an async generator over the
 * driver's iterator: that nesting cost two promises, an iterator result and generator resumptions per
 * message on the consume path. `close()` ends a waiting `next()` through the consumer (no listener per
 * delivery, and no promise that lives as long as the consumer, which would keep every delivery reachable).
 */
class ConsumerIterator implements AsyncIterator<CoreDelivery, void, undefined> {
  readonly #consumer: CoreConsumer;
  #it: AsyncIterator<DriverDelivery> | undefined;
  #started = false;
  #done = false;
  /** The caller's waiting `next()`. */
  #resolve: ((result: IteratorResult<CoreDelivery, void>) => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;
  /** The last promise `next()` handed out, and how many calls wait for it (as an async generator queues them). */
  #tail: Promise<unknown> = Promise.resolve();
  #queued = 0;

  constructor(consumer: CoreConsumer) {
    this.#consumer = consumer;
  }

  next(): Promise<IteratorResult<CoreDelivery, void>> {
    if (this.#resolve === undefined && this.#queued === 0) {
      const result = this.#next();
      this.#tail = result;
      return result;
    }
    // Another call is waiting: this one runs after it.
    this.#queued++;
    const after = this.#tail.then(ignore, ignore).then(() => {
      this.#queued--;
      return this.#next();
    });
    this.#tail = after;
    return after;
  }

  #next(): Promise<IteratorResult<CoreDelivery, void>> {
    if (this.#done) return Promise.resolve(DONE);
    if (!this.#started) {
      this.#started = true;
      try {
        this.#consumer.claim(this.#onStop);
      } catch (err) {
        this.#done = true;
        return Promise.reject(err);
      }
      const sub = this.#consumer.sub;
      if (sub === undefined || this.#consumer.stopped) {
        this.#done = true;
        return Promise.resolve(DONE);
      }
      this.#it = sub[Symbol.asyncIterator]();
    }
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      this.#pull();
    });
  }

  async return(): Promise<IteratorResult<CoreDelivery, void>> {
    this.#done = true;
    await this.#consumer.close();
    return DONE;
  }

  #pull(): void {
    if (this.#consumer.stopped) {
      this.#end();
      return;
    }
    let next: Promise<IteratorResult<DriverDelivery>>;
    try {
      next = (this.#it as AsyncIterator<DriverDelivery>).next();
    } catch (err) {
      this.#onError(err);
      return;
    }
    next.then(this.#onNext, this.#onError);
  }

  /** Ends the iteration: at once when the consumer is only halted, else once it is closed. */
  #end(): void {
    this.#done = true;
    const resolve = this.#resolve;
    const reject = this.#reject;
    if (resolve === undefined || reject === undefined) return;
    this.#resolve = undefined;
    this.#reject = undefined;
    const consumer = this.#consumer;
    if (consumer.stopped && !consumer.closing) resolve(DONE);
    else consumer.close().then(() => resolve(DONE), reject);
  }

  readonly #onStop = (): void => {
    this.#end();
  };

  readonly #onNext = (r: IteratorResult<DriverDelivery>): void => {
    if (this.#resolve === undefined) {
      // The iteration ended (halted) while the driver's next() waited: the delivery goes back to the group
      // once the subscription is closed (before, it would come straight back to this one), not after ackWait.
      if (r.done !== true) {
        const d = r.value;
        const settler = this.#consumer.settler;
        void this.#consumer.ended.then(() => settler.settle('nak', () => d.nak(0))).catch(ignore);
      }
      return;
    }
    if (r.done === true) {
      this.#end();
      return;
    }
    const d = r.value;
    const consumer = this.#consumer;
    const settler = consumer.settler;
    const notBefore = notBeforeOf(d.headers);
    let early = 0;
    if (notBefore !== 0) {
      const waitMs = notBefore - Date.now();
      if (waitMs > 0) {
        // A delayed message before its time: back to the group until then, and this delivery is not
        // counted as an attempt. A failed nak leaves it pending: it comes back after ackWait and this runs again.
        settler.countEarly(consumer.topic, consumer.group, d.seq);
        void settler.settle('nak', () => d.nak(Math.min(waitMs, MAX_TIMER_MS))).then(this.#pullAgain, this.#pullAgain);
        return;
      }
      early = settler.earlyDeliveries(consumer.topic, consumer.group, d.seq);
    }
    const attempt = Math.max(1, d.deliveryCount - early);
    if (attempt > consumer.options.maxDeliver) {
      void this.#deadLetterPastMax(d).then(this.#pullAgain);
      return;
    }
    const replayGroup = d.headers[HEADER_REPLAY_GROUP];
    if (replayGroup !== undefined && replayGroup !== consumer.group) {
      // A replay is meant for the group that failed the message; every other group already handled it.
      // A failure is not the application's: the message stays pending and this is tried again after ackWait.
      void settler.ack(d).promise.then(this.#pullAgain, this.#pullAgain);
      return;
    }
    const resolve = this.#resolve;
    this.#resolve = undefined;
    this.#reject = undefined;
    resolve({ value: new CoreDelivery(settler, consumer.topic, consumer.group, consumer.options.maxDeliver, d, attempt, notBefore !== 0, consumer.marks), done: false });
  };

  readonly #pullAgain = (): void => {
    if (this.#resolve !== undefined) this.#pull();
  };

  readonly #onError = (err: unknown): void => {
    const reject = this.#reject;
    if (reject === undefined) return;
    const resolve = this.#resolve as (result: IteratorResult<CoreDelivery, void>) => void;
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#done = true;
    const consumer = this.#consumer;
    const stopped = consumer.stopped;
    const mapped = stopped ? undefined : consumer.settler.mapError(err, 'consume');
    consumer.close().then(
      () => (mapped === undefined ? resolve(DONE) : reject(mapped)),
      (closeErr: unknown) => reject(closeErr),
    );
  };

  /**
   * Dead-letters a delivery past maxDeliver, retrying a few times: a backend that stops redelivering after
   * maxDeliver + 1 (JetStream's max_deliver) would otherwise leave the message stuck, neither delivered nor
   * dead-lettered. Between attempts the delivery is touched so that it stays ours.
   */
  async #deadLetterPastMax(d: DriverDelivery): Promise<void> {
    const consumer = this.#consumer;
    for (const pauseMs of DEAD_LETTER_RETRY_MS) {
      try {
        await consumer.settler.deadLetter(d, consumer.topic, consumer.group, 'max-deliver');
        return;
      } catch {
        if (consumer.stopped) return;
        await new Promise((resolve) => setTimeout(resolve, pauseMs).unref());
        try {
          await consumer.settler.settle('touch', () => d.touch());
        } catch {
          // Redelivery after ackWait retries it.
        }
      }
    }
    // Still failing: leave it pending; a backend that redelivers will bring it back and this runs again.
  }
}
