/**
 * `migrate` of a queue to `kafka://` and back: messages a group still needs (with their ids), the group's
 * position and dead letters arrive, and the copy back from Kafka matches the original.
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
  root = await mkdtemp(join(tmpdir(), 'stowage-migrate-kafka-'));
});
afterAll(() => rm(root, { recursive: true, force: true }));

async function contents(q: Queue): Promise<{ messages: [string, string | undefined][]; letters: string[] }> {
  const messages = (await q.browse('orders')).map((m): [string, string | undefined] => [Buffer.from(m.payload).toString(), m.id]);
  const letters = (await q.deadLetters('orders')).map((l) => `${Buffer.from(l.payload).toString()}:${l.reason}`);
  return { messages, letters };
}

serviceSuite('kafka', (svc) => {
  it('copies a queue to kafka:// and back: messages, ids, the group position and dead letters', async () => {
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'k.yaml'), `dataDir: ${join(root, 'k')}\nqueue: ${svc().url}?prefix=m${randomUUID().slice(0, 8)}\n`);
    await writeFile(join(root, 'c.yaml'), `dataDir: ${join(root, 'c')}\n`);
    let original;
    {
      await using a = await createStowage({ dataDir: join(root, 'a') }, { env, ports: ['queue'] });
      for (let i = 0; i < 6; i++) await a.queue.publish('orders', `o${i}`, { id: i % 2 === 0 ? `order-${i}` : undefined });
      const c = a.queue.consume('orders', 'billing', { prefetch: 1 });
      const itr = c[Symbol.asyncIterator]();
      await ((await itr.next()).value as Delivery).ack();
      await ((await itr.next()).value as Delivery).term('unparseable');
      await c.close();
      original = await contents(a.queue);
    }
    assert.equal(original.letters.length, 1);

    const there = await migrate({ from: 'a.yaml', to: 'k.yaml', cwd: root, env, checkpoint: join(root, 'ck1.json') });
    assert.ok(there.ok, JSON.stringify(there.verification));
    const back = await migrate({ from: 'k.yaml', to: 'c.yaml', cwd: root, env, checkpoint: join(root, 'ck2.json') });
    assert.ok(back.ok, JSON.stringify(back.verification));
    await using c = await createStowage({ dataDir: join(root, 'c') }, { env, ports: ['queue'] });
    const copy = await contents(c.queue);
    // migrate copies what some group still needs: from the lowest ack floor (billing settled o0 and o1).
    assert.deepEqual(copy.messages, original.messages.slice(2));
    assert.deepEqual(copy.letters, original.letters);
    const d = (await c.queue.consume('orders', 'billing')[Symbol.asyncIterator]().next()).value as Delivery;
    assert.equal(d.text(), 'o2', 'the group resumes after what it had settled');
    await d.ack();
  }, 120_000);
});
