/**
 * Schedules of the queue port: messages published once per slot of a cron expression or an interval,
 * across every node that shares the config store.
 *
 * Each schedule is one config key holding its definition and the last slot published. A node fires a
 * slot by publishing it with the id `schedule-<name>-<slot>` and then moving the key's `lastSlot` with a
 * compare-and-set. Two nodes firing the same slot store it once (the second publish is a duplicate of
 * the first, within the queue's dedupe window), and only one of them moves the key; a node that dies
 * between the publish and the compare-and-set leaves the slot to the next node, whose publish is again a
 * duplicate. So a slot is published once while at least one node runs, and none is skipped.
 *
 * @module
 */
import type { ConfigEntry, ConfigStore } from '../../ports/config.js';
import type { CallOptions, JsonValue } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { CatchUp, Headers, ScheduleInfo, ScheduleSpec } from '../../ports/queue.js';
import { validateName, validatePositiveInt } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';
import { validateHeaders } from './headers.js';

/** Where schedules live in the config store. */
export const SCHEDULE_PREFIX = 'stowage/queue/schedules/';
/** How often every node looks at the schedules, at most, when no slot is due sooner. */
const POLL_MS = 2_000;
/**
 * A slot at most this old is late, not missed: it is published under every catch-up policy (a node that
 * took over after another died, a slow tick).
 */
export const LATE_MS = 30_000;
/** The most slots one tick publishes for a schedule (catch-up `all`); the rest follow on the next ticks. */
const MAX_SLOTS_PER_TICK = 1_000;
/**
 * A tick that took longer than this since it read a schedule does not publish for it: its read may be
 * older than the queue's dedupe window allows (two minutes by default), and a publish then could repeat a
 * slot another node already published. The next tick reads again.
 */
const STALE_READ_MS = 30_000;
const CATCH_UP: readonly CatchUp[] = ['none', 'last', 'all'];

/** A schedule as stored in its config key. */
interface Stored {
  readonly cron?: string;
  readonly everyMs?: number;
  readonly timezone?: string;
  readonly topic: string;
  /** The payload, base64. */
  readonly payload: string;
  readonly headers: Headers;
  readonly catchUp: CatchUp;
  /** The last slot published (ms since the epoch); the creation time at first. */
  readonly lastSlot: number;
}

/** How the scheduler publishes a slot: to the topic, with the slot's id (a duplicate is fine). */
export type PublishSlot = (topic: string, payload: Uint8Array, headers: Headers, id: string) => Promise<unknown>;

/** Slot times of one schedule. */
interface Slots {
  /** The first slot strictly after `t`. */
  after(t: number): number | undefined;
}

type CronModule = typeof import('croner');
let croner: Promise<CronModule> | undefined;

async function loadCroner(): Promise<CronModule> {
  croner ??= import('croner').catch((err: unknown) => {
    croner = undefined;
    throw new StowageError('UNSUPPORTED', 'cron schedules need the "croner" package: npm install croner@11', { cause: err });
  });
  return croner;
}

async function slotsOf(s: Pick<Stored, 'cron' | 'everyMs' | 'timezone'>): Promise<Slots> {
  if (s.everyMs !== undefined) {
    // Anchored at the epoch, so that every node computes the same slots.
    const every = s.everyMs;
    return { after: (t) => (Math.floor(t / every) + 1) * every };
  }
  const { Cron } = await loadCroner();
  let job: InstanceType<CronModule['Cron']>;
  try {
    job = new Cron(s.cron as string, { timezone: s.timezone, paused: true });
  } catch (err) {
    throw invalid(`cron ${JSON.stringify(s.cron)}${s.timezone === undefined ? '' : ` in ${s.timezone}`} is not valid: ${(err as Error).message}`);
  }
  return {
    after: (t) => {
      const next = job.nextRun(new Date(t));
      return next === null ? undefined : next.getTime();
    },
  };
}

