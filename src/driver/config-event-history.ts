/**
 * Watches for config drivers that see every change in process (`mem://`, `file://`): a bounded history of
 * events plus live subscribers.
 *
 * @module
 */
import { StowageError } from '../ports/errors.js';
import type { ConfigEvent } from '../ports/config.js';
import { quote } from './validate.js';
import { EventQueue } from './event-queue.js';

/**
 * The last `size` config events, in revision order, and the watches following them.
 *
 * A watch replays the kept events after its start revision and subscribes in the same synchronous step, so
 * no event can fall between the two. A watch whose start is older than the kept history, or whose reader
 * falls `size` events behind, ends with COMPACTED: memory never grows without bound for a slow reader.
 */
export class ConfigEventHistory {
  readonly #size: number;
  readonly #what: string;
  #events: ConfigEvent[] = [];
  #head = 0;
  #floor: number;
  readonly #listeners = new Set<(event: ConfigEvent) => void>();

  /**
   * @param size - how many events to keep
   * @param what - names the store in error messages, e.g. `config (mem)`
   * @param floor - the revision from which history is known (a watch may start at it or later)
   */
  constructor(size: number, what: string, floor = 0) {
    this.#size = size;
    this.#what = what;
    this.#floor = floor;
  }

  /** The oldest revision a watch may start from: every later event is kept. */
  get floor(): number {
    return this.#floor;
  }

  /** Records an event (revisions must grow) and hands it to every watch. */
  emit(event: ConfigEvent): void {
    this.#events.push(event);
    if (this.#events.length - this.#head > this.#size) {
      this.#floor = (this.#events[this.#head] as ConfigEvent).revision;
      this.#head++;
      if (this.#head > 1024 && this.#head * 2 > this.#events.length) {
        this.#events = this.#events.slice(this.#head);
        this.#head = 0;
      }
    }
    for (const listener of this.#listeners) listener(event);
  }

  /**
   * Stops handing events to the current watches (a closing driver calls it). A watch still returns only when
   * its signal aborts, as {@link ConfigEventHistory.watch} says; core aborts it when the store closes, before
   * it closes the driver.
   */
  clear(): void {
    this.#listeners.clear();
  }

  /**
   * Every event under `prefix` with a revision greater than `start`, in order, until `signal` aborts.
   *
   * @throws StowageError COMPACTED when `start` is older than the kept history, or the reader fell
   *   `size` events behind
   */
  async *watch(prefix: string, start: number, signal: AbortSignal): AsyncGenerator<ConfigEvent, void, undefined> {
    if (start < this.#floor) {
      throw new StowageError(
        'COMPACTED',
        `${this.#what}: watch of ${quote(prefix)} from revision ${start} needs history from before revision ${this.#floor}, which is no longer kept; resync with list() and watch from its revision`,
        { details: { afterRevision: start, oldestRevision: this.#floor } },
      );
    }
    const queue = new EventQueue<ConfigEvent>();
    for (let i = this.#head; i < this.#events.length; i++) {
      const event = this.#events[i] as ConfigEvent;
      if (event.revision > start && event.key.startsWith(prefix)) queue.push(event);
    }
    const listener = (event: ConfigEvent): void => {
      if (event.revision <= start || !event.key.startsWith(prefix)) return;
      if (queue.length < this.#size) queue.push(event);
      else queue.fail(new StowageError('COMPACTED', `${this.#what}: watch of ${quote(prefix)} fell more than ${this.#size} events behind; resync with list()`));
    };
    this.#listeners.add(listener);
    try {
      yield* queue.read(signal);
    } finally {
      this.#listeners.delete(listener);
    }
  }
}
