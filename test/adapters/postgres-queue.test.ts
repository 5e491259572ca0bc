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
