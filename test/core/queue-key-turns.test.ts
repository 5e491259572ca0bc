import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { it } from 'vitest';
import { natsQueueScheme } from '../../src/adapters/nats/index.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import type { ConfigStore } from '../../src/ports/config.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { eventually } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const context: OpenContext = { dataDir: '/nonexistent', env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('not used')) };
const TURNS = 'stowage/queue/turns/';

/** A config store that counts the lists of the keys' turns made through it (the round trip a turn can skip). */
function countingLists(inner: ConfigStore): { config: ConfigStore; lists: () => number } {
  let lists = 0;
  const config = new Proxy(inner, {
    get(target, name) {
      if (name === 'list') {
        return (prefix: string, options?: Parameters<ConfigStore['list']>[1]) => {
          if (prefix.startsWith(TURNS)) lists++;
          return target.list(prefix, options);
        };
      }
      const value: unknown = Reflect.get(target, name, target);
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return { config, lists: () => lists };
}

serviceSuite('nats', (svc) => {
  const open = async (config: ConfigStore, stream: string): Promise<Queue> =>
    createQueue(await natsQueueScheme.open(parseUrl(`${svc().url}?stream=${stream}&storage=memory`), context), { config, logger: quiet });

  it('takes the turns of a key it knows the mark and lock of without listing them again', async () => {
    const { config, lists } = countingLists(createConfigStore(new MemoryConfigDriver()));
    const q = await open(config, `t${randomUUID().replaceAll('-', '').slice(0, 12)}`);
    const n = 20;
    await q.publishMany('orders', Array.from({ length: n }, (_, i) => ({ payload: `m${i}`, key: 'k' })));
    const seen: string[] = [];
    const p = q.process('orders', 'billing', async (d: Delivery) => void seen.push(d.text()), { concurrency: 4, prefetch: n });
    try {
      await eventually(() => seen.length === n, 'every message handled', 10_000);
    } finally {
      await p.stop();
      await q.close();
    }
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => `m${i}`), 'in publish order, each once');
    // One list when the key first comes; each later message goes on what the last one's mark and lock left.
    assert.ok(lists() <= 3, `${lists()} lists of the key's turns for ${n} messages`);
  }, 30_000);

  it('two processors of a group take turns on one key on what their watch shows, listing less than once a message', async () => {
    const { config, lists } = countingLists(createConfigStore(new MemoryConfigDriver()));
    const stream = `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const [a, b] = [await open(config, stream), await open(config, stream)] as [Queue, Queue];
    const n = 30;
    await a.publishMany('orders', Array.from({ length: n }, (_, i) => ({ payload: `m${i}`, key: 'k' })));
    const seen: string[] = [];
    let running = 0;
    let overlap = false;
    const handler = async (d: Delivery): Promise<void> => {
      if (running++ > 0) overlap = true;
      seen.push(d.text());
      await new Promise((resolve) => setTimeout(resolve, 5));
      running--;
    };
    const processors = [a.process('orders', 'billing', handler, { concurrency: 2, prefetch: 8 }), b.process('orders', 'billing', handler, { concurrency: 2, prefetch: 8 })];
    try {
      await eventually(() => seen.length === n, 'every message handled', 15_000);
    } finally {
      await Promise.all(processors.map((p) => p.stop()));
      await Promise.all([a.close(), b.close()]);
    }
    assert.equal(overlap, false, 'never two messages of the key at once');
    assert.deepEqual(seen, Array.from({ length: n }, (_, i) => `m${i}`), 'in publish order, each once');
    assert.ok(lists() < n / 2, `${lists()} lists of the key's turns for ${n} messages`);
  }, 30_000);
});