/** Checks a schedule's definition; the stored form without `lastSlot`. */
export async function validateSchedule(name: unknown, spec: unknown): Promise<{ name: string; stored: Omit<Stored, 'lastSlot'> }> {
  validateName(name, 'schedule name');
  if (typeof spec !== 'object' || spec === null) throw invalid('schedule must be an object: { cron | everyMs, topic, payload?, … }');
  const s = spec as ScheduleSpec;
  if ((s.cron === undefined) === (s.everyMs === undefined)) throw invalid('schedule takes one of cron or everyMs');
  if (s.cron !== undefined && (typeof s.cron !== 'string' || s.cron.length === 0 || s.cron.length > 256)) throw invalid('cron must be a cron expression');
  if (s.everyMs !== undefined) validatePositiveInt(s.everyMs, 'everyMs', { min: 1_000, max: 366 * 86_400_000 });
  if (s.timezone !== undefined) {
    if (s.cron === undefined) throw invalid('timezone applies to cron schedules only');
    if (typeof s.timezone !== 'string') throw invalid('timezone must be an IANA time zone name');
    try {
      new Intl.DateTimeFormat('en', { timeZone: s.timezone });
    } catch {
      throw invalid(`timezone ${JSON.stringify(s.timezone)} is not a known time zone`);
    }
  }
  validateName(s.topic, 'topic');
  const catchUp = s.catchUp ?? 'last';
  if (!CATCH_UP.includes(catchUp)) throw invalid(`catchUp must be one of ${CATCH_UP.join(', ')}`);
  let payload: Uint8Array;
  if (s.payload === undefined) payload = new Uint8Array();
  else if (typeof s.payload === 'string') payload = Buffer.from(s.payload, 'utf8');
  else if (s.payload instanceof Uint8Array) payload = s.payload;
  else throw invalid('payload must be a Uint8Array or a string');
  const stored: Omit<Stored, 'lastSlot'> = {
    ...(s.cron === undefined ? { everyMs: s.everyMs as number } : { cron: s.cron }),
    ...(s.timezone === undefined ? {} : { timezone: s.timezone }),
    topic: s.topic,
    payload: Buffer.from(payload).toString('base64'),
    headers: validateHeaders(s.headers),
    catchUp,
  };
  // A bad cron expression is refused now, not at its first slot.
  await slotsOf(stored);
  return { name: name as string, stored };
}

function parseStored(value: JsonValue): Stored | undefined {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const v = value as Partial<Stored>;
  if (typeof v.topic !== 'string' || typeof v.payload !== 'string' || typeof v.lastSlot !== 'number') return undefined;
  if (v.cron === undefined && v.everyMs === undefined) return undefined;
  return v as Stored;
}

/** Whether two definitions publish the same thing at the same slots (then `lastSlot` carries over). */
function sameTiming(a: Omit<Stored, 'lastSlot'>, b: Stored): boolean {
  return a.cron === b.cron && a.everyMs === b.everyMs && a.timezone === b.timezone;
}

/**
 * The schedules of one queue: define, list, remove, and the loop that publishes their slots. The loop
 * runs from the first {@link Scheduler.define} on this node until {@link Scheduler.close}.
 */
export class Scheduler {
  readonly #config: ConfigStore;
  readonly #publish: PublishSlot;
  readonly #onError: (err: unknown) => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #ticking: Promise<void> | undefined;
  #closed = false;

  constructor(config: ConfigStore, publish: PublishSlot, onError: (err: unknown) => void) {
    this.#config = config;
    this.#publish = publish;
    this.#onError = onError;
  }

  /** Creates or updates a schedule and makes this node take part in publishing its slots. */
  async define(name: string, stored: Omit<Stored, 'lastSlot'>, options?: CallOptions): Promise<void> {
    const key = SCHEDULE_PREFIX + name;
    for (;;) {
      const current = await this.#config.get(key, options);
      const old = current === undefined ? undefined : parseStored(current.value);
      // A new schedule starts now: no slot before it was defined is caught up. An update that keeps the
      // timing keeps its place; one that changes it starts again from now.
      const lastSlot = old !== undefined && sameTiming(stored, old) ? old.lastSlot : Date.now();
      try {
        await this.#config.put(key, { ...stored, lastSlot } as unknown as JsonValue, { ...options, ifRevision: current?.revision ?? 0 });
        break;
      } catch (err) {
        // Another node moved it meanwhile: read again.
        if (!(StowageError.is(err) && err.code === 'CONFLICT')) throw err;
      }
    }
    this.#start();
  }

