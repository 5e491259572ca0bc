/**
 * Sets the harness's Redis to the durability a Stowage queue is compared at, for the BullMQ rows: the
 * harness starts Redis without persistence, which no one would compare a durable queue with.
 */
import type { Redis } from 'ioredis';

/**
 * The durability matched with a Stowage backend: `disk` (each publish on the disk before it resolves) gets
 * `appendfsync always` (Redis writes and fsyncs its append-only file before it answers the commands of one
 * event-loop turn: a group commit); `nats` (JetStream acknowledges from its page cache and syncs every 2
 * minutes by default) gets `appendfsync everysec`.
 */
export type MatchedDurability = 'disk' | 'nats';

/** Turns Redis's append-only file on at the durability matched with `target`; returns what puts it back. */
export async function matchRedisDurability(redis: Redis, target: MatchedDurability): Promise<() => Promise<void>> {
  const before = (await redis.config('GET', 'appendonly', 'appendfsync')) as string[];
  const was = Object.fromEntries(Array.from({ length: before.length / 2 }, (_, i) => [before[2 * i], before[2 * i + 1]])) as Record<string, string>;
  await redis.config('SET', 'appendonly', 'yes');
  await redis.config('SET', 'appendfsync', target === 'disk' ? 'always' : 'everysec');
  return async () => {
    await redis.config('SET', 'appendfsync', was.appendfsync ?? 'everysec');
    await redis.config('SET', 'appendonly', was.appendonly ?? 'no');
  };
}
