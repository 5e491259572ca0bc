/**
 * Deadlines for many calls with few timers and few abort signals.
 *
 * On Node 20 an `AbortController` per call costs tens of microseconds once its signal is handed to other
 * code, and a timer per call adds more: together they cost more than a whole in-memory driver call. Calls
 * with the same timeout that start within the same few milliseconds therefore share one bucket: one
 * controller (whose signal the drivers receive) and one timer. A call leaves its bucket when it finishes;
 * an emptied bucket is dropped with its timer. When a bucket's timer fires, its signal aborts and every
 * call still in it expires — between `timeoutMs` and `timeoutMs + BUCKET_MS` after it started.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { StowageError } from '../ports/errors.js';

/** How long a bucket takes in new calls, in milliseconds: the deadlines' imprecision. */
export const BUCKET_MS = 5;

/** A call's place in a bucket. */
export interface CallDeadline {
  /** Aborts when the deadline passes. Shared with the other calls of the bucket. */
  readonly signal: AbortSignal;
  /** The call finished: it no longer expires. */
  leave(): void;
}

/** A call's slot in a bucket. */
class Slot implements CallDeadline {
  constructor(
    private readonly bucket: Bucket,
    private readonly index: number,
  ) {}

  get signal(): AbortSignal {
    return this.bucket.controller.signal;
  }

  leave(): void {
    this.bucket.leave(this.index);
  }
}

class Bucket {
  readonly controller = new AbortController();
  // Slots by index; a finished call's slot is emptied (no hashing: this runs twice per call).
  #expires: ((() => void) | undefined)[] = [];
  #live = 0;
  sealed = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    timeoutMs: number,
    private readonly lane: Lane,
  ) {
    // Drivers may add an abort listener per call; they all go away with the bucket.
    setMaxListeners(0, this.controller.signal);
    this.#timer = setTimeout(() => this.#expire(timeoutMs), timeoutMs + BUCKET_MS);
    // A pending deadline alone must not keep the process alive; the call's own I/O does that.
    this.#timer.unref();
  }

  join(expire: () => void): Slot {
    this.#live++;
    return new Slot(this, this.#expires.push(expire) - 1);
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
    for (const expire of expires) expire?.();
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

  constructor(readonly timeoutMs: number) {}

  join(expire: () => void): CallDeadline {
    const now = performance.now();
    let bucket = this.#current;
    if (bucket === undefined || bucket.sealed || now >= this.#currentEnds) {
      bucket?.seal();
      bucket = new Bucket(this.timeoutMs, this);
      this.#current = bucket;
      this.#currentEnds = now + BUCKET_MS;
    }
    return bucket.join(expire);
  }

  forget(bucket: Bucket): void {
    if (this.#current === bucket) this.#current = undefined;
  }
}

const lanes = new Map<number, Lane>();

/**
 * Registers a call that must finish within `timeoutMs`; `expire` runs if it has not left by then.
 */
export function joinDeadline(timeoutMs: number, expire: () => void): CallDeadline {
  let lane = lanes.get(timeoutMs);
  if (lane === undefined) {
    lane = new Lane(timeoutMs);
    lanes.set(timeoutMs, lane);
  }
  return lane.join(expire);
}

/**
 * Runs `fn` with a signal carrying a deadline of `timeoutMs` (and `callerSignal`, when given). Settles with
 * `fn`'s result, or rejects with TIMEOUT when the deadline passes or CANCELLED when the caller aborts —
 * at once, even if `fn` never settles (its late result is dropped). `describe` names the call in errors and
 * is called only then.
 */
export function callWithDeadline<T>(
  timeoutMs: number,
  callerSignal: AbortSignal | undefined,
  describe: () => string,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  if (callerSignal?.aborted) return Promise.reject(new StowageError('CANCELLED', `${describe()}: cancelled before it started`));
  return new Promise<T>((resolve, reject) => {
    new PendingCall<T>(describe, timeoutMs, callerSignal, resolve, reject).start(fn);
  });
}

/**
 * One call in flight: settles once, with the driver's result, or with TIMEOUT when its deadline bucket
 * expires, or with CANCELLED when the caller's signal aborts. A class rather than closures because this is
 * the hot path of every port.
 */
class PendingCall<T> {
  #settled = false;
  readonly #deadline: CallDeadline;

  constructor(
    private readonly describe: () => string,
    private readonly timeoutMs: number,
    private readonly callerSignal: AbortSignal | undefined,
    private readonly resolve: (value: T) => void,
    private readonly reject: (err: unknown) => void,
  ) {
    this.#deadline = joinDeadline(timeoutMs, this.expire);
  }

  start(fn: (signal: AbortSignal) => Promise<T>): void {
    let signal = this.#deadline.signal;
    if (this.callerSignal !== undefined) {
      this.callerSignal.addEventListener('abort', this.cancel, { once: true });
      // Only calls given a signal pay for a signal of their own.
      signal = AbortSignal.any([signal, this.callerSignal]);
    }
    let work: Promise<T>;
    try {
      work = fn(signal);
    } catch (err) {
      this.fail(err);
      return;
    }
    work.then(this.succeed, this.fail);
  }

  #finish(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.#deadline.leave();
    this.callerSignal?.removeEventListener('abort', this.cancel);
    return true;
  }

  readonly succeed = (value: T): void => {
    if (this.#finish()) this.resolve(value);
  };

  readonly fail = (err: unknown): void => {
    if (this.#finish()) this.reject(err);
  };

  readonly expire = (): void => {
    if (this.#finish()) {
      this.reject(new StowageError('TIMEOUT', `${this.describe()}: no answer within ${this.timeoutMs} ms`, { details: { timeoutMs: this.timeoutMs } }));
    }
  };

  readonly cancel = (): void => {
    if (this.#finish()) this.reject(new StowageError('CANCELLED', `${this.describe()}: cancelled`));
  };
}
