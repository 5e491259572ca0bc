/**
 * Helpers shared by the files of the queue contract suite.
 *
 * @module
 */
import assert from 'node:assert/strict';
import type { Delivery, Queue } from '../ports/queue.js';

/** How long a test waits for one delivery. */
export const NEXT_MS = 5_000;

/** The next delivery of `it`, failing the test if none comes within `ms`. */
export async function next(it: AsyncIterator<Delivery>, what: string, ms = NEXT_MS): Promise<Delivery> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new assert.AssertionError({ message: `no delivery within ${ms} ms: ${what}` })), ms);
  });
  try {
    const r = await Promise.race([it.next(), timeout]);
    assert.equal(r.done, false, `the consumer ended while waiting for: ${what}`);
    return r.value as Delivery;
  } finally {
    clearTimeout(timer);
  }
}

/** A consumer's iterator. */
export function iterate(queue: Queue, topic: string, group: string, options?: Parameters<Queue['consume']>[2]): AsyncIterator<Delivery> {
  return queue.consume(topic, group, options)[Symbol.asyncIterator]();
}

/** One group's statistics, failing the test when the group is not listed. */
export function groupStats(stats: Awaited<ReturnType<Queue['stats']>>, group: string): { backlog: number; pending: number; redelivered: number; ackFloor: number } {
  const g = stats.groups.find((s) => s.group === group);
  assert.ok(g, `stats list group ${group}`);
  return g;
}
