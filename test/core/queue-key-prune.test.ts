import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { natsQueueScheme } from '../../src/adapters/nats/index.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import type { ConfigStore } from '../../src/ports/config.js';
import type { Delivery, Processor, Queue } from '../../src/ports/queue.js';
import { eventually } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const context: OpenContext = { dataDir: '/nonexistent', env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('not used')) };
/** ackWait 500 ms: the gap time, and the quiet period before a key is pruned, is 2 × 500 ms + the 2 s lease. */
const ACK_WAIT_MS = 500;
const GAP_MS = 3_000;

/** The config entries ordering keys keep (publisher records, groups' marks and locks). */
async function keyEntries(config: ConfigStore): Promise<string[]> {
  const lists = await Promise.all(['stowage/queue/keys/', 'stowage/queue/turns/'].map((prefix) => config.list(prefix)));
  return lists.flatMap((l) => l.entries.map((e) => e.key));
}

/** Runs a processor per group that records, per group, what it handled and when (ms since `t0`). */
function record(q: Queue, groups: readonly string[]): { seen: Map<string, Array<[string, number]>>; stop: () => Promise<void> } {
  const t0 = performance.now();
  const seen = new Map<string, Array<[string, number]>>(groups.map((g) => [g, []]));
  const processors: Processor[] = groups.map((g) =>
    q.process('orders', g, async (d: Delivery) => void seen.get(g)?.push([d.text(), performance.now() - t0]), { concurrency: 4, ackWaitMs: ACK_WAIT_MS }),
  );
  return { seen, stop: async () => void (await Promise.all(processors.map((p) => p.stop()))) };
}

const texts = (seen: Array<[string, number]> | undefined): string[] => (seen ?? []).map(([t]) => t);

serviceSuite('nats', (svc) => {
  const open = async (config: ConfigStore): Promise<Queue> => {
    const stream = `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    return createQueue(await natsQueueScheme.open(parseUrl(`${svc().url}?stream=${stream}&storage=memory`), context), { config, logger: quiet });
  };

  it('a key that stood still loses its config entries, and runs in order from the next message published', async () => {
    const config = createConfigStore(new MemoryConfigDriver());
    const q = await open(config);
    const run = record(q, ['billing', 'audit']);
    try {
      for (const m of ['a0', 'b0', 'a1', 'b1', 'a2']) await q.publish('orders', m, { key: m[0] });
      await eventually(() => [...run.seen.values()].every((s) => s.length === 5), 'both groups handled the five', 5_000);
      assert.notDeepEqual(await keyEntries(config), [], 'the keys have entries while they run');
      await eventually(async () => (await keyEntries(config)).length === 0, 'every entry of the keys pruned', GAP_MS + 5_000);

      const publishedAt = performance.now();
      await q.publish('orders', 'a3', { key: 'a' });
      await q.publishMany('orders', [
        { payload: 'a4', key: 'a' },
        { payload: 'a5', key: 'a' },
      ]);
      const [first] = (await q.browse('orders')).filter((m) => m.payload.toString() === 'a3');
      expect(Number(first?.headers['stowage-key-seq'])).toBeGreaterThan(3);
      expect(first?.headers['stowage-key-base']).toBe(String(Number(first?.headers['stowage-key-seq']) - 1));
      await eventually(() => [...run.seen.values()].every((s) => s.length === 8), 'both groups handled the new three', 5_000);
      for (const [group, seen] of run.seen) {
        assert.deepEqual(
          texts(seen).filter((t) => t.startsWith('a')),
          ['a0', 'a1', 'a2', 'a3', 'a4', 'a5'],
          `${group}: key a in publish order, each once`,
        );
        assert.deepEqual(texts(seen).filter((t) => t.startsWith('b')), ['b0', 'b1'], `${group}: key b`);
      }
      // Well within the gap time: the new first message did not wait for the pruned numbers.
      const waited = performance.now() - publishedAt;
      assert.ok(waited < GAP_MS - 500, `the three after the prune ran within ${Math.round(waited)} ms`);
    } finally {
      await run.stop();
      await q.close();
    }
  }, 30_000);

  it('a key published while it is being pruned keeps its entries, and its message runs at once, in order', async () => {
    const inner = createConfigStore(new MemoryConfigDriver());
    /** The queue, once open (the config store is made first). */
    const opened: { queue?: Queue } = {};
    let raced = false;
    // The publish lands between the pruner's reads and its deletes: after the first mark is deleted.
    const config = new Proxy(inner, {
      get(target, name) {
        if (name === 'delete') {
          return async (key: string, options?: { ifRevision?: number }) => {
            const result = await target.delete(key, options);
            if (!raced && key.endsWith('/done')) {
              raced = true;
              await opened.queue?.publish('orders', 'a3', { key: 'a' });
            }
            return result;
          };
        }
        const value: unknown = Reflect.get(target, name, target);
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const q = await open(config);
    opened.queue = q;
    const run = record(q, ['billing']);
    try {
      for (const m of ['a0', 'a1', 'a2']) await q.publish('orders', m, { key: 'a' });
      await eventually(() => raced, 'the pruner deleted a mark', GAP_MS + 5_000);
      const racedAt = performance.now();
      await eventually(() => run.seen.get('billing')?.length === 4, 'the message published during the prune handled', 5_000);
      const waited = performance.now() - racedAt;
      assert.deepEqual(texts(run.seen.get('billing')), ['a0', 'a1', 'a2', 'a3'], 'in order, nothing skipped or run twice');
      assert.ok(waited < GAP_MS - 500, `ran ${Math.round(waited)} ms after the publish, not after the gap time`);
      // Pruned in the end, once a3 stood still in its turn.
      await eventually(async () => (await keyEntries(inner)).length === 0, 'the key pruned after its last message', GAP_MS + 5_000);
    } finally {
      await run.stop();
      await q.close();
    }
  }, 30_000);
});
