/**
 * A publish to a frozen (SIGSTOPped) nats-server is never acknowledged unless the server stored it.
 *
 * The cluster test once saw `queue.publish` resolve right after the server was sent SIGSTOP. That was the
 * signal, not the adapter: `kill(2)` returns before the target has stopped (see `waitUntilStopped`), and
 * a publish sent in that window is read, stored and acknowledged by the still-running server. These tests
 * hold the adapter to the rule either way: against a server whose every thread is stopped, publishes (with
 * an id, a repeated id, or none) fail with TIMEOUT or UNAVAILABLE; a publish racing SIGSTOP either fails so
 * or is really stored, at the sequence it was acknowledged with; and the late answers of the timed-out
 * requests, which the server sends once it runs again, are never taken for the acks of later publishes.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { natsQueueScheme } from '../../src/adapters/nats/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Queue } from '../../src/ports/queue.js';
import { eventually } from '../../src/testing/harness.js';
import { openContext as context, expectEachFailsInTime, outcome, text } from '../support/adapters.js';
import { serviceSuite } from '../support/services.js';
import { canSeeStops } from '../support/servers.js';

serviceSuite('nats', (svc) => {
  async function open(): Promise<Queue> {
    const stream = `f${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    return createQueue(await natsQueueScheme.open(parseUrl(`${svc().url}?stream=${stream}&storage=file&timeoutMs=2000`), context));
  }

  /** Every publish resolved so far must be stored at its sequence with its payload (and each sequence once). */
  async function expectStoredAtTheirSeqs(q: Queue, topic: string, acked: Map<number, string>): Promise<void> {
    const stored = new Map((await q.browse(topic)).map((m) => [m.seq, text(m.payload)]));
    for (const [seq, payload] of acked) expect(stored.get(seq), `message acknowledged at seq ${seq}`).toBe(payload);
  }

  describe.skipIf(!canSeeStops)('nats:// publish against a frozen server', () => {
    it('once the server is stopped, no publish resolves — with a new id, a repeated id or none — and later acks are their own', async () => {
      const q = await open();
      const acked = new Map<number, string>();
      for (let i = 0; i < 20; i++) acked.set((await q.publish('jobs', `before-${i}`, { id: `m${i}` })).seq, `before-${i}`);
      const pid = svc().pid;
      if (pid === undefined) throw new Error('the nats-server must be managed by the harness');
      // pause() resolves once every thread of the server is stopped (waitUntilStopped).
      await svc().pause();
      try {
        await expectEachFailsInTime(800, [
          q.publish('jobs', 'frozen-plain', { timeoutMs: 800 }),
          q.publish('jobs', 'frozen-new-id', { id: 'new', timeoutMs: 800 }),
          // A repeated id is answered by the server's dedupe, never locally.
          q.publish('jobs', 'before-0', { id: 'm0', timeoutMs: 800 }),
          q.stats('jobs', { timeoutMs: 800 }),
        ]);
      } finally {
        svc().resume();
      }
      await eventually(async () => (await q.health()).ok, 'healthy again');
      // The server now answers the timed-out requests too; those answers must not resolve these publishes.
      const later = await Promise.all(Array.from({ length: 50 }, (_, i) => q.publish('jobs', `after-${i}`).then((r) => [r.seq, `after-${i}`] as const)));
      for (const [seq, payload] of later) acked.set(seq, payload);
      expect(new Set(later.map(([seq]) => seq)).size).toBe(later.length);
      await expectStoredAtTheirSeqs(q, 'jobs', acked);
      await q.close();
    }, 30_000);

    it('a publish racing SIGSTOP either fails with TIMEOUT/UNAVAILABLE or was really stored at the acknowledged sequence', async () => {
      const q = await open();
      const pid = svc().pid;
      if (pid === undefined) throw new Error('the nats-server must be managed by the harness');
      const acked = new Map<number, string>();
      const codes: string[] = [];
      for (let round = 0; round < 8; round++) {
        // Keep the server busy, as in the cluster test, so that the race has a chance.
        await Promise.all(Array.from({ length: 200 }, (_, i) => q.publish('load', `r${round}-${i}`, { id: `r${round}-${i}` })));
        const payload = `probe-${round}`;
        // Not awaited before publishing: the publish races the stop on purpose.
        const paused = svc().pause();
        try {
          const r = await outcome(q.publish('probe', payload, { id: payload, timeoutMs: 600 }));
          if ('value' in r) acked.set(r.value.seq, payload);
          else codes.push(r.code);
        } finally {
          await paused;
          svc().resume();
        }
        await eventually(async () => (await q.health()).ok, 'healthy again');
      }
      for (const code of codes) expect(code).toMatch(/^(TIMEOUT|UNAVAILABLE)$/);
      await expectStoredAtTheirSeqs(q, 'probe', acked);
      await q.close();
    }, 60_000);
  });
});
