/**
 * Deadlines for many calls with few timers and few abort signals.
 *
 * On Node 20 an `AbortController` per call costs tens of microseconds once its signal is handed to other
 * code, and a timer per call adds more: together they cost more than a whole in-memory driver call. Calls
 * with the same timeout that start within the same few milliseconds therefore share one bucket: one
 * controller (whose signal the drivers receive) and one timer. A call leaves its bucket when it finishes;
 * an emptied bucket is dropped with its timer. When a bucket's timer fires, its signal aborts and every
 * call still in it expires — between `timeoutMs` and `timeoutMs + bucketWindowMs(timeoutMs)` after it
 * started.
 *
 * A bucket is dear: a signal that gets its first listener costs about 10 µs (Node 20 builds its listener
 * map then), more than many driver calls. One caller making calls one at a time over a network makes a
 * call every few hundred microseconds, so a 5 ms window shared the cost among only a dozen calls. The window
 * therefore grows with the timeout, as a fixed share of it ({@link bucketWindowMs}): with the default
 * 10 s deadline a bucket takes in calls for 50 ms, and a deadline is 0.5% late at most.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { StowageError } from '../ports/errors.js';

/** The shortest time a bucket takes in new calls, in milliseconds: the imprecision of short deadlines. */
export const BUCKET_MS = 5;

/** The longest time a bucket takes in new calls, in milliseconds, however long its deadline. */
const MAX_BUCKET_MS = 100;

/**
 * How long a bucket of calls with deadline `timeoutMs` takes in new calls, in milliseconds, which is also
 * how late such a deadline may fire: 0.5% of `timeoutMs`, at least {@link BUCKET_MS} and at most 100.
 */
export function bucketWindowMs(timeoutMs: number): number {
  return Math.min(MAX_BUCKET_MS, Math.max(BUCKET_MS, timeoutMs / 200));
}

/** What a bucket expires: a call still in it when its deadline passes. */
interface Expirable {
  expire(): void;
}

