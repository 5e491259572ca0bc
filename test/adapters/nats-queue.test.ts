import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { AckPolicy, jetstreamManager, RetentionPolicy, StorageType } from '@nats-io/jetstream';
import { consumerName, NatsQueueDriver, natsQueueScheme, type NatsQueueStatus } from '../../src/adapters/nats/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually, rejectsWith, sleep } from '../../src/testing/harness.js';
import { openContext as context } from '../support/adapters.js';
import { serviceSuite } from '../support/services.js';

const streamName = (): string => `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;

// Debian's nats-server 2.9 (the oldest supported) and the current one built from the module proxy.
for (const kind of ['nats', 'nats-current'] as const) {
serviceSuite(kind, (svc) => {
  async function open(query: string): Promise<NatsQueueDriver> {
    return (await natsQueueScheme.open(parseUrl(`${svc().url}?${query}`), context)) as NatsQueueDriver;
  }

  describe('nats:// provisioning', () => {
    it('opening twice with the same settings is idempotent, and updatable settings are applied in place', async () => {
      const stream = streamName();
      const a = await open(`stream=${stream}`);
      const b = await open(`stream=${stream}`);
      const c = await open(`stream=${stream}&maxAgeMs=3600000`);
      const jsm = await jetstreamManager(c.native());
      expect((await jsm.streams.info(stream)).config.max_age).toBe(3_600_000 * 1_000_000);
      await Promise.all([a.close(), b.close(), c.close()]);
    });

    it('refuses a stream whose retention policy differs, and leaves it unchanged', async () => {
      const stream = streamName();
      const admin = await open(`stream=${streamName()}`);
      const jsm = await jetstreamManager(admin.native());
      await jsm.streams.add({ name: stream, subjects: [`${stream}.>`], retention: RetentionPolicy.Workqueue });
      const err = await open(`stream=${stream}`).catch((e: unknown) => e);
      expect(StowageError.is(err, 'CONFLICT')).toBe(true);
      expect((err as Error).message).toMatch(/retention "workqueue"/);
      expect((await jsm.streams.info(stream)).config.retention).toBe(RetentionPolicy.Workqueue);
      await admin.close();
    });

    it("a group's durable consumer is created with explicit acks, and a later ackWait or maxDeliver is applied in place", async () => {
      const stream = streamName();
      const driver = await open(`stream=${stream}&storage=memory`);
      const jsm = await jetstreamManager(driver.native());
      await driver.consumer('jobs', 'g', { ackWaitMs: 2_000, maxDeliver: 3 });
      const first = (await jsm.consumers.info(stream, consumerName('jobs', 'g'))).config;
      // JetStream's max_deliver is one more than Stowage's, so that core sees the last delivery and dead-letters it.
      expect(first).toMatchObject({ durable_name: consumerName('jobs', 'g'), ack_policy: AckPolicy.Explicit, ack_wait: 2_000 * 1_000_000, max_deliver: 4 });
      expect(first.filter_subject).toBe(`${stream}.jobs`);
      // The same settings again change nothing; new ones are applied to the same consumer.
      await driver.consumer('jobs', 'g', { ackWaitMs: 2_000, maxDeliver: 3 });
      await driver.consumer('jobs', 'g', { ackWaitMs: 5_000, maxDeliver: 7 });
      const list: string[] = [];
      for await (const ci of jsm.consumers.list(stream)) list.push(ci.name);
      expect(list).toEqual([consumerName('jobs', 'g')]);
      expect((await jsm.consumers.info(stream, consumerName('jobs', 'g'))).config).toMatchObject({ ack_wait: 5_000 * 1_000_000, max_deliver: 8 });
      await driver.close();
    });

    it("refuses a group's consumer whose ack policy or subject differs, and leaves it unchanged", async () => {
      const stream = streamName();
      const driver = await open(`stream=${stream}&storage=memory`);
      const jsm = await jetstreamManager(driver.native());
      await jsm.consumers.add(stream, { durable_name: consumerName('jobs', 'none'), ack_policy: AckPolicy.None, filter_subject: `${stream}.jobs` });
      await jsm.consumers.add(stream, { durable_name: consumerName('jobs', 'other'), ack_policy: AckPolicy.Explicit, filter_subject: `${stream}.other` });
      const settings = { ackWaitMs: 2_000, maxDeliver: 3 };
      expect((await rejectsWith(driver.consumer('jobs', 'none', settings), 'CONFLICT')).message).toMatch(/ack policy "none"/);
      expect((await rejectsWith(driver.consumer('jobs', 'other', settings), 'CONFLICT')).message).toMatch(/refusing to change it/);
      expect((await jsm.consumers.info(stream, consumerName('jobs', 'none'))).config.ack_policy).toBe(AckPolicy.None);
      expect((await jsm.consumers.info(stream, consumerName('jobs', 'other'))).config.filter_subject).toBe(`${stream}.other`);
      await driver.close();
    });

    it('refuses a stream whose storage differs from the URL', async () => {
      const stream = streamName();
      (await open(`stream=${stream}&storage=memory`)).close();
      const err = await open(`stream=${stream}&storage=file`).catch((e: unknown) => e);
      expect(StowageError.is(err, 'CONFLICT')).toBe(true);
      const admin = await open(`stream=${stream}&storage=memory`);
      expect((await (await jetstreamManager(admin.native())).streams.info(stream)).config.storage).toBe(StorageType.Memory);
      await admin.close();
    });

    it('rejects unknown parameters and bad values', async () => {
      await expect(natsQueueScheme.open(parseUrl(`${svc().url}?stream=a.b`), context)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(natsQueueScheme.open(parseUrl(`${svc().url}?storage=disk`), context)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      await expect(natsQueueScheme.open(parseUrl(`${svc().url}?credsFile=/nonexistent/x.creds`), context)).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
        message: expect.stringMatching(/credsFile "\/nonexistent\/x.creds" cannot be read \(ENOENT\)/),
      });
    });

    it('an unreachable server gives UNAVAILABLE, not a hang', async () => {
      const err = await natsQueueScheme.open(parseUrl('nats://127.0.0.1:1?timeoutMs=1000'), context).catch((e: unknown) => e);
      const driver = await open(`stream=${streamName()}`);
      expect(driver.mapError(err)?.code ?? (StowageError.is(err) ? err.code : 'INTERNAL')).toBe('UNAVAILABLE');
      await driver.close();
    });
  });

  describe('nats:// semantics', () => {
    it('dedupe is per topic: the same id on two topics stores both', async () => {
      const q = createQueue(await open(`stream=${streamName()}&storage=memory`));
      const a = await q.publish('a', 'x', { id: 'same' });
      const b = await q.publish('b', 'x', { id: 'same' });
      expect(b.duplicate).toBe(false);
      expect(b.seq).not.toBe(a.seq);
      await q.close();
    });

    it('a header starting with Nats- is refused and nothing is published', async () => {
      const q = createQueue(await open(`stream=${streamName()}&storage=memory`));
      await expect(q.publish('a', 'x', { headers: { 'Nats-Expected-Stream': 'other' } })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
      expect((await q.stats('a')).messages).toBe(0);
      await q.close();
    });

    it('a late ack (after ackWait) still acks the message by sequence, even while redelivered elsewhere', async () => {
      const q = createQueue(await open(`stream=${streamName()}&storage=memory`));
      await q.publish('jobs', 'x');
      const a = q.consume('jobs', 'g', { ackWaitMs: 300 });
      const first = (await a[Symbol.asyncIterator]().next()).value;
      // a stops pulling, so the redelivery goes to b; first stays a live delivery object.
      await a.close();
      const b = q.consume('jobs', 'g', { ackWaitMs: 300 })[Symbol.asyncIterator]();
      const again = (await b.next()).value;
      expect(again.deliveryCount).toBe(2);
      await first.nak(); // late: dropped, it would release the redelivery b holds
      expect((await q.stats('jobs')).groups[0]?.pending).toBe(1);
      await first.ack(); // late: JetStream acks by sequence, so this settles it for the group
      await eventually(async () => (await q.stats('jobs')).groups[0]?.pending === 0, 'acked by the late ack');
      await again.ack(); // a no-op now
      await q.close();
    });

    it('with prefetch > 1 pulls overlap, and messages still come in stream order', async () => {
      const q = createQueue(await open(`stream=${streamName()}&storage=memory`));
      const total = 1500;
      for (let i = 0; i < total; i += 250) await Promise.all(Array.from({ length: 250 }, (_, j) => q.publish('jobs', `m${i + j}`)));
      let last = 0;
      let seen = 0;
      for await (const d of q.consume('jobs', 'g', { prefetch: 64 })) {
        expect(d.seq).toBeGreaterThan(last);
        last = d.seq;
        await d.ack();
        if (++seen === total) break;
      }
      await eventually(async () => (await q.stats('jobs')).groups[0]?.ackFloor === last, 'every ack recorded');
      await q.close();
    }, 30_000);

    it('unconfirmed acks (ackConfirm=false) given just before close are sent', async () => {
      const stream = streamName();
      const q = createQueue(await open(`stream=${stream}&storage=memory&ackConfirm=false`));
      for (let i = 0; i < 10; i++) await q.publish('jobs', `m${i}`);
      const it = q.consume('jobs', 'g', { prefetch: 10, ackWaitMs: 60_000 })[Symbol.asyncIterator]();
      let last = 0;
      for (let i = 0; i < 10; i++) {
        const d = (await it.next()).value;
        last = d.seq;
        await d.ack();
      }
      await q.close();
      // Not sent, they would stay pending for the whole minute of ackWait.
      const admin = createQueue(await open(`stream=${stream}&storage=memory`));
      await eventually(async () => {
        const g = (await admin.stats('jobs')).groups[0];
        return g?.pending === 0 && g.ackFloor === last;
      }, 'the acks reached the server', 5_000);
      await admin.close();
    });

    it('a consumer whose JetStream consumer is deleted reports it and carries on', async () => {
      const driver = await open(`stream=${streamName()}&storage=memory`);
      const notices: NatsQueueStatus[] = [];
      driver.onStatus((s) => notices.push(s));
      const q = createQueue(driver);
      const seen = new Set<string>();
      const p = q.process('jobs', 'g', async (d) => void seen.add(d.text()));
      await q.publish('jobs', 'before');
      await eventually(() => seen.has('before'), 'first message processed');
      const jsm = await jetstreamManager(driver.native());
      for await (const ci of jsm.consumers.list(driver.stream)) await jsm.consumers.delete(ci.stream_name, ci.name);
      await q.publish('jobs', 'after');
      await eventually(() => seen.has('after'), 'message after the delete processed', 20_000);
      expect(notices.map((n) => n.type)).toContain('consumer_deleted');
      await p.stop();
      await q.close();
    }, 30_000);

    it('missed heartbeats while the server is frozen are reported as a status notice, and consuming carries on', async () => {
      const driver = await open(`stream=${streamName()}&storage=memory`);
      const notices: string[] = [];
      driver.onStatus((s) => notices.push(s.type));
      const q = createQueue(driver);
      const seen: string[] = [];
      const p = q.process('jobs', 'g', async (d) => void seen.push(d.text()));
      await q.publish('jobs', 'before');
      await eventually(() => seen.includes('before'), 'first message processed');
      // The idle pull waits with heartbeats every 2.5 s (half its 5 s expiry); two missed ones are reported.
      await svc().pause();
      try {
        await eventually(() => notices.includes('heartbeats_missed'), 'heartbeats_missed reported', 15_000, 100);
      } finally {
        svc().resume();
      }
      await eventually(async () => (await q.health()).ok, 'healthy again');
      await q.publish('jobs', 'after');
      await eventually(() => seen.includes('after'), 'message after the freeze processed', 20_000);
      await p.stop();
      await q.close();
    }, 45_000);

    it('a deleted stream is created again by the next publish, and consumers carry on', async () => {
      const driver = await open(`stream=${streamName()}&storage=memory`);
      const q = createQueue(driver);
      const seen: string[] = [];
      const p = q.process('jobs', 'g', async (d) => void seen.push(d.text()));
      await q.publish('jobs', 'one');
      await eventually(() => seen.includes('one'), 'first message processed');
      await (await jetstreamManager(driver.native())).streams.delete(driver.stream);
      await q.publish('jobs', 'two');
      await eventually(() => seen.includes('two'), 'message after the stream came back processed', 20_000);
      await p.stop();
      await q.close();
    }, 30_000);

    it('a paused server gives TIMEOUT or UNAVAILABLE quickly, and works again once resumed', async () => {
      const q = createQueue(await open(`stream=${streamName()}&storage=memory`));
      // Resolves once the server has really stopped (SIGSTOP takes effect some time after kill(2) returns).
      await svc().pause();
      try {
        const err = await q.publish('jobs', 'x', { timeoutMs: 500 }).catch((e: unknown) => e);
        expect(StowageError.is(err) ? err.code : String(err)).toMatch(/^(TIMEOUT|UNAVAILABLE)$/);
      } finally {
        svc().resume();
      }
      await eventually(async () => (await q.health()).ok, 'healthy again');
      await q.publish('jobs', 'y');
      await q.close();
    }, 20_000);

    for (const how of ['stop', 'kill'] as const) {
      it(`consumers resume after nats-server ${how === 'stop' ? 'stops (SIGTERM)' : 'is killed (SIGKILL)'} and restarts: every message is processed, nothing lost`, async () => {
        const driver = await open(`stream=${streamName()}&storage=file`);
        const notices: string[] = [];
        driver.onStatus((s) => notices.push(s.type));
        const q = createQueue(driver, { defaultTimeoutMs: 2_000 });
        const total = 300;
        for (let i = 0; i < 200; i++) await q.publish('jobs', `m${i}`, { id: `m${i}` });
        const seen = new Set<string>();
        let deliveries = 0;
        const p = q.process(
          'jobs',
          'workers',
          async (d) => {
            deliveries++;
            await sleep(20);
            seen.add(d.text());
          },
          { concurrency: 4, ackWaitMs: 2_000, maxDeliver: 100 },
        );
        await eventually(() => seen.size >= 50, '50 processed before the restart', 20_000);
        const seenAtStop = seen.size;
        await svc()[how]();
        await sleep(500);
        await svc().start();
        for (let i = 200; i < total; i++) {
          // The first publishes may race the reconnect; a publish that fails is retried, as an app would.
          for (;;) {
            try {
              await q.publish('jobs', `m${i}`, { id: `m${i}` });
              break;
            } catch {
              await sleep(100);
            }
          }
        }
        await eventually(() => seen.size === total, `all ${total} processed (have ${seen.size})`, 40_000, 50);
        await p.stop();
        const stats = await q.stats('jobs');
        expect(stats.messages).toBe(total);
        expect(stats.groups[0]).toMatchObject({ backlog: 0, pending: 0 });
        expect(notices).toContain('reconnect');
        expect(seenAtStop).toBeLessThan(200);
        expect(deliveries).toBeGreaterThanOrEqual(total);
        await q.close();
      }, 90_000);
    }
  });
});
}
