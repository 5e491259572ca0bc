/**
 * The in-memory queue driver (`mem://`): topics, consumer groups, ackWait redelivery, nak delays and
 * dedupe, all in one process and gone when it exits. For tests and throwaway use.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type {
  DriverDelivery,
  DriverSubscription,
  Headers,
  PublishResult,
  QueueCapability,
  QueueDriver,
  StoredMessage,
  TopicStats,
} from '../../ports/queue.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam } from '../../driver/url.js';
import { closed } from '../../driver/errors.js';
import { PushIterator } from '../../driver/push-iterator.js';

/** The default dedupe window: two minutes, as JetStream's. */
export const DEFAULT_DEDUPE_WINDOW_MS = 120_000;

/** Options of {@link MemQueueDriver}. */
export interface MemQueueOptions {
  /** How long a message id is remembered for dedupe. @default 120 000 */
  dedupeWindowMs?: number;
}

interface Pending {
  /** Which delivery holds the message now; an ack from an older delivery carries another token. */
  token: number;
  sub: MemSubscription;
  timer: NodeJS.Timeout;
  ackWaitMs: number;
}

class MemGroup {
  /** The next sequence never delivered to this group. */
  cursor: number;
  /** Delivered before, unsettled, waiting to be delivered again (lowest first: publish order). */
  readonly ready = new Set<number>();
  /** Nak'ed with a delay: made ready by their timer. */
  readonly delayed = new Map<number, NodeJS.Timeout>();
  readonly pending = new Map<number, Pending>();
  readonly deliveries = new Map<number, number>();
  redelivered = 0;
  /** Live subscriptions of the group. */
  members = 0;
  /** Subscriptions with a `next()` waiting and room under their prefetch. */
  readonly waiting: MemSubscription[] = [];

  constructor(
    readonly topic: MemTopic,
    readonly name: string,
  ) {
    this.cursor = topic.firstSeq();
  }

  /** Hands messages to waiting subscriptions while both exist. */
  pump(): void {
    while (this.waiting.length > 0) {
      const seq = this.#take();
      if (seq === undefined) return;
      const sub = this.waiting.shift() as MemSubscription;
      sub.deliver(this, seq);
    }
  }

  #take(): number | undefined {
    if (this.ready.size > 0) {
      const seq = Math.min(...this.ready);
      this.ready.delete(seq);
      if (this.topic.messages.has(seq)) return seq;
      return this.#take();
    }
    while (this.cursor <= this.topic.lastSeq) {
      const seq = this.cursor++;
      if (this.topic.messages.has(seq)) return seq;
    }
    return undefined;
  }

  /** Makes a message deliverable again (after ackWait, a nak, or its nak delay). */
  makeReady(seq: number): void {
    this.ready.add(seq);
    this.pump();
  }

  settle(seq: number): void {
    const p = this.pending.get(seq);
    if (p !== undefined) {
      clearTimeout(p.timer);
      this.pending.delete(seq);
      p.sub.released();
    }
    const t = this.delayed.get(seq);
    if (t !== undefined) clearTimeout(t);
    this.delayed.delete(seq);
    this.ready.delete(seq);
    this.deliveries.delete(seq);
  }

  /** Every seq up to this one is settled: below the cursor and below everything unsettled. */
  ackFloor(): number {
    let floor = this.cursor - 1;
    for (const seqs of [this.pending.keys(), this.ready, this.delayed.keys()]) for (const seq of seqs) floor = Math.min(floor, seq - 1);
    return floor;
  }

  backlog(): number {
    let n = 0;
    for (const seq of this.topic.messages.keys()) if (seq >= this.cursor) n++;
    return n;
  }

  clear(): void {
    for (const p of this.pending.values()) clearTimeout(p.timer);
    for (const t of this.delayed.values()) clearTimeout(t);
    this.delayed.clear();
  }
}

class MemTopic {
  readonly messages = new Map<number, StoredMessage>();
  lastSeq = 0;
  readonly dedupe = new Map<string, { seq: number; until: number }>();
  readonly groups = new Map<string, MemGroup>();

  constructor(readonly name: string) {}

  firstSeq(): number {
    for (const seq of this.messages.keys()) return seq;
    return this.lastSeq + 1;
  }
}

let nextToken = 1;

class MemSubscription implements DriverSubscription {
  readonly #group: MemGroup;
  readonly #ackWaitMs: number;
  readonly #prefetch: number;
  readonly #unsubscribe: (sub: MemSubscription) => void;
  #outstanding = 0;
  /** Pulled: the group hands a message over only while a `next()` waits, so none is buffered. */
  readonly #deliveries = new PushIterator<DriverDelivery>({ onDemand: () => this.#offer(), onReturn: () => this.close() });

