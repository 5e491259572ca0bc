/**
 * A delayed message is durable at once: after the disk queue is closed and opened again (a restart), it
 * is still delivered, and still not before its time.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { diskQueueScheme } from '../../src/adapters/disk-queue/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import { defaultLogger, type OpenContext } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Queue } from '../../src/ports/queue.js';

const base = await mkdtemp(join(tmpdir(), 'stowage-delayed-restart-'));
afterAll(() => rm(base, { recursive: true, force: true }));
const context: OpenContext = { dataDir: base, env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('not used')) };
const open = async (): Promise<Queue> => createQueue(await diskQueueScheme.open(parseUrl(`disk://${join(base, 'q')}`), context));

describe('delayed messages across a restart (disk://)', () => {
  it('are delivered after the restart, and not before their time', async () => {
    const delayMs = 1_500;
    let q = await open();
    const publishedAt = Date.now();
    await q.publish('orders', 'later', { delayMs });
    // Seen early once before the restart: the message goes back to the group with the remaining delay.
    const early = q.consume('orders', 'billing', { ackWaitMs: 5_000 });
    const itr = early[Symbol.asyncIterator]();
    const raced = await Promise.race([itr.next(), new Promise((resolve) => setTimeout(resolve, 300, 'none'))]);
    assert.equal(raced, 'none', 'nothing delivered before its time');
    await early.close();
    await q.close();

    q = await open();
    try {
      const d = (await q.consume('orders', 'billing')[Symbol.asyncIterator]().next()).value;
      assert.ok(d !== undefined, 'delivered after the restart');
      assert.equal(d.text(), 'later');
      assert.ok(Date.now() >= publishedAt + delayMs, `delivered ${Date.now() - publishedAt} ms after publish`);
      // Not checked: deliveryCount. Early deliveries are discounted by the process that saw them, so the
      // one seen before the restart counts as an attempt here (a documented limit; see the README).
      await d.ack();
    } finally {
      await q.close();
    }
  }, 15_000);
});