class Bucket {
  readonly controller = new AbortController();
  // Calls by index; a finished call's entry is emptied (no hashing: this runs twice per call).
  #expires: (Expirable | undefined)[] = [];
  #live = 0;
  sealed = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    timeoutMs: number,
    private readonly lane: Lane,
  ) {
    // Drivers may add an abort listener per call; they all go away with the bucket.
    setMaxListeners(0, this.controller.signal);
    this.#timer = setTimeout(() => this.#expire(timeoutMs), timeoutMs + lane.windowMs);
    // A pending deadline alone must not keep the process alive; the call's own I/O does that.
    this.#timer.unref();
  }

  /** Adds a call; returns its index for {@link Bucket.leave}. */
  join(call: Expirable): number {
    this.#live++;
    return this.#expires.push(call) - 1;
  }

  leave(index: number): void {
    if (this.#expires[index] === undefined) return;
    this.#expires[index] = undefined;
    if (--this.#live === 0 && this.sealed) this.#drop();
  }

  #expire(timeoutMs: number): void {
    this.sealed = true;
    this.controller.abort(new StowageError('TIMEOUT', `deadline of ${timeoutMs} ms passed`, { details: { timeoutMs } }));
    const expires = this.#expires;
    this.#expires = [];
    this.#live = 0;
    this.lane.forget(this);
    for (const call of expires) call?.expire();
  }

  seal(): void {
    this.sealed = true;
    if (this.#live === 0) this.#drop();
  }

  #drop(): void {
    clearTimeout(this.#timer);
    this.lane.forget(this);
  }
}

class Lane {
  #current: Bucket | undefined;
  #currentEnds = 0;
  /** How long a bucket of this lane takes in new calls ({@link bucketWindowMs}). */
  readonly windowMs: number;

  constructor(readonly timeoutMs: number) {
    this.windowMs = bucketWindowMs(timeoutMs);
  }

  /** The bucket taking new calls now (a new one every {@link Lane.windowMs}). */
  bucket(): Bucket {
    const now = performance.now();
    let bucket = this.#current;
    if (bucket === undefined || bucket.sealed || now >= this.#currentEnds) {
      bucket?.seal();
      bucket = new Bucket(this.timeoutMs, this);
      this.#current = bucket;
      this.#currentEnds = now + this.windowMs;
    }
    return bucket;
  }

  forget(bucket: Bucket): void {
    if (this.#current === bucket) this.#current = undefined;
  }
}

const lanes = new Map<number, Lane>();

function laneOf(timeoutMs: number): Lane {
  let lane = lanes.get(timeoutMs);
  if (lane === undefined) {
    lane = new Lane(timeoutMs);
    lanes.set(timeoutMs, lane);
  }
  return lane;
}

/**
 * Told about each call of {@link callWithDeadline} that was given it, so that a caller needs no promise of
 * its own around the call (one object for all calls: nothing is made per call).
 */
export interface CallObserver {
  /** The error the call rejects with, made from what `fn` threw or rejected with, or the deadline's error. */
  mapError(err: unknown, operation: string): unknown;
  /** The call settled (called once per call, before its promise settles). */
  settled(): void;
}

/**
 * Runs `fn` with a signal carrying a deadline of `timeoutMs` (and `callerSignal`, when given). Settles with
 * `fn`'s result, or rejects with TIMEOUT when the deadline passes or CANCELLED when the caller aborts —
 * at once, even if `fn` never settles (its late result is dropped). `describe` names the call in errors: a
 * string, or a function called only then. With an `observer`, every rejection goes through its `mapError`
 * (given `operation`) and its `settled` runs once when the call settles, even when it never started.
 */
export function callWithDeadline<T>(
  timeoutMs: number,
  callerSignal: AbortSignal | undefined,
  describe: string | (() => string),
  fn: (signal: AbortSignal) => Promise<T>,
  observer?: CallObserver,
  operation = '',
): Promise<T> {
  if (callerSignal?.aborted) {
    const err = new StowageError('CANCELLED', `${nameOf(describe)}: cancelled before it started`);
    if (observer === undefined) return Promise.reject(err);
    observer.settled();
    return Promise.reject(observer.mapError(err, operation));
  }
  const bucket = laneOf(timeoutMs).bucket();
  // Only calls given a signal pay for a signal of their own.
  const signal = callerSignal === undefined ? bucket.controller.signal : AbortSignal.any([bucket.controller.signal, callerSignal]);
  // The driver's request goes out before the call's own bookkeeping: a call made alone waits for its
  // answer from the moment it is sent, so what core does next overlaps the round trip.
  let work: Promise<T> | undefined;
  let thrown: { error: unknown } | undefined;
  try {
    work = fn(signal);
  } catch (error) {
    thrown = { error };
  }
  const call = new PendingCall<T>(describe, timeoutMs, callerSignal, observer, operation, bucket);
  if (thrown !== undefined) call.fail(thrown.error);
  else call.track(work as Promise<T>);
  return call.promise;
}

function nameOf(describe: string | (() => string)): string {
  return typeof describe === 'string' ? describe : describe();
}

/**
 * One call in flight: settles once, with the driver's result, or with TIMEOUT when its deadline bucket
 * expires, or with CANCELLED when the caller's signal aborts. A class with methods rather than closures,
 * and no slot object, because this is the hot path of every port: per call it makes itself, its promise,
 * the two callbacks the driver's promise needs and, only when the caller gave a signal, a listener.
 */
class PendingCall<T> implements Expirable {
  #settled = false;
  readonly #bucket: Bucket;
  readonly #index: number;
  readonly promise: Promise<T>;
  #resolve!: (value: T) => void;
  #reject!: (err: unknown) => void;
  #cancel: (() => void) | undefined;

  constructor(
    private readonly describe: string | (() => string),
    private readonly timeoutMs: number,
    private readonly callerSignal: AbortSignal | undefined,
    private readonly observer: CallObserver | undefined,
    private readonly operation: string,
    bucket: Bucket,
  ) {
    this.promise = new Promise<T>((resolve, reject) => {
      this.#resolve = resolve;
      this.#reject = reject;
    });
    this.#bucket = bucket;
    this.#index = bucket.join(this);
    if (callerSignal !== undefined) {
      this.#cancel = () => this.#cancelled();
      callerSignal.addEventListener('abort', this.#cancel, { once: true });
      // The driver ran before this listener existed: an abort it caused is seen here.
      if (callerSignal.aborted) this.#cancelled();
    }
  }

  /**
   * Settles with `work` unless the deadline or the caller's abort comes first. (`Promise.resolve` returns a
   * native promise as it is; it is there for a driver that returns a plain value or another thenable.)
   */
  track(work: Promise<T>): void {
    Promise.resolve(work).then(
      (value) => {
        if (this.#finish()) this.#resolve(value);
      },
      (err: unknown) => this.#fail(err),
    );
  }

  #finish(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#bucket.leave(this.#index);
    if (this.#cancel !== undefined) this.callerSignal?.removeEventListener('abort', this.#cancel);
    this.observer?.settled();
    return true;
  }

  /** Fails the call with `err` (mapped by the observer), unless it has settled. */
  fail(err: unknown): void {
    this.#fail(err);
  }

  #fail(err: unknown): void {
    if (!this.#finish()) return;
    let error = err;
    if (this.observer !== undefined) {
      try {
        error = this.observer.mapError(err, this.operation);
      } catch (mappingError) {
        // A broken error mapping must still settle the call.
        error = mappingError;
      }
    }
    this.#reject(error);
  }

  /** Called by the bucket when the deadline passes. */
  expire(): void {
    this.#fail(new StowageError('TIMEOUT', `${nameOf(this.describe)}: no answer within ${this.timeoutMs} ms`, { details: { timeoutMs: this.timeoutMs } }));
  }

  #cancelled(): void {
    this.#fail(new StowageError('CANCELLED', `${nameOf(this.describe)}: cancelled`));
  }
}
