/**
 * Delivery within one consumer group: which consumer gets which message, ackWait redelivery, nak delays,
 * delivery counts and the group's statistics. Durable state lives in the {@link GroupCursor}.
 *
 * @module
 */
import type { DriverDelivery, DriverSubscription, GroupStats, Headers, StoredMessage } from '../../ports/queue.js';
import { PushIterator } from '../../driver/push-iterator.js';
import type { GroupCursor } from './group-cursor.js';
import type { LogPosition, TopicLog } from './topic-log.js';

const READ_AHEAD = 1024;

/** A min-heap of messages by seq: redeliveries go out lowest seq first, keeping publish order. */
class SeqHeap {
  readonly #a: StoredMessage[] = [];

  get size(): number {
    return this.#a.length;
  }

  push(m: StoredMessage): void {
    const a = this.#a;
    a.push(m);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as StoredMessage).seq <= m.seq) break;
      a[i] = a[p] as StoredMessage;
      i = p;
    }
    a[i] = m;
  }

  pop(): StoredMessage | undefined {
    const a = this.#a;
    const top = a[0];
    const last = a.pop();
    if (a.length === 0 || last === undefined) return top;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= a.length) break;
      const r = l + 1;
      const c = r < a.length && (a[r] as StoredMessage).seq < (a[l] as StoredMessage).seq ? r : l;
      if ((a[c] as StoredMessage).seq >= last.seq) break;
      a[i] = a[c] as StoredMessage;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

/** One delivery of a message to a consumer; its methods settle it. */
class DiskDelivery implements DriverDelivery {
  readonly seq: number;
  readonly id: string | undefined;
  readonly headers: Headers;
  readonly payload: Uint8Array;
  readonly publishedAt: Date;
  readonly deliveryCount: number;
  readonly message: StoredMessage;
  readonly group: ConsumerGroup;
  readonly sub: GroupSubscription;
  /** When it is redelivered if not settled. */
  deadline = 0;
  /** Live; expired (redelivered, its ack still accepted); or settled. */
  state: 'live' | 'expired' | 'settled' = 'live';

  constructor(group: ConsumerGroup, sub: GroupSubscription, message: StoredMessage, count: number) {
    this.group = group;
    this.sub = sub;
    this.message = message;
    this.seq = message.seq;
    this.id = message.id;
    this.headers = message.headers;
    this.payload = message.payload;
    this.publishedAt = message.publishedAt;
    this.deliveryCount = count;
  }

  ack(): Promise<void> {
    return this.group.ack(this);
  }

  nak(delayMs: number): Promise<void> {
    this.group.nak(this, delayMs);
    return Promise.resolve();
  }

  touch(): Promise<void> {
    this.group.touch(this);
    return Promise.resolve();
  }
}

/** A consumer of a group: an async iterator fed by the group up to its prefetch. */
export class GroupSubscription implements DriverSubscription {
  readonly ackWaitMs: number;
  readonly prefetch: number;
  /** Deliveries given to this consumer and not settled or expired. */
  held = 0;
  closed = false;
  readonly #group: ConsumerGroup;
  /** Pulled: the group gives a delivery only while a `next()` waits (see {@link GroupSubscription.wants}). */
  readonly #deliveries: PushIterator<DiskDelivery>;

  constructor(group: ConsumerGroup, options: { ackWaitMs: number; prefetch: number }) {
    this.#group = group;
    this.ackWaitMs = options.ackWaitMs;
    this.prefetch = options.prefetch;
    this.#deliveries = new PushIterator({ onDemand: () => group.pump(), onReturn: () => this.close() });
  }

  /**
   * Whether the group may give this consumer a delivery: it is asking (a `next()` is waiting) and holds
   * fewer than `prefetch`. Deliveries are pulled, so none sits unseen in a consumer's hands.
   */
  get wants(): boolean {
    return this.#deliveries.waiting && this.held < this.prefetch;
  }

