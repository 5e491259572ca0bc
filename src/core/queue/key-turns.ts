/**
 * Ordering keys across processes: one message of a key at a time, in publish order, across every consumer
 * of a group — for queues whose groups can be shared by several processes (every driver that does not
 * declare `QueueDriver.singleProcess`), when the queue has a config store with leases.
 *
 * The design, and what it costs:
 *
 * - **A key sequence, given at publish.** The publisher numbers the messages of each (topic, key) 1, 2, 3, …
 *   with a compare-and-set on one config key (`stowage/queue/keys/<topic>/<hash>`, `{ last }`) and
 *   stores the number in the reserved header `stowage-key-seq`. The topic's own sequence cannot serve: two
 *   consumers that receive messages 5 and 6 of a key at the same moment cannot tell, from the topic sequence
 *   alone, whether a message of the key lies between them. A publisher remembers the revision it wrote, so a
 *   key published from one process costs one round trip per publish (two on a conflict with another one).
 * - **A done-mark per group, moved after the handler, before the ack.**
 *   `stowage/queue/turns/<topic>/<group>/<hash>/done` (`{ done, skipped }`) says which key sequence the group finished last. A consumer runs message n of a key
 *   only when the mark is n − 1; a message at or below the mark was already handled (its ack was lost) and
 *   is acked without running again.
 * - **A lock per running key, bound to a lease.** Before it runs message n, a processor writes
 *   `…/<hash>/run` (`{ seq: n, state }`) with compare-and-set, bound to its lease (a lock whose message the
 *   mark has passed is spent: moving the mark frees it, without a delete): a
 *   second delivery of the same message (past `ackWait`) cannot run beside the first. When the handler fails
 *   and the message is nak'ed with a backoff the lock stays, in state `backoff`: later messages of the key
 *   wait for the retry, and whichever processor receives the retry takes the lock over. A processor that is
 *   SIGKILLed loses its lease within the lease's TTL (its locks vanish) and its deliveries come back after
 *   `ackWait`: the key moves on on the others, with nothing skipped.
 * - **Gaps.** A number may never arrive: its publisher died between the reservation and the publish, the
 *   message was deduplicated (the publisher then gives the number back, or lists it as void), removed by
 *   retention, sought past, or dead-lettered before a handler saw it. A key whose mark and lock have not moved
 *   for {@link KeyTurns.gapMs} (2 × ackWait + the lease's TTL) while a later message waits skips the missing numbers;
 *   they are recorded, so a skipped message that still turns up runs (late) rather than being acked unseen.
 *   A delayed keyed message holds its key for at most that long as well.
 * - **A lost lease.** A processor cut off from the config store for longer than its lease's TTL loses its
 *   locks; should its handler still run past `ackWait` (that same message redelivered) or past the gap time
 *   (the next one), another processor may start a message of the key beside it.
 *
 * - **Settled elsewhere.** `consume` and `processBatch` take no turns, but settling a keyed message there
 *   moves its mark too ({@link KeyMarks}), so a processor waiting for the key's next message is not held up.
 * - **Pruned when still.** A key that stood still with every group's mark at its last number loses its entries
 *   (key-pruner.ts); a record made again numbers on from a per-topic floor, above every old number, and its
 *   first message carries the bound (`stowage-key-base`), so that a group without a mark runs it at once.
 *
 * Per message of a key, a consumer pays one put (the lock) and one put (the mark) — two round trips to the
 * config store, against none on the single-process path — plus one list (mark and lock) when it does not know
 * them: a key it has not run lately, or a stale picture (the lock's compare-and-set then conflicts). What it
 * knows comes from its lists, its writes and a watch on the group's turns. Waiting messages are held
 * (touched); they look again as soon as that watch shows a change to their key, and every 10–200 ms besides
 * (a watch may start late or break).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { ConfigEntry, ConfigStore, Lease } from '../../ports/config.js';
import type { JsonValue } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import type { CoreDelivery } from './delivery.js';
import { HEADER_KEY_BASE, HEADER_KEY_SEQ, keyBaseOf, keySeqOf } from './headers.js';

/** Where ordering keys keep their publish sequences in the config store. */
export const KEYS_PREFIX = 'stowage/queue/keys/';
/** Where groups keep their progress on ordering keys (one folder per group, so that a group can be watched alone). */
export const TURNS_PREFIX = 'stowage/queue/turns/';
/** Where each topic keeps the highest key sequence of the keys pruned from it (`{ floor }`). */
export const FLOORS_PREFIX = 'stowage/queue/key-floors/';
/** The most numbers a key's publisher record lists as void (given out, never published). */
const MAX_VOID = 64;
/** The most skipped ranges a done-mark keeps; past it the two oldest merge (a message may then run twice, never not at all). */
const MAX_SKIPPED = 32;
/** The most reservations remembered per process (their revisions save a read). */
const MAX_KNOWN = 10_000;
/** The most keys whose mark and lock a processor keeps knowing (see {@link KeyTurns}). */
const MAX_KNOWN_KEYS = 10_000;
/** How often a waiting key looks at its mark again: from the first, doubling while nothing moves, to the last. */
const POLL_FIRST_MS = 10;
const POLL_MAX_MS = 200;
/** See {@link KeyTurns.gapMs}: the extra wait per further missing number, and for how many numbers at most. */
const GAP_STEP_MS = 1_000;
const GAP_STEPS = 30;
/** The most compare-and-set conflicts one reservation retries. */
const MAX_CONFLICTS = 50;

