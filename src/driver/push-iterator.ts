/**
 * The async iterator between a producer that pushes values (a client callback, a fetch loop) and the one
 * reader that takes them with `next()` or `for await`: what a queue subscription is made of.
 *
 * The model is nats.js's `QueuedIterator`. It is written by hand rather than as an async generator: a value
 * that is already buffered is handed out without a generator resumption, and a value pushed while the reader
 * waits goes straight to it, which is the path every message of a subscription takes.
 *
 * @module
 */
import { invalid } from './errors.js';

/** Options of {@link PushIterator}. */
export interface PushIteratorOptions<T> {
  /**
   * Called when a `next()` finds nothing buffered and starts waiting: a producer that fetches only on
   * demand (a pull consumer, a claim loop) fetches now; it may push synchronously from here. This is also
   * the signal to resume for a producer that paused because enough was buffered (see
   * {@link PushIterator.length}).
   */
  readonly onDemand?: () => void;
  /**
   * Called on the reader's first `return()` (a `break` out of `for await`): stops the producer, which is
   * expected to call {@link PushIterator.stop} and give back what it returns (`return()` stops the iterator
   * after it anyway, and resolves once it has). Called even when the iterator has ended or stopped already
   * (the producer may still hold a subscription to close), so the close it calls must be idempotent.
   */
  readonly onReturn?: () => void | Promise<void>;
  /**
   * Whether a buffered value went stale while it waited to be read (a delivery whose ackWait passed, now
   * the backend's to redeliver): such values are skipped by `next()` and never handed out.
   */
  readonly stale?: (value: T) => boolean;
}

const DONE: IteratorReturnResult<undefined> = Object.freeze({ done: true, value: undefined });

/**
 * Values pushed by a producer, read in push order by one reader. The buffer is unbounded: the producer
 * bounds it (a queue subscription by its prefetch, counting what is buffered).
 *
 * How it ends:
 * - {@link PushIterator.end} (the producer is done, maybe with an error): the reader still reads what was
 *   pushed before, then `next()` returns done — or throws the error once, and returns done after that;
 * - {@link PushIterator.stop} (the producer stops now, e.g. its subscription closes): a waiting `next()`
 *   returns done at once, and the values never read are handed back to the producer;
 * - `return()` (the reader stops): {@link PushIteratorOptions.onReturn} stops the producer.
 *
 * Values pushed once it has ended are refused (`push` returns false): a reader never sees a value that
 * follows an end or a gap.
 *
 * @example
 * ```ts
 * const deliveries = new PushIterator<Delivery>({ onDemand: () => fetchMore(), onReturn: () => close() });
 * client.onMessage((m) => {
 *   if (!deliveries.push(toDelivery(m))) m.nak(); // stopped meanwhile: give it back
 * });
 * async function close() {
 *   for (const d of deliveries.stop()) d.nak(); // fetched, never read
 * }
 * ```
 */
export class PushIterator<T> implements AsyncIterableIterator<T, undefined, undefined> {
  readonly #onDemand: (() => void) | undefined;
  /** Cleared once called: the producer is stopped once. */
  #onReturn: (() => void | Promise<void>) | undefined;
  readonly #stale: ((value: T) => boolean) | undefined;
  #buffer: (T | undefined)[] = [];
  #head = 0;
  /** No value is taken any more (ended or stopped). */
  #ended = false;
  /** Set by `end(err)`: thrown once the buffer before it is read. */
  #failure: { readonly err: unknown } | undefined;
  #resolve: ((result: IteratorResult<T, undefined>) => void) | undefined;
  #reject: ((err: unknown) => void) | undefined;

  /** @param options - the producer's hooks */
  constructor(options: PushIteratorOptions<T> = {}) {
    this.#onDemand = options.onDemand;
    this.#onReturn = options.onReturn;
    this.#stale = options.stale;
  }

  /** How many values wait in the buffer, not yet read. */
  get length(): number {
    return this.#buffer.length - this.#head;
  }

