/**
 * `migrate` of a queue topic resumed after an interruption: what the interrupted run wrote after its last
 * checkpoint is recognised on the target, not written twice, and every group still lands where it was.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { migrate } from '../../src/cli/migrate.js';
import { ProgressBars } from '../../src/cli/output.js';
import { queueTransfer } from '../../src/core/queue/queue.js';
import type { Delivery } from '../../src/ports/queue.js';
import { cleanEnv } from './run-cli.js';

let root: string;
const env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });
beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-migrate-queue-'));
  await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
  await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
});
afterAll(() => rm(root, { recursive: true, force: true }));

/** Progress that stops the migration once the topic's first page is checkpointed. */
class StopAfterFirstPage extends ProgressBars {
  constructor() {
    super(process.stderr, false);
  }

  override update(label: string, done: number, total: number | undefined, note = ''): void {
    if (label.startsWith('queue') && note === '' && done > 0) throw new Error('interrupted');
    super.update(label, done, total, note);
  }
}

it('a queue copy interrupted mid-topic resumes without duplicates and positions every group', async () => {
  {
    await using s = await createStowage({ dataDir: join(root, 'a') }, { env });
    for (let i = 0; i < 9; i++) await s.queue.publish('orders', `o${i}`, { id: i % 2 === 0 ? `order-${i}` : undefined });
    const c = s.queue.consume('orders', 'billing', { prefetch: 1 });
    const it = c[Symbol.asyncIterator]();
    for (let i = 0; i < 3; i++) await ((await it.next()).value as Delivery).ack();
    await c.close();
  }
  const checkpoint = join(root, 'ckpt.json');
  const base = { from: 'a.yaml', to: 'b.yaml', cwd: root, env, checkpoint, batchSize: 2 };
  await assert.rejects(migrate({ ...base, progress: new StopAfterFirstPage() }), /interrupted/);
  const saved = JSON.parse(await readFile(checkpoint, 'utf8')) as { topics: Record<string, { next: number; targetLast: number }> };
  assert.equal(saved.topics.orders?.next, 6, 'the first page (source 4 and 5) is checkpointed');

  // The interrupted run had also written the copy of source message 6 (no id) before it stopped.
  {
    await using a = await createStowage({ dataDir: join(root, 'a') }, { env, ports: ['queue'] });
    const [sixth] = await a.queue.browse('orders', { fromSeq: 6, limit: 1 });
    assert.ok(sixth);
    await using b = await createStowage({ dataDir: join(root, 'b') }, { env, ports: ['queue'] });
    await queueTransfer(b.queue).restore('orders', sixth);
  }

  const report = await migrate(base);
  assert.ok(report.ok, JSON.stringify(report.verification));
  assert.equal(report.copied.queue, 3, 'source 7, 8 and 9 copied by the resumed run; 6 recognised');
  const rows = report.verification.filter((r) => r.port === 'queue').map((r) => [r.item, r.source, r.target]);
  assert.deepEqual(rows, [['orders messages', 6, 6], ['orders/billing backlog', 6, 6], ['orders dead letters', 0, 0]]);
  await using b = await createStowage({ dataDir: join(root, 'b') }, { env, ports: ['queue'] });
  assert.deepEqual((await b.queue.browse('orders')).map((m) => Buffer.from(m.payload).toString()), ['o3', 'o4', 'o5', 'o6', 'o7', 'o8']);
  const c = b.queue.consume('orders', 'billing');
  const d = (await c[Symbol.asyncIterator]().next()).value as Delivery;
  await c.close();
  assert.equal(d.text(), 'o3');
  await d.nak();
  await b.close();

  const again = await migrate(base);
  assert.ok(again.ok, 'a repeated migration finds the topic already copied');
  assert.equal(again.copied.queue, 0);
  {
    await using a = await createStowage({ dataDir: join(root, 'a') }, { env, ports: ['queue'] });
    await a.queue.publish('orders', 'new on the source');
  }
  await assert.rejects(migrate(base), (err: unknown) => err instanceof Error && /differ from the source/.test(err.message), 'a target topic that differs is refused');
});
