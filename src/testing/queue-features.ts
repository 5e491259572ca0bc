/**
 * The queue contract cases of the features built on every driver: batches, delayed messages, ordering
 * keys and rate limits. Registered by {@link queueContract}.
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Delivery, Queue } from '../ports/queue.js';
import { StowageError } from '../ports/errors.js';
import { eventually, rejectsWith, skipUnless, sleep } from './harness.js';
import { groupStats, iterate, next, NEXT_MS } from './queue-helpers.js';

/** Registers one test on a fresh instance (what {@link queueContract} gives). */
type It = (name: string, fn: (queue: Queue) => Promise<void>) => void;

/** Starts of handler calls: when (performance.now()) and which message. */
interface Start {
  readonly at: number;
  readonly seq: number;
}

/**
 * Registers the feature cases with `it`. Time-dependent cases use real time with margins of a few
 * hundred milliseconds: drivers run their own timers, which a fake clock would not move.
 */
export function queueFeatureCases(it: It): void {
  // ---- batches ----

  it('publishMany stores the messages in order and resolves with their results in that order', async (q) => {
    const results = await q.publishMany('orders', [
      { payload: 'a', id: 'm-a' },
      { payload: new Uint8Array([98]), headers: { kind: 'b' } },
      { payload: 'c', id: 'm-a' },
    ]);
    assert.equal(results.length, 3);
    const [a, b, c] = results as [(typeof results)[0], (typeof results)[0], (typeof results)[0]];
    assert.ok(a.seq < b.seq, `seqs ${a.seq}, ${b.seq}`);
    assert.equal(a.duplicate, false);
    assert.deepEqual({ seq: c.seq, duplicate: c.duplicate }, { seq: a.seq, duplicate: true }, 'a repeated id within the call is a duplicate');
    const stored = await q.browse('orders');
    assert.deepEqual(
      stored.map((m) => Buffer.from(m.payload).toString()),
      ['a', 'b'],
    );
    assert.deepEqual(await q.publishMany('orders', []), []);
  });

  it('publishMany with one bad message stores none of them', async (q) => {
    const err = await rejectsWith(
      q.publishMany('orders', [{ payload: 'fine' }, { payload: 'bad', headers: { 'stowage-x': '1' } }]),
      'INVALID_ARGUMENT',
    );
    assert.match(err.message, /messages\[1\]/);
    await rejectsWith(q.publishMany('orders', 'nope' as never), 'INVALID_ARGUMENT');
    assert.equal((await q.stats('orders')).messages, 0);
  });

  it('processBatch hands over batches of at most maxMessages and acks what the handler left unsettled', async (q) => {
    await q.publishMany('orders', Array.from({ length: 7 }, (_, i) => ({ payload: `m${i}` })));
    const sizes: number[] = [];
    const seen: string[] = [];
    const p = q.processBatch(
      'orders',
      'billing',
      async (batch) => {
        sizes.push(batch.length);
        seen.push(...batch.map((d) => d.text()));
      },
      { maxMessages: 3, maxWaitMs: 200 },
    );
    try {
      await eventually(() => seen.length === 7, 'all seven messages handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.ok(sizes.every((n) => n >= 1 && n <= 3), `batch sizes ${sizes.join(',')}`);
    assert.ok(sizes.some((n) => n > 1), `messages were batched: ${sizes.join(',')}`);
    assert.deepEqual([...seen].sort(), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6']);
    await eventually(async () => {
      const g = groupStats(await q.stats('orders'), 'billing');
      return g.pending === 0 && g.backlog === 0;
    }, 'every message acked', NEXT_MS);
  });

  it('processBatch hands over a partial batch once maxWaitMs has passed', async (q) => {
    await q.publishMany('orders', [{ payload: 'a' }, { payload: 'b' }]);
    let got: number | undefined;
    let at = 0;
    const started = performance.now();
    const p = q.processBatch(
      'orders',
      'billing',
      async (batch) => {
        got ??= batch.length;
        at = performance.now() - started;
      },
      { maxMessages: 50, maxWaitMs: 150 },
    );
    try {
      await eventually(() => got !== undefined, 'a batch', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.ok(got !== undefined && got >= 1 && got <= 2, `batch of ${got}`);
    assert.ok(at < 3_000, `handed over after ${Math.round(at)} ms, not held for a full batch`);
  });

  it('processBatch settles each message on its own: what the handler settled stays, the rest is nak\'ed when it throws', async (q) => {
    await q.publishMany('orders', [{ payload: 'keep' }, { payload: 'drop' }, { payload: 'retry' }]);
    const calls: Array<Array<[string, number]>> = [];
    const errors: string[] = [];
    const p = q.processBatch(
      'orders',
      'billing',
      async (batch) => {
        calls.push(batch.map((d) => [d.text(), d.deliveryCount]));
        if (calls.length > 1) return;
        for (const d of batch) {
          if (d.text() === 'keep') await d.ack();
          if (d.text() === 'drop') await d.term('bad order');
        }
        throw new Error('batch failed');
      },
      { maxMessages: 3, maxWaitMs: 300, backoffMs: [0], onError: (err, d) => errors.push(`${d.text()}:${(err as Error).message}`) },
    );
    try {
      await eventually(() => calls.length >= 2, 'the failed message came again', NEXT_MS);
    } finally {
      await p.stop();
    }
    const firstTexts = (calls[0] ?? []).map(([text]) => text);
    // A driver may hand the first batch over before all three arrived; the test needs them together.
    if (firstTexts.length === 3) {
      assert.deepEqual(calls[1], [['retry', 2]], 'only the unsettled message is delivered again');
      assert.deepEqual(errors, ['retry:batch failed'], 'the failure is reported once, for the message it nak\'ed');
      const letters = await q.deadLetters('orders');
      assert.deepEqual(
        letters.map((l) => [Buffer.from(l.payload).toString(), l.reason]),
        [['drop', 'bad order']],
      );
    } else {
      assert.ok(calls.flat().some(([text, count]) => text === 'retry' && count === 2), 'retry came again');
    }
  });

  it('processBatch refuses bad options', async (q) => {
    const h = async (): Promise<void> => undefined;
    for (const bad of [{ maxMessages: 0 }, { maxMessages: 1.5 }, { maxWaitMs: -1 }, { backoffMs: 'x' }]) {
      assert.throws(() => q.processBatch('orders', 'billing', h, bad as never), (err: unknown) => (err as { code?: string }).code === 'INVALID_ARGUMENT');
    }
  });

  // ---- delayed messages ----

  it('a delayed message is delivered no earlier than its time, to every group, as its first delivery', async (q) => {
    // Long enough that both groups are consuming before it is due, even on a loaded machine (a backend whose group
    // creation takes longer would rightly deliver it first, being due and earlier in sequence).
    const delayMs = 2_000;
    const publishedAt = Date.now();
    await q.publish('orders', 'later', { delayMs });
    await q.publish('orders', 'now');
    const groups = ['billing', 'shipping'].map((group) => ({ group, itr: iterate(q, 'orders', group) }));
    for (const { group, itr } of groups) {
      const first = await next(itr, `the undelayed message for ${group}`);
      assert.equal(first.text(), 'now', 'a later undelayed message is not held behind the delayed one');
      await first.ack();
    }
    for (const { group, itr } of groups) {
      const second = await next(itr, `the delayed message for ${group}`, NEXT_MS);
      assert.equal(second.text(), 'later');
      assert.ok(Date.now() >= publishedAt + delayMs, `delivered ${Date.now() - publishedAt} ms after publish, not before ${delayMs}`);
      assert.equal(second.deliveryCount, 1, 'the deliveries before its time do not count');
      await second.ack();
    }
  });

  it('notBefore delays to a time; a time already past delivers at once', async (q) => {
    // 2.5 s, not 0.6: a RabbitMQ group that took longer than the delay to start under a load of 15 rightly got
    // 'at' first (due, and published first), as the delayed-message case above did at 0.7 s.
    const at = new Date(Date.now() + 2_500);
    await q.publish('orders', 'at', { notBefore: at });
    await q.publish('orders', 'past', { notBefore: new Date(Date.now() - 60_000) });
    const itr = iterate(q, 'orders', 'billing');
    const first = await next(itr, 'the message whose time is past');
    assert.equal(first.text(), 'past');
    await first.ack();
    const second = await next(itr, 'the message at its time');
    assert.equal(second.text(), 'at');
    assert.ok(Date.now() >= at.getTime(), 'not before notBefore');
    await second.ack();
  });

  it('a delayed message that fails is retried with its attempts counted from its time', async (q) => {
    await q.publish('orders', 'later', { delayMs: 300 });
    const counts: number[] = [];
    const p = q.process(
      'orders',
      'billing',
      async (d) => {
        counts.push(d.deliveryCount);
        if (d.deliveryCount < 2) throw new Error('first attempt fails');
      },
      { backoffMs: [0], maxDeliver: 2, onError: () => undefined },
    );
    try {
      await eventually(() => counts.length === 2, 'two attempts', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.deepEqual(counts, [1, 2]);
    assert.equal((await q.stats('orders')).deadLetters, 0, 'two attempts of maxDeliver 2: not dead-lettered');
  });

  it('bad delays and keys are refused and publish nothing', async (q) => {
    const bad: Array<Parameters<Queue['publish']>[2]> = [
      { delayMs: -1 },
      { delayMs: 1.5 },
      { delayMs: 400 * 86_400_000 },
      { delayMs: 10, notBefore: new Date() },
      { notBefore: new Date(Number.NaN) },
      { notBefore: '2030-01-01' as never },
      { key: '' },
      { key: 'x'.repeat(257) },
      { key: 'a\nb' },
      { key: 7 as never },
    ];
    for (const options of bad) await rejectsWith(q.publish('orders', 'x', options), 'INVALID_ARGUMENT');
    assert.equal((await q.stats('orders')).messages, 0);
  });

  // ---- ordering keys ----

  it('process runs one message of a key at a time, in publish order, while other keys run in parallel', async (q) => {
    const keys = ['a', 'b', 'c'];
    const published = new Map<string, number[]>(keys.map((k) => [k, []]));
    for (let i = 0; i < 4; i++) {
      for (const key of keys) published.get(key)?.push((await q.publish('orders', `${key}${i}`, { key })).seq);
    }
    const order = new Map<string, number[]>(keys.map((k) => [k, []]));
    const runningByKey = new Map<string, number>();
    let running = 0;
    let most = 0;
    let overlap = false;
    let done = 0;
    const p = q.process(
      'orders',
      'billing',
      async (d: Delivery) => {
        const key = d.key as string;
        if ((runningByKey.get(key) ?? 0) > 0) overlap = true;
        runningByKey.set(key, (runningByKey.get(key) ?? 0) + 1);
        running++;
        most = Math.max(most, running);
        order.get(key)?.push(d.seq);
        await sleep(30);
        running--;
        runningByKey.set(key, (runningByKey.get(key) ?? 0) - 1);
        done++;
      },
      { concurrency: 6 },
    );
    try {
      await eventually(() => done === 12, 'every message handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.equal(overlap, false, 'never two messages of one key at once');
    assert.deepEqual(order, published, 'each key in publish order');
    assert.ok(most >= 2, `other keys ran in parallel (at most ${most} at once)`);
  });

  it('perKeyConcurrency lets that many messages of one key run at once', async (q) => {
    for (let i = 0; i < 6; i++) await q.publish('orders', `m${i}`, { key: 'k' });
    let running = 0;
    let most = 0;
    let done = 0;
    const p = q.process(
      'orders',
      'billing',
      async () => {
        running++;
        most = Math.max(most, running);
        await sleep(50);
        running--;
        done++;
      },
      { concurrency: 4, perKeyConcurrency: 2 },
    );
    try {
      await eventually(() => done === 6, 'every message handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.equal(most, 2, `two of the key at once, never more (saw ${most})`);
  });

  it('a message of a key waiting for its turn stays with its processor past ackWait', async (q) => {
    await q.publish('orders', 'first', { key: 'k' });
    await q.publish('orders', 'second', { key: 'k' });
    const handled: Array<[string, number]> = [];
    const p = q.process(
      'orders',
      'billing',
      async (d) => {
        handled.push([d.text(), d.deliveryCount]);
        if (d.text() !== 'first') return;
        // The running handler keeps its own delivery; the waiting one is the processor's to keep.
        for (let i = 0; i < 10; i++) {
          await sleep(200);
          await d.touch();
        }
      },
      { concurrency: 2, ackWaitMs: 800 },
    );
    try {
      await eventually(() => handled.length >= 2, 'both handled', NEXT_MS);
      await sleep(100);
    } finally {
      await p.stop();
    }
    assert.deepEqual(handled, [
      ['first', 1],
      ['second', 1],
    ]);
  });

  it('stop() lets the running message of a key finish, then gives back the ones waiting behind it at once', async (q) => {
    await q.publish('orders', 'first', { key: 'k' });
    await q.publish('orders', 'second', { key: 'k' });
    let started = false;
    let finished = false;
    const p = q.process(
      'orders',
      'billing',
      async (d) => {
        if (d.text() !== 'first') throw new Error('only the first may run before stop()');
        started = true;
        await sleep(300);
        finished = true;
      },
      { concurrency: 2, ackWaitMs: 30_000 },
    );
    await eventually(() => started, 'the first started', NEXT_MS);
    await p.stop();
    assert.equal(finished, true, 'stop() waited for the running handler');
    // Well before the 30 s ackWait: the waiting message was given back, not left to expire.
    const d = await next(iterate(q, 'orders', 'billing'), 'the message that waited', 3_000);
    assert.equal(d.text(), 'second');
    await d.ack();
  });

  /**
   * Skips the test unless the queue orders keys across processors: a keyed message then carries its key
   * sequence (a config store with leases, and a driver whose groups may span processes).
   */
  const needsGroupKeys = async (q: Queue): Promise<void> => {
    await q.publish('probe', 'x', { key: 'probe' });
    const [m] = await q.browse('probe');
    skipUnless(
      m?.headers['stowage-key-seq'] !== undefined,
      'keys and rate limits are kept per processor on this queue (a single-process driver, or no config store with leases)',
    );
  };

  /**
   * Publishes a third message of key `k` and checks that a processor of the group runs it at once: far below
   * the gap time (2 × the default 30 s ackWait + the lease), so the key's earlier messages left it free.
   */
  const nextOfKeyRunsAtOnce = async (q: Queue): Promise<void> => {
    await q.publish('orders', 'third', { key: 'k' });
    const seen: string[] = [];
    const p = q.process('orders', 'billing', async (d) => void seen.push(d.text()));
    try {
      await eventually(() => seen.length >= 1, 'the third handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.deepEqual(seen, ['third']);
  };

  it('two processors of a group never run one key at once, and run each key in publish order', async (q) => {
    await needsGroupKeys(q);
    const keys = ['a', 'b', 'c'];
    const published = new Map<string, string[]>(keys.map((k) => [k, []]));
    for (let i = 0; i < 5; i++) {
      for (const key of keys) {
        await q.publish('orders', `${key}${i}`, { key });
        published.get(key)?.push(`${key}${i}`);
      }
    }
    const order = new Map<string, string[]>(keys.map((k) => [k, []]));
    const runningByKey = new Map<string, number>();
    let overlap = '';
    let done = 0;
    const handler = async (d: Delivery): Promise<void> => {
      const key = d.key as string;
      if ((runningByKey.get(key) ?? 0) > 0) overlap ||= `${d.text()} started while another message of ${key} ran`;
      runningByKey.set(key, (runningByKey.get(key) ?? 0) + 1);
      order.get(key)?.push(d.text());
      await sleep(20);
      runningByKey.set(key, (runningByKey.get(key) ?? 0) - 1);
      done++;
    };
    const processors = [q.process('orders', 'billing', handler, { concurrency: 3 }), q.process('orders', 'billing', handler, { concurrency: 3 })];
    try {
      await eventually(() => done >= 15, 'every message handled', NEXT_MS);
    } finally {
      await Promise.all(processors.map((p) => p.stop()));
    }
    assert.equal(overlap, '', 'never two messages of one key at once');
    assert.deepEqual(order, published, 'each key in publish order, each message once');
  });

  it('a failed message of a key is retried before the later messages of its key run', async (q) => {
    await needsGroupKeys(q);
    await q.publish('orders', 'first', { key: 'k' });
    await q.publish('orders', 'second', { key: 'k' });
    await q.publish('orders', 'other', { key: 'j' });
    const seen: string[] = [];
    const p = q.process(
      'orders',
      'billing',
      async (d) => {
        seen.push(`${d.text()}#${d.deliveryCount}`);
        if (d.text() === 'first' && d.deliveryCount === 1) throw new Error('first attempt fails');
      },
      { concurrency: 4, backoffMs: [300], onError: () => undefined },
    );
    try {
      await eventually(() => seen.length >= 4, 'every message handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    const ofK = seen.filter((s) => !s.startsWith('other'));
    assert.deepEqual(ofK, ['first#1', 'first#2', 'second#1'], 'the key waited for the retry');
    assert.ok(seen.indexOf('other#1') < seen.indexOf('first#2'), `another key did not wait: ${seen.join(', ')}`);
  });

  it('a duplicate keyed publish does not hold its key back', async (q) => {
    await needsGroupKeys(q);
    assert.equal((await q.publish('orders', 'one', { key: 'k', id: 'one' })).duplicate, false);
    assert.equal((await q.publish('orders', 'one', { key: 'k', id: 'one' })).duplicate, true);
    await q.publishMany('orders', [
      { payload: 'one', key: 'k', id: 'one' },
      { payload: 'two', key: 'k', id: 'two' },
    ]);
    await q.publish('orders', 'three', { key: 'k' });
    const seen: string[] = [];
    const started = performance.now();
    const p = q.process('orders', 'billing', async (d) => void seen.push(d.text()), { concurrency: 2 });
    try {
      await eventually(() => seen.length >= 3, 'every message handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    assert.deepEqual(seen, ['one', 'two', 'three']);
    // Far below the gap time (2 × the default 30 s ackWait): the duplicates' numbers were not waited for.
    assert.ok(performance.now() - started < 5_000, `handled in ${Math.round(performance.now() - started)} ms`);
  });

  it('messages of a key acked or terminated through consume let a processor of the group run the next one at once', async (q) => {
    await needsGroupKeys(q);
    await q.publish('orders', 'first', { key: 'k' });
    await q.publish('orders', 'second', { key: 'k' });
    const consumer = q.consume('orders', 'billing', { prefetch: 2 });
    const it = consumer[Symbol.asyncIterator]();
    await (await next(it, 'the first')).ack();
    await (await next(it, 'the second')).term('not wanted');
    await consumer.close();
    await nextOfKeyRunsAtOnce(q);
  });

  it('messages of a key settled by processBatch let a processor of the group run the next one at once', async (q) => {
    await needsGroupKeys(q);
    await q.publishMany('orders', [
      { payload: 'first', key: 'k' },
      { payload: 'second', key: 'k' },
      { payload: 'other', key: 'j' },
    ]);
    const batched: string[] = [];
    const b = q.processBatch('orders', 'billing', async (batch) => void batched.push(...batch.map((d) => d.text())), { maxMessages: 3, maxWaitMs: 100 });
    try {
      await eventually(() => batched.length >= 3, 'the batch handled', NEXT_MS);
    } finally {
      await b.stop();
    }
    await nextOfKeyRunsAtOnce(q);
  });

  it('a key number that has not come holds its key for the gap time at most, and runs when it comes', async (q) => {
    await needsGroupKeys(q);
    // The first message of the key is delayed past the gap time (2 × 500 ms ackWait + the 2 s lease).
    await q.publish('orders', 'late', { key: 'k', delayMs: 4_500 });
    await q.publish('orders', 'next', { key: 'k' });
    const seen: Array<[string, number]> = [];
    const started = performance.now();
    const p = q.process('orders', 'billing', async (d) => void seen.push([d.text(), performance.now() - started]), { concurrency: 2, ackWaitMs: 500 });
    try {
      await eventually(() => seen.length >= 2, 'both handled', 8_000);
    } finally {
      await p.stop();
    }
    assert.deepEqual(
      seen.map(([text]) => text),
      ['next', 'late'],
    );
    const waited = (seen[0] as [string, number])[1];
    assert.ok(waited >= 2_900, `the key waited for the missing number first (${Math.round(waited)} ms)`);
  });

  // ---- rate limits ----

  it('rateLimit starts at most `max` handlers within any `perMs` window', async (q) => {
    await q.publishMany('orders', Array.from({ length: 7 }, (_, i) => ({ payload: `m${i}` })));
    const starts: Start[] = [];
    const max = 3;
    const perMs = 300;
    const p = q.process(
      'orders',
      'billing',
      async (d) => {
        starts.push({ at: performance.now(), seq: d.seq });
      },
      { concurrency: 7, rateLimit: { max, perMs } },
    );
    try {
      await eventually(() => starts.length === 7, 'every message handled', NEXT_MS);
    } finally {
      await p.stop();
    }
    for (let i = max; i < starts.length; i++) {
      const gap = (starts[i] as Start).at - (starts[i - max] as Start).at;
      // The handler notes its start a moment after the limiter does; on a loaded machine the process may be
      // descheduled in between. 50 ms of slack still fails a missing limit (its gaps are about 0).
      assert.ok(gap >= perMs - 50, `starts ${i - max} and ${i} are ${gap.toFixed(0)} ms apart, less than ${perMs}`);
    }
  });

  it('rateLimit holds for the whole group: two processors together start at most `max` within any `perMs`', async (q) => {
    await needsGroupKeys(q);
    await q.publishMany('orders', Array.from({ length: 9 }, (_, i) => ({ payload: `m${i}` })));
    const starts: Start[] = [];
    const max = 3;
    const perMs = 400;
    const handler = async (d: Delivery): Promise<void> => void starts.push({ at: performance.now(), seq: d.seq });
    const processors = [0, 1].map(() => q.process('orders', 'billing', handler, { concurrency: 5, rateLimit: { max, perMs } }));
    try {
      await eventually(() => starts.length === 9, 'every message handled', NEXT_MS);
    } finally {
      await Promise.all(processors.map((p) => p.stop()));
    }
    starts.sort((a, b) => a.at - b.at);
    for (let i = max; i < starts.length; i++) {
      const gap = (starts[i] as Start).at - (starts[i - max] as Start).at;
      // As above: 50 ms of slack for the moment between the claim and the handler's start.
      assert.ok(gap >= perMs - 50, `starts ${i - max} and ${i} are ${gap.toFixed(0)} ms apart, less than ${perMs}`);
    }
  });

  it('process refuses bad perKeyConcurrency and rateLimit', async (q) => {
    const h = async (): Promise<void> => undefined;
    for (const bad of [{ perKeyConcurrency: 0 }, { rateLimit: { max: 0, perMs: 10 } }, { rateLimit: { max: 1 } }, { rateLimit: 5 }]) {
      assert.throws(() => q.process('orders', 'billing', h, bad as never), (err: unknown) => (err as { code?: string }).code === 'INVALID_ARGUMENT');
    }
  });

  // ---- schedules ----

  /** Skips the test when the queue was made without a config store (schedules are then UNSUPPORTED). */
  const needsSchedules = async (q: Queue): Promise<void> => {
    const supported = await q.schedules().then(
      () => true,
      (err: unknown) => {
        if (StowageError.is(err) && err.code === 'UNSUPPORTED') return false;
        throw err;
      },
    );
    skipUnless(supported, 'the queue was made without a config store: schedules are UNSUPPORTED');
  };

  it('a schedule publishes one message per slot, with the slot in its id, until it is removed', async (q) => {
    await needsSchedules(q);
    await q.schedule('tick', { everyMs: 1_000, topic: 'ticks', payload: 'tick', headers: { kind: 'tick' } });
    const [info] = await q.schedules();
    assert.equal(info?.name, 'tick');
    assert.equal(info?.everyMs, 1_000);
    assert.equal(info?.catchUp, 'last');
    assert.ok(info?.nextSlot !== undefined && info.nextSlot.getTime() % 1_000 === 0, 'slots are whole seconds');
    await eventually(async () => (await q.stats('ticks')).messages >= 2, 'two slots published', NEXT_MS);
    assert.equal(await q.unschedule('tick'), true);
    assert.equal(await q.unschedule('tick'), false);
    assert.deepEqual(await q.schedules(), []);
    const stored = await q.browse('ticks');
    const slots = stored.map((m) => Number(/^schedule-tick-(\d+)$/.exec(m.id ?? '')?.[1]));
    for (let i = 1; i < slots.length; i++) assert.equal((slots[i] as number) - (slots[i - 1] as number), 1_000, `consecutive slots: ${slots.join(', ')}`);
    assert.equal(Buffer.from(stored[0]?.payload ?? []).toString(), 'tick');
    assert.equal(stored[0]?.headers.kind, 'tick');
    const count = stored.length;
    await sleep(1_500);
    assert.equal((await q.stats('ticks')).messages, count, 'nothing published after unschedule');
  });

  it('bad schedules are refused and store nothing', async (q) => {
    await needsSchedules(q);
    const bad: unknown[] = [
      { topic: 'ticks' },
      { everyMs: 1_000, cron: '* * * * *', topic: 'ticks' },
      { everyMs: 10, topic: 'ticks' },
      { cron: 'not a cron', topic: 'ticks' },
      { cron: '* * * * *', timezone: 'Mars/Olympus', topic: 'ticks' },
      { everyMs: 1_000, timezone: 'UTC', topic: 'ticks' },
      { everyMs: 1_000, topic: 'bad topic' },
      { everyMs: 1_000, topic: 'ticks', catchUp: 'some' },
      { everyMs: 1_000, topic: 'ticks', headers: { 'stowage-x': '1' } },
    ];
    for (const spec of bad) await rejectsWith(q.schedule('tick', spec as never), 'INVALID_ARGUMENT');
    await rejectsWith(q.schedule('bad name', { everyMs: 1_000, topic: 'ticks' }), 'INVALID_ARGUMENT');
    assert.deepEqual(await q.schedules(), []);
  });
}
