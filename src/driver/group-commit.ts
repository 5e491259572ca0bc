/**
 * Group commit: the write loop of an append-only file whose appends are acknowledged once durable. Appends
 * that arrive while a write (and its `fdatasync`) is in progress share the next one, so one sync covers many
 * appends; under an interval policy a timer syncs instead, and a sync that fails there stops the file, since
 * appends acknowledged after the last good sync may be lost.
 *
 * The owner keeps its buffers and what its waiters wait for; this module runs the loop, the timer and the
 * bookkeeping both need, so a crash-safety fix to either lands once.
 *
 * @module
 */

/** Options of {@link GroupCommit}. */
export interface GroupCommitOptions {
  /**
   * Writes what was appended since the last round, syncing it when the policy says so (else calling
   * {@link GroupCommit.unsynced}), and settles its waiters. Returns false when nothing was waiting: the
   * loop then ends until the next {@link GroupCommit.kick}. A round reports its own failures to its waiters;
   * one that throws ends the loop with that error unheard, so it should not.
   */
  readonly writeRound: () => Promise<boolean>;
  /** Forces what was written to the disk (`fdatasync` of the file being written now). */
  readonly sync: () => Promise<void>;
  /**
   * How long appends are gathered before a round. `turn` (default): until the event loop turns, so every
   * caller whose previous append just resolved (through however many promise hops) joins the round.
   * `microtask`: only until the appending code finishes, for a policy that syncs each record on its own
   * and gains nothing from waiting.
   */
  readonly gather?: 'turn' | 'microtask';
  /**
   * fsync=interval: the milliseconds between background syncs of what rounds left unsynced. Absent: no
   * timer (every round that must be durable syncs itself).
   */
  readonly syncEveryMs?: number;
}

/** Resolves once the microtask queue has drained and pending I/O callbacks have run. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/**
 * The loop of one file. Call {@link GroupCommit.kick} after each append; the loop gathers, runs
 * `writeRound` until it reports nothing waiting, and stops.
 *
 * @example
 * ```ts
 * const commit = new GroupCommit({ writeRound: () => this.#writeBuffered(), sync: () => fh.datasync() });
 * append(entry) { this.#buffer.push(entry); commit.kick(); return this.#batchPromise; }
 * ```
 */
export class GroupCommit {
  readonly #options: GroupCommitOptions;
  #running: Promise<void> | undefined;
  #unsynced = false;
  #failure: unknown;
  #timer: NodeJS.Timeout | undefined;

  constructor(options: GroupCommitOptions) {
    this.#options = options;
    if (options.syncEveryMs !== undefined) {
      this.#timer = setInterval(() => void this.#syncInBackground(), options.syncEveryMs);
      this.#timer.unref();
    }
  }

  /**
   * What a failed background sync threw, else undefined. Once set, no more rounds run: the owner refuses
   * appends, since appends acknowledged since the last good sync may be lost.
   */
  get failure(): unknown {
    return this.#failure;
  }

  /** Starts the loop unless it is running (or stopped by a failure): the next round takes what was appended. */
  kick(): void {
    if (this.#running !== undefined || this.#failure !== undefined) return;
    this.#running = this.#loop();
  }

  /** A round wrote without syncing (interval policy): the timer's next tick, or {@link GroupCommit.syncUnsynced} at close, syncs it. */
  unsynced(): void {
    this.#unsynced = true;
  }

  /** Resolves once the loop has stopped: everything appended so far went through a round. */
  async idle(): Promise<void> {
    while (this.#running) await this.#running;
  }

  /** Stops the timer and waits for the loop; nothing is synced yet (see {@link syncUnsynced}). */
  async stop(): Promise<void> {
    if (this.#timer) clearInterval(this.#timer);
    this.#timer = undefined;
    await this.idle();
  }

  /**
   * Syncs what rounds left unsynced, at close: a failure is ignored, as nobody is left to tell (what was
   * acknowledged under the interval policy was promised only up to the last interval).
   */
  async syncUnsynced(): Promise<void> {
    if (!this.#unsynced) return;
    this.#unsynced = false;
    await this.#options.sync().catch(() => undefined);
  }

  async #loop(): Promise<void> {
    try {
      // Gathering first, always: the loop must not end before `kick` has stored it, or `#running` would
      // keep a settled promise that idle() awaits forever.
      do {
        if (this.#options.gather === 'microtask') await Promise.resolve();
        else await nextTurn();
        if (!(await this.#options.writeRound())) break;
      } while (this.#failure === undefined);
    } finally {
      this.#running = undefined;
    }
  }

  async #syncInBackground(): Promise<void> {
    if (!this.#unsynced || this.#failure !== undefined) return;
    this.#unsynced = false;
    await this.#options.sync().catch((err: unknown) => {
      this.#failure = err;
    });
  }
}
