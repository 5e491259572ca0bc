/**
 * Issue 22's queue features, measured in `npm run bench`:
 * - delayed publish (256 in flight, delay 10 s) on `disk://` and `nats://` against BullMQ's delayed `add`
 *   on the harness's Redis, at matched durability (`bench/lib/redis-durability.ts`);
 * - delivery lateness (delivery time minus due time, p50 and p99) of 1000 messages due 2 ms apart, handled
 *   with concurrency 64, against a BullMQ worker with concurrency 64;
 * - `process` with 50 ordering keys against the same messages without keys (`disk://`);
 * - the same across processes: three stowages (each its own NATS and etcd connections, as three processes would
 *   have) consuming one group of `nats://` with `etcd://` as config, keys ordered group-wide, against the same
 *   messages without keys;
 * - `publishMany` of 100 against publishing one at a time (`disk://` and `nats://`).
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { Queue as BullQueue, Worker as BullWorker } from 'bullmq';
import { Redis } from 'ioredis';
import { createQueue } from '../src/core/queue/queue.js';
import { createStowage, type Stowage } from '../src/index.js';
import type { Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, percentile, stats, type BenchContext, type BenchService, type Benchmark, type Figure, type Pair, type Side } from './lib/benchmark.js';
import { alternating } from './lib/measure.js';
import { matchRedisDurability, type MatchedDurability } from './lib/redis-durability.js';

type Target = MatchedDurability;

const payload = new Uint8Array(128).fill(0x61);
/** BullMQ's job data: the same 128 bytes, as JSON text. */
const bullData = 'a'.repeat(128);
const DELAY_MS = 10_000;
const IN_FLIGHT = 256;
const LATE_MESSAGES = 1_000;
const SPACING_MS = 2;
/** Time between the first publish and the first due message, so publishing ends before delivery starts. */
const LEAD_MS = 1_500;
const LATE_CONCURRENCY = 64;
const KEYS = 50;
const KEYED_CONCURRENCY = 16;
const BATCH = 100;

function service(ctx: BenchContext, kind: 'redis' | 'nats' | 'etcd'): BenchService {
  const svc = ctx.services[kind];
  if (!svc) ctx.skip(`${kind} unavailable`);
  return svc;
}

async function openStowage(ctx: BenchContext, target: Target): Promise<Queue> {
  const tag = randomBytes(4).toString('hex');
  if (target === 'disk') return createQueue(await openDriver(ctx, 'disk-queue', 'queue', `disk://${join(ctx.dir, `queue-${tag}`)}`));
  return createQueue(await openDriver(ctx, 'nats', 'queue', `${service(ctx, 'nats').url}?stream=f_${tag}&storage=file`));
}

interface Bull {
  readonly connection: Redis;
  readonly queue: BullQueue;
  readonly name: string;
  close(): Promise<void>;
}

/** A BullMQ queue on the harness's Redis, its append-only file set to the durability matched with `target`. */
async function openBull(ctx: BenchContext, target: Target): Promise<Bull> {
  const svc = service(ctx, 'redis');
  // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
  const connection = new Redis({ host: svc.host, port: svc.port, maxRetriesPerRequest: null });
  const restore = await matchRedisDurability(connection, target);
  const name = `f${randomBytes(4).toString('hex')}`;
  const queue = new BullQueue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  await queue.waitUntilReady();
  return {
    connection,
    queue,
    name,
    async close() {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await restore();
      connection.disconnect();
    },
  };
}

async function delayedPublishPair(ctx: BenchContext, target: Target): Promise<Pair> {
  const ours = await openStowage(ctx, target);
  const bull = await openBull(ctx, target);
  return {
    stowage: { label: `stowage ${target}:// publish with delayMs`, run: (n) => inFlight(n, IN_FLIGHT, () => ours.publish('delayed', payload, { delayMs: DELAY_MS })) },
    baseline: { label: 'BullMQ delayed add', run: (n) => inFlight(n, IN_FLIGHT, () => bull.queue.add('job', bullData, { delay: DELAY_MS })) },
    async teardown() {
      await ours.close();
      await bull.close();
    },
  };
}

