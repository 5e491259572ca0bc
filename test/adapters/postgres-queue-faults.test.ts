/**
 * The postgres:// queue when its server misbehaves: frozen (SIGSTOP) under load, and killed (SIGKILL) and
 * restarted mid-run.
 *
 * Frozen: every call gives TIMEOUT or UNAVAILABLE within its deadline, nothing hangs, and once the server
 * runs again the queue works without being reopened (publishes get their own sequences, the consumer that
 * was waiting receives new messages). Killed: every publish that resolved was committed, so after the
 * restart the consumer group receives every one of them (at least once), and publishes and consumers carry
 * on by themselves.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { postgresQueueScheme } from '../../src/adapters/postgres/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import { StowageError } from '../../src/ports/errors.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { eventually } from '../../src/testing/harness.js';
import { openContext as context, expectEachFailsInTime, outcome, text } from '../support/adapters.js';
import { serviceSuite } from '../support/services.js';
import { canSeeStops } from '../support/servers.js';

serviceSuite('postgres', (svc) => {
  async function open(query = ''): Promise<Queue> {
    const schema = `f${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    return createQueue(await postgresQueueScheme.open(parseUrl(`${svc().url}?schema=${schema}&connectTimeoutMs=1000${query}`), context));
  }

  describe.skipIf(!canSeeStops)('postgres:// queue against a frozen server', () => {
    it('gives TIMEOUT or UNAVAILABLE within the deadline while frozen, and works again once it runs', async () => {
      const q = await open('&pollMs=500');
      const acked = new Map<number, string>();
      for (let i = 0; i < 20; i++) acked.set((await q.publish('jobs', `before-${i}`, { id: `m${i}` })).seq, `before-${i}`);
      const consumer = q.consume('jobs', 'workers', { prefetch: 10 });
      const itr = consumer[Symbol.asyncIterator]();
      for (let i = 0; i < 20; i++) await (await itr.next()).value?.ack();
      // A consumer waiting for the next message while the server freezes.
      const waiting = itr.next();
      // Load while it freezes, as in production.
      const load = Array.from({ length: 50 }, (_, i) => outcome(q.publish('jobs', `load-${i}`, { timeoutMs: 800 })));
      // pause() stops every process of the server: each connection has a backend process of its own.
      await svc().pause();
      try {
        await expectEachFailsInTime(800, [
          q.publish('jobs', 'frozen-plain', { timeoutMs: 800 }),
          q.publish('jobs', 'frozen-new-id', { id: 'new', timeoutMs: 800 }),
          q.publish('jobs', 'before-0', { id: 'm0', timeoutMs: 800 }),
          q.stats('jobs', { timeoutMs: 800 }),
          q.browse('jobs', { timeoutMs: 800 }),
          q.seekGroup('jobs', 'other', 1, { timeoutMs: 800 }),
        ]);
        expect((await q.health({ timeoutMs: 800 })).ok).toBe(false);
      } finally {
        svc().resume();
      }
      for (const r of await Promise.all(load)) {
        if ('code' in r) expect(r.code).toMatch(/^(TIMEOUT|UNAVAILABLE)$/);
        else acked.set(r.value.seq, '(load)');
      }
      await eventually(async () => (await q.health()).ok, 'healthy again');
      const later = await Promise.all(Array.from({ length: 50 }, (_, i) => q.publish('jobs', `after-${i}`).then((r) => [r.seq, `after-${i}`] as const)));
      expect(new Set(later.map(([seq]) => seq)).size).toBe(later.length);
      for (const [seq, payload] of later) acked.set(seq, payload);
      const stored = new Map((await q.browse('jobs', { limit: 10_000 })).map((m) => [m.seq, text(m.payload)]));
      for (const [seq, payload] of acked) if (payload !== '(load)') expect(stored.get(seq), `message acknowledged at seq ${seq}`).toBe(payload);
      // The consumer that waited through the freeze goes on receiving, without being reopened.
      const first = (await waiting).value as Delivery;
      expect(first.seq).toBeGreaterThan(0);
      await first.ack();
      await consumer.close();
      await q.close();
    }, 60_000);
  });

  describe('postgres:// queue across a server kill and restart', () => {
    it('every publish that resolved is delivered to the group after the restart, and both sides carry on', async () => {
      const q = await open('&pollMs=500');
      const published = new Set<string>();
      const received = new Set<string>();
      let failedPublishes = 0;
      const processor = q.process(
        'jobs',
        'workers',
        async (d) => {
          received.add(text(d.payload));
        },
        { concurrency: 4, prefetch: 16, ackWaitMs: 2_000, backoffMs: [100], onError: () => undefined },
      );
      let stop = false;
      const publisher = (async () => {
        for (let i = 0; !stop; i++) {
          const payload = `p-${i}`;
          try {
            await q.publish('jobs', payload, { id: payload, timeoutMs: 2_000 });
            published.add(payload);
          } catch (err) {
            expect(StowageError.is(err) && /^(TIMEOUT|UNAVAILABLE)$/.test(err.code), String(err)).toBe(true);
            failedPublishes++;
            await new Promise((resolve) => setTimeout(resolve, 50));
          }
        }
      })();
      await eventually(async () => published.size >= 200, '200 publishes before the kill', 20_000);
      await svc().kill();
      await new Promise((resolve) => setTimeout(resolve, 500));
      await svc().start();
      const atRestart = published.size;
      await eventually(async () => published.size >= atRestart + 200, '200 publishes after the restart', 30_000);
      stop = true;
      await publisher;
      await eventually(async () => [...published].every((p) => received.has(p)), 'every resolved publish received', 30_000);
      expect(failedPublishes).toBeGreaterThan(0);
      await processor.stop();
      await q.close();
    }, 120_000);
  });
});
