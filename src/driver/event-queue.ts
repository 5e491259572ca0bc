/**
 * The queue between a producer that pushes events (a listener, a client callback) and a reader that takes
 * them with `for await`: what every watch needs.
 *
 * @module
 */

/**
 * Events pushed by a producer, read in order by one reader. The reader waits while the queue is empty,
 * returns when its signal aborts, and throws the error given to {@link EventQueue.fail} once it has read
 * every event pushed before the failure (events pushed after it are dropped: a reader never sees an event
 * that follows a gap).
 */
export class EventQueue<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  #failed = false;
  #failure: unknown;
  #wake: (() => void) | undefined;

  /** How many events wait to be read. */
  get length(): number {
    return this.#items.length - this.#head;
  }

  /** Queues an event (ignored once the queue has failed). */
  push(event: T): void {
    if (this.#failed) return;
    this.#items.push(event);
    this.#wake?.();
  }

  /** Ends the queue with `err`: the reader throws it after the events already queued. The first failure wins. */
  fail(err: unknown): void {
    if (this.#failed) return;
    this.#failed = true;
    this.#failure = err;
    this.#wake?.();
  }

  /** Yields the events in order until `signal` aborts; throws the failure once the queue before it is read. */
  async *read(signal: AbortSignal): AsyncGenerator<T, void, undefined> {
    const onAbort = (): void => this.#wake?.();
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      while (!signal.aborted) {
        if (this.#head < this.#items.length) {
          const event = this.#items[this.#head] as T;
          // Drop the reference at once, and the read part of the array now and then (no shift() per event).
          this.#items[this.#head++] = undefined;
          if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
            this.#items = this.#items.slice(this.#head);
            this.#head = 0;
          }
          yield event;
          continue;
        }
        if (this.#failed) throw this.#failure;
        await new Promise<void>((resolve) => {
          this.#wake = resolve;
        });
        this.#wake = undefined;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }
}
