/**
 * `migrate` of a queue to `kafka://` and to `rabbitmq://`, and back: messages a group still needs (with their
 * ids), the group's position and dead letters arrive, and the copy back from the broker matches the original.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { migrate } from '../../src/cli/migrate.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';
import { serviceSuite } from '../support/services.js';
import { cleanEnv } from './run-cli.js';

let root: string;
const env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-migrate-brokers-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function contents(q: Queue): Promise<{ messages: [string, string | undefined][]; letters: string[] }> {
  const messages = (await q.browse('orders')).map((m): [string, string | undefined] => [Buffer.from(m.payload).toString(), m.id]);
  const letters = (await q.deadLetters('orders')).map((l) => `${Buffer.from(l.payload).toString()}:${l.reason}`);
  return { messages, letters };
}

for (const kind of ['kafka', 'rabbitmq'] as const) {
  serviceSuite(kind, (svc) => {
    it(`copies a queue to ${kind}:// and back: messages, ids, the group position and dead letters`, async () => {
      await writeFile(join(root, `a-${kind}.yaml`), `dataDir: ${join(root, `a-${kind}`)}\n`);
      await writeFile(join(root, `k-${kind}.yaml`), `dataDir: ${join(root, `k-${kind}`)}\nqueue: ${svc().url}?prefix=m${randomUUID().slice(0, 8)}\n`);
      await writeFile(join(root, `c-${kind}.yaml`), `dataDir: ${join(root, `c-${kind}`)}\n`);
      let original;
      {
        await using a = await createStowage({ dataDir: join(root, `a-${kind}`) }, { env, ports: ['queue'] });
        for (let i = 0; i < 6; i++) await a.queue.publish('orders', `o${i}`, { id: i % 2 === 0 ? `order-${i}` : undefined });
        const c = a.queue.consume('orders', 'billing', { prefetch: 1 });
        const itr = c[Symbol.asyncIterator]();
        await ((await itr.next()).value as Delivery).ack();
        await ((await itr.next()).value as Delivery).term('unparseable');
        await c.close();
        original = await contents(a.queue);
      }
      assert.equal(original.letters.length, 1);

      const there = await migrate({ from: `a-${kind}.yaml`, to: `k-${kind}.yaml`, cwd: root, env, checkpoint: join(root, `ck1-${kind}.json`) });
      assert.ok(there.ok, JSON.stringify(there.verification));
      const back = await migrate({ from: `k-${kind}.yaml`, to: `c-${kind}.yaml`, cwd: root, env, checkpoint: join(root, `ck2-${kind}.json`) });
      assert.ok(back.ok, JSON.stringify(back.verification));
      await using c = await createStowage({ dataDir: join(root, `c-${kind}`) }, { env, ports: ['queue'] });
      const copy = await contents(c.queue);
      // migrate copies what some group still needs: from the lowest ack floor (billing settled o0 and o1).
      assert.deepEqual(copy.messages, original.messages.slice(2));
      assert.deepEqual(copy.letters, original.letters);
      const d = (await c.queue.consume('orders', 'billing')[Symbol.asyncIterator]().next()).value as Delivery;
      assert.equal(d.text(), 'o2', 'the group resumes after what it had settled');
      await d.ack();
    }, 120_000);
  });
}