  /** Hands a delivery over (called by the group). */
  push(d: DiskDelivery): void {
    this.#deliveries.push(d);
  }

  /** Ends the iterator with an error (a damaged log), after what it was given before. */
  fail(err: unknown): void {
    this.closed = true;
    this.#deliveries.end(err);
  }

  /** Takes back deliveries never handed to the consumer, and ends the iterator. */
  takeUnseen(): DiskDelivery[] {
    return this.#deliveries.stop();
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this.#deliveries;
  }

  close(): Promise<void> {
    if (!this.closed) {
      this.closed = true;
      this.#group.unsubscribe(this);
    }
    this.#deliveries.stop();
    return Promise.resolve();
  }
}

/**
 * One consumer group of one topic. Every message goes to one consumer at a time; redeliveries (expired
 * or nak'ed) go before new messages, lowest seq first.
 */
export class ConsumerGroup {
  readonly name: string;
  readonly cursor: GroupCursor;
  readonly #log: TopicLog;
  #pos: LogPosition;
  #buffer: StoredMessage[] = [];
  #bufHead = 0;
  #reading = false;
  readonly #ready = new SeqHeap();
  #delayed: Array<{ at: number; msg: StoredMessage }> = [];
  readonly #pending = new Map<number, DiskDelivery>();
  readonly #byWait = new Map<number, Map<number, DiskDelivery>>();
  #subs: GroupSubscription[] = [];
  #rr = 0;
  #timer: NodeJS.Timeout | undefined;
  #timerAt = Infinity;
  #pumping = false;
  #redelivered = 0;
  /** The acks sharing the cursor's latest journal write: taken back together if that write fails. */
  #acking: { done: Promise<void>; deliveries: DiskDelivery[] } | undefined;
  readonly #unlisten: () => void;

