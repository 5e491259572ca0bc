/**
 * The durable cursor of one consumer group: which seqs it acknowledged (a floor plus the acks above it,
 * so out-of-order acks survive restarts) and how many times each unacknowledged seq was delivered.
 *
 * On disk (in `<topic>/groups/`):
 * - `<group>.cursor` — the last snapshot: one JSON line `{"v":1,"gen":g,"floor":…,"acked":[[from,to],…],
 *   "counts":[[seq,n],…]}` and a second line with its CRC-32C in hex; replaced atomically (temporary file,
 *   fsync, rename, folder fsync).
 * - `<group>.<gen>.journal` — {@link EntryJournal}s of acks and delivery counts made after the snapshot of
 *   generation `gen`. Opening replays the snapshot, then every journal of its generation or later, in order.
 *
 * Compaction: when the journal passes {@link COMPACT_BYTES}, a new journal (generation g+1) is created and
 * takes every later entry; the in-memory state of that instant is written as snapshot g+1; then journal g
 * is deleted. A crash at any step leaves a snapshot plus journals that together hold every entry.
 *
 * A full disk: an ack whose journal write fails is refused, and {@link GroupCursor.unack} takes it back in
 * memory; a compaction that fails leaves the old snapshot and both journals, which together hold every entry.
 *
 * @module
 */