const ignore = (): undefined => undefined;

function isCode(err: unknown, ...codes: string[]): boolean {
  return StowageError.is(err) && codes.includes(err.code);
}

/** The config key segment of an ordering key: its SHA-256 (a key may hold "/" or any character), base64url. */
function keyHash(key: string): string {
  return createHash('sha256').update(key).digest('base64url').slice(0, 32);
}

/** The config key of a key's publisher record. */
export function seqKey(topic: string, key: string): string {
  return `${KEYS_PREFIX}${topic}/${keyHash(key)}`;
}

/** The config folder of a group's mark and lock for a key. */
export function groupPrefix(topic: string, key: string, group: string): string {
  return `${TURNS_PREFIX}${topic}/${group}/${keyHash(key)}/`;
}

/** The config key of a topic's floor (see {@link FLOORS_PREFIX}). */
export function floorKey(topic: string): string {
  return `${FLOORS_PREFIX}${topic}`;
}

/** A topic's floor: 0 when it has none. */
export function parseFloor(entry: ConfigEntry | undefined): number {
  return safeInt((entry?.value as { floor?: unknown } | undefined)?.floor) ?? 0;
}

/** A key's publisher record. */
export interface SeqRecord {
  /** The last number given out. */
  readonly last: number;
  /** Numbers given out that were never published (deduplicated). */
  readonly void: readonly number[];
  /** Where the numbering started when the record was made after the key was pruned (see {@link KeyPruner}). */
  readonly base?: number;
}

function safeInt(v: unknown): number | undefined {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0 ? v : undefined;
}

/** A key's publisher record as stored (an empty one when there is none). */
export function parseSeq(entry: ConfigEntry | undefined): SeqRecord {
  const v = entry?.value as Partial<SeqRecord> | undefined;
  const base = safeInt(v?.base);
  const record = { last: safeInt(v?.last) ?? 0, void: Array.isArray(v?.void) ? v.void.filter((n) => typeof n === 'number') : [] };
  return base === undefined ? record : { ...record, base };
}

/** Numbers given out by {@link KeySequencer.reserve}. */
export interface Reservation {
  /** The first of them. */
  readonly first: number;
  /** The key's base when the first is the first number after it (see {@link HEADER_KEY_BASE}). */
  readonly base: number | undefined;
}

/** The reserved headers of message `n` of a reservation: its key sequence, and the key's base on the first after it. */
export function keyNumberHeaders(reservation: Reservation, n: number): Record<string, string> {
  const { base } = reservation;
  return base !== undefined && n === base + 1 ? { [HEADER_KEY_SEQ]: String(n), [HEADER_KEY_BASE]: String(base) } : { [HEADER_KEY_SEQ]: String(n) };
}

/** The numbering of keyed messages at publish (see the module comment). */
export class KeySequencer {
  readonly #config: ConfigStore;
  /** The last record written or read per key, with its revision: a put on it usually succeeds at once. */
  readonly #known = new Map<string, { record: SeqRecord; revision: number }>();
  /** Reservations in flight per key: one at a time, so that this process never conflicts with itself. */
  readonly #chains = new Map<string, Promise<unknown>>();

  constructor(config: ConfigStore) {
    this.#config = config;
  }