  /** Whether a `next()` waits for a value. */
  get waiting(): boolean {
    return this.#resolve !== undefined;
  }

  /** Whether the iterator has ended or stopped: `push` refuses values from then on. */
  get ended(): boolean {
    return this.#ended;
  }

  /**
   * Hands `value` to the waiting `next()`, or buffers it. Returns false, and keeps nothing, once the
   * iterator has ended: the producer then gives the value back.
   */
  push(value: T): boolean {
    if (this.#ended) return false;
    const resolve = this.#resolve;
    if (resolve === undefined) {
      this.#buffer.push(value);
      return true;
    }
    // A next() waits only while the buffer is empty: this value is the next in order.
    this.#resolve = undefined;
    this.#reject = undefined;
    resolve({ done: false, value });
    return true;
  }

  /**
   * The producer is done: what was pushed before is still read, then `next()` returns done, or rejects
   * with `err` when one is given (once; done after that). The first end or stop wins.
   */
  end(err?: unknown): void {
    if (this.#ended) return;
    this.#ended = true;
    if (err !== undefined) this.#failure = { err };
    const resolve = this.#resolve;
    const reject = this.#reject;
    if (resolve === undefined || reject === undefined) return;
    // A waiting next() means an empty buffer: it gets the end now.
    this.#resolve = undefined;
    this.#reject = undefined;
    this.#endResult().then(resolve, reject);
  }

  /**
   * Stops now: a waiting `next()` returns done, and so does every later one. Returns the values pushed
   * and never read, in push order, for the producer to give back (none when already stopped).
   */
  stop(): T[] {
    this.#ended = true;
    this.#failure = undefined;
    const unread = this.#buffer.slice(this.#head) as T[];
    this.#buffer = [];
    this.#head = 0;
    const resolve = this.#resolve;
    this.#resolve = undefined;
    this.#reject = undefined;
    resolve?.(DONE);
    return unread;
  }

  /**
   * The next value in push order; waits while none is buffered. Only one call may wait at a time: a
   * second one while the first waits is refused (INVALID_ARGUMENT).
   */
  next(): Promise<IteratorResult<T, undefined>> {
    while (this.#head < this.#buffer.length) {
      const value = this.#buffer[this.#head] as T;
      // Drop the reference at once, and the read part of the array now and then (no shift() per value).
      this.#buffer[this.#head++] = undefined;
      if (this.#head > 1024 && this.#head * 2 > this.#buffer.length) {
        this.#buffer = this.#buffer.slice(this.#head);
        this.#head = 0;
      }
      if (this.#stale?.(value) === true) continue;
      return Promise.resolve({ done: false, value });
    }
    if (this.#ended) return this.#endResult();
    if (this.#resolve !== undefined) return Promise.reject(invalid('next() called while another next() of the same iterator is waiting'));
    return new Promise((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
      if (this.#onDemand === undefined) return;
      try {
        this.#onDemand();
      } catch (err) {
        // The waiter may have been served meanwhile; otherwise this call fails with the producer's error.
        if (this.#reject !== reject) return;
        this.#resolve = undefined;
        this.#reject = undefined;
        reject(err);
      }
    });
  }

  /** Ends the iteration from the reader's side: calls `onReturn` (the first time), then stops. */
  async return(): Promise<IteratorResult<T, undefined>> {
    const onReturn = this.#onReturn;
    this.#onReturn = undefined;
    await onReturn?.();
    this.stop();
    return DONE;
  }

  /** The iterator itself: it has one reader, so every `for await` over it shares one position. */
  [Symbol.asyncIterator](): this {
    return this;
  }

  /** What `next()` gives once everything before the end is read: the error of `end(err)` once, else done. */
  #endResult(): Promise<IteratorResult<T, undefined>> {
    const failure = this.#failure;
    if (failure === undefined) return Promise.resolve(DONE);
    this.#failure = undefined;
    return Promise.reject(failure.err);
  }
}