  constructor(group: MemGroup, ackWaitMs: number, prefetch: number, unsubscribe: (sub: MemSubscription) => void) {
    this.#group = group;
    this.#ackWaitMs = ackWaitMs;
    this.#prefetch = prefetch;
    this.#unsubscribe = unsubscribe;
  }

  [Symbol.asyncIterator](): AsyncIterator<DriverDelivery> {
    return this.#deliveries;
  }

  /** Joins the group's waiting line when a `next()` waits and the prefetch has room. */
  #offer(): void {
    if (!this.#deliveries.waiting || this.#outstanding >= this.#prefetch || this.#group.waiting.includes(this)) return;
    this.#group.waiting.push(this);
    this.#group.pump();
  }

  /** Called by the group: `seq` is now this subscription's. */
  deliver(group: MemGroup, seq: number): void {
    const message = group.topic.messages.get(seq) as StoredMessage;
    const count = (group.deliveries.get(seq) ?? 0) + 1;
    group.deliveries.set(seq, count);
    if (count > 1) group.redelivered++;
    const token = nextToken++;
    const expire = (): void => {
      const p = group.pending.get(seq);
      if (p?.token !== token) return;
      group.pending.delete(seq);
      p.sub.released();
      group.makeReady(seq);
    };
    const pending: Pending = { token, sub: this, timer: setTimeout(expire, this.#ackWaitMs).unref(), ackWaitMs: this.#ackWaitMs };
    group.pending.set(seq, pending);
    this.#outstanding++;
    const current = (): boolean => group.pending.get(seq)?.token === token;
    const delivery: DriverDelivery = {
      seq,
      id: message.id,
      headers: message.headers,
      payload: Uint8Array.from(message.payload),
      publishedAt: message.publishedAt,
      deliveryCount: count,
      ack: async () => {
        // A stale ack (its ackWait passed) while another delivery holds the message is ignored: that
        // delivery owns it now. While the message only waits for redelivery, the stale ack settles it.
        const p = group.pending.get(seq);
        if (p !== undefined && p.token !== token) return;
        group.settle(seq);
      },
      nak: async (delayMs: number) => {
        if (!current()) return;
        const p = group.pending.get(seq) as Pending;
        clearTimeout(p.timer);
        group.pending.delete(seq);
        this.released();
        if (delayMs <= 0) group.makeReady(seq);
        else {
          group.delayed.set(
            seq,
            setTimeout(() => {
              group.delayed.delete(seq);
              group.makeReady(seq);
            }, delayMs).unref(),
          );
        }
      },
      touch: async () => {
        if (!current()) return;
        const p = group.pending.get(seq) as Pending;
        clearTimeout(p.timer);
        p.timer = setTimeout(expire, p.ackWaitMs).unref();
      },
    };
    this.#deliveries.push(delivery);
  }

  /** A delivery of this subscription was settled or expired: room for another. */
  released(): void {
    this.#outstanding--;
    this.#offer();
  }

  async close(): Promise<void> {
    if (this.#deliveries.ended) return;
    this.#deliveries.stop();
    const i = this.#group.waiting.indexOf(this);
    if (i >= 0) this.#group.waiting.splice(i, 1);
    this.#unsubscribe(this);
  }
}

/**
 * A queue driver that keeps everything in memory. Messages are never removed by acks (every group reads
 * the same log), only by `remove` and `purge`.
 */
export class MemQueueDriver implements QueueDriver {
  readonly backend = 'mem';
  readonly capabilities: ReadonlySet<QueueCapability> = new Set<QueueCapability>(['purge']);
  /** Its groups' consumers all live in this process: core orders keys and limits rates without the config store. */
  readonly singleProcess = true;
  readonly #dedupeWindowMs: number;
  readonly #topics = new Map<string, MemTopic>();
  readonly #subs = new Set<MemSubscription>();
  #closed = false;

  /** @param options - the dedupe window */
  constructor(options: MemQueueOptions = {}) {
    this.#dedupeWindowMs = options.dedupeWindowMs ?? DEFAULT_DEDUPE_WINDOW_MS;
  }

  #topic(name: string): MemTopic {
    if (this.#closed) throw closed('mem queue driver');
    let topic = this.#topics.get(name);
    if (topic === undefined) {
      topic = new MemTopic(name);
      this.#topics.set(name, topic);
    }
    return topic;
  }

  async publish(topicName: string, payload: Uint8Array, headers: Headers, id: string | undefined): Promise<PublishResult> {
    const topic = this.#topic(topicName);
    const now = Date.now();
    if (id !== undefined) {
      for (const [key, entry] of topic.dedupe) {
        // Insertion order is expiry order, so the scan stops at the first live entry.
        if (entry.until > now) break;
        topic.dedupe.delete(key);
      }
      const seen = topic.dedupe.get(id);
      if (seen !== undefined) return { seq: seen.seq, duplicate: true };
    }
    const seq = ++topic.lastSeq;
    topic.messages.set(seq, Object.freeze({ seq, id, headers: Object.freeze({ ...headers }), payload, publishedAt: new Date(now) }));
    if (id !== undefined) topic.dedupe.set(id, { seq, until: now + this.#dedupeWindowMs });
    for (const group of topic.groups.values()) group.pump();
    return { seq, duplicate: false };
  }

  subscribe(topicName: string, groupName: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const topic = this.#topic(topicName);
    let group = topic.groups.get(groupName);
    if (group === undefined) {
      group = new MemGroup(topic, groupName);
      topic.groups.set(groupName, group);
    }
    const member = group;
    member.members++;
    const sub = new MemSubscription(group, options.ackWaitMs, options.prefetch, (s) => {
      this.#subs.delete(s);
      member.members--;
    });
    this.#subs.add(sub);
    return sub;
  }

  async topics(): Promise<string[]> {
    if (this.#closed) throw closed('mem queue driver');
    return [...this.#topics.values()].filter((t) => t.messages.size > 0 || t.groups.size > 0).map((t) => t.name);
  }

  async seekGroup(topicName: string, groupName: string, seq: number): Promise<void> {
    const topic = this.#topic(topicName);
    let group = topic.groups.get(groupName);
    if (group === undefined) {
      group = new MemGroup(topic, groupName);
      topic.groups.set(groupName, group);
    } else if (group.members > 0 || group.pending.size + group.ready.size + group.delayed.size > 0) {
      throw new StowageError('CONFLICT', `group "${groupName}" of topic "${topicName}" has running consumers or unsettled deliveries; stop them before moving it`);
    }
    group.cursor = seq;
    group.deliveries.clear();
  }

  async read(topicName: string, fromSeq: number, limit: number): Promise<StoredMessage[]> {
    const out: StoredMessage[] = [];
    for (const [seq, message] of this.#topic(topicName).messages) {
      if (out.length >= limit) break;
      if (seq >= fromSeq) out.push({ ...message, payload: Uint8Array.from(message.payload) });
    }
    return out;
  }

  async remove(topicName: string, seq: number): Promise<void> {
    const topic = this.#topic(topicName);
    topic.messages.delete(seq);
    for (const group of topic.groups.values()) group.settle(seq);
  }

  async stats(topicName: string): Promise<Omit<TopicStats, 'deadLetters'>> {
    const topic = this.#topic(topicName);
    return {
      topic: topicName,
      messages: topic.messages.size,
      lastSeq: topic.lastSeq,
      groups: [...topic.groups.values()].map((g) => ({
        group: g.name,
        backlog: g.backlog(),
        pending: g.pending.size + g.ready.size + g.delayed.size,
        redelivered: g.redelivered,
        ackFloor: g.ackFloor(),
      })),
    };
  }

  async purge(topicName: string): Promise<void> {
    const topic = this.#topic(topicName);
    for (const seq of [...topic.messages.keys()]) {
      topic.messages.delete(seq);
      for (const group of topic.groups.values()) group.settle(seq);
    }
    for (const group of topic.groups.values()) group.cursor = topic.lastSeq + 1;
  }

  async ping(): ReturnType<QueueDriver['ping']> {
    return {};
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all([...this.#subs].map((s) => s.close()));
    for (const topic of this.#topics.values()) for (const group of topic.groups.values()) group.clear();
    this.#topics.clear();
  }
}

/** `mem://` for the queue port. Parameter: `dedupeWindowMs` (default 120 000). Every open is a new, empty queue. */
export const memQueueScheme: SchemeDefinition<'queue'> = {
  port: 'queue',
  scheme: 'mem',
  params: ['dedupeWindowMs'],
  open: async (url) => new MemQueueDriver({ dedupeWindowMs: intParam(url, 'dedupeWindowMs', DEFAULT_DEDUPE_WINDOW_MS, { min: 1 }) }),
};
