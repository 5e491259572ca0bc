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

class Bucket {
  readonly controller = new AbortController();
  readonly pending = new Set<() => void>();
  sealed = false;
  readonly #timer: NodeJS.Timeout;

  constructor(
    timeoutMs: number,
    private readonly onSealedEmpty: (bucket: Bucket) => void,
  ) {
    // Drivers may add an abort listener per call; they all go away with the bucket.
    setMaxListeners(0, this.controller.signal);
    this.#timer = setTimeout(() => this.#expire(timeoutMs), timeoutMs + BUCKET_MS);
    // A pending deadline alone must not keep the process alive; the call's own I/O does that.
    this.#timer.unref();
  }

  #expire(timeoutMs: number): void {
    this.seal();
    this.controller.abort(new StowageError('TIMEOUT', `deadline of ${timeoutMs} ms passed`, { details: { timeoutMs } }));
    const expired = [...this.pending];
    this.pending.clear();
    for (const expire of expired) expire();
  }

  seal(): void {
    this.sealed = true;
    if (this.pending.size === 0) this.drop();
  }

  drop(): void {
    clearTimeout(this.#timer);
    this.onSealedEmpty(this);
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
      bucket = new Bucket(this.timeoutMs, (b) => {
        if (this.#current === b) this.#current = undefined;
      });
      this.#current = bucket;
      this.#currentEnds = now + BUCKET_MS;
    }
    const b = bucket;
    b.pending.add(expire);
    return {
      signal: b.controller.signal,
      leave: () => {
        if (b.pending.delete(expire) && b.sealed && b.pending.size === 0) b.drop();
      },
    };
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