/** Runs `handle` over `LATE_MESSAGES` messages published by `publish(due)`, returning each one's lateness in ms. */
async function lateness(
  publish: (due: number) => Promise<unknown>,
  start: (onDelivery: (due: number) => void) => Promise<() => Promise<void>>,
): Promise<number[]> {
  const late: number[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const stop = await start((due) => {
    late.push(Date.now() - due);
    if (late.length === LATE_MESSAGES) done();
  });
  try {
    const first = Date.now() + LEAD_MS;
    await inFlight(LATE_MESSAGES, LATE_CONCURRENCY, (i) => publish(first + i * SPACING_MS));
    await all;
  } finally {
    await stop();
  }
  return late;
}

async function latenessFigures(ctx: BenchContext, target: Target): Promise<Figure[]> {
  const ours = await openStowage(ctx, target);
  const bull = await openBull(ctx, target);
  const workerConnection = bull.connection.duplicate();
  const rounds = ctx.quick ? 1 : 3;
  const oursByRound: number[][] = [];
  const theirsByRound: number[][] = [];
  try {
    await alternating(
      rounds,
      async () => {
        const topic = `due-${oursByRound.length}`;
        oursByRound.push(
          await lateness(
            (due) => ours.publish(topic, String(due), { notBefore: new Date(due) }),
            async (onDelivery) => {
              const processor = ours.process(topic, 'g', async (d) => onDelivery(Number(d.text())), { concurrency: LATE_CONCURRENCY });
              return () => processor.stop();
            },
          ),
        );
      },
      async () => {
        theirsByRound.push(
          await lateness(
            (due) => bull.queue.add('job', { due }, { delay: Math.max(0, due - Date.now()) }),
            async (onDelivery) => {
              const worker = new BullWorker(bull.name, async (job) => onDelivery((job.data as { due: number }).due), { connection: workerConnection, concurrency: LATE_CONCURRENCY });
              worker.on('error', () => undefined);
              await worker.waitUntilReady();
              return () => worker.close();
            },
          ),
        );
      },
    );
  } finally {
    await ours.close();
    workerConnection.disconnect();
    await bull.close();
  }
  const all = (byRound: number[][]): number[] => byRound.flat();
  return [50, 99].map(
    (p): Figure => ({
      name: `${target} queue delivery lateness p${p}`,
      unit: 'ms',
      higherIsBetter: false,
      // One sample per round, so the table shows how the rounds spread.
      stowage: stats(oursByRound.map((late) => percentile(late, p))),
      stowageLabel: `stowage ${target}://`,
      baseline: { label: 'BullMQ worker', stats: stats(theirsByRound.map((late) => percentile(late, p))) },
      note: `${LATE_MESSAGES} messages due ${SPACING_MS} ms apart (notBefore; BullMQ: delay), handled with concurrency ${LATE_CONCURRENCY} on each side; lateness = delivery time − due time, p${p} of each round (${rounds} rounds, over all: ours ${percentile(all(oursByRound), p).toFixed(0)} ms, BullMQ ${percentile(all(theirsByRound), p).toFixed(0)} ms). A Stowage message not yet due is delivered once at publish, handed back with the time it still has to wait and delivered again when due: its lateness is the backend's nak-delay timer; BullMQ moves due jobs from its delayed set on its own timers. ${DURABILITY[target]}`,
    }),
  );
}

/**
 * A side processing a backlog of `n` messages with `process`: the backlog is published in the untimed
 * `prepare`, the timing ends when the n-th handler returned, and the processor is stopped in the next
 * `prepare` (or teardown), so a side is not charged for its shutdown.
 */
function processingSide(q: Queue | readonly Queue[], label: string, topic: string, keyed: boolean): Side & { stop(): Promise<void> } {
  const queues: readonly Queue[] = Array.isArray(q) ? q : [q as Queue];
  const first = queues[0] as Queue;
  let stopping: (() => Promise<void>) | undefined;
  let published = 0;
  const stop = async (): Promise<void> => {
    const s = stopping;
    stopping = undefined;
    await s?.();
  };
  return {
    label,
    async prepare(n) {
      await stop();
      for (let i = 0; i < n; i += 1000) {
        await first.publishMany(
          topic,
          Array.from({ length: Math.min(1000, n - i) }, () => ({ payload, ...(keyed ? { key: `k${published++ % KEYS}` } : {}) })),
        );
      }
    },
    async run(n) {
      let seen = 0;
      let done!: () => void;
      const all = new Promise<void>((resolve) => (done = resolve));
      const handler = async (): Promise<void> => {
        if (++seen === n) done();
      };
      const processors = queues.map((each) => each.process(topic, 'g', handler, { concurrency: KEYED_CONCURRENCY }));
      stopping = async () => {
        await Promise.all(processors.map((p) => p.stop()));
      };
      await all;
    },
    stop,
  };
}

/** Keyed processing against plain processing on the same queue(s); `close` ends the queues after both sides stopped. */
function keyedAgainstPlain(queues: Queue | readonly Queue[], what: { keyed: string; plain: string }, close: () => Promise<unknown>): Pair {
  const keyed = processingSide(queues, what.keyed, 'keyed', true);
  const plain = processingSide(queues, what.plain, 'plain', false);
  return {
    stowage: keyed,
    baseline: plain,
    async teardown() {
      await keyed.stop();
      await plain.stop();
      await close();
    },
  };
}

async function orderingKeysPair(ctx: BenchContext): Promise<Pair> {
  const q = await openStowage(ctx, 'disk');
  return keyedAgainstPlain(q, { keyed: `stowage disk:// ${KEYS} ordering keys`, plain: 'stowage disk:// without keys' }, () => q.close());
}

/** Three stowages (each its own connections, as three processes would have) on one nats:// stream with etcd:// config. */
async function sharedKeysPair(ctx: BenchContext): Promise<Pair> {
  const run = randomBytes(4).toString('hex');
  const env = {
    STOWAGE_CONFIG_URL: `etcd://127.0.0.1:${service(ctx, 'etcd').port}/bench-${run}`,
    STOWAGE_QUEUE_URL: `${service(ctx, 'nats').url}?stream=kb${run}&storage=file`,
  };
  const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined };
  const nodes: Stowage[] = await Promise.all([0, 1, 2].map(() => createStowage({}, { ports: ['config', 'queue'], env, logger: quiet })));
  const queues = nodes.map((node) => node.queue);
  return keyedAgainstPlain(
    queues,
    { keyed: `3 stowages, nats:// + etcd://, ${KEYS} ordering keys`, plain: '3 stowages, nats:// + etcd://, without keys' },
    () => Promise.allSettled(nodes.map((node) => node.close())),
  );
}

