/**
 * The queue between a producer that pushes events (a listener, a client callback) and a reader that takes
 * them with `for await`: what every watch needs.
 *
 * @module
 */
import { PushIterator } from './push-iterator.js';

/**
 * Events pushed by a producer, read in order by one reader. The reader waits while the queue is empty,
 * returns when its signal aborts, and throws the error given to {@link EventQueue.fail} once it has read
 * every event pushed before the failure (events pushed after it are dropped: a reader never sees an event
 * that follows a gap). A {@link PushIterator} read under a signal.
 */
export class EventQueue<T> {
  readonly #events = new PushIterator<T>();

  /** How many events wait to be read. */
  get length(): number {
    return this.#events.length;
  }

  /** Queues an event (ignored once the queue has failed). */
  push(event: T): void {
    this.#events.push(event);
  }

  /** Ends the queue with `err`: the reader throws it after the events already queued. The first failure wins. */
  fail(err: unknown): void {
    this.#events.end(err);
  }

  /** Yields the events in order until `signal` aborts; throws the failure once the queue before it is read. */
  async *read(signal: AbortSignal): AsyncGenerator<T, void, undefined> {
    if (signal.aborted) return;
    const onAbort = (): void => void this.#events.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      yield* this.#events;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
