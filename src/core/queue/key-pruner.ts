/**
 * Pruning the config entries of ordering keys (see key-turns.ts): a key's publisher record
 * (`stowage/queue/keys/<topic>/<hash>`) and each group's mark and lock (`stowage/queue/turns/<topic>/<group>/<hash>/`)
 * are deleted once the key stood still, so that a service with millions of distinct keys does not grow its
 * config store for ever.
 *
 * When: a processor that finished a key's message, with nothing more of the key waiting with it, looks at
 * the key again after a quiet period (the gap time: an ack lost after the mark moved brings its message back
 * well within it). The key is pruned when every group of the topic that has a mark on it has handled up to
 * the record's last number, with nothing skipped, and no lock on it still runs.
 *
 * How, each step a compare-and-set on the revisions read (so that nothing that moved meanwhile is lost):
 * 1. each group's spent lock and mark are deleted;
 * 2. the topic's floor (`stowage/queue/key-floors/<topic>`, one entry per topic) is raised to at least the
 *    key's last number;
 * 3. the record is deleted.
 * A record made after that numbers on from the floor, above every earlier number of the key, and its first
 * message carries the old numbers' bound (`stowage-key-base`): a group without a mark for the key runs it at
 * once. Should any step fail — a publisher reserved a number meanwhile (step 3 conflicts), a redelivery moved
 * a mark — the marks deleted are written back (create-only) and the key stays as it was: the next message,
 * numbered on from the record, runs at once too.
 *
 * What can still happen, never a loss: a group that had no mark on the key when it was pruned but has
 * messages of it still to come (created since, sought back, behind) waits the gap time before the first
 * message numbered after the prune; and a message redelivered after its key was pruned (an ack lost while
 * no consumer of its group ran for the whole quiet period) runs again, after the gap time.
 *
 * @module
 */
import type { ConfigEntry, ConfigStore } from '../../ports/config.js';
import type { JsonValue } from '../../ports/common.js';
import { StowageError } from '../../ports/errors.js';
import { floorKey, groupPrefix, parseFloor, parseLock, parseMark, parseSeq, seqKey } from './key-turns.js';

/** The most keys one processor keeps waiting to be pruned; past it the oldest are forgotten (left in place). */
const MAX_DUE = 100_000;
/** The most compare-and-set conflicts one raise of a floor retries. */
const MAX_CONFLICTS = 50;

function isCode(err: unknown, ...codes: string[]): boolean {
  return StowageError.is(err) && codes.includes(err.code);
}

/** Options of {@link KeyPruner}. */
export interface KeyPrunerOptions {
  /** How long a key stands still before it is pruned. */
  readonly quietMs: number;
  /** The groups of the topic (those that may hold a mark on a key). */
  readonly groups: () => Promise<readonly string[]>;
  /** Whether a key has messages waiting or running in this processor (it is then left alone). */
  readonly active: (key: string) => boolean;
  /** Where failures go (the key is looked at again after its next message). */
  readonly onError: (err: unknown) => void;
}

/** A group's entries on a key, as read before they are deleted. */
interface GroupEntries {
  readonly prefix: string;
  readonly done: ConfigEntry;
  readonly run: ConfigEntry | undefined;
}

/** Prunes the keys of one topic that a processor of `group` finished (see the module comment). */
export class KeyPruner {
  readonly #config: ConfigStore;
  readonly #topic: string;
  readonly #group: string;
  readonly #options: KeyPrunerOptions;
  /** Keys to look at, and when (`performance.now()`), earliest first. */
  readonly #due = new Map<string, number>();
  #timer: NodeJS.Timeout | undefined;
  #sweeping = false;
  #closed = false;
  /** The topic's groups, as last asked, and when: asked at most once per quiet period. */
  #groups: { readonly names: readonly string[]; readonly at: number } | undefined;

  constructor(config: ConfigStore, topic: string, group: string, options: KeyPrunerOptions) {
    this.#config = config;
    this.#topic = topic;
    this.#group = group;
    this.#options = options;
  }

