import { describe, expect, it } from 'vitest';
import { MemQueueDriver, memQueueScheme } from '../../src/adapters/memory/queue-driver.js';
import { parseUrl } from '../../src/driver/url.js';
import { defaultLogger } from '../../src/core/registry.js';
import { sleep } from '../../src/testing/harness.js';
import type { DriverDelivery, DriverSubscription } from '../../src/ports/queue.js';

const context = { dataDir: '/nonexistent', env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('not used')) };
const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);

async function take(sub: DriverSubscription): Promise<DriverDelivery> {
  const r = await sub[Symbol.asyncIterator]().next();
  if (r.done === true) throw new Error('subscription ended');
  return r.value;
}

describe('mem:// queue driver', () => {
  it('forgets a message id once the dedupe window has passed', async () => {
    const driver = (await memQueueScheme.open(parseUrl('mem://?dedupeWindowMs=50'), context)) as MemQueueDriver;
    const a = await driver.publish('t', bytes('x'), {}, 'id-1');
    expect((await driver.publish('t', bytes('x'), {}, 'id-1')).duplicate).toBe(true);
    await sleep(80);
    const b = await driver.publish('t', bytes('x'), {}, 'id-1');
    expect(b).toEqual({ seq: a.seq + 1, duplicate: false });
    await driver.close();
  });

  it('ignores a stale ack while a redelivery holds the message', async () => {
    const driver = new MemQueueDriver();
    await driver.publish('t', bytes('x'), {}, undefined);
    const first = await take(driver.subscribe('t', 'g', { ackWaitMs: 50, maxDeliver: 5, prefetch: 1 }));
    const second = await take(driver.subscribe('t', 'g', { ackWaitMs: 5_000, maxDeliver: 5, prefetch: 1 }));
    expect(second.deliveryCount).toBe(2);
    await first.ack();
    expect((await driver.stats('t')).groups[0]?.pending).toBe(1);
    await second.ack();
    expect((await driver.stats('t')).groups[0]?.pending).toBe(0);
    await driver.close();
  });

  it('keeps a copy of the payload: changing the delivered bytes changes nothing stored', async () => {
    const driver = new MemQueueDriver();
    await driver.publish('t', bytes('abc'), {}, undefined);
    const d = await take(driver.subscribe('t', 'g', { ackWaitMs: 5_000, maxDeliver: 5, prefetch: 1 }));
    d.payload[0] = 0x7a;
    const [stored] = await driver.read('t', 1, 10);
    expect(new TextDecoder().decode(stored?.payload)).toBe('abc');
    await driver.close();
  });

  it('ends its subscriptions and clears its timers on close', async () => {
    const driver = new MemQueueDriver();
    const sub = driver.subscribe('t', 'g', { ackWaitMs: 5_000, maxDeliver: 5, prefetch: 1 });
    const pending = sub[Symbol.asyncIterator]().next();
    await driver.close();
    expect((await pending).done).toBe(true);
  });

  it('rejects a bad dedupeWindowMs', async () => {
    await expect(memQueueScheme.open(parseUrl('mem://?dedupeWindowMs=soon'), context)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
