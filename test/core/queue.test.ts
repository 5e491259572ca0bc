import { describe, expect, it } from 'vitest';
import { MemQueueDriver } from '../../src/adapters/memory/queue-driver.js';
import { createQueue, HEADER_DLQ_GROUP, HEADER_REPLAY_GROUP } from '../../src/core/queue/queue.js';
import { StowageError } from '../../src/ports/errors.js';
import type { Delivery, DriverDelivery, DriverSubscription, Headers, PublishResult, QueueDriver } from '../../src/ports/queue.js';
import { eventually, sleep } from '../../src/testing/harness.js';

/** A mem driver that records what core asks of it. */
class SpyDriver extends MemQueueDriver {
  readonly published: { topic: string; headers: Headers; id: string | undefined }[] = [];
  readonly naks: number[] = [];
  /** When set, the delay the wrapped driver is given instead of the one core asked for (recorded in naks). */
  nakDelayOverride: number | undefined;
  acks = 0;
  failAcks = 0;
  /** Acks and subscription closes, in the order they reached the driver. */
  readonly events: ('ack' | 'close')[] = [];

  override async publish(topic: string, payload: Uint8Array, headers: Headers, id: string | undefined): Promise<PublishResult> {
    this.published.push({ topic, headers, id });
    return super.publish(topic, payload, headers, id);
  }

  override subscribe(topic: string, group: string, options: { ackWaitMs: number; maxDeliver: number; prefetch: number }): DriverSubscription {
    const sub = super.subscribe(topic, group, options);
    const ack = async (d: DriverDelivery): Promise<void> => {
      if (this.failAcks > 0) {
        this.failAcks--;
        throw Object.assign(new Error('connection refused'), { code: 'ECONNREFUSED' });
      }
      this.acks++;
      this.events.push('ack');
      await d.ack();
    };
    const nak = async (d: DriverDelivery, delayMs: number): Promise<void> => {
      this.naks.push(delayMs);
      await d.nak(this.nakDelayOverride ?? delayMs);
    };
    return {
      close: () => {
        this.events.push('close');
        return sub.close();
      },
      async *[Symbol.asyncIterator]() {
        for await (const d of sub) yield { ...d, ack: () => ack(d), nak: (delayMs: number) => nak(d, delayMs) };
      },
    };
  }
}

/** A driver whose subscription yields the given deliveries once, and whose publish never answers. */
function scriptedDriver(deliveries: DriverDelivery[]): QueueDriver & { acked: number[] } {
  const mem = new MemQueueDriver();
  const acked: number[] = [];
  return {
    backend: 'scripted',
    capabilities: new Set(),
    acked,
    publish: (topic, payload, headers, id) =>
      topic.endsWith('.dlq') ? mem.publish(topic, payload, headers, id) : new Promise<PublishResult>(() => undefined),
    subscribe: () => {
      let closed = false;
      return {
        close: async () => {
          closed = true;
        },
        async *[Symbol.asyncIterator]() {
          for (const d of deliveries) yield { ...d, ack: async () => void acked.push(d.seq) };
          while (!closed) await sleep(10);
        },
      };
    },
    read: (topic, from, limit) => mem.read(topic, from, limit),
    remove: (topic, seq) => mem.remove(topic, seq),
    stats: (topic) => mem.stats(topic),
    topics: () => mem.topics(),
    seekGroup: (topic, group, seq) => mem.seekGroup(topic, group, seq),
    ping: async () => ({}),
    close: () => mem.close(),
  };
}

function delivery(seq: number, deliveryCount: number, headers: Headers = {}): DriverDelivery {
  return {
    seq,
    id: undefined,
    headers,
    payload: new TextEncoder().encode(`m${seq}`),
    publishedAt: new Date(),
    deliveryCount,
    ack: async () => undefined,
    nak: async () => undefined,
    touch: async () => undefined,
  };
}

