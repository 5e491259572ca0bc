/**
 * A disk queue group's position set by `seekGroup` survives a restart, in either direction (the queue contract
 * cannot reopen a folder).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { DiskQueueDriver } from '../../src/adapters/disk-queue/index.js';
import { createQueue } from '../../src/core/queue/queue.js';
import type { Delivery, Queue } from '../../src/ports/queue.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'stowage-disk-queue-seek-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

async function open(dir: string): Promise<Queue> {
  return createQueue(await DiskQueueDriver.open(dir));
}

async function first(q: Queue, group: string): Promise<Delivery> {
  const consumer = q.consume('t', group);
  try {
    const r = await consumer[Symbol.asyncIterator]().next();
    assert.equal(r.done, false);
    return r.value as Delivery;
  } finally {
    await consumer.close();
  }
}

it('a group moved forward, then back below its acks, keeps each position across a restart', async () => {
  const dir = join(work, 'q1');
  let q = await open(dir);
  for (let i = 1; i <= 6; i++) await q.publish('t', `m${i}`);
  await q.seekGroup('t', 'g', 5);
  await q.close();

  q = await open(dir);
  const fifth = await first(q, 'g');
  assert.equal(fifth.text(), 'm5', 'the forward position was kept');
  await fifth.ack();
  assert.equal((await q.stats('t')).groups[0]?.ackFloor, 5);
  await q.seekGroup('t', 'g', 2);
  await q.close();

  q = await open(dir);
  assert.deepEqual((await q.stats('t')).groups.map((g) => [g.group, g.ackFloor, g.backlog]), [['g', 1, 5]]);
  const second = await first(q, 'g');
  assert.equal(second.text(), 'm2', 'the backward position was kept, the earlier ack forgotten');
  await q.close();
});