  /** Every schedule, sorted by name. */
  async list(options?: CallOptions): Promise<ScheduleInfo[]> {
    const snapshot = await this.#config.list(SCHEDULE_PREFIX, options);
    const out: ScheduleInfo[] = [];
    for (const entry of snapshot.entries) {
      const s = parseStored(entry.value);
      if (s === undefined) continue;
      let nextSlot: number | undefined;
      try {
        nextSlot = (await slotsOf(s)).after(Math.max(s.lastSlot, Date.now() - 1));
      } catch {
        nextSlot = undefined;
      }
      out.push(
        Object.freeze({
          name: entry.key.slice(SCHEDULE_PREFIX.length),
          cron: s.cron,
          everyMs: s.everyMs,
          timezone: s.timezone,
          topic: s.topic,
          catchUp: s.catchUp,
          lastSlot: new Date(s.lastSlot),
          nextSlot: nextSlot === undefined ? undefined : new Date(nextSlot),
        }),
      );
    }
    return out;
  }

  /** Removes a schedule; false when there was none. */
  async remove(name: string, options?: CallOptions): Promise<boolean> {
    const result = await this.#config.delete(SCHEDULE_PREFIX + name, options);
    return result.deleted;
  }

  #start(): void {
    if (this.#running || this.#closed) return;
    this.#running = true;
    this.#arm(0);
  }

  #arm(ms: number): void {
    if (this.#closed) return;
    clearTimeout(this.#timer);
    // Unref'd: schedules alone do not keep a process alive (its consumers and servers do).
    this.#timer = setTimeout(() => {
      this.#ticking = this.#tick().then(
        (wait) => this.#arm(wait),
        (err: unknown) => {
          this.#onError(err);
          this.#arm(POLL_MS);
        },
      );
    }, ms).unref();
  }

  /** Publishes what is due; resolves with how long to wait before the next tick. */
  async #tick(): Promise<number> {
    const snapshot = await this.#config.list(SCHEDULE_PREFIX);
    let wait = POLL_MS;
    for (const entry of snapshot.entries) {
      if (this.#closed) return wait;
      try {
        const next = await this.#fire(entry, performance.now());
        if (next !== undefined) wait = Math.min(wait, Math.max(0, next - Date.now()));
      } catch (err) {
        this.#onError(err);
      }
    }
    return wait;
  }

  /** Publishes the due slots of one schedule; resolves with its next slot time. */
  async #fire(entry: ConfigEntry, readAt: number): Promise<number | undefined> {
    const s = parseStored(entry.value);
    if (s === undefined) return undefined;
    const slots = await slotsOf(s);
    const now = Date.now();
    // Slots at most LATE_MS old are late (a slow tick, a node that took over): every one is published, under
    // every policy, or a loaded node that ticks two slots late would skip one. Older ones were missed while no
    // node ran: the catch-up policy says which of them are published.
    const missed: number[] = [];
    const late: number[] = [];
    let skipTo: number | undefined;
    for (let t = slots.after(s.lastSlot); t !== undefined && t <= now; t = slots.after(t)) {
      skipTo = t;
      if (now - t <= LATE_MS) late.push(t);
      else {
        missed.push(t);
        // Only `all` needs every missed one; `last` needs the newest.
        if (s.catchUp !== 'all' && missed.length > 1) missed.shift();
      }
      if (missed.length + late.length >= MAX_SLOTS_PER_TICK) break;
    }
    const fire = [...(s.catchUp === 'none' ? [] : missed), ...late];
    let revision = entry.revision;
    const name = entry.key.slice(SCHEDULE_PREFIX.length);
    const payload = Buffer.from(s.payload, 'base64');
    for (const slot of fire) {
      if (performance.now() - readAt > STALE_READ_MS) return undefined;
      await this.#publish(s.topic, payload, s.headers, `schedule-${name}-${slot}`);
      const moved = await this.#advance(entry.key, s, slot, revision);
      if (moved === undefined) return undefined;
      revision = moved;
    }
    // Missed slots that the policy does not publish are passed over.
    if (skipTo !== undefined && fire.at(-1) !== skipTo && (await this.#advance(entry.key, s, skipTo, revision)) === undefined) return undefined;
    return slots.after(Math.max(now, skipTo ?? 0));
  }

  /** Moves a schedule's `lastSlot`; undefined when another node moved it first. */
  async #advance(key: string, s: Stored, slot: number, revision: number): Promise<number | undefined> {
    try {
      return (await this.#config.put(key, { ...s, lastSlot: slot } as unknown as JsonValue, { ifRevision: revision })).revision;
    } catch (err) {
      if (StowageError.is(err) && (err.code === 'CONFLICT' || err.code === 'NOT_FOUND')) return undefined;
      throw err;
    }
  }

  /** Stops this node's loop (the schedules stay, for the other nodes). */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    await this.#ticking?.catch(() => undefined);
  }
}