async function publishManyPair(ctx: BenchContext, target: Target): Promise<Pair> {
  const q = await openStowage(ctx, target);
  return {
    stowage: {
      label: `stowage ${target}:// publishMany of ${BATCH}`,
      async run(n) {
        for (let i = 0; i < n; i += BATCH) await q.publishMany('many', Array.from({ length: Math.min(BATCH, n - i) }, () => ({ payload })));
      },
    },
    baseline: {
      label: `stowage ${target}:// publish 1 at a time`,
      async run(n) {
        for (let i = 0; i < n; i++) await q.publish('many', payload);
      },
    },
    teardown: () => q.close(),
  };
}

const DURABILITY: Record<Target, string> = {
  disk: 'Durability matched: disk:// (fsync=batch, its default) resolves a publish once its group commit synced it; Redis runs with appendonly yes, appendfsync always.',
  nats: 'Durability matched: JetStream (file storage) acknowledges from its page cache and syncs every 2 min by default; Redis runs with appendonly yes, appendfsync everysec.',
};

function pairBench(name: string, target: Target, note: string, setup: (ctx: BenchContext) => Promise<Pair>, redis: boolean): Benchmark {
  const requires = [...(redis ? (['redis'] as const) : []), ...(target === 'nats' ? (['nats'] as const) : [])];
  return { kind: 'pair', name, group: 'queue features', adapters: [target === 'disk' ? 'disk-queue' : 'nats'], requires, unit: 'msgs/s', note, setup };
}

/** Issue 22's queue feature benchmarks. */
export const benchmarks: Benchmark[] = [
  ...(['disk', 'nats'] as const).map((target) =>
    pairBench(
      `${target} queue delayed publish (${IN_FLIGHT} in flight) vs BullMQ`,
      target,
      `Delay ${DELAY_MS / 1000} s on both sides (Stowage: delayMs; BullMQ: add with delay, a job in its delayed sorted set). ${DURABILITY[target]}`,
      (ctx) => delayedPublishPair(ctx, target),
      true,
    ),
  ),
  ...(['disk', 'nats'] as const).map(
    (target): Benchmark => ({
      kind: 'measure',
      name: `${target} queue delivery lateness vs BullMQ`,
      group: 'queue features',
      adapters: [target === 'disk' ? 'disk-queue' : 'nats'],
      requires: target === 'nats' ? ['redis', 'nats'] : ['redis'],
      measure: (ctx) => latenessFigures(ctx, target),
    }),
  ),
  pairBench(
    `disk queue process with ${KEYS} ordering keys`,
    'disk',
    `The same 128-byte messages with ${KEYS} ordering keys (at most one message of a key in its handler at a time) against none, processed with concurrency ${KEYED_CONCURRENCY} and a no-op handler: the worst case for holding a key's messages back, which costs a few map operations per message (a timer only when a message waits).`,
    orderingKeysPair,
    false,
  ),
  {
    kind: 'pair',
    name: `nats queue process with ${KEYS} ordering keys across 3 stowages`,
    group: 'queue features',
    adapters: ['nats', 'etcd'],
    requires: ['nats', 'etcd'],
    unit: 'msgs/s',
    note: `Three stowages in one process, each with its own NATS and etcd connections (as three processes would have), process one group of nats:// with etcd:// as config, concurrency ${KEYED_CONCURRENCY} each, no-op handler. With keys, each key runs one message at a time in publish order across all three: a number per keyed message at publish (one compare-and-set), and per message consumed a lock and a done-mark in the config store (2 round trips; 3 when the processor must first list the key's mark and lock); without keys, none of that.`,
    setup: sharedKeysPair,
  },
  ...(['disk', 'nats'] as const).map((target) =>
    pairBench(
      `${target} queue publishMany of ${BATCH}`,
      target,
      target === 'disk'
        ? `Each call awaited. disk:// (fsync=batch) appends the ${BATCH} messages of a call under one group commit; one at a time, each publish waits for a sync of its own.`
        : `Each call awaited. nats:// pipelines the ${BATCH} publishes of a call and waits for their acknowledgements together; one at a time, each publish waits for its own.`,
      (ctx) => publishManyPair(ctx, target),
      false,
    ),
  ),
];
