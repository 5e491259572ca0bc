/**
 * The handler form of the queue port: the loop that runs handlers over a consumer and settles each delivery.
 *
 * @module
 */
import type { Delivery, Processor } from '../../ports/queue.js';
import { quote } from '../../driver/validate.js';
import type { Logger } from '../registry.js';
import { describeError } from './headers.js';
import type { CoreConsumer, CoreDelivery } from './queue.js';

/** The handler form's default backoff: the first redelivery after about 1 s, doubling per attempt up to 60 s. */
const BACKOFF_FIRST_MS = 1_000;
const BACKOFF_MAX_MS = 60_000;

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

/**
 * The handler form ({@link Queue.process}) over a core consumer: runs up to `concurrency` handlers, acks
 * after a handler resolves, naks with the backoff when it throws, and reports every failure.
 */
export class CoreProcessor implements Processor {
  readonly #consumer: CoreConsumer;
  readonly #handler: (delivery: Delivery) => Promise<void>;
  readonly #concurrency: number;
  readonly #backoffMs: readonly number[] | undefined;
  readonly #onError: ((err: unknown, delivery: Delivery) => void) | undefined;
  readonly #logger: Logger;
  readonly #running = new Set<Promise<void>>();
  readonly done: Promise<void>;

  constructor(
    consumer: CoreConsumer,
    handler: (delivery: Delivery) => Promise<void>,
    concurrency: number,
    backoffMs: readonly number[] | undefined,
    onError: ((err: unknown, delivery: Delivery) => void) | undefined,
    logger: Logger,
  ) {
    this.#consumer = consumer;
    this.#handler = handler;
    this.#concurrency = concurrency;
    this.#backoffMs = backoffMs;
    this.#onError = onError;
    this.#logger = logger;
    this.done = this.#loop();
    // `done` is for whoever wants it; nobody awaiting it must not make an unhandled rejection.
    this.done.catch(() => undefined);
  }

  async #loop(): Promise<void> {
    try {
      for await (const delivery of this.#consumer) {
        const task = this.#handle(delivery);
        this.#running.add(task);
        void task.finally(() => this.#running.delete(task));
        while (this.#running.size >= this.#concurrency) await Promise.race(this.#running);
      }
    } finally {
      await Promise.allSettled([...this.#running]);
    }
  }

  #delayMs(deliveryCount: number): number {
    const steps = this.#backoffMs;
    if (steps === undefined) return defaultBackoffMs(deliveryCount);
    return steps.length === 0 ? 0 : (steps[Math.min(deliveryCount, steps.length) - 1] as number);
  }

  async #handle(delivery: CoreDelivery): Promise<void> {
    try {
      await this.#handler(delivery);
    } catch (err) {
      const delayMs = this.#delayMs(delivery.deliveryCount);
      try {
        await delivery.nak({ delayMs, error: err });
      } catch (nakErr) {
        this.#report(nakErr, delivery, 'nak');
      }
      this.#report(err, delivery, delivery.lastAttempt ? 'dead-lettered' : delayMs);
      return;
    }
    try {
      // A no-op when the handler settled the delivery itself.
      await delivery.ack();
    } catch (err) {
      this.#report(err, delivery, 'ack');
    }
  }

  /**
   * Hands a failure to `onError`, or logs it when there is none: a failing handler must not go unnoticed.
   * `then` is what followed a handler failure (the redelivery delay, or dead-lettering), or the
   * settlement that failed.
   */
  #report(err: unknown, delivery: Delivery, then: number | 'dead-lettered' | 'ack' | 'nak'): void {
    if (this.#onError === undefined) {
      const { message, code } = describeError(err);
      const what = `message ${delivery.seq} of topic ${quote(delivery.topic)}, group ${quote(delivery.group)}`;
      const error = code === undefined ? message : `${code}: ${message}`;
      const text =
        then === 'ack' || then === 'nak'
          ? `queue: the ${then} of ${what} failed: ${error}`
          : `queue: the handler failed on ${what} (attempt ${delivery.deliveryCount}): ${error}; ` +
            (then === 'dead-lettered' ? 'moved to the dead-letter topic' : `delivered again in ${then} ms`);
      this.#logger.warn(text);
      return;
    }
    try {
      this.#onError(err, delivery);
    } catch {
      // An onError that throws must not stop the loop.
    }
  }

  async stop(): Promise<void> {
    await this.#consumer.close();
    await this.done.catch(() => undefined);
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.stop();
  }
}