describe('queue core', () => {
  it('a publish the driver never answers rejects with TIMEOUT after timeoutMs', async () => {
    const q = createQueue(scriptedDriver([]));
    await expect(q.publish('t', 'x', { timeoutMs: 50 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    await q.close();
  });

  it('a payload over maxPayloadBytes is RESOURCE_EXHAUSTED and reaches no driver', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver, { maxPayloadBytes: 10 });
    await expect(q.publish('t', 'x'.repeat(11))).rejects.toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect(driver.published).toEqual([]);
    await q.close();
  });

  it('dead-letters with reserved headers and a dedupe id naming topic, group and seq', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    const { seq } = await q.publish('orders', 'x', { id: 'mine' });
    const it = q.consume('orders', 'billing')[Symbol.asyncIterator]();
    const d = (await it.next()).value;
    await d.term('nope');
    const dlq = driver.published.find((p) => p.topic === 'orders.dlq');
    expect(dlq?.id).toBe(`dlq:orders:billing:${seq}`);
    expect(dlq?.headers).toMatchObject({
      [HEADER_DLQ_GROUP]: 'billing',
      'stowage-dlq-reason': 'nope',
      'stowage-original-seq': String(seq),
      'stowage-delivery-count': '1',
      'stowage-original-id': 'mine',
    });
    expect(driver.acks).toBe(1);
    await q.close();
  });

  it('a delivery past maxDeliver is dead-lettered and never yielded', async () => {
    const driver = scriptedDriver([delivery(1, 4), delivery(2, 1)]);
    const q = createQueue(driver);
    const it = q.consume('t', 'g', { maxDeliver: 3 })[Symbol.asyncIterator]();
    const first = (await it.next()).value;
    expect(first.seq).toBe(2);
    expect(driver.acked).toEqual([1]);
    const [letter] = await q.deadLetters('t');
    expect(letter).toMatchObject({ originalSeq: 1, reason: 'max-deliver', deliveryCount: 4, group: 'g' });
    await q.close();
  });

  it('dead-lettering past maxDeliver is retried when the dead-letter publish fails', async () => {
    const driver = scriptedDriver([delivery(1, 3)]);
    const publish = driver.publish.bind(driver);
    let failures = 1;
    driver.publish = (topic, payload, headers, id, signal) => {
      if (failures-- > 0) return Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' }));
      return publish(topic, payload, headers, id, signal);
    };
    const q = createQueue(driver);
    const consumer = q.consume('t', 'g', { maxDeliver: 2 });
    const next = consumer[Symbol.asyncIterator]().next();
    await eventually(() => driver.acked.length === 1, 'dead-lettered on the second try');
    expect((await q.deadLetters('t')).map((l) => l.originalSeq)).toEqual([1]);
    await consumer.close();
    expect((await next).done).toBe(true);
    await q.close();
  });

  it('a replay meant for another group is acked silently', async () => {
    const driver = scriptedDriver([delivery(1, 1, { [HEADER_REPLAY_GROUP]: 'other' }), delivery(2, 1, { [HEADER_REPLAY_GROUP]: 'g' })]);
    const q = createQueue(driver);
    const it = q.consume('t', 'g')[Symbol.asyncIterator]();
    const d = (await it.next()).value;
    expect(d.seq).toBe(2);
    expect(d.headers).toEqual({});
    expect(driver.acked).toEqual([1]);
    await q.close();
  });

  it('replays every dead letter, more than one page of them, back to the failing group', async () => {
    const driver = new MemQueueDriver();
    for (let i = 1; i <= 300; i++) {
      await driver.publish('t.dlq', new TextEncoder().encode(`m${i}`), { [HEADER_DLQ_GROUP]: 'g', 'stowage-original-seq': String(i) }, undefined);
    }
    const q = createQueue(driver);
    expect(await q.replay('t')).toBe(300);
    expect(await q.deadLetters('t')).toEqual([]);
    const [first] = await driver.read('t', 1, 1);
    expect(first?.headers[HEADER_REPLAY_GROUP]).toBe('g');
    expect((await q.stats('t')).messages).toBe(300);
    await q.close();
  });

  it('settles once: a second ack, a nak or a term after an ack do nothing', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    const d = (await q.consume('t', 'g')[Symbol.asyncIterator]().next()).value;
    await Promise.all([d.ack(), d.ack()]);
    await d.nak();
    await d.term();
    expect(driver.acks).toBe(1);
    expect(driver.naks).toEqual([]);
    expect(driver.published.filter((p) => p.topic === 't.dlq')).toEqual([]);
    await q.close();
  });

  it('a failed ack is mapped (UNAVAILABLE) and may be tried again', async () => {
    const driver = new SpyDriver();
    driver.failAcks = 1;
    const q = createQueue(driver);
    await q.publish('t', 'x');
    const d = (await q.consume('t', 'g')[Symbol.asyncIterator]().next()).value;
    await expect(d.ack()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await d.ack();
    expect(driver.acks).toBe(1);
    await q.close();
  });

  /** A scripted driver whose acks all return what `ack()` gives (counting the calls). */
  function ackingDriver(count: number, ack: () => Promise<void>): QueueDriver & { ackCalls: number } {
    const base = scriptedDriver([]);
    const driver = Object.assign(base, { ackCalls: 0 });
    driver.subscribe = () => {
      let closed = false;
      return {
        close: async () => {
          closed = true;
        },
        async *[Symbol.asyncIterator]() {
          for (let seq = 1; seq <= count; seq++) {
            yield {
              ...delivery(seq, 1),
              ack: () => {
                driver.ackCalls++;
                return ack();
              },
            };
          }
          while (!closed) await sleep(10);
        },
      };
    };
    return driver;
  }

  async function takeN(q: ReturnType<typeof createQueue>, n: number): Promise<Delivery[]> {
    const it = q.consume('t', 'g', { prefetch: n })[Symbol.asyncIterator]();
    const out: Delivery[] = [];
    for (let i = 0; i < n; i++) out.push((await it.next()).value as Delivery);
    return out;
  }

  it('acks answered by one driver promise (a group commit) each reach the driver and settle with it', async () => {
    let release!: () => void;
    const commit = new Promise<void>((resolve) => (release = resolve));
    const driver = ackingDriver(3, () => commit);
    const q = createQueue(driver);
    const ds = await takeN(q, 3);
    let settled = 0;
    const acks = ds.map((d) => d.ack().then(() => settled++));
    expect(driver.ackCalls).toBe(3);
    await sleep(20);
    expect(settled).toBe(0);
    release();
    await Promise.all(acks);
    expect(settled).toBe(3);
    await q.close();
  });

  it('when a shared driver promise fails, every ack on it fails mapped and may be tried again', async () => {
    let fail = true;
    // One rejected promise for every ack: the acks share it.
    const rejected = Promise.reject(Object.assign(new Error('refused'), { code: 'ECONNREFUSED' }));
    rejected.catch(() => undefined);
    const driver = ackingDriver(3, () => (fail ? rejected : Promise.resolve()));
    const q = createQueue(driver);
    const ds = await takeN(q, 3);
    const results = await Promise.allSettled(ds.map((d) => d.ack()));
    for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'UNAVAILABLE' } });
    fail = false;
    await Promise.all(ds.map((d) => d.ack()));
    expect(driver.ackCalls).toBe(6);
    await q.close();
  });

  it('an ack the driver never answers rejects with TIMEOUT, shared or not', async () => {
    const never = new Promise<void>(() => undefined);
    const q = createQueue(ackingDriver(2, () => never), { defaultTimeoutMs: 50 });
    const ds = await takeN(q, 2);
    const started = performance.now();
    const results = await Promise.allSettled(ds.map((d) => d.ack()));
    expect(performance.now() - started).toBeGreaterThanOrEqual(49);
    for (const r of results) expect(r).toMatchObject({ status: 'rejected', reason: { code: 'TIMEOUT' } });
    const alone = createQueue(ackingDriver(1, () => new Promise<void>(() => undefined)), { defaultTimeoutMs: 50, drainMs: 10 });
    const [d] = await takeN(alone, 1);
    await expect(d?.ack()).rejects.toMatchObject({ code: 'TIMEOUT' });
    await Promise.all([q.close(), alone.close()]);
  });

  it('next() calls made at once get successive deliveries, and a second iteration is INVALID_ARGUMENT', async () => {
    const q = createQueue(ackingDriver(3, () => Promise.resolve()));
    const consumer = q.consume('t', 'g', { prefetch: 3 });
    const it = consumer[Symbol.asyncIterator]();
    const [a, b, c] = await Promise.all([it.next(), it.next(), it.next()]);
    expect([a.value, b.value, c.value].map((d) => (d as Delivery).seq)).toEqual([1, 2, 3]);
    await expect(consumer[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    const pending = it.next();
    await consumer.close();
    expect((await pending).done).toBe(true);
    expect((await it.next()).done).toBe(true);
    await q.close();
  });

  it('json() of a payload that is not JSON is INVALID_ARGUMENT', async () => {
    const q = createQueue(new MemQueueDriver());
    await q.publish('t', 'not json');
    const d = (await q.consume('t', 'g')[Symbol.asyncIterator]().next()).value;
    expect(() => d.json()).toThrow(StowageError);
    await q.close();
  });

  it('process naks with backoffMs by attempt and reports the error after the nak', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    const errors: number[] = [];
    const p = q.process(
      't',
      'g',
      async (d) => {
        if (d.deliveryCount < 3) throw new Error(`attempt ${d.deliveryCount}`);
      },
      { backoffMs: [10, 20], onError: () => errors.push(driver.naks.length) },
    );
    await eventually(() => driver.acks === 1, 'the third attempt acked');
    await p.stop();
    expect(driver.naks).toEqual([10, 20]);
    expect(errors).toEqual([1, 2]);
    await q.close();
  });

  it('process without backoffMs waits an exponential delay with jitter before each redelivery', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    // Attempts are nak'ed with the default delay; the mem driver is told to redeliver at once (nak is spied).
    driver.nakDelayOverride = 0;
    const p = q.process('t', 'g', async (d) => {
      if (d.deliveryCount < 4) throw new Error(`attempt ${d.deliveryCount}`);
    }, { onError: () => undefined });
    await eventually(() => driver.acks === 1, 'the fourth attempt acked');
    await p.stop();
    await q.close();
    expect(driver.naks).toHaveLength(3);
    driver.naks.forEach((delay, i) => {
      const ceiling = 1000 * 2 ** i;
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    });
  });

  it('process without onError logs each handler failure, never the payload', async () => {
    const warnings: string[] = [];
    const logger = { warn: (m: string) => void warnings.push(m), info: () => undefined, debug: () => undefined };
    const q = createQueue(new MemQueueDriver(), { logger });
    await q.publish('t', 'card 4111-1111');
    const p = q.process('t', 'g', async () => {
      throw Object.assign(new Error('ledger\nunreachable'), { code: 'ECONNREFUSED' });
    }, { maxDeliver: 2, backoffMs: [0] });
    await eventually(() => warnings.length === 2, 'both failures logged');
    await p.stop();
    await q.close();
    expect(warnings[0]).toBe('queue: the handler failed on message 1 of topic "t", group "g" (attempt 1): ECONNREFUSED: ledger unreachable; delivered again in 0 ms');
    expect(warnings[1]).toBe('queue: the handler failed on message 1 of topic "t", group "g" (attempt 2): ECONNREFUSED: ledger unreachable; moved to the dead-letter topic');
    expect(warnings.join('\n')).not.toContain('4111');
  });

  it('nak({ error }) on the last attempt records the error with the dead letter', async () => {
    const q = createQueue(new MemQueueDriver());
    await q.publish('t', 'x');
    const it = q.consume('t', 'g', { maxDeliver: 1 })[Symbol.asyncIterator]();
    const d = (await it.next()).value as Delivery;
    await d.nak({ error: 'not a number' });
    await it.return?.();
    expect((await q.deadLetters('t'))[0]?.error).toEqual({ message: 'not a number', code: undefined });
    await q.close();
  });

  it('close lets a running handler finish and ack before the driver closes', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    let started = false;
    const p = q.process('t', 'g', async () => {
      started = true;
      await sleep(100);
    });
    await eventually(() => started, 'handler started');
    await q.close();
    expect(driver.acks).toBe(1);
    await p.done;
  });

  it('stop() lets a handler still running ack through the subscription before closing it', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    let started = false;
    const p = q.process('t', 'g', async () => {
      started = true;
      await gate;
    });
    await eventually(() => started, 'handler started');
    const stopped = p.stop();
    await sleep(20);
    finish();
    await stopped;
    expect(driver.events).toEqual(['ack', 'close']);
    await q.close();
  });

  it('queue close lets a running handler ack through its subscription before closing it', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    let started = false;
    q.process('t', 'g', async () => {
      started = true;
      await sleep(50);
    });
    await eventually(() => started, 'handler started');
    await q.close();
    expect(driver.events).toEqual(['ack', 'close']);
  });

  it('a processor stopped by its signal lets a running handler ack through the subscription before closing it', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver);
    await q.publish('t', 'x');
    const controller = new AbortController();
    let started = false;
    const p = q.process(
      't',
      'g',
      async () => {
        started = true;
        await sleep(50);
      },
      { signal: controller.signal },
    );
    await eventually(() => started, 'handler started');
    controller.abort();
    await p.done;
    await eventually(() => driver.events.includes('close'), 'subscription closed');
    expect(driver.events).toEqual(['ack', 'close']);
    await q.close();
  });

  it('a message the driver hands over after stop() goes back to the group once the subscription closes', async () => {
    const q = createQueue(new MemQueueDriver());
    await q.publish('t', 'a');
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    const seen: string[] = [];
    const p = q.process(
      't',
      'g',
      async (d) => {
        seen.push(d.text());
        await gate;
      },
      { concurrency: 2, ackWaitMs: 30_000 },
    );
    await eventually(() => seen.length === 1, 'first handler started');
    const stopped = p.stop();
    // The processor's next() still waits in the driver: this message is handed to it, and must not wait
    // out its ackWait.
    await q.publish('t', 'b');
    await sleep(20);
    finish();
    await stopped;
    expect(seen).toEqual(['a']);
    const it = q.consume('t', 'g')[Symbol.asyncIterator]();
    const r = await Promise.race([it.next(), sleep(2_000).then(() => undefined)]);
    expect(r?.done === false ? r.value.text() : undefined).toBe('b');
    await q.close();
  });

  it('stop() closes the subscription after the drain time even while a handler still runs', async () => {
    const driver = new SpyDriver();
    const q = createQueue(driver, { drainMs: 50 });
    await q.publish('t', 'x');
    let finish!: () => void;
    const gate = new Promise<void>((resolve) => (finish = resolve));
    let started = false;
    const p = q.process('t', 'g', async () => {
      started = true;
      await gate;
    });
    await eventually(() => started, 'handler started');
    const stopped = p.stop();
    await eventually(() => driver.events.includes('close'), 'subscription closed after drainMs');
    expect(driver.acks).toBe(0);
    finish();
    await stopped;
    await q.close();
  });

  it('an onError that throws does not stop processing', async () => {
    const q = createQueue(new MemQueueDriver());
    await q.publish('t', 'a');
    await q.publish('t', 'b');
    const seen: string[] = [];
    const p = q.process(
      't',
      'g',
      async (d) => {
        seen.push(d.text());
        if (d.deliveryCount === 1) throw new Error('fail once');
      },
      {
        backoffMs: [0],
        onError: () => {
          throw new Error('bad onError');
        },
      },
    );
    await eventually(() => seen.length === 4, 'both messages retried');
    await p.stop();
    await q.close();
  });

  it('a driver subscription that fails ends the iterator with a mapped error', async () => {
    const driver = new MemQueueDriver();
    driver.subscribe = () => ({
      close: async () => undefined,
      [Symbol.asyncIterator]: () => ({ next: () => Promise.reject(Object.assign(new Error('reset'), { code: 'ECONNRESET' })) }),
    });
    const q = createQueue(driver);
    await expect(q.consume('t', 'g')[Symbol.asyncIterator]().next()).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    await q.close();
  });
});
