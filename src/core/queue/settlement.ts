/**
 * Settling deliveries: ack, nak, touch and dead-lettering, with their deadlines and error mapping, and the
 * early deliveries of delayed messages. {@link Settler} is the narrow interface consumers and deliveries
 * use; the queue holds one and applications never see it.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { DriverDelivery, QueueDriver } from '../../ports/queue.js';
import { callWithDeadline } from '../deadlines.js';
import type { PortRuntime } from '../runtime.js';
import { traceHeaders } from './trace-context.js';
import {
  describeError,
  DLQ_SUFFIX,
  HEADER_DELIVERY_COUNT,
  HEADER_DLQ_ERROR,
  HEADER_DLQ_ERROR_CODE,
  HEADER_DLQ_GROUP,
  HEADER_DLQ_REASON,
  HEADER_ORIGINAL_ID,
  HEADER_ORIGINAL_SEQ,
  userHeaders,
} from './headers.js';

/** The most delayed messages whose early deliveries are remembered at once. */
const MAX_EARLY = 100_000;
/** How long after an ack later acks may share its deadline and promise (see {@link Settler.ack}). */
const SHARE_MS = 2;

/** A settlement in flight or done: what `ack()` and the like return, and whether it failed (then it may be tried again). */
export class Attempt {
  promise!: Promise<void>;
  failed = false;

  constructor(
    /** The driver's promise (for acks: acks on the same one may share this attempt). */
    readonly work: Promise<void> | undefined,
    /** When it started (`performance.now()`). */
    readonly at: number,
  ) {}
}

/** An attempt that failed before it reached the driver. */
function failedAttempt(err: unknown): Attempt {
  const attempt = new Attempt(undefined, 0);
  attempt.failed = true;
  attempt.promise = Promise.reject(err);
  return attempt;
}

/** An attempt over any settlement promise: failed once it rejects. */
export function attemptOf(promise: Promise<void>): Attempt {
  const attempt = new Attempt(undefined, 0);
  attempt.promise = promise;
  promise.catch(() => {
    attempt.failed = true;
  });
  return attempt;
}

/** Settles the deliveries of one queue: what its consumers and deliveries call, and what its `close()` drains. */
export class Settler {
  readonly #driver: QueueDriver;
  readonly #runtime: PortRuntime;
  readonly #timeoutMs: number;
  readonly #settling = new Set<Promise<unknown>>();
  #driverClosed = false;
  /** The latest ack's attempt, which acks on the same driver promise may share (see {@link Settler.ack}). */
  #lastAck: Attempt | undefined;
  readonly #describeAck = (): string => `queue.ack (${this.#runtime.backend})`;
  /** Per topic, group and seq: how many deliveries of a delayed message came before its time (see {@link Settler.countEarly}). */
  readonly #early = new Map<string, number>();

  constructor(driver: QueueDriver, runtime: PortRuntime, timeoutMs: number) {
    this.#driver = driver;
    this.#runtime = runtime;
    this.#timeoutMs = timeoutMs;
  }