  /** Gives out `count` consecutive numbers of `key` in `topic`. */
  reserve(topic: string, key: string, count: number, signal: AbortSignal): Promise<Reservation> {
    return this.#chained(seqKey(topic, key), (k) =>
      this.#update(topic, k, signal, (r) => ({ ...r, last: r.last + count })).then((r) => {
        const first = r.last - count + 1;
        return { first, base: r.base === first - 1 ? r.base : undefined };
      }),
    );
  }

  /**
   * A reserved number that was not published (the publish was a duplicate): given back when it is still
   * the last, else listed as void so that consumers skip it at once. Best effort: a failure leaves a gap
   * that consumers skip after their gap time.
   */
  async giveBack(topic: string, key: string, n: number, signal: AbortSignal): Promise<void> {
    await this.#chained(seqKey(topic, key), (k) =>
      this.#update(topic, k, signal, (r) => (r.last === n ? { ...r, last: n - 1 } : { ...r, void: [...r.void, n].slice(-MAX_VOID) })),
    ).catch(ignore);
  }

  /** The numbers of `key` listed as void. */
  async voided(topic: string, key: string): Promise<readonly number[]> {
    return parseSeq(await this.#config.get(seqKey(topic, key))).void;
  }

  #chained<T>(k: string, fn: (k: string) => Promise<T>): Promise<T> {
    const run = (this.#chains.get(k) ?? Promise.resolve()).then(ignore, ignore).then(() => fn(k));
    this.#chains.set(k, run);
    const forget = (): void => {
      if (this.#chains.get(k) === run) this.#chains.delete(k);
    };
    run.then(forget, forget);
    return run;
  }

  /**
   * Changes a key's record by compare-and-set. A record made anew numbers on from the topic's floor, read after the record was seen missing: a pruned key's record is deleted only
   * once the floor is at or above its last number, so the new numbers are above every earlier one.
   */
  async #update(topic: string, k: string, signal: AbortSignal, change: (r: SeqRecord) => SeqRecord): Promise<SeqRecord> {
    for (let conflicts = 0; ; conflicts++) {
      let known = this.#known.get(k);
      if (known === undefined) {
        const entry = await this.#config.get(k, { signal });
        let record = parseSeq(entry);
        if (entry === undefined) {
          const floor = parseFloor(await this.#config.get(floorKey(topic), { signal }));
          if (floor > 0) record = { last: floor, void: [], base: floor };
        }
        known = { record, revision: entry?.revision ?? 0 };
      }
      const record = change(known.record);
      try {
        const { revision } = await this.#config.put(k, record as unknown as JsonValue, { ifRevision: known.revision, signal });
        this.#known.delete(k);
        this.#known.set(k, { record, revision });
        if (this.#known.size > MAX_KNOWN) this.#known.delete(this.#known.keys().next().value as string);
        return record;
      } catch (err) {
        this.#known.delete(k);
        if (!isCode(err, 'CONFLICT')) throw err;
        if (conflicts >= MAX_CONFLICTS) {
          throw new StowageError('UNAVAILABLE', `queue: the sequence of an ordering key kept changing under ${MAX_CONFLICTS} attempts`, { retryable: true });
        }
        // Other publishers of the key write too: a random pause spreads the next attempts.
        if (conflicts > 2) await new Promise((resolve) => setTimeout(resolve, Math.random() * 5 * conflicts));
      }
    }
  }
}

/** A group's progress on a key. */
export interface Mark {
  /** The highest key sequence finished, every lower one finished or skipped. */
  readonly done: number;
  /** Ranges [from, to] of numbers passed over while missing: such a message still runs if it turns up. */
  readonly skipped: ReadonlyArray<readonly [number, number]>;
}

/** A group's mark on a key as stored (nothing done when there is none). */
export function parseMark(entry: ConfigEntry | undefined): Mark {
  const v = entry?.value as Partial<Mark> | undefined;
  const done = typeof v?.done === 'number' && Number.isSafeInteger(v.done) ? v.done : 0;
  const skipped = Array.isArray(v?.skipped) ? v.skipped.filter((r): r is [number, number] => Array.isArray(r) && r.length === 2) : [];
  return { done, skipped };
}

function isSkipped(mark: Mark, n: number): boolean {
  return mark.skipped.some(([from, to]) => n >= from && n <= to);
}

/** The mark once message `n` is finished: moved up to it, with what it passed over recorded as skipped. */
function advance(mark: Mark, n: number): Mark {
  let skipped = mark.skipped.flatMap(([from, to]): Array<[number, number]> => {
    if (n < from || n > to) return [[from, to]];
    const out: Array<[number, number]> = [];
    if (from < n) out.push([from, n - 1]);
    if (n < to) out.push([n + 1, to]);
    return out;
  });
  if (n > mark.done + 1) skipped.push([mark.done + 1, n - 1]);
  while (skipped.length > MAX_SKIPPED) {
    const [a, b] = skipped as [[number, number], [number, number]];
    skipped = [[a[0], b[1]], ...skipped.slice(2)];
  }
  return { done: Math.max(mark.done, n), skipped };
}

/**
 * Moves a group's done-mark (at `markKey`) past the key sequences `seqs`, by compare-and-set from `known`
 * (the mark as last read, with its revision), reading it again on a conflict. Resolves with the mark written.
 */
async function moveMark(config: ConfigStore, markKey: string, known: { mark: Mark; revision: number } | undefined, seqs: readonly number[]): Promise<ConfigEntry> {
  let mark: Mark;
  let revision: number;
  if (known === undefined) {
    const entry = await config.get(markKey);
    mark = parseMark(entry);
    revision = entry?.revision ?? 0;
  } else ({ mark, revision } = known);
  for (let conflicts = 0; ; conflicts++) {
    const moved = [...seqs].sort((a, b) => a - b).reduce(advance, mark) as unknown as JsonValue;
    try {
      const written = await config.put(markKey, moved, { ifRevision: revision });
      return { key: markKey, value: moved, revision: written.revision, createRevision: written.revision };
    } catch (err) {
      if (!isCode(err, 'CONFLICT') || conflicts >= MAX_CONFLICTS) throw err;
      const entry = await config.get(markKey);
      mark = parseMark(entry);
      revision = entry?.revision ?? 0;
    }
  }
}

/**
 * The done-marks of one group for messages settled without waiting for their key's turn — by `consume`
 * and `processBatch`, which hand messages out as they come: settling a keyed message there (an ack, or a
 * move to the dead-letter topic) moves its key's mark past it as {@link KeyTurns.finish} does, so that a
 * processor of the same group waiting for the key's next message runs it at once rather than after the
 * gap time. It takes no lock: such messages are not ordered across consumers (see the README).
 */
export class KeyMarks {
  readonly #config: ConfigStore;
  readonly #topic: string;
  readonly #group: string;
  readonly #onError: (err: unknown) => void;
  /** Deliveries whose key's mark was moved past them already (a batch moves them together, before their acks). */
  readonly #passed = new WeakSet<CoreDelivery>();

  constructor(config: ConfigStore, topic: string, group: string, onError: (err: unknown) => void) {
    this.#config = config;
    this.#topic = topic;
    this.#group = group;
    this.#onError = onError;
  }

  /** Whether settling `delivery` moves a mark: a keyed message numbered at publish, not passed yet. */
  wants(delivery: CoreDelivery): boolean {
    return delivery.key !== undefined && keySeqOf(delivery.storedHeaders) !== undefined && !this.#passed.has(delivery);
  }

  /**
   * Moves the marks of the keys of `deliveries` past them (one compare-and-set per key). Never throws: a
   * mark that could not be moved is reported, and the key's next message then waits the gap time.
   */
  async pass(deliveries: readonly CoreDelivery[]): Promise<void> {
    const byKey = new Map<string, number[]>();
    for (const d of deliveries) {
      if (!this.wants(d)) continue;
      this.#passed.add(d);
      const key = d.key as string;
      let seqs = byKey.get(key);
      if (seqs === undefined) byKey.set(key, (seqs = []));
      seqs.push(keySeqOf(d.storedHeaders) as number);
    }
    await Promise.all(
      [...byKey].map(([key, seqs]) =>
        moveMark(this.#config, groupPrefix(this.#topic, key, this.#group) + 'done', undefined, seqs).catch((err: unknown) => this.#onError(err)),
      ),
    );
  }
}

/** The lock of a key's running message. */
export interface Lock {
  readonly seq: number;
  /** `running`: a handler runs it; `backoff`: it failed and was given back until its retry. */
  readonly state: 'running' | 'backoff';
  /** For `backoff`: when the retry should have come by (the writer's clock, ms since the epoch). */
  readonly until?: number;
}

/** A key's lock as stored; undefined when there is none. */
export function parseLock(entry: ConfigEntry | undefined): Lock | undefined {
  const v = entry?.value as Partial<Lock> | undefined;
  if (typeof v?.seq !== 'number') return undefined;
  if (v.state !== 'backoff') return { seq: v.seq, state: 'running' };
  return { seq: v.seq, state: 'backoff', until: typeof v.until === 'number' ? v.until : 0 };
}

/** Records what is known of a key's `done` or `run` entry at store revision `at` (undefined: absent), unless newer is known. */
function learn(known: Known | undefined, name: 'done' | 'run', entry: ConfigEntry | undefined, at: number): void {
  if (known === undefined) return;
  if (name === 'done' && at > known.doneAt) {
    known.done = entry;
    known.doneAt = at;
  } else if (name === 'run' && at > known.runAt) {
    known.run = entry;
    known.runAt = at;
  }
}

/** What {@link KeyTurns.enter} tells about a delivery: run it now, or it was already handled (ack it). */
export type Turn = 'run' | 'done';

/** A delivery waiting for its key's turn in this processor. */
interface Waiter {
  readonly seq: number;
  /** The key's base when the message is the first numbered after the key was pruned. */
  readonly base: number | undefined;
  readonly delivery: CoreDelivery;
  readonly onTurn: (turn: Turn) => void;
}

/** One key in this processor. */
interface KeyState {
  readonly key: string;
  /** The key's segment in the config store. */
  readonly hash: string;
  /** Deliveries of the key, lowest key sequence first. */
  readonly waiting: Waiter[];
  /** A look at the mark, or a run, is in progress. */
  busy: boolean;
  timer: NodeJS.Timeout | undefined;
  pollMs: number;
  /** The key's state as last seen (mark and lock revisions), and since when (this process's clock). */
  seen: string;
  since: number;
  /** The watch saw the key change while it was busy: looked at again as soon as it is not. */
  woken: boolean;
}

/**
 * A key's mark and lock as last known in this processor — listed, written by it, or seen by its watch —
 * each with the store revision it is known at (a change with a higher one replaces it). It lets a
 * processor take its turn without listing them first: the lock is taken by compare-and-set on the known
 * lock's revision, so a stale picture only costs a conflict and a list. Marks only rise (numbers are never
 * given twice, even across a prune), so a message at or below a known mark was handled whatever came since.
 */
interface Known {
  done: ConfigEntry | undefined;
  doneAt: number;
  run: ConfigEntry | undefined;
  runAt: number;
}

/** A running message's turn: what finishing it writes against. */
interface Held {
  readonly state: KeyState;
  readonly seq: number;
  readonly mark: Mark;
  readonly markRevision: number;
  readonly lockRevision: number;
}

/** Options of {@link KeyTurns}. */
export interface KeyTurnsOptions {
  /** The processor's ackWait: a crashed consumer's delivery comes back within it. */
  readonly ackWaitMs: number;
  /** The longest delay before a failed message is delivered again (the processor's backoff). */
  readonly maxBackoffMs: number;
  /** Where failures to read or write the turns go (they are retried). */
  readonly onError: (err: unknown) => void;
  /** Makes what prunes the keys this processor finishes (see key-pruner.ts); none: they are kept. */
  readonly pruner?: (turns: KeyTurns) => Pruning;
}

/** What prunes finished keys: told of each key finished with nothing of it waiting, closed with the processor. */
export interface Pruning {
  /** `key` was finished here and nothing of it waits here. */
  note(key: string): void;
  /** The processor stops. */
  close(): void;
}

/**
 * The turns of ordering keys for one processor (see the module comment): {@link KeyTurns.enter} queues a
 * delivery until its key's turn; {@link KeyTurns.finish} moves the key on after the handler.
 */
export class KeyTurns {
  readonly #config: ConfigStore;
  readonly #sequencer: KeySequencer;
  readonly #topic: string;
  readonly #group: string;
  readonly #onError: (err: unknown) => void;
  readonly #ttlMs: number;
  /** How long after a failure its retry should have come (the longest backoff + ackWait). */
  readonly #retryWithinMs: number;
  /** How long a key with a later message waiting may stand still before missing numbers are skipped. */
  readonly gapMs: number;
  readonly #keys = new Map<string, KeyState>();
  /** The same states by their config key segment, for the watch. */
  readonly #byHash = new Map<string, KeyState>();
  /** Stops the watch of the group's turns, while one runs. */
  #watching: AbortController | undefined;
  /** Whether that watch has delivered a change (then it, not the polls, is what wakes a waiting key). */
  #watchLive = false;
  /**
   * What is known of the mark and lock of the keys this processor ran lately, by key segment, oldest first
   * (kept up to date by the watch): the next message of such a key, here, takes its turn without a list.
   */
  readonly #known = new Map<string, Known>();
  readonly #held = new Map<CoreDelivery, Held>();
  #lease: Promise<Lease> | undefined;
  /** The id of the live lease, once granted. */
  #leaseNow: string | undefined;
  #closed = false;
  readonly #pruner: Pruning | undefined;

  constructor(config: ConfigStore, sequencer: KeySequencer, topic: string, group: string, options: KeyTurnsOptions) {
    this.#config = config;
    this.#sequencer = sequencer;
    this.#topic = topic;
    this.#group = group;
    this.#onError = options.onError;
    // Short enough that a SIGKILLed holder frees its keys soon, long enough for a keep-alive to get through.
    this.#ttlMs = Math.min(Math.max(options.ackWaitMs, 2_000), 15_000);
    this.gapMs = 2 * options.ackWaitMs + this.#ttlMs;
    this.#retryWithinMs = options.maxBackoffMs + options.ackWaitMs;
    this.#pruner = options.pruner?.(this);
  }

  /** Queues a delivery of `key` with key sequence `seq`; `onTurn` is called once when it may run (or was already done). */
  enter(key: string, seq: number, delivery: CoreDelivery, onTurn: (turn: Turn) => void): void {
    let state = this.#keys.get(key);
    if (state === undefined) {
      state = { key, hash: keyHash(key), waiting: [], busy: false, timer: undefined, pollMs: POLL_FIRST_MS, seen: '', since: performance.now(), woken: false };
      this.#keys.set(key, state);
      this.#byHash.set(state.hash, state);
    }
    this.#watch();
    const w = state.waiting;
    let i = w.length;
    while (i > 0 && (w[i - 1] as Waiter).seq > seq) i--;
    w.splice(i, 0, { seq, base: keyBaseOf(delivery.storedHeaders), delivery, onTurn });
    this.#look(state);
  }

  /**
   * After the handler, before the ack: moves the key's mark past the delivery (or, when it was nak'ed for a
   * retry, keeps the key locked in `backoff`) and lets the next message of the key go. Never throws.
   */
  async finish(delivery: CoreDelivery): Promise<void> {
    const held = this.#held.get(delivery);
    if (held === undefined) return;
    this.#held.delete(delivery);
    const prefix = groupPrefix(this.#topic, held.state.key, this.#group);
    const report = (err: unknown): void => {
      // A conflict: taken over, or gone with a lost lease — not ours any more.
      if (!isCode(err, 'CONFLICT', 'NOT_FOUND')) this.#onError(err);
    };
    if (delivery.settledAs === 'nak') {
      // What follows is rare: known afresh from the next list.
      this.#known.delete(held.state.hash);
      // Kept locked for the retry. Should this fail, the lock stays `running` under this processor's lease,
      // which this processor takes over when the retry comes back to it (see #try).
      await this.#leaseId()
        .then((lease) => this.#config.put(prefix + 'run', { seq: held.seq, state: 'backoff', until: Date.now() + this.#retryWithinMs }, { ifRevision: held.lockRevision, lease }))
        .catch(report);
    } else {
      // Moving the mark past the lock's message frees the lock (see #try): one write, not two. Should the
      // mark not move, the lock is deleted: the key then waits its gap time, never for ever.
      const moved = await this.#moveMark(prefix, held).then(
        (mark) => {
          learn(this.#known.get(held.state.hash), 'done', mark, mark.revision);
          return true;
        },
        (err: unknown) => {
          report(err);
          return false;
        },
      );
      if (!moved) {
        this.#known.delete(held.state.hash);
        await this.#config.delete(prefix + 'run', { ifRevision: held.lockRevision }).catch(report);
      } else if (held.state.waiting.length === 0) this.#pruner?.note(held.state.key);
    }
    held.state.busy = false;
    this.#look(held.state);
  }

  #moveMark(prefix: string, held: Held): Promise<ConfigEntry> {
    // Only the lock's holder moves the mark; a conflict means a lost lease (or a consumer) let another in.
    return moveMark(this.#config, prefix + 'done', { mark: held.mark, revision: held.markRevision }, [held.seq]);
  }

  /**
   * Watches the group's turns (while this processor runs) so that a waiting key looks again at once when its
   * mark or lock changes. Best effort: when the watch fails, the polls go on and the next delivery starts it again.
   */
  #watch(): void {
    if (this.#watching !== undefined || this.#closed || !this.#config.capabilities.has('watch')) return;
    const stop = new AbortController();
    this.#watching = stop;
    const prefix = `${TURNS_PREFIX}${this.#topic}/${this.#group}/`;
    void (async () => {
      try {
        for await (const ev of this.#config.watch(prefix, { signal: stop.signal })) {
          const [hash, name] = ev.key.slice(prefix.length).split('/') as [string, string | undefined];
          if (name === 'done' || name === 'run') learn(this.#known.get(hash), name, ev.type === 'put' ? ev : undefined, ev.revision);
          const state = this.#byHash.get(hash);
          if (state === undefined) continue;
          this.#watchLive = true;
          if (state.waiting.length === 0) continue;
          if (state.busy) state.woken = true;
          else this.#look(state, true);
        }
      } catch {
        // The polls go on without it.
      } finally {
        if (this.#watching === stop) {
          this.#watching = undefined;
          this.#watchLive = false;
        }
      }
    })();
  }

  #remember(hash: string, known: Known): void {
    this.#known.delete(hash);
    this.#known.set(hash, known);
    if (this.#known.size > MAX_KNOWN_KEYS) this.#known.delete(this.#known.keys().next().value as string);
  }

  #forget(state: KeyState): void {
    this.#keys.delete(state.key);
    this.#byHash.delete(state.hash);
  }

  /** Stops looking: every delivery still waiting, to be given back to the group. */
  drain(): CoreDelivery[] {
    this.#closed = true;
    this.#watching?.abort();
    const out: CoreDelivery[] = [];
    for (const state of this.#keys.values()) {
      clearTimeout(state.timer);
      out.push(...state.waiting.map((w) => w.delivery));
      state.waiting.length = 0;
    }
    this.#keys.clear();
    this.#byHash.clear();
    return out;
  }

  /** Ends the lease (the locks this processor still holds go with it). Call after the running handlers ended. */
  /** Whether `key` has deliveries waiting or running in this processor. */
  active(key: string): boolean {
    return this.#keys.has(key);
  }

  async close(): Promise<void> {
    this.#pruner?.close();
    this.drain();
    const lease = this.#lease;
    this.#lease = undefined;
    if (lease !== undefined) await lease.then((l) => l.revoke()).catch(ignore);
  }

  async #leaseId(): Promise<string> {
    let lease = this.#lease;
    if (lease !== undefined) {
      const current = await lease.catch(() => undefined);
      if (current === undefined || current.lost.aborted) lease = undefined;
    }
    if (lease === undefined) {
      lease = this.#config.lease(this.#ttlMs);
      this.#lease = lease;
      lease.catch(() => {
        if (this.#lease === lease) this.#lease = undefined;
      });
    }
    const { id } = await lease;
    this.#leaseNow = id;
    return id;
  }

  /**
   * Looks whether the first waiting delivery of a key may run; looks again later when not. `viaWatch`: the
   * watch just told what changed, so what is known is fresh and a wait needs no list to confirm it.
   */
  #look(state: KeyState, viaWatch = false): void {
    if (state.busy || this.#closed) return;
    clearTimeout(state.timer);
    state.timer = undefined;
    if (state.waiting.length === 0) {
      this.#forget(state);
      return;
    }
    state.busy = true;
    state.woken = false;
    this.#try(state, viaWatch).then(
      (moved) => this.#after(state, moved),
      (err: unknown) => {
        if (!isCode(err, 'CONFLICT')) this.#onError(err);
        this.#after(state, false);
      },
    );
  }

  #after(state: KeyState, started: boolean): void {
    if (started) return;
    state.busy = false;
    if (this.#closed || state.waiting.length === 0) {
      if (state.waiting.length === 0) this.#forget(state);
      return;
    }
    // A change seen meanwhile may be what lets it run: looked at again now, on what is known.
    if (state.woken) {
      this.#look(state, true);
      return;
    }
    state.timer = setTimeout(() => this.#look(state), state.pollMs);
    state.pollMs = Math.min(state.pollMs * 2, POLL_MAX_MS);
  }

  /**
   * One look at the key's mark and lock; true when the first waiting delivery got its turn (the key stays
   * busy). What is known of them is tried first: when it lets the delivery run, the lock is taken on it
   * without a list (one round trip instead of two); else, or on a conflict, they are listed.
   */
  async #try(state: KeyState, viaWatch: boolean): Promise<boolean> {
    const prefix = groupPrefix(this.#topic, state.key, this.#group);
    const known = this.#known.get(state.hash);
    const first = state.waiting[0];
    if (known !== undefined && first !== undefined) {
      const { done, run } = known;
      const turn = await this.#judge(state, first, done, run, false);
      if (turn === 'done') return this.#handled(state);
      // The watch's next event looks again (the polls, slower while it runs, stand in should it fail).
      if (turn === 'wait' && viaWatch) return false;
      if (turn === 'run') {
        try {
          return await this.#take(state, prefix, first, done, run);
        } catch (err) {
          if (!isCode(err, 'CONFLICT')) throw err;
          // What was known is stale: listed below.
          this.#known.delete(state.hash);
        }
      }
    }
    const snapshot = await this.#config.list(prefix);
    const doneEntry = snapshot.entries.find((e) => e.key === prefix + 'done');
    const runEntry = snapshot.entries.find((e) => e.key === prefix + 'run');
    this.#remember(state.hash, { done: doneEntry, doneAt: snapshot.revision, run: runEntry, runAt: snapshot.revision });
    const head = state.waiting[0];
    if (head === undefined || this.#closed) return false;
    const turn = await this.#judge(state, head, doneEntry, runEntry, true);
    if (turn === 'done') return this.#handled(state);
    if (turn === 'wait') return false;
    return this.#take(state, prefix, head, doneEntry, runEntry);
  }

  /**
   * Whether `head` may run given the key's mark and lock, or was handled already. `full`: the entries were
   * just listed, so the gap rule applies too (on what is merely known, a wait is checked by a list).
   */
  async #judge(state: KeyState, head: Waiter, doneEntry: ConfigEntry | undefined, runEntry: ConfigEntry | undefined, full: boolean): Promise<Turn | 'wait'> {
    const mark = parseMark(doneEntry);
    const seen = `${doneEntry?.revision ?? 0}/${runEntry?.revision ?? 0}`;
    if (seen !== state.seen) {
      state.seen = seen;
      state.since = performance.now();
      // Without a watch that delivers, a key that moved is looked at again soon.
      if (!this.#watchLive) state.pollMs = POLL_FIRST_MS;
    }
    // Handled already (its ack was lost after the mark moved): acked without running again.
    if (head.seq <= mark.done && !isSkipped(mark, head.seq)) return 'done';
    let lock = parseLock(runEntry);
    // A lock on a message the mark has passed is spent: its holder moved the mark instead of deleting it.
    if (lock !== undefined && lock.seq <= mark.done && !isSkipped(mark, lock.seq)) lock = undefined;
    // So is one from before the key was pruned (its deletion failed).
    if (lock !== undefined && head.base !== undefined && lock.seq <= head.base) lock = undefined;
    // A retry that has not come long after its time (every consumer's prefetch full of later messages of
    // the key, say): the lock no longer holds the key back; it moves on by the gap rule.
    if (lock?.state === 'backoff' && lock.seq !== head.seq && (lock.until ?? 0) < Date.now()) lock = undefined;
    let mine: boolean;
    // A lock on this very message is free to take when it waits for a retry, or when it is this
    // processor's own (its backoff could not be written): not when another process still runs it.
    if (lock !== undefined) mine = lock.seq === head.seq && (lock.state === 'backoff' || (runEntry?.lease !== undefined && runEntry.lease === this.#leaseNow));
    // The first message numbered after the key was pruned goes when the group's mark went with it.
    else
      mine =
        head.seq === mark.done + 1 ||
        isSkipped(mark, head.seq) ||
        (doneEntry === undefined && head.base === head.seq - 1) ||
        (full && (await this.#gapPassed(state, mark, head.seq)));
    return mine ? 'run' : 'wait';
  }

  /** The first waiting delivery was handled already: acked, and the next one looked at. */
  #handled(state: KeyState): boolean {
    const head = state.waiting.shift() as Waiter;
    state.busy = false;
    head.onTurn('done');
    this.#look(state);
    return true;
  }

  /** Takes the key's lock for `head` by compare-and-set on `runEntry`, and lets it run. */
  async #take(state: KeyState, prefix: string, head: Waiter, doneEntry: ConfigEntry | undefined, runEntry: ConfigEntry | undefined): Promise<boolean> {
    const lease = await this.#leaseId();
    const value = { seq: head.seq, state: 'running' };
    const { revision } = await this.#config.put(prefix + 'run', value, { ifRevision: runEntry?.revision ?? 0, lease });
    learn(this.#known.get(state.hash), 'run', { key: prefix + 'run', value, revision, createRevision: runEntry?.createRevision ?? revision, lease }, revision);
    if (this.#closed) {
      await this.#config.delete(prefix + 'run', { ifRevision: revision }).catch(ignore);
      return false;
    }
    // The head may have changed while the lock was written (a lower message of the key arrived): the lock names this one.
    const i = state.waiting.indexOf(head);
    if (i < 0) return false;
    state.waiting.splice(i, 1);
    this.#held.set(head.delivery, { state, seq: head.seq, mark: parseMark(doneEntry), markRevision: doneEntry?.revision ?? 0, lockRevision: revision });
    head.onTurn('run');
    return true;
  }

  /**
   * Whether the numbers between the mark and `seq` may be passed over: all void, or the key stood still for
   * gapMs — one second more per further missing number (up to 30), so that when several processors wait on
   * one gap with different messages, the lowest message goes first.
   */
  async #gapPassed(state: KeyState, mark: Mark, seq: number): Promise<boolean> {
    const missing = seq - mark.done - 1;
    if (performance.now() - state.since >= this.gapMs + Math.min(missing - 1, GAP_STEPS) * GAP_STEP_MS) return true;
    // Looked up only while the key waits on a missing number: deduplicated publishes list theirs as void.
    const voided = new Set(await this.#sequencer.voided(this.#topic, state.key));
    if (missing > voided.size) return false;
    for (let n = mark.done + 1; n < seq; n++) if (!voided.has(n)) return false;
    return true;
  }
}
