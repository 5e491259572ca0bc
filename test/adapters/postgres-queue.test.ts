/**
 * What the queue contract cannot see of the postgres:// queue: several processes sharing one schema (each
 * instance here has its own pool and listening connection, as a process would), waking without polling
 * hot, and the schema created once by instances racing to open it.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Pool } from 'pg';
import { postgresQueueScheme, type PostgresQueueDriver } from '../../src/adapters/postgres/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { eventually, rejectsWith } from '../../src/testing/harness.js';
import { openContext as context } from '../support/adapters.js';
import { serviceSuite } from '../support/services.js';

/** The next delivery, or a failure after `ms`. */
async function next(it: AsyncIterator<Delivery>, ms: number): Promise<Delivery> {
  let timer: NodeJS.Timeout | undefined;
  try {
    const r = await Promise.race([it.next(), new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no delivery within ${ms} ms`)), ms)))]);
    if (r.done === true) throw new Error('the consumer ended');
    return r.value;
  } finally {
    clearTimeout(timer);
  }
}

serviceSuite('postgres', (svc) => {
  const newSchema = (): string => `m${randomUUID().replaceAll('-', '').slice(0, 12)}`;

  async function openDriver(schema: string, query = ''): Promise<PostgresQueueDriver> {
    return (await postgresQueueScheme.open(parseUrl(`${svc().url}?schema=${schema}${query}`), context)) as PostgresQueueDriver;
  }

  /** Counts the claims a driver sends. */
  function countClaims(driver: PostgresQueueDriver): () => number {
    const pool = driver.native() as Pool;
    const query = pool.query.bind(pool) as (...args: unknown[]) => unknown;
    let claims = 0;
    pool.query = ((...args: unknown[]) => {
      const config = args[0] as { name?: string } | string;
      if (typeof config === 'object' && config.name?.startsWith('stowage_q_claim') === true) claims++;
      return query(...args);
    }) as unknown as Pool['query'];
    return () => claims;
  }

  describe('postgres:// queue shared by several processes', () => {
    it("a publish in one process wakes another's idle consumer at once (NOTIFY), not at its fallback poll", async () => {
      const schema = newSchema();
      const a = createQueue(await openDriver(schema));
      const b = createQueue(await openDriver(schema, '&pollMs=60000'));
      const itr = b.consume('jobs', 'workers')[Symbol.asyncIterator]();
      const waiting = next(itr, 5_000);
      // Let the consumer find the topic empty and go to sleep first.
      await new Promise((resolve) => setTimeout(resolve, 500));
      const started = Date.now();
      await a.publish('jobs', 'hello');
      const d = await waiting;
      expect(d.text()).toBe('hello');
      expect(Date.now() - started).toBeLessThan(3_000);
      await d.ack();
      await Promise.all([a.close(), b.close()]);
    }, 20_000);

    it("an idle consumer looks no more often than its group's due times and the fallback poll", async () => {
      const schema = newSchema();
      const driver = await openDriver(schema, '&pollMs=1000');
      const claims = countClaims(driver);
      const q = createQueue(driver);
      const itr = q.consume('jobs', 'workers')[Symbol.asyncIterator]();
      const waiting = itr.next();
      await new Promise((resolve) => setTimeout(resolve, 3_000));
      // One claim at start and about one per second after: a hot loop would have sent hundreds.
      expect(claims()).toBeGreaterThanOrEqual(2);
      expect(claims()).toBeLessThanOrEqual(6);
      await q.publish('jobs', 'x');
      await (await waiting).value?.ack();
      await q.close();
    }, 20_000);

    it("a message one process's consumer leaves unacked goes to another process's idle consumer after ackWait", async () => {
      const schema = newSchema();
      const a = createQueue(await openDriver(schema, '&pollMs=60000'));
      const b = createQueue(await openDriver(schema, '&pollMs=60000'));
      await a.publish('jobs', 'only');
      const first = await next(a.consume('jobs', 'workers', { ackWaitMs: 800 })[Symbol.asyncIterator](), 5_000);
      expect(first.deliveryCount).toBe(1);
      const started = Date.now();
      // b's consumer finds nothing due and sleeps until the group's earliest due time, read from the database.
      const again = await next(b.consume('jobs', 'workers', { ackWaitMs: 800 })[Symbol.asyncIterator](), 5_000);
      expect(again.text()).toBe('only');
      expect(again.deliveryCount).toBe(2);
      expect(Date.now() - started).toBeLessThan(3_000);
      await again.ack();
      await Promise.all([a.close(), b.close()]);
    }, 20_000);

    it("seekGroup refuses a group while another process's consumer of it is live, and moves it once it closed", async () => {
      const schema = newSchema();
      const a = createQueue(await openDriver(schema));
      const b = createQueue(await openDriver(schema));
      const { seq } = await a.publish('jobs', 'm');
      const consumer = b.consume('jobs', 'workers');
      const d = await next(consumer[Symbol.asyncIterator](), 5_000);
      await d.ack();
      await eventually(async () => (await a.stats('jobs')).groups[0]?.pending === 0, 'the ack is committed');
      await rejectsWith(a.seekGroup('jobs', 'workers', seq), 'CONFLICT');
      await consumer.close();
      await eventually(
        async () =>
          a.seekGroup('jobs', 'workers', seq).then(
            () => true,
            () => false,
          ),
        'the group is moved once its consumer closed',
      );
      expect((await a.stats('jobs')).groups[0]?.backlog).toBe(1);
      await Promise.all([a.close(), b.close()]);
    }, 20_000);

    it('instances opening a new schema at once create it once and all work', async () => {
      const schema = newSchema();
      const queues: Queue[] = await Promise.all(Array.from({ length: 4 }, async () => createQueue(await openDriver(schema))));
      const seqs = await Promise.all(queues.map((q, i) => q.publish('jobs', `from-${i}`)));
      expect(new Set(seqs.map((r) => r.seq))).toEqual(new Set([1, 2, 3, 4]));
      await Promise.all(queues.map((q) => q.close()));
    }, 20_000);
  });

  describe('postgres:// queue schema and group floor', () => {
    it('a schema an older version made is brought up to date on open: its functions replaced, what it holds kept', async () => {
      const schema = newSchema();
      const first = await openDriver(schema);
      const q1 = createQueue(first);
      await q1.publish('jobs', 'before');
      // As version 1 left it: no stowage_queue_ack, which the current claim calls.
      const pool = first.native() as Pool;
      await pool.query(`DROP FUNCTION "${schema}".stowage_queue_ack(text, text, bigint[], integer[])`);
      await pool.query(`UPDATE "${schema}".stowage_queue_schema SET version = 1`);
      await q1.close();

      const q2 = createQueue(await openDriver(schema));
      await q2.publish('jobs', 'after');
      const consumer = q2.consume('jobs', 'workers', { ackWaitMs: 60_000 })[Symbol.asyncIterator]();
      const got: string[] = [];
      for (let i = 0; i < 2; i++) {
        const d = await next(consumer, 10_000);
        got.push(d.text());
        await d.ack();
      }
      expect(got).toEqual(['before', 'after']);
      // The acks went through the claim that carried them, or on their own: nothing is left to deliver.
      await eventually(async () => (await q2.stats('jobs')).groups.find((g) => g.group === 'workers')?.pending === 0, 'both acks committed', 10_000);
      await consumer.return?.();
      await q2.close();
    }, 30_000);

    // A group's reads of its unsettled rows start at its floor (see queue-schema.ts): these fail if the floor
    // ever passes an unsettled delivery.
    it('a delivery left unacked while later ones are acked over many claims is counted and comes again', async () => {
      const q = createQueue(await openDriver(newSchema()));
      for (let i = 1; i <= 12; i++) await q.publish('jobs', `m${i}`);
      const consumer = q.consume('jobs', 'workers', { prefetch: 2, ackWaitMs: 1_500 })[Symbol.asyncIterator]();
      const first = await next(consumer, 5_000);
      expect(first.text()).toBe('m1');
      // m2..m12 acked one by one: each ack rides with a claim of one or two more.
      for (let i = 2; i <= 12; i++) {
        const d = await next(consumer, 5_000);
        expect(d.text()).toBe(`m${i}`);
        await d.ack();
      }
      const stats = (await q.stats('jobs')).groups.find((g) => g.group === 'workers');
      expect(stats?.pending).toBe(1);
      expect(stats?.ackFloor).toBe(0);
      const again = await next(consumer, 5_000);
      expect([again.text(), again.deliveryCount]).toEqual(['m1', 2]);
      await again.ack();
      await consumer.return?.();
      await q.close();
    }, 30_000);

    it('after seekGroup moves a group back, what it delivers again is counted and comes again after ackWait', async () => {
      const q = createQueue(await openDriver(newSchema()));
      for (let i = 1; i <= 4; i++) await q.publish('jobs', `m${i}`);
      const c1 = q.consume('jobs', 'workers', { ackWaitMs: 60_000 })[Symbol.asyncIterator]();
      for (let i = 1; i <= 4; i++) await (await next(c1, 5_000)).ack();
      // One more claim after the acks: it moves the floor past all four.
      await q.publish('jobs', 'm5');
      await (await next(c1, 5_000)).ack();
      await c1.return?.();
      await q.seekGroup('jobs', 'workers', 2);
      const c2 = q.consume('jobs', 'workers', { prefetch: 1, ackWaitMs: 1_000 })[Symbol.asyncIterator]();
      const d = await next(c2, 5_000);
      expect(d.text()).toBe('m2');
      expect((await q.stats('jobs')).groups.find((g) => g.group === 'workers')?.pending).toBe(1);
      const again = await next(c2, 5_000);
      expect([again.text(), again.deliveryCount]).toEqual(['m2', 2]);
      await again.ack();
      await c2.return?.();
      await q.close();
    }, 30_000);
  });

  describe('postgres:// queue URL', () => {
    it('maxAge, the older name of maxAgeMs, still sets the retention limit', async () => {
      const q = createQueue(await openDriver(newSchema(), '&maxAge=500'));
      await q.publish('jobs', 'old');
      await eventually(async () => (await q.stats('jobs')).messages === 0, 'the message past maxAge removed', 10_000);
      await q.close();
    }, 20_000);

    it('maxAgeMs and maxAge given together are INVALID_ARGUMENT', async () => {
      const err = await rejectsWith(openDriver(newSchema(), '&maxAgeMs=500&maxAge=500'), 'INVALID_ARGUMENT');
      expect(err.message).toMatch(/"maxAgeMs" and "maxAge"/);
    });
  });
});
