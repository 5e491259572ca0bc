/**
 * The Redis command timeout without a timer per command.
 *
 * @module
 */
import type { Cluster, Redis } from 'ioredis';

/** How many notes a command must outlive before it is failed: it fails `1` to `1 + 1/NOTES` timeouts after it was written. */
const NOTES = 4;

/** How late the watchdog's timer may run (a busy event loop) within {@link CommandWatchdog.boundMs}. */
const TIMER_SLACK_MS = 100;

/** One queued command of an ioredis connection (its `commandQueue` entries). */
type QueuedCommand = Redis['commandQueue'] extends { peekAt(index: number): infer T } ? NonNullable<T> : never;

/** The connection's reply queue, as ioredis keeps it: commands written and not yet answered, oldest first. */
type ReplyQueue = Redis['commandQueue'];

/**
 * Fails each command the server has not answered within `timeoutMs` with ioredis's own
 * `Command timed out` error — what ioredis's `commandTimeout` option does — but with one timer per client
 * instead of a timer armed and cleared for every command (a measurable share of a cache call's CPU).
 *
 * Every `timeoutMs / 4` it notes the newest command in each connection's reply queue. Replies come in
 * order, so when the command noted four notes ago is still in the queue, it and every command before it
 * were written at least `timeoutMs` ago and are still unanswered: they are failed (once each; a late
 * reply is then ignored, as with `commandTimeout`). A command thus fails between `timeoutMs` and
 * `1.25 × timeoutMs` after it was written. A healthy connection costs one look at its queue per note.
 */
export class CommandWatchdog {
  readonly #client: Redis | Cluster;
  readonly #cluster: boolean;
  readonly #timer: NodeJS.Timeout;
  /** Per connection, the newest queued command at each of the last {@link NOTES} notes (a ring). */
  readonly #notes = new WeakMap<ReplyQueue, (QueuedCommand | undefined)[]>();
  /** Commands already failed, so a stuck queue is not failed again at every note. */
  readonly #failed = new WeakSet<QueuedCommand>();
  #note = 0;
  /**
   * The longest a command written on a watched connection stays unanswered before it is failed, in
   * milliseconds: five note intervals (see the class notes) plus room for a late timer.
   */
  readonly boundMs: number;

  /**
   * @param client - the client whose connections are watched (every node of a cluster)
   * @param cluster - whether `client` is a Cluster
   * @param timeoutMs - the command timeout, in milliseconds
   */
  constructor(client: Redis | Cluster, cluster: boolean, timeoutMs: number) {
    this.#client = client;
    this.#cluster = cluster;
    const interval = Math.max(1, Math.floor(timeoutMs / NOTES));
    this.boundMs = (NOTES + 1) * interval + TIMER_SLACK_MS;
    this.#timer = setInterval(() => this.#check(), interval);
    // The watchdog alone must not keep the process alive.
    this.#timer.unref();
  }

  /** Stops watching. */
  stop(): void {
    clearInterval(this.#timer);
  }

  #check(): void {
    const slot = this.#note++ % NOTES;
    if (this.#cluster) {
      for (const node of (this.#client as Cluster).nodes('all')) this.#checkQueue(node.commandQueue, slot);
    } else {
      this.#checkQueue((this.#client as Redis).commandQueue, slot);
    }
  }

  #checkQueue(queue: ReplyQueue, slot: number): void {
    let notes = this.#notes.get(queue);
    if (notes === undefined) {
      notes = new Array<QueuedCommand | undefined>(NOTES).fill(undefined);
      this.#notes.set(queue, notes);
    }
    const old = notes[slot];
    notes[slot] = queue.length > 0 ? queue.peekBack() : undefined;
    if (old === undefined || queue.length === 0) return;
    // Where is the command noted NOTES notes ago? Absent: it was answered, and so was everything before it.
    let last = -1;
    for (let i = 0; i < queue.length; i++) {
      if (queue.peekAt(i) === old) {
        last = i;
        break;
      }
    }
    for (let i = 0; i <= last; i++) {
      const item = queue.peekAt(i);
      if (item === undefined || this.#failed.has(item)) continue;
      this.#failed.add(item);
      item.command.reject(new Error('Command timed out'));
    }
  }
}
