/**
 * Rate limits for a whole consumer group across processes: a sliding log of handler starts in the config
 * store, shared by every processor of the group that has a `rateLimit`.
 *
 * The log (`stowage/queue/rates/<topic>/<group>`, `{ log: [[time, count], …] }`) holds the starts of the
 * last `perMs`, claimed in small batches: a processor asks for as many starts as it has messages ready and
 * handler slots free, appends `[until, granted]` with a compare-and-set, and makes them as soon as the write
 * is back — but not after `until`, a little ahead of the claim (twice the recent write time): starts not
 * made by then are dropped. Each entry's time is thus no earlier than its starts, which is what makes the
 * window check sound. A claim that finds the window full waits until its oldest entry leaves it. So any
 * `perMs` window holds at most `max` starts across the group, up to the difference between the hosts'
 * clocks (times are each claimer's `Date.now()`). Past {@link MAX_ENTRIES} entries the oldest two merge under the later time, which only
 * makes the limit stricter. One compare-and-set per batch of starts, not per message.
 *
 * @module
 */
import type { ConfigStore } from '../../ports/config.js';
import type { JsonValue } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { RateLimit } from '../../ports/queue.js';

/** Where group rate limits keep their logs in the config store. */
export const RATES_PREFIX = 'stowage/queue/rates/';
/** The most entries a log keeps (bounded value size whatever `max` is). */
const MAX_ENTRIES = 64;

type Entry = [at: number, count: number];

function parseLog(value: unknown): Entry[] {
  const log = (value as { log?: unknown } | undefined)?.log;
  if (!Array.isArray(log)) return [];
  return log.filter((e): e is Entry => Array.isArray(e) && typeof e[0] === 'number' && typeof e[1] === 'number');
}

/** The least and most time a claim's starts are given to be made (see the module comment). */
const MIN_LEAD_MS = 20;
const MAX_LEAD_MS = 1_000;

/** What a claim gives: how many starts may be made, until when, or else how long to wait before asking again. */
export interface Claim {
  /** How many starts were granted (0: the window is full). */
  readonly granted: number;
  /** The last moment (`Date.now()`) the granted starts may be made. */
  readonly until: number;
  /** With nothing granted: how long until the window has room again, in milliseconds. */
  readonly retryMs: number;
}

/** The shared start log of one topic and group (see the module comment). */
export class GroupRate {
  readonly #config: ConfigStore;
  readonly #key: string;
  readonly #limit: RateLimit;
  /** The log as last read or written, with its revision (0: not known). */
  #log: Entry[] = [];
  #revision = -1;
  /** Recent compare-and-set time, smoothed. */
  #writeMs = MIN_LEAD_MS;

  constructor(config: ConfigStore, topic: string, group: string, limit: RateLimit) {
    this.#config = config;
    this.#key = `${RATES_PREFIX}${topic}/${group}`;
    this.#limit = limit;
  }

  /** Claims up to `want` starts for now. */
  async claim(want: number): Promise<Claim> {
    const { max, perMs } = this.#limit;
    for (;;) {
      if (this.#revision < 0) {
        const entry = await this.#config.get(this.#key);
        this.#log = parseLog(entry?.value);
        this.#revision = entry?.revision ?? 0;
      }
      const now = Date.now();
      const live = this.#log.filter(([at]) => at > now - perMs);
      let used = 0;
      for (const [, count] of live) used += count;
      if (used >= max) {
        // Full: the starts free up as the oldest entries leave the window. A cached log can only
        // under-count, never over-count, what others claimed since, so waiting on it is safe.
        let freed = 0;
        let retryMs = perMs;
        for (const [at, count] of live) {
          freed += count;
          if (used - freed < max) {
            retryMs = Math.max(1, at + perMs - now);
            break;
          }
        }
        this.#revision = -1;
        return { granted: 0, until: 0, retryMs };
      }
      const granted = Math.min(want, max - used);
      const until = now + Math.min(Math.max(2 * this.#writeMs, MIN_LEAD_MS), MAX_LEAD_MS, perMs);
      let log: Entry[] = [...live, [until, granted]];
      while (log.length > MAX_ENTRIES) {
        const [a, b] = log as [Entry, Entry];
        log = [[b[0], a[1] + b[1]], ...log.slice(2)];
      }
      const writing = performance.now();
      try {
        const { revision } = await this.#config.put(this.#key, { log } as unknown as JsonValue, { ifRevision: this.#revision });
        this.#writeMs = 0.8 * this.#writeMs + 0.2 * (performance.now() - writing);
        this.#log = log;
        this.#revision = revision;
        return { granted, until, retryMs: 0 };
      } catch (err) {
        this.#revision = -1;
        if (!(StowageError.is(err) && err.code === 'CONFLICT')) throw err;
      }
    }
  }
}
