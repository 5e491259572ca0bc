/**
 * The queue contract suite: what every {@link Queue} adapter must do, run against a factory of fresh
 * instances.
 *
 * Long (~650 lines) because it is the contract: one case per promise of the port, read top to bottom by an
 * adapter's author. The optional features have their own suite (`queue-features.ts`).
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Queue } from '../ports/queue.js';
import { StowageError } from '../ports/errors.js';
import { eventually, rejectsWith, runnable, sleep, withInstance, type ContractOptions } from './harness.js';
import { groupStats, iterate, next, NEXT_MS } from './queue-helpers.js';
import { queueFeatureCases } from './queue-features.js';

/** Options of {@link queueContract}. */
export interface QueueContractOptions extends ContractOptions<Queue> {
  /**
   * For adapters that declare the `retention` capability: a factory of fresh instances configured to remove
   * messages older than `maxAgeMs` (e.g. `?maxAge=1000`). Retention is set in the URL, so the suite cannot
   * set it up by itself; without this option the retention test is not registered.
   */
  retention?: {
    /** The age limit the instances are configured with (keep it short: about a second). */
    maxAgeMs: number;
    /** Returns a fresh, empty instance with that limit. */
    factory: () => Promise<Queue>;
  };
}

const TEST_MS = 10_000;

function throwsCode(fn: () => unknown, code: string): void {
  assert.throws(fn, (err: unknown) => StowageError.is(err) && err.code === code);
}

/**
 * Registers the queue contract tests.
 *
 * Each test takes a fresh, empty instance from `factory` and closes it. Tests use short `ackWaitMs` (300 ms)
 * and nak delays, so each one finishes in a few seconds. Sequence numbers are checked to increase in
 * publish order, not to be contiguous (a backend may share one sequence across topics).
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createStowage } from 'stowage';
 * import { queueContract } from 'stowage/testing';
 *
 * queueContract({
 *   test: { describe, it },
 *   name: 'mem://',
 *   factory: async () => (await createStowage({ queue: 'mem://' }, { ports: ['queue'] })).queue,
 * });
 * ```
 */