  /** A key this processor finished, with nothing of it waiting here: pruned after the quiet period if it stays still. */
  note(key: string): void {
    if (this.#closed) return;
    this.#due.delete(key);
    this.#due.set(key, performance.now() + this.#options.quietMs);
    if (this.#due.size > MAX_DUE) this.#due.delete(this.#due.keys().next().value as string);
    this.#arm();
  }

  /** Stops pruning (a prune in progress ends with its current step). */
  close(): void {
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#due.clear();
  }

  #arm(): void {
    if (this.#timer !== undefined || this.#sweeping || this.#closed) return;
    const first = this.#due.values().next();
    if (first.done === true) return;
    this.#timer = setTimeout(() => void this.#sweep(), Math.max(0, first.value - performance.now()));
    // Pruning is housekeeping: it does not keep the process alive.
    this.#timer.unref();
  }

  async #sweep(): Promise<void> {
    this.#timer = undefined;
    this.#sweeping = true;
    try {
      // One key at a time: pruning must not compete with the keys' own traffic.
      for (const [key, at] of this.#due) {
        if (this.#closed || at > performance.now()) break;
        this.#due.delete(key);
        if (this.#options.active(key)) continue;
        await this.prune(key).catch((err: unknown) => this.#options.onError(err));
      }
    } finally {
      this.#sweeping = false;
      this.#arm();
    }
  }

  async #groupNames(): Promise<readonly string[]> {
    const cached = this.#groups;
    if (cached !== undefined && performance.now() - cached.at < this.#options.quietMs) return cached.names;
    const names = [...new Set([...(await this.#options.groups()), this.#group])].sort();
    this.#groups = { names, at: performance.now() };
    return names;
  }

  /**
   * Prunes `key` if it stands still (see the module comment); resolves with whether it was. Exposed for
   * tests; a processor calls it after the quiet period.
   */
  async prune(key: string): Promise<boolean> {
    const recordKey = seqKey(this.#topic, key);
    const record = await this.#config.get(recordKey);
    if (record === undefined) return false;
    const { last } = parseSeq(record);
    const entries: GroupEntries[] = [];
    for (const group of await this.#groupNames()) {
      const prefix = groupPrefix(this.#topic, key, group);
      const { entries: found } = await this.#config.list(prefix);
      const done = found.find((e) => e.key === prefix + 'done');
      const run = found.find((e) => e.key === prefix + 'run');
      if (done === undefined) {
        // This processor's own group has just finished the key: its mark is there unless another pruned it.
        if (group === this.#group || run !== undefined) return false;
        continue;
      }
      const mark = parseMark(done);
      if (mark.done !== last || mark.skipped.length > 0) return false;
      const lock = parseLock(run);
      if (lock !== undefined && lock.seq > mark.done) return false;
      entries.push({ prefix, done, run });
    }
    const deleted: GroupEntries[] = [];
    try {
      for (const e of entries) {
        if (e.run !== undefined) await this.#config.delete(e.prefix + 'run', { ifRevision: e.run.revision });
        await this.#config.delete(e.prefix + 'done', { ifRevision: e.done.revision });
        deleted.push(e);
      }
      await this.#raiseFloor(last);
      await this.#config.delete(recordKey, { ifRevision: record.revision });
      return true;
    } catch (err) {
      // Put back as they were (create-only: whatever a processor wrote since stays), so that the key's
      // next message, numbered on from the record, finds its group's mark.
      const mark = { done: last, skipped: [] } as unknown as JsonValue;
      await Promise.all(deleted.map((e) => this.#config.put(e.prefix + 'done', mark, { ifRevision: 0 }).catch(() => undefined)));
      if (isCode(err, 'CONFLICT', 'NOT_FOUND')) return false;
      throw err;
    }
  }

  /** Raises the topic's floor to at least `n`. */
  async #raiseFloor(n: number): Promise<void> {
    const k = floorKey(this.#topic);
    for (let conflicts = 0; ; conflicts++) {
      const entry = await this.#config.get(k);
      if (parseFloor(entry) >= n) return;
      try {
        await this.#config.put(k, { floor: n }, { ifRevision: entry?.revision ?? 0 });
        return;
      } catch (err) {
        if (!isCode(err, 'CONFLICT') || conflicts >= MAX_CONFLICTS) throw err;
      }
    }
  }
}