  /** Resolves once every settlement in flight has settled (the queue's `close()` waits for it). */
  drained(): Promise<unknown> {
    return Promise.allSettled([...this.#settling]);
  }

  /** Called once the queue's driver is about to close: settlements after that are CLOSED. */
  driverClosed(): void {
    this.#driverClosed = true;
  }

  /**
   * Records a delivery of a delayed message that came before its time, so that it is not counted as an
   * attempt. Kept in this process only: an early delivery seen by another process (or before a restart)
   * counts as one attempt here. Bounded: past {@link MAX_EARLY} entries the oldest are forgotten.
   */
  countEarly(topic: string, group: string, seq: number): void {
    const key = `${topic}\n${group}\n${seq}`;
    const n = this.#early.get(key) ?? 0;
    this.#early.delete(key);
    this.#early.set(key, n + 1);
    if (this.#early.size > MAX_EARLY) this.#early.delete(this.#early.keys().next().value as string);
  }

  /** How many early deliveries of a delayed message this process saw. */
  earlyDeliveries(topic: string, group: string, seq: number): number {
    return this.#early.get(`${topic}\n${group}\n${seq}`) ?? 0;
  }

  /** Forgets a delayed message's early deliveries once it is settled. */
  forgetEarly(topic: string, group: string, seq: number): void {
    this.#early.delete(`${topic}\n${group}\n${seq}`);
  }

  /** Maps a driver error to the port's {@link StowageError} for `operation`. */
  mapError(err: unknown, operation: string): StowageError {
    return this.#runtime.mapError(err, operation);
  }

  /**
   * Runs a settlement (ack, nak, touch, dead-lettering). Unlike ordinary calls these are allowed while the
   * store is closing, so that running handlers can still settle what they hold before the driver closes.
   */
  async settle(operation: string, fn: (signal: AbortSignal) => Promise<void>): Promise<void> {
    if (this.#driverClosed) throw new StowageError('CLOSED', `queue (${this.#runtime.backend}): ${operation} called after close()`);
    const task = callWithDeadline(this.#timeoutMs, undefined, () => `queue.${operation} (${this.#runtime.backend})`, fn);
    this.#settling.add(task);
    try {
      await task;
    } catch (err) {
      throw this.#runtime.mapError(err, operation);
    } finally {
      this.#settling.delete(task);
    }
  }

  /**
   * Acks a delivery: what {@link settle} does for `ack`, on the path every message takes. Drivers that
   * commit acks in groups hand back the same promise for every ack of a group commit; the acks made within
   * {@link SHARE_MS} of each other on the same driver promise then share one deadline, one error mapping
   * and one entry in the set that `close()` drains, rather than paying for them once per message. Their
   * deadline is {@link SHARE_MS} longer than the others', so that none of them expires early.
   */
  ack(d: DriverDelivery): Attempt {
    if (this.#driverClosed) return failedAttempt(new StowageError('CLOSED', `queue (${this.#runtime.backend}): ack called after close()`));
    let work: Promise<void>;
    try {
      work = d.ack();
    } catch (err) {
      return failedAttempt(this.#runtime.mapError(err, 'ack'));
    }
    const now = performance.now();
    const last = this.#lastAck;
    if (last !== undefined && last.work === work && now - last.at < SHARE_MS && !last.failed) return last;
    const attempt = new Attempt(work, now);
    attempt.promise = callWithDeadline(this.#timeoutMs + SHARE_MS, undefined, this.#describeAck, () => work).then(undefined, (err: unknown) => {
      attempt.failed = true;
      throw this.#runtime.mapError(err, 'ack');
    });
    this.#lastAck = attempt;
    const settling = this.#settling;
    const { promise } = attempt;
    settling.add(promise);
    const forget = (): boolean => settling.delete(promise);
    promise.then(forget, forget);
    return attempt;
  }

  /**
   * Moves a delivery to the dead-letter topic, then acks it in its topic. `error`, when given, is what made
   * the last attempt fail: its message and code are kept with the dead letter.
   */
  async deadLetter(d: DriverDelivery, topic: string, group: string, reason: string, error?: unknown): Promise<void> {
    await this.settle('deadLetter', async (signal) => {
      const headers: Record<string, string> = {
        ...userHeaders(d.headers),
        ...traceHeaders(d.headers),
        [HEADER_DLQ_GROUP]: group,
        [HEADER_DLQ_REASON]: reason,
        [HEADER_ORIGINAL_SEQ]: String(d.seq),
        [HEADER_DELIVERY_COUNT]: String(d.deliveryCount),
      };
      if (error !== undefined) {
        const { message, code } = describeError(error);
        headers[HEADER_DLQ_ERROR] = message;
        if (code !== undefined) headers[HEADER_DLQ_ERROR_CODE] = code;
      }
      const originalId = d.headers[HEADER_ORIGINAL_ID] ?? d.id;
      if (originalId !== undefined) headers[HEADER_ORIGINAL_ID] = originalId;
      await this.#driver.publish(topic + DLQ_SUFFIX, d.payload, headers, `dlq:${topic}:${group}:${d.seq}`, signal);
      await d.ack();
    });
  }
}