export function queueContract(options: QueueContractOptions): void {
  const { test, factory } = options;
  const it = (name: string, fn: (queue: Queue) => Promise<void>): void =>
    test.it(name, runnable(() => withInstance(factory, fn)), TEST_MS);

  test.describe(`queue contract: ${options.name}`, () => {
    queueFeatureCases(it);

    it('publish resolves with sequences that increase in publish order', async (q) => {
      const a = await q.publish('orders', 'one');
      const b = await q.publish('orders', new Uint8Array([1, 2, 3]));
      const c = await q.publish('orders', 'three', { headers: { kind: 'x' } });
      assert.ok(a.seq >= 1 && a.seq < b.seq && b.seq < c.seq, `seqs ${a.seq}, ${b.seq}, ${c.seq}`);
      assert.equal(a.duplicate, false);
      const stats = await q.stats('orders');
      assert.equal(stats.messages, 3);
      assert.equal(stats.lastSeq, c.seq);
    });

    it('keeps headers named like Object.prototype members (constructor, toString, hasOwnProperty)', async (q) => {
      const headers = { constructor: 'c', toString: 't', hasOwnProperty: 'h' };
      await q.publish('orders', 'x', { headers });
      const d = await next(iterate(q, 'orders', 'billing'), 'the message');
      assert.deepEqual({ ...d.headers }, headers);
      await d.ack();
    });

    it('delivers payload, headers, id and publish time as published', async (q) => {
      const before = Date.now();
      await q.publish('orders', JSON.stringify({ n: 1 }), { headers: { 'content-type': 'application/json' }, id: 'order-1' });
      const d = await next(iterate(q, 'orders', 'billing'), 'the message');
      assert.deepEqual(d.json(), { n: 1 });
      assert.equal(d.text(), '{"n":1}');
      assert.equal(d.headers['content-type'], 'application/json');
      assert.equal(d.id, 'order-1');
      assert.equal(d.topic, 'orders');
      assert.equal(d.group, 'billing');
      assert.equal(d.deliveryCount, 1);
      assert.ok(d.publishedAt.getTime() >= before - 1000, 'publishedAt is about when it was published');
      await d.ack();
    });

    it('every group receives every message, starting at the oldest', async (q) => {
      const seqs = [];
      for (let i = 0; i < 3; i++) seqs.push((await q.publish('orders', `m${i}`)).seq);
      for (const group of ['billing', 'shipping']) {
        const itr = iterate(q, 'orders', group);
        const got = [];
        for (let i = 0; i < 3; i++) {
          const d = await next(itr, `message ${i} for ${group}`);
          got.push(d.seq);
          await d.ack();
        }
        assert.deepEqual(got, seqs, `group ${group} got every message in order`);
      }
    });

    it('consumers of one group split the messages with no duplicates when all ack', async (q) => {
      const published = new Set<number>();
      for (let i = 0; i < 8; i++) published.add((await q.publish('orders', `m${i}`)).seq);
      const seen: number[] = [];
      const stop = new AbortController();
      const work = async (): Promise<void> => {
        for await (const d of q.consume('orders', 'billing', { signal: stop.signal })) {
          seen.push(d.seq);
          await sleep(5);
          await d.ack();
          if (seen.length >= published.size) stop.abort();
        }
      };
      await Promise.all([work(), work(), eventually(() => seen.length >= published.size, 'all messages processed', NEXT_MS)]);
      assert.equal(seen.length, published.size, `no message twice: ${seen.join(',')}`);
      assert.deepEqual(new Set(seen), published);
    });

    it('one consumer with prefetch 1 processes in publish order', async (q) => {
      const seqs = [];
      for (let i = 0; i < 10; i++) seqs.push((await q.publish('orders', `m${i}`)).seq);
      const itr = iterate(q, 'orders', 'billing', { prefetch: 1 });
      const got = [];
      for (let i = 0; i < 10; i++) {
        const d = await next(itr, `message ${i}`);
        assert.equal(d.text(), `m${i}`);
        got.push(d.seq);
        await d.ack();
      }
      assert.deepEqual(got, seqs);
    });

    it('redelivers a delivery not acked within ackWait, with deliveryCount + 1', async (q) => {
      const { seq } = await q.publish('orders', 'slow');
      const itr = iterate(q, 'orders', 'billing', { ackWaitMs: 300 });
      const first = await next(itr, 'first delivery');
      const second = await next(itr, 'redelivery after ackWait');
      assert.equal(second.seq, seq);
      assert.equal(first.deliveryCount, 1);
      assert.equal(second.deliveryCount, 2);
      assert.ok(groupStats(await q.stats('orders'), 'billing').redelivered >= 1, 'stats count the redelivery');
      await second.ack();
    });

    it('touch restarts the ackWait clock', async (q) => {
      await q.publish('orders', 'long job');
      // Held for 1.25 s against a 1 s ackWait; touches every 250 ms leave room for a busy machine.
      const itr = iterate(q, 'orders', 'billing', { ackWaitMs: 1_000 });
      const d = await next(itr, 'the message');
      for (let i = 0; i < 5; i++) {
        await sleep(250);
        await d.touch();
      }
      await d.ack();
      await q.publish('orders', 'after');
      const after = await next(itr, 'the next message');
      assert.equal(after.text(), 'after', 'the touched message was not redelivered');
      assert.equal(after.deliveryCount, 1);
      await after.ack();
    });

    it('nak with a delay redelivers, but not before the delay', async (q) => {
      await q.publish('orders', 'retry me');
      const itr = iterate(q, 'orders', 'billing', { ackWaitMs: 5_000 });
      const first = await next(itr, 'first delivery');
      const nakAt = Date.now();
      await first.nak({ delayMs: 700 });
      const again = await next(itr, 'delivery after the nak delay');
      assert.ok(Date.now() - nakAt >= 650, `redelivered ${Date.now() - nakAt} ms after a 700 ms nak`);
      assert.equal(again.seq, first.seq);
      assert.equal(again.deliveryCount, 2);
      await again.ack();
    });

    it('nak on the last allowed attempt moves the message to the dead-letter topic', async (q) => {
      const { seq } = await q.publish('orders', 'poison', { headers: { trace: 't1' } });
      const itr = iterate(q, 'orders', 'billing', { maxDeliver: 2 });
      await (await next(itr, 'attempt 1')).nak();
      const last = await next(itr, 'attempt 2');
      assert.equal(last.deliveryCount, 2);
      await last.nak();
      const letters = await q.deadLetters('orders');
      assert.equal(letters.length, 1);
      const [letter] = letters;
      assert.ok(letter);
      assert.equal(letter.topic, 'orders');
      assert.equal(letter.group, 'billing');
      assert.equal(letter.originalSeq, seq);
      assert.equal(letter.reason, 'max-deliver');
      assert.equal(letter.deliveryCount, 2);
      assert.equal(letter.headers.trace, 't1');
      assert.equal(Buffer.from(letter.payload).toString(), 'poison');
      assert.equal((await q.stats('orders')).deadLetters, 1);
      await eventually(async () => groupStats(await q.stats('orders'), 'billing').pending === 0, 'the original settled', NEXT_MS);
    });

    it('a dead letter records the error of the last failed attempt, message and code', async (q) => {
      await q.publish('orders', 'poison');
      const p = q.process(
        'orders',
        'billing',
        async () => {
          throw new StowageError('UNAVAILABLE', 'the ledger is down:\nretry later');
        },
        { maxDeliver: 2, backoffMs: [0], onError: () => undefined },
      );
      try {
        await eventually(async () => (await q.deadLetters('orders')).length === 1, 'the message is dead-lettered', NEXT_MS);
      } finally {
        await p.stop();
      }
      const [letter] = await q.deadLetters('orders');
      assert.equal(letter?.reason, 'max-deliver');
      assert.deepEqual(letter?.error, { message: 'the ledger is down: retry later', code: 'UNAVAILABLE' });
      assert.deepEqual(letter?.headers, {}, 'the error is not an application header');
    });

    it('a delivery whose ackWait passes on the last attempt is dead-lettered, never shown again', async (q) => {
      const { seq } = await q.publish('orders', 'stuck');
      const stop = new AbortController();
      const seen: number[] = [];
      const loop = (async () => {
        for await (const d of q.consume('orders', 'billing', { ackWaitMs: 300, maxDeliver: 1, signal: stop.signal })) seen.push(d.deliveryCount);
      })();
      try {
        await eventually(async () => (await q.deadLetters('orders')).length === 1, 'the message is dead-lettered', NEXT_MS);
      } finally {
        stop.abort();
        await loop;
      }
      assert.deepEqual(seen, [1], 'the application saw only the one allowed delivery');
      const [letter] = await q.deadLetters('orders');
      assert.equal(letter?.originalSeq, seq);
      assert.equal(letter?.reason, 'max-deliver');
    });

    it('term moves the message to the dead-letter topic with its reason', async (q) => {
      const { seq } = await q.publish('orders', 'bad');
      const d = await next(iterate(q, 'orders', 'billing'), 'the message');
      await d.term('unparseable');
      await d.ack(); // ignored: already settled
      const [letter, ...rest] = await q.deadLetters('orders');
      assert.equal(rest.length, 0);
      assert.equal(letter?.reason, 'unparseable');
      assert.equal(letter?.originalSeq, seq);
      assert.equal(letter?.deliveryCount, 1);
    });

    it('replay sends a dead letter back to the group that failed it, and only to that group', async (q) => {
      await q.publish('orders', 'first');
      const billing = iterate(q, 'orders', 'billing');
      const shipping = iterate(q, 'orders', 'shipping');
      await (await next(shipping, 'shipping gets it')).ack();
      await (await next(billing, 'billing gets it')).term('downstream down');
      const [letter] = await q.deadLetters('orders');
      assert.ok(letter);
      assert.equal(await q.replay('orders', { seqs: [letter.seq] }), 1);
      assert.deepEqual(await q.deadLetters('orders'), [], 'replayed letters leave the dead-letter topic');
      const again = await next(billing, 'billing gets the replay');
      assert.equal(again.text(), 'first');
      assert.equal(again.deliveryCount, 1);
      await again.ack();
      await q.publish('orders', 'marker');
      const s = await next(shipping, 'shipping gets the marker');
      assert.equal(s.text(), 'marker', 'shipping never saw the replay meant for billing');
      await s.ack();
    });

    it('replay without seqs replays every dead letter', async (q) => {
      await q.publish('orders', 'a');
      await q.publish('orders', 'b');
      const itr = iterate(q, 'orders', 'billing');
      await (await next(itr, 'a')).term();
      await (await next(itr, 'b')).term();
      assert.equal((await q.deadLetters('orders')).length, 2);
      assert.equal(await q.replay('orders'), 2);
      assert.equal((await q.stats('orders')).deadLetters, 0);
      const texts = [];
      for (const what of ['replay 1', 'replay 2']) {
        const d = await next(itr, what);
        texts.push(d.text());
        await d.ack();
      }
      assert.deepEqual(texts.sort(), ['a', 'b']);
    });

    it('a repeated message id is stored once', async (q) => {
      const first = await q.publish('orders', 'once', { id: 'order-42' });
      const second = await q.publish('orders', 'once', { id: 'order-42' });
      assert.equal(second.duplicate, true);
      assert.equal(second.seq, first.seq);
      const other = await q.publish('orders', 'other', { id: 'order-43' });
      assert.equal(other.duplicate, false);
      assert.equal((await q.stats('orders')).messages, 2);
    });

    it('process acks only after the handler resolves', async (q) => {
      await q.publish('orders', 'job');
      let release!: () => void;
      const gate = new Promise<void>((resolve) => (release = resolve));
      let started = false;
      const p = q.process('orders', 'billing', async () => {
        started = true;
        await gate;
      });
      try {
        await eventually(() => started, 'the handler started', NEXT_MS);
        const during = groupStats(await q.stats('orders'), 'billing');
        assert.equal(during.pending, 1, 'unsettled while the handler runs');
        release();
        await eventually(async () => groupStats(await q.stats('orders'), 'billing').pending === 0, 'acked after the handler', NEXT_MS);
      } finally {
        release();
        await p.stop();
      }
      assert.equal(groupStats(await q.stats('orders'), 'billing').backlog, 0);
    });

    it('process naks a message whose handler throws, and it is delivered again', async (q) => {
      await q.publish('orders', 'flaky');
      const counts: number[] = [];
      const errors: unknown[] = [];
      const p = q.process(
        'orders',
        'billing',
        async (d) => {
          counts.push(d.deliveryCount);
          if (d.deliveryCount === 1) throw new Error('first attempt fails');
        },
        { onError: (err) => errors.push(err), backoffMs: [50] },
      );
      try {
        await eventually(() => counts.length === 2, 'the redelivery was handled', NEXT_MS);
      } finally {
        await p.stop();
      }
      assert.deepEqual(counts, [1, 2]);
      assert.equal(errors.length, 1);
      await eventually(async () => groupStats(await q.stats('orders'), 'billing').pending === 0, 'the redelivery was acked', NEXT_MS);
    });

    it('process runs up to `concurrency` handlers at once and stop() waits for them', async (q) => {
      for (let i = 0; i < 6; i++) await q.publish('orders', `m${i}`);
      let running = 0;
      let most = 0;
      let finished = 0;
      const p = q.process(
        'orders',
        'billing',
        async () => {
          running++;
          most = Math.max(most, running);
          await sleep(100);
          running--;
          finished++;
        },
        { concurrency: 3 },
      );
      await eventually(() => finished >= 1, 'a handler finished', NEXT_MS);
      await p.stop();
      assert.equal(running, 0, 'stop() waited for running handlers');
      assert.ok(most <= 3 && most >= 2, `at most 3 at once (saw ${most})`);
      await p.done;
    });

    it('stats report backlog and pending per group, and dead letters', async (q) => {
      for (let i = 0; i < 3; i++) await q.publish('orders', `m${i}`);
      const itr = iterate(q, 'orders', 'billing', { prefetch: 1 });
      const d = await next(itr, 'first');
      let last = {};
      await eventually(async () => {
        const g = groupStats(await q.stats('orders'), 'billing');
        last = g;
        return g.pending === 1 && g.backlog === 2;
      }, `backlog 2, pending 1 (last seen ${JSON.stringify(last)})`, NEXT_MS);
      await d.ack();
      // A driver may pull the next message at once, so the two left are either pending or in the backlog.
      await eventually(async () => {
        const g = groupStats(await q.stats('orders'), 'billing');
        return g.pending + g.backlog === 2;
      }, 'the acked message counted neither as pending nor as backlog', NEXT_MS);
      const stats = await q.stats('orders');
      assert.equal(stats.topic, 'orders');
      assert.equal(stats.messages, 3);
      assert.equal(stats.deadLetters, 0);
    });

    it('topics lists the topics that hold messages, groups or dead letters, never a dead-letter topic', async (q) => {
      await q.publish('orders', 'a');
      await q.publish('invoices', 'b');
      await q.stats('untouched');
      const d = await next(iterate(q, 'orders', 'billing'), 'the message');
      await d.term('bad');
      await eventually(async () => (await q.deadLetters('orders')).length === 1, 'dead-lettered', NEXT_MS);
      assert.deepEqual(await q.topics(), ['invoices', 'orders']);
    });

    it('browse reads stored messages without moving any group', async (q) => {
      const seqs: number[] = [];
      for (let i = 0; i < 4; i++) seqs.push((await q.publish('orders', `m${i}`, { id: `id-${i}`, headers: { n: String(i) } })).seq);
      const all = await q.browse('orders');
      assert.deepEqual(all.map((m) => m.seq), seqs);
      assert.deepEqual(all.map((m) => Buffer.from(m.payload).toString()), ['m0', 'm1', 'm2', 'm3']);
      assert.equal(all[2]?.id, 'id-2');
      assert.equal(all[2]?.headers.n, '2');
      const page = await q.browse('orders', { fromSeq: seqs[1], limit: 2 });
      assert.deepEqual(page.map((m) => m.seq), seqs.slice(1, 3));
      const itr = iterate(q, 'orders', 'billing');
      for (const [i, seq] of seqs.entries()) {
        const m = await next(itr, `message ${i} after browsing`);
        assert.equal(m.seq, seq, 'a group consuming after a browse still gets everything');
        await m.ack();
      }
      assert.deepEqual(await q.browse('nothing-here'), []);
    });

    it('seekGroup positions a new group so that it first receives the message at that sequence', async (q) => {
      const seqs: number[] = [];
      for (let i = 0; i < 5; i++) seqs.push((await q.publish('orders', `m${i}`)).seq);
      await q.seekGroup('orders', 'billing', seqs[3] as number);
      const before = groupStats(await q.stats('orders'), 'billing');
      assert.equal(before.backlog, 2, 'the two messages from that sequence on are its backlog');
      assert.equal(before.ackFloor, (seqs[3] as number) - 1);
      const itr = iterate(q, 'orders', 'billing');
      const first = await next(itr, 'the message at the sought sequence');
      assert.equal(first.text(), 'm3');
      await first.ack();
    });

    it('seekGroup moves an idle group back, and refuses one with unsettled deliveries', async (q) => {
      const seqs: number[] = [];
      for (let i = 0; i < 3; i++) seqs.push((await q.publish('orders', `m${i}`)).seq);
      const c = q.consume('orders', 'billing', { prefetch: 1 });
      const itr = c[Symbol.asyncIterator]();
      const held = await next(itr, 'first');
      await rejectsWith(q.seekGroup('orders', 'billing', seqs[0] as number), 'CONFLICT');
      await held.ack();
      for (let i = 1; i < 3; i++) await (await next(itr, `message ${i}`)).ack();
      await c.close();
      // A backend may see a closed consumer's last pull for a few seconds: until then it counts as running.
      await eventually(async () => {
        try {
          await q.seekGroup('orders', 'billing', seqs[0] as number);
          return true;
        } catch (err) {
          if (StowageError.is(err) && err.code === 'CONFLICT') return false;
          throw err;
        }
      }, 'the idle group is moved', 8_000);
      const again = await next(iterate(q, 'orders', 'billing'), 'the first message again');
      assert.equal(again.text(), 'm0');
      await again.ack();
    });

    it('stats.ackFloor advances with in-order acks and not past an unacked message', async (q) => {
      const seqs: number[] = [];
      for (let i = 0; i < 4; i++) seqs.push((await q.publish('orders', `m${i}`)).seq);
      const itr = iterate(q, 'orders', 'billing', { prefetch: 4 });
      const ds = [];
      for (let i = 0; i < 4; i++) ds.push(await next(itr, `message ${i}`));
      assert.ok(groupStats(await q.stats('orders'), 'billing').ackFloor < (seqs[0] as number));
      await ds[0]?.ack();
      await ds[1]?.ack();
      await ds[3]?.ack();
      await eventually(async () => groupStats(await q.stats('orders'), 'billing').ackFloor === seqs[1], `ackFloor reaches ${seqs[1]}`, NEXT_MS);
      await ds[2]?.ack();
      await eventually(async () => groupStats(await q.stats('orders'), 'billing').ackFloor === seqs[3], `ackFloor reaches ${seqs[3]}`, NEXT_MS);
    });

    it('bad input to browse and seekGroup is refused', async (q) => {
      await rejectsWith(q.browse('a.dlq'), 'INVALID_ARGUMENT');
      await rejectsWith(q.browse('orders', { fromSeq: 0 }), 'INVALID_ARGUMENT');
      await rejectsWith(q.browse('orders', { limit: -1 }), 'INVALID_ARGUMENT');
      await rejectsWith(q.seekGroup('orders', 'a b', 1), 'INVALID_ARGUMENT');
      await rejectsWith(q.seekGroup('orders', 'billing', 0), 'INVALID_ARGUMENT');
      assert.deepEqual(await q.topics(), []);
    });

    it('stats of an unknown topic are empty', async (q) => {
      const stats = await q.stats('nothing-here');
      assert.equal(stats.messages, 0);
      assert.equal(stats.lastSeq, 0);
      assert.deepEqual(stats.groups, []);
      assert.equal(stats.deadLetters, 0);
    });

    it('purge removes every message if declared, else rejects with UNSUPPORTED', async (q) => {
      await q.publish('orders', 'a');
      await q.publish('orders', 'b');
      if (!q.capabilities.has('purge')) {
        await rejectsWith(q.purge('orders'), 'UNSUPPORTED');
        return;
      }
      await q.purge('orders');
      assert.equal((await q.stats('orders')).messages, 0);
      await q.publish('orders', 'c');
      const d = await next(iterate(q, 'orders', 'billing'), 'the message after purge');
      assert.equal(d.text(), 'c');
      await d.ack();
    });

    const retention = options.retention;
    if (retention !== undefined) {
      test.it(
        'retention removes messages older than the age limit',
        () =>
          withInstance(retention.factory, async (q) => {
            assert.ok(q.capabilities.has('retention'), 'an instance configured with an age limit declares "retention"');
            await q.publish('orders', 'old');
            await q.publish('orders', 'older');
            assert.equal((await q.stats('orders')).messages, 2);
            await sleep(retention.maxAgeMs);
            await eventually(async () => (await q.stats('orders')).messages === 0, 'messages past the age limit are gone', NEXT_MS);
          }),
        TEST_MS + retention.maxAgeMs,
      );
    }

    it('bad input is refused and publishes nothing', async (q) => {
      const big = new Uint8Array(q.maxPayloadBytes + 1);
      await rejectsWith(q.publish('', 'x'), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('a.b', 'x'), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('a/b', 'x'), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('..', 'x'), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('or\u0000ders', 'x'), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', big), 'RESOURCE_EXHAUSTED');
      await rejectsWith(q.publish('orders', 'x', { headers: { 'stowage-dlq-group': 'g' } }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { headers: { 'Stowage-Replay-Group': 'g' } }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { headers: { ok: 1 as unknown as string } }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { headers: { 'bad name': 'v' } }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { headers: { h: 'line\r\nbreak' } }), 'INVALID_ARGUMENT');
      // An own "__proto__" key (as JSON.parse or Object.fromEntries make it) is refused, never dropped.
      await rejectsWith(q.publish('orders', 'x', { headers: JSON.parse('{"__proto__":"v"}') as Record<string, string> }), 'INVALID_ARGUMENT');
      const many = Object.fromEntries(Array.from({ length: 65 }, (_, i) => [`h${i}`, 'v']));
      await rejectsWith(q.publish('orders', 'x', { headers: many }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { id: '' }), 'INVALID_ARGUMENT');
      await rejectsWith(q.publish('orders', 'x', { id: 'a\u0000b' }), 'INVALID_ARGUMENT');
      throwsCode(() => q.consume('orders', ''), 'INVALID_ARGUMENT');
      throwsCode(() => q.consume('orders', 'a b'), 'INVALID_ARGUMENT');
      throwsCode(() => q.consume('orders', 'billing', { ackWaitMs: 0 }), 'INVALID_ARGUMENT');
      throwsCode(() => q.process('orders', 'billing', async () => undefined, { concurrency: -1 }), 'INVALID_ARGUMENT');
      await rejectsWith(q.stats('a.dlq'), 'INVALID_ARGUMENT');
      const stats = await q.stats('orders');
      assert.equal(stats.messages, 0);
      assert.equal(stats.lastSeq, 0);
      assert.deepEqual(stats.groups, []);
    });

    it('a message at the payload limit is accepted', async (q) => {
      const max = Math.min(q.maxPayloadBytes, 256 * 1024);
      const { seq } = await q.publish('orders', new Uint8Array(max).fill(7));
      const d = await next(iterate(q, 'orders', 'billing'), 'the large message');
      assert.equal(d.seq, seq);
      assert.equal(d.payload.byteLength, max);
      await d.ack();
    });

    it('consume ends cleanly when its signal aborts or it is closed', async (q) => {
      const stop = new AbortController();
      const loop = (async () => {
        let n = 0;
        for await (const d of q.consume('orders', 'billing', { signal: stop.signal })) {
          n++;
          await d.ack();
        }
        return n;
      })();
      await q.publish('orders', 'one');
      // The group may not be listed yet: a backend may create it only once consume's first pull reaches it.
      await eventually(async () => (await q.stats('orders')).groups.find((g) => g.group === 'billing')?.backlog === 0, 'consumed', NEXT_MS);
      stop.abort();
      assert.equal(await loop, 1);
      const c = q.consume('orders', 'billing');
      const itr = c[Symbol.asyncIterator]();
      const pending = itr.next();
      await c.close();
      assert.equal((await pending).done, true);
    });

    it('consume with an already-aborted signal yields nothing', async (q) => {
      await q.publish('orders', 'one');
      const c = q.consume('orders', 'billing', { signal: AbortSignal.abort() });
      const r = await c[Symbol.asyncIterator]().next();
      assert.equal(r.done, true);
    });

    it('a consumer ends when the queue closes', async (q) => {
      const loop = (async () => {
        for await (const d of q.consume('orders', 'billing')) await d.ack();
      })();
      await sleep(50);
      await q.close();
      await loop;
    });

    it('calls after close reject with CLOSED; close is idempotent', async (q) => {
      await q.close();
      assert.equal(q.closed, true);
      await q.close();
      await rejectsWith(q.publish('orders', 'x'), 'CLOSED');
      await rejectsWith(q.stats('orders'), 'CLOSED');
      await rejectsWith(q.deadLetters('orders'), 'CLOSED');
      await rejectsWith(q.replay('orders'), 'CLOSED');
      await rejectsWith(q.purge('orders'), 'CLOSED', 'UNSUPPORTED');
      await rejectsWith(q.topics(), 'CLOSED');
      await rejectsWith(q.browse('orders'), 'CLOSED');
      await rejectsWith(q.seekGroup('orders', 'billing', 1), 'CLOSED');
      throwsCode(() => q.consume('orders', 'billing'), 'CLOSED');
      throwsCode(() => q.process('orders', 'billing', async () => undefined), 'CLOSED');
    });

    it('an already-aborted signal rejects with CANCELLED and publishes nothing', async (q) => {
      const signal = AbortSignal.abort();
      await rejectsWith(q.publish('orders', 'x', { signal }), 'CANCELLED');
      await rejectsWith(q.stats('orders', { signal }), 'CANCELLED');
      await rejectsWith(q.deadLetters('orders', { signal }), 'CANCELLED');
      await rejectsWith(q.replay('orders', { signal }), 'CANCELLED');
      await rejectsWith(q.topics({ signal }), 'CANCELLED');
      await rejectsWith(q.browse('orders', { signal }), 'CANCELLED');
      await rejectsWith(q.seekGroup('orders', 'billing', 1, { signal }), 'CANCELLED');
      assert.equal((await q.stats('orders')).messages, 0);
    });

    it('health does a round-trip', async (q) => {
      const h = await q.health();
      assert.equal(h.ok, true, h.error?.message);
      assert.equal(h.backend, q.backend);
    });
  });
}
