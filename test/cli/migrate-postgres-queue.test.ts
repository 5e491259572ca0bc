/**
 * `stowage migrate` of the queue between a standalone folder (disk://) and postgres://, both ways: messages,
 * ids, headers, every group's position and the dead letters arrive, and verification matches.
 */
import assert from 'node:assert/strict';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { migrate } from '../../src/cli/migrate.js';
import type { Delivery } from '../../src/ports/queue.js';
import { serviceSuite } from '../support/services.js';
import { cleanEnv } from './run-cli.js';

const env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });

serviceSuite('postgres', (svc) => {
  let root: string;
  let queueUrl: string;
  beforeAll(async () => {
    root = await mkdtemp(join(tmpdir(), 'stowage-migrate-pgq-'));
    queueUrl = `${svc().url}?schema=mig${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'pg.yaml'), `dataDir: ${join(root, 'c')}\nqueue: ${queueUrl}\n`);
    await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('migrates a standalone queue to postgres:// and back with matching verification', async () => {
    {
      await using s = await createStowage({ dataDir: join(root, 'a') }, { env });
      for (let i = 0; i < 6; i++) await s.queue.publish('orders', `o${i}`, { id: `order-${i}`, headers: { n: String(i) } });
      const billing = s.queue.consume('orders', 'billing', { prefetch: 1 });
      const bi = billing[Symbol.asyncIterator]();
      for (let i = 0; i < 4; i++) await ((await bi.next()).value as Delivery).ack();
      await billing.close();
      const shipping = s.queue.consume('orders', 'shipping', { prefetch: 1 });
      const si = shipping[Symbol.asyncIterator]();
      await ((await si.next()).value as Delivery).ack();
      await ((await si.next()).value as Delivery).term('bad address');
      await shipping.close();
    }
    const queueRows = (r: Awaited<ReturnType<typeof migrate>>): [string, number, number, string][] =>
      r.verification.filter((v) => v.port === 'queue').map((v) => [v.item, v.source, v.target, v.status]);
    const expected: [string, number, number, string][] = [
      // o0 and o1 are settled by every group: migrate copies from the lowest ack floor on.
      ['orders messages', 4, 4, 'match'],
      ['orders/billing backlog', 2, 2, 'match'],
      ['orders/shipping backlog', 4, 4, 'match'],
      ['orders dead letters', 1, 1, 'match'],
    ];
    const there = await migrate({ from: 'a.yaml', to: 'pg.yaml', cwd: root, env });
    assert.deepEqual(queueRows(there), expected);
    assert.ok(there.ok, JSON.stringify(there.verification));

    {
      await using p = await createStowage({ dataDir: join(root, 'c'), queue: queueUrl }, { env, ports: ['queue'] });
      const stored = await p.queue.browse('orders');
      assert.deepEqual(
        stored.map((m) => [m.id, Buffer.from(m.payload).toString(), m.headers.n]),
        [2, 3, 4, 5].map((i) => [`order-${i}`, `o${i}`, String(i)]),
      );
      const billing = p.queue.consume('orders', 'billing', { prefetch: 1 });
      const next = (await billing[Symbol.asyncIterator]().next()).value as Delivery;
      assert.equal(next.text(), 'o4', 'billing resumes where it was');
      await billing.close();
      const [dead] = await p.queue.deadLetters('orders');
      assert.equal(dead?.reason, 'bad address');
    }

    const back = await migrate({ from: 'pg.yaml', to: 'b.yaml', cwd: root, env });
    assert.deepEqual(queueRows(back), expected);
    assert.ok(back.ok, JSON.stringify(back.verification));
  }, 120_000);
});