import { readFile, readdir, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { fileSystemError, writeFileAtomic } from '../../driver/durable-file.js';
import { StowageError } from '../../ports/errors.js';
import { crc32c } from './crc32c.js';
import type { Durability } from './durability.js';
import { EntryJournal, EntryKind } from './entry-journal.js';

/** Journal bytes that trigger a compaction, by default. */
export const COMPACT_BYTES = 4 * 1024 * 1024;

interface Snapshot {
  v: 1;
  gen: number;
  floor: number;
  acked: Array<[number, number]>;
  counts: Array<[number, number]>;
}

/** A consumer group's acknowledged seqs and delivery counts, kept in memory and journaled. */
export class GroupCursor {
  readonly group: string;
  readonly #dir: string;
  readonly #durability: Durability;
  /** Every seq ≤ floor is acknowledged. */
  floor = 0;
  /** Acknowledged seqs above the floor. */
  readonly acked = new Set<number>();
  /** Deliveries so far of seqs not yet acknowledged. */
  readonly counts = new Map<number, number>();
  #gen = 0;
  #journal!: EntryJournal;
  #compacting = false;
  readonly #compactBytes: number;

  private constructor(dir: string, group: string, durability: Durability, compactBytes: number) {
    this.#dir = dir;
    this.group = group;
    this.#durability = durability;
    this.#compactBytes = compactBytes;
  }

  /** The groups that have a cursor in `dir`. */
  static async list(dir: string): Promise<string[]> {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return [];
    }
    const groups = new Set<string>();
    for (const n of names) {
      const m = /^([A-Za-z0-9_-]+)\.(?:cursor|\d+\.journal)$/.exec(n);
      if (m) groups.add(m[1] as string);
    }
    return [...groups].sort();
  }

  /** Opens (creating if needed) a group's cursor and replays its snapshot and journals. */
  static async open(dir: string, group: string, durability: Durability, compactBytes = COMPACT_BYTES): Promise<GroupCursor> {
    const c = new GroupCursor(dir, group, durability, compactBytes);
    await c.#load();
    return c;
  }

  #snapshotPath(): string {
    return join(this.#dir, `${this.group}.cursor`);
  }

  #journalPath(gen: number): string {
    return join(this.#dir, `${this.group}.${gen}.journal`);
  }

  async #load(): Promise<void> {
    let text: string | undefined;
    try {
      text = await readFile(this.#snapshotPath(), 'utf8');
    } catch (err) {
      if ((err as { code?: string }).code !== 'ENOENT') throw err;
    }
    if (text !== undefined) {
      const nl = text.indexOf('\n');
      const json = text.slice(0, nl);
      const crc = text.slice(nl + 1).trim();
      if (nl < 0 || crc32c(Buffer.from(json, 'utf8')).toString(16) !== crc) {
        throw new StowageError('CORRUPTED', `disk queue cursor ${this.#snapshotPath()} fails its checksum`, {
          details: { file: this.#snapshotPath(), offset: 0 },
        });
      }
      const s = JSON.parse(json) as Snapshot;
      this.#gen = s.gen;
      this.floor = s.floor;
      for (const [from, to] of s.acked) for (let q = from; q <= to; q++) this.acked.add(q);
      for (const [seq, n] of s.counts) this.counts.set(seq, n);
    }
    const names = await readdir(this.#dir);
    const gens: number[] = [];
    for (const n of names) {
      // A snapshot's temporary file left by a crash while it was written (see writeFileAtomic).
      if (n.startsWith(`.${this.group}.cursor.`) && n.endsWith('.tmp')) await unlink(join(this.#dir, n)).catch(() => undefined);
      const m = /^(.+)\.(\d+)\.journal$/.exec(n);
      if (m && m[1] === this.group) gens.push(Number(m[2]));
    }
    gens.sort((a, b) => a - b);
    const visit = (kind: number, seq: number, count: number): void => {
      if (kind === EntryKind.Ack) this.#applyAck(seq);
      else if (kind === EntryKind.Delivered && seq > this.floor && !this.acked.has(seq)) {
        this.counts.set(seq, Math.max(count, this.counts.get(seq) ?? 0));
      }
    };
    let current: EntryJournal | undefined;
    for (const g of gens) {
      if (g < this.#gen) {
        // Its entries are in the snapshot already.
        await unlink(this.#journalPath(g)).catch(() => undefined);
        continue;
      }
      if (current) await current.close();
      current = await EntryJournal.open(this.#journalPath(g), this.#durability, visit);
      this.#gen = g;
    }
    if (!current) {
      current = await EntryJournal.open(this.#journalPath(this.#gen), this.#durability, visit);
    }
    this.#journal = current;
  }

  /** Whether `seq` is acknowledged. */
  isAcked(seq: number): boolean {
    return seq <= this.floor || this.acked.has(seq);
  }

  #applyAck(seq: number): boolean {
    if (seq <= this.floor || this.acked.has(seq)) return false;
    this.counts.delete(seq);
    if (seq === this.floor + 1) {
      this.floor = seq;
      while (this.acked.delete(this.floor + 1)) this.floor++;
    } else {
      this.acked.add(seq);
    }
    return true;
  }

  /** Records an ack; resolves once it is durable under the policy. */
  ack(seq: number): Promise<void> {
    if (!this.#applyAck(seq)) return Promise.resolve();
    const done = this.#journal.append(EntryKind.Ack, seq, 0, true);
    if (this.#journal.bytes > this.#compactBytes && !this.#compacting) void this.#compact().catch(() => undefined);
    return done;
  }

  /**
   * Takes back an ack whose journal write failed: `seq` is unacknowledged again, with `count` deliveries.
   * Acks made since keep their place (the floor comes back down below `seq`).
   */
  unack(seq: number, count: number): void {
    if (!this.acked.delete(seq)) {
      if (seq > this.floor) return;
      for (let q = seq + 1; q <= this.floor; q++) this.acked.add(q);
      this.floor = seq - 1;
    }
    this.counts.set(seq, Math.max(count, this.counts.get(seq) ?? 0));
  }

  /**
   * Records that `seq` was delivered for the `count`-th time. Written with the next journal write but not
   * waited for: after a crash a count can be one short (documented).
   */
  delivered(seq: number, count: number): void {
    this.counts.set(seq, count);
    this.#journal.append(EntryKind.Delivered, seq, Math.min(count, 0xffff), false);
  }

  /** Moves the floor up to `seq - 1` (messages before `seq` were purged or expired). */
  skipTo(seq: number): void {
    if (seq - 1 <= this.floor) return;
    this.floor = seq - 1;
    for (const q of this.acked) if (q <= this.floor) this.acked.delete(q);
    for (const q of this.counts.keys()) if (q <= this.floor) this.counts.delete(q);
    while (this.acked.delete(this.floor + 1)) this.floor++;
  }

  /**
   * Repositions the group: every seq below `seq` counts as acknowledged, every seq from `seq` on as never
   * delivered (in either direction). Written as a new snapshot generation, durable when this resolves; a
   * crash before that, or a failed write, leaves the old position. The caller makes sure no consumer holds
   * a delivery.
   */
  async seek(seq: number): Promise<void> {
    while (this.#compacting) await new Promise((resolve) => setTimeout(resolve, 5));
    const floor = this.floor;
    const acked = [...this.acked];
    const counts = [...this.counts];
    this.floor = seq - 1;
    this.acked.clear();
    this.counts.clear();
    try {
      await this.#compact();
    } catch (err) {
      this.floor = floor;
      for (const q of acked) this.acked.add(q);
      for (const [q, n] of counts) this.counts.set(q, n);
      throw err;
    }
  }

  async #compact(): Promise<void> {
    this.#compacting = true;
    try {
      const gen = this.#gen + 1;
      const next = await EntryJournal.open(this.#journalPath(gen), this.#durability, () => undefined);
      // From here on entries go to the new journal; the snapshot holds everything before.
      const old = this.#journal;
      this.#journal = next;
      this.#gen = gen;
      const snapshot: Snapshot = { v: 1, gen, floor: this.floor, acked: ranges([...this.acked].sort((a, b) => a - b)), counts: [...this.counts] };
      const json = JSON.stringify(snapshot);
      try {
        await writeFileAtomic(this.#snapshotPath(), `${json}\n${crc32c(Buffer.from(json, 'utf8')).toString(16)}\n`, { mode: 0o644 });
      } catch (err) {
        // The old snapshot and both journals still hold every entry; the old journal takes no more.
        await old.close();
        throw fileSystemError(err, 'write disk queue cursor', this.#snapshotPath());
      }
      await old.close();
      await unlink(old.path);
    } finally {
      this.#compacting = false;
    }
  }

  /** Writes what is pending and closes the journal (after a compaction in progress). */
  async close(): Promise<void> {
    while (this.#compacting) await new Promise((resolve) => setTimeout(resolve, 5));
    await this.#journal.close();
  }
}

function ranges(sorted: number[]): Array<[number, number]> {
  const out: Array<[number, number]> = [];
  for (const q of sorted) {
    const last = out[out.length - 1];
    if (last && last[1] === q - 1) last[1] = q;
    else out.push([q, q]);
  }
  return out;
}