  constructor(log: TopicLog, cursor: GroupCursor) {
    this.#log = log;
    this.cursor = cursor;
    this.name = cursor.group;
    this.#pos = log.position(Math.max(cursor.floor + 1, log.firstSeq));
    this.#unlisten = log.onVisible(() => {
      if (this.#subs.length > 0 && this.#bufHead >= this.#buffer.length) this.pump();
    });
  }

  /** Adds a consumer. */
  subscribe(options: { ackWaitMs: number; prefetch: number }): GroupSubscription {
    const sub = new GroupSubscription(this, options);
    this.#subs.push(sub);
    return sub;
  }

  /** Removes a consumer; what it was given but never saw goes back to the group at once. */
  unsubscribe(sub: GroupSubscription): void {
    this.#subs = this.#subs.filter((s) => s !== sub);
    for (const d of sub.takeUnseen()) {
      this.#release(d);
      d.state = 'settled';
      const n = this.cursor.counts.get(d.seq);
      if (n !== undefined && n > 1) this.cursor.counts.set(d.seq, n - 1);
      else this.cursor.counts.delete(d.seq);
      this.#ready.push(d.message);
    }
    this.pump();
  }

  /** Gives messages to consumers that want them. */
  pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      for (;;) {
        const sub = this.#pickSub();
        if (!sub) return;
        const msg = this.#nextMessage();
        if (!msg) return;
        this.#deliver(sub, msg);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #pickSub(): GroupSubscription | undefined {
    const n = this.#subs.length;
    for (let i = 0; i < n; i++) {
      const s = this.#subs[(this.#rr + i) % n] as GroupSubscription;
      if (s.wants) {
        this.#rr = (this.#rr + i + 1) % n;
        return s;
      }
    }
    return undefined;
  }

  #skip(seq: number): boolean {
    return this.cursor.isAcked(seq) || seq < this.#log.firstSeq || this.#log.isRemoved(seq) || this.#pending.has(seq);
  }

  #nextMessage(): StoredMessage | undefined {
    while (this.#ready.size > 0) {
      const m = this.#ready.pop() as StoredMessage;
      if (!this.#skip(m.seq)) return m;
    }
    // Read the next chunk while the consumers work through this one, so they never wait for the disk.
    if (!this.#reading && this.#buffer.length - this.#bufHead < READ_AHEAD / 2 && this.#pos.seq <= this.#log.lastSeq) this.#fill();
    while (this.#bufHead < this.#buffer.length) {
      const m = this.#buffer[this.#bufHead++] as StoredMessage;
      if (!this.#skip(m.seq)) return m;
    }
    return undefined;
  }

  #fill(): void {
    this.#reading = true;
    const pos = this.#pos;
    this.#log.readNext(pos, READ_AHEAD).then(
      (msgs) => {
        this.#reading = false;
        // A seek replaced the position while this read ran: what it read is from the old one.
        if (pos !== this.#pos) return;
        this.#buffer = this.#bufHead < this.#buffer.length ? this.#buffer.slice(this.#bufHead).concat(msgs) : msgs;
        this.#bufHead = 0;
        this.pump();
      },
      (err: unknown) => {
        this.#reading = false;
        for (const s of this.#subs) s.fail(err);
        this.#subs = [];
      },
    );
  }

  #deliver(sub: GroupSubscription, msg: StoredMessage): void {
    const count = (this.cursor.counts.get(msg.seq) ?? 0) + 1;
    if (count > 1) this.#redelivered++;
    this.cursor.delivered(msg.seq, count);
    const d = new DiskDelivery(this, sub, msg, count);
    d.deadline = Date.now() + sub.ackWaitMs;
    this.#pending.set(msg.seq, d);
    let m = this.#byWait.get(sub.ackWaitMs);
    if (!m) {
      m = new Map();
      this.#byWait.set(sub.ackWaitMs, m);
    }
    m.set(msg.seq, d);
    sub.held++;
    sub.push(d);
    if (d.deadline < this.#timerAt) this.#arm();
  }

  /** Takes a live delivery out of the pending state. */
  #release(d: DiskDelivery): void {
    if (d.state !== 'live') return;
    if (this.#pending.get(d.seq) === d) this.#pending.delete(d.seq);
    this.#byWait.get(d.sub.ackWaitMs)?.delete(d.seq);
    d.sub.held--;
  }

  /** Acknowledges a delivery (also after it expired: an ack is never thrown away). */
  ack(d: DiskDelivery): Promise<void> {
    if (d.state === 'settled') return Promise.resolve();
    this.#release(d);
    d.state = 'settled';
    const done = this.cursor.ack(d.seq);
    let acking = this.#acking;
    if (acking?.done !== done) {
      // One handler per journal write, not per ack: the cursor hands every ack of a write the same promise.
      const taken: DiskDelivery[] = [];
      acking = { done, deliveries: taken };
      this.#acking = acking;
      done.then(undefined, () => this.#acksFailed(taken));
    }
    acking.deliveries.push(d);
    this.pump();
    return done;
  }

  /**
   * The journal write of these acks failed (a full disk): each message is unacknowledged again and comes
   * back once its ackWait is over, as if it had never been acked; acking it again is accepted.
   */
  #acksFailed(deliveries: DiskDelivery[]): void {
    const now = Date.now();
    for (const d of deliveries) {
      // A message purged or expired since needs nothing back.
      if (d.seq < this.#log.firstSeq) continue;
      this.cursor.unack(d.seq, d.deliveryCount);
      d.state = 'expired';
      this.#later(Math.max(d.deadline, now), d.message);
    }
    this.#arm();
  }

  /** Makes `msg` deliverable again at `at`. */
  #later(at: number, msg: StoredMessage): void {
    let i = this.#delayed.length;
    while (i > 0 && (this.#delayed[i - 1] as { at: number }).at > at) i--;
    this.#delayed.splice(i, 0, { at, msg });
  }

  /** Makes a live delivery deliverable again after `delayMs`. */
  nak(d: DiskDelivery, delayMs: number): void {
    if (d.state !== 'live') return;
    this.#release(d);
    d.state = 'settled';
    if (delayMs > 0) {
      const at = Date.now() + delayMs;
      this.#later(at, d.message);
      if (at < this.#timerAt) this.#arm();
    } else {
      this.#ready.push(d.message);
    }
    this.pump();
  }

  /** Restarts a live delivery's ackWait clock. */
  touch(d: DiskDelivery): void {
    if (d.state !== 'live') return;
    d.deadline = Date.now() + d.sub.ackWaitMs;
    const m = this.#byWait.get(d.sub.ackWaitMs);
    // Re-inserting keeps each map ordered by deadline.
    m?.delete(d.seq);
    m?.set(d.seq, d);
  }

  #arm(): void {
    let at = Infinity;
    for (const m of this.#byWait.values()) {
      for (const d of m.values()) {
        if (d.deadline < at) at = d.deadline;
        break;
      }
    }
    const first = this.#delayed[0];
    if (first && first.at < at) at = first.at;
    if (at === this.#timerAt) return;
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#timerAt = at;
    if (at === Infinity) return;
    this.#timer = setTimeout(() => this.#onTimer(), Math.max(0, at - Date.now()) + 1);
  }

  #onTimer(): void {
    this.#timer = undefined;
    this.#timerAt = Infinity;
    const now = Date.now();
    for (const m of this.#byWait.values()) {
      for (const d of m.values()) {
        if (d.deadline > now) break;
        this.#release(d);
        d.state = 'expired';
        this.#ready.push(d.message);
      }
    }
    while (this.#delayed.length > 0 && (this.#delayed[0] as { at: number }).at <= now) {
      this.#ready.push((this.#delayed.shift() as { msg: StoredMessage }).msg);
    }
    this.pump();
    this.#arm();
  }

  /** Whether a consumer is attached or a delivery is unsettled (a seek is refused then). */
  get busy(): boolean {
    return this.#subs.length > 0 || this.#pending.size + this.#ready.size + this.#delayed.length > 0;
  }

  /** Repositions an idle group: its next delivery is the first stored message with seq ≥ `seq`. */
  async seek(seq: number): Promise<void> {
    // The read position first, so that nothing read from the old one is handed out meanwhile.
    this.#pos = this.#log.position(Math.max(seq, this.#log.firstSeq));
    this.#buffer = [];
    this.#bufHead = 0;
    try {
      await this.cursor.seek(seq);
    } catch (err) {
      // The cursor kept its position: reading resumes from there.
      this.#pos = this.#log.position(Math.max(this.cursor.floor + 1, this.#log.firstSeq));
      throw err;
    }
  }

  /** The group's statistics. */
  stats(): GroupStats {
    const frontier = Math.max(this.#bufHead < this.#buffer.length ? (this.#buffer[this.#bufHead] as StoredMessage).seq : this.#pos.seq, this.#log.firstSeq, this.cursor.floor + 1);
    let backlog = Math.max(0, this.#log.lastSeq - frontier + 1);
    for (const q of this.cursor.acked) if (q >= frontier) backlog--;
    backlog -= this.#log.removedFrom(frontier);
    return {
      group: this.name,
      backlog: Math.max(0, backlog),
      pending: this.#pending.size + this.#ready.size + this.#delayed.length,
      redelivered: this.#redelivered,
      ackFloor: this.cursor.floor,
    };
  }

  /** After a purge: forget deliveries of messages that no longer exist. */
  purged(): void {
    this.cursor.skipTo(this.#log.firstSeq);
    this.#buffer = [];
    this.#bufHead = 0;
    this.#delayed = this.#delayed.filter((e) => e.msg.seq >= this.#log.firstSeq);
  }

  /** Stops timers and ends every consumer. */
  async close(): Promise<void> {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#unlisten();
    for (const s of [...this.#subs]) await s.close();
    await this.cursor.close();
  }
}
