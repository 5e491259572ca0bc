/**
 * The queue port against BullMQ, the job queue a Node application would most likely pick instead of it, on the
 * same machine: BullMQ 6 on the harness's Redis against `disk://` (embedded) and `nats://` (clustered), doing
 * the work both can do — publish (BullMQ: `add`), process with an acknowledgement after the handler, and a
 * retry of every job once.
 *
 * Durability is matched per row and said in each note:
 * - against `disk://` (each publish on the disk before it resolves: `fsync=always` one at a time, group commit
 *   with `fsync=batch` when many are in flight), Redis runs with `appendonly yes` and `appendfsync always`
 *   (Redis writes and fsyncs its append-only file before it answers the commands of one event-loop turn: the
 *   same group commit);
 * - against `nats://` (JetStream acknowledges once the message is in the server's page cache and syncs every
 *   2 minutes by default), Redis runs with `appendfsync everysec` (acknowledged from memory, synced every
 *   second) — both survive a process crash, both can lose their last moments on a power loss.
 *
 * What differs besides: BullMQ keeps each job as a Redis hash with its own state lists and runs a Lua script
 * per state change; it has no consumer groups (a queue's jobs go to one pool of workers: fan-out needs a queue
 * per group); and a job stays locked while its worker renews the lock, where Stowage redelivers after ackWait.
 */
import { randomBytes } from 'node:crypto';
import { Queue as BullQueue, Worker as BullWorker, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { createQueue } from '../src/core/queue/queue.js';
import type { Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type BenchService, type Pair } from './lib/benchmark.js';
import { matchRedisDurability } from './lib/redis-durability.js';

const TOPIC = 'bench';
const GROUP = 'workers';
const CONCURRENCY = 16;
const payload = JSON.stringify({ id: 42, kind: 'resize', url: 'https://example.invalid/a.png', width: 640 });

type Target = 'disk' | 'nats';

function service(ctx: BenchContext, kind: 'redis' | 'nats'): BenchService {
  const svc = ctx.services[kind];
  if (!svc) ctx.skip(`${kind} unavailable`);
  return svc;
}

async function openStowage(ctx: BenchContext, target: Target, concurrency: number): Promise<Queue> {
  const tag = randomBytes(4).toString('hex');
  if (target === 'disk') {
    const fsync = concurrency === 1 ? 'always' : 'batch';
    return createQueue(await openDriver(ctx, 'disk-queue', 'queue', `disk://${ctx.dir}/queue-${tag}?fsync=${fsync}`));
  }
  return createQueue(await openDriver(ctx, 'nats', 'queue', `${service(ctx, 'nats').url}?stream=peer_${tag}&storage=file`));
}

interface BullSide {
  readonly queue: BullQueue;
  readonly connection: Redis;
  readonly name: string;
  close(): Promise<void>;
}

async function openBull(ctx: BenchContext, target: Target): Promise<BullSide> {
  const redisSvc = service(ctx, 'redis');
  // Workers block on Redis: BullMQ requires maxRetriesPerRequest null on their connection.
  const connection = new Redis({ host: redisSvc.host, port: redisSvc.port, maxRetriesPerRequest: null });
  const restore = await matchRedisDurability(connection, target);
  const name = `peer-${randomBytes(4).toString('hex')}`;
  // Completed jobs are removed, as the Stowage side acknowledges and keeps nothing per group.
  const queue = new BullQueue(name, { connection, defaultJobOptions: { removeOnComplete: true, removeOnFail: true } });
  await queue.waitUntilReady();
  return {
    queue,
    connection,
    name,
    async close() {
      await queue.obliterate({ force: true }).catch(() => undefined);
      await queue.close();
      await restore();
      connection.disconnect();
    },
  };
}

/** Runs a processor on each side until `n` handler calls have succeeded, then stops it. */
async function untilProcessed(n: number, start: (onDone: () => void) => Promise<() => Promise<void>>): Promise<void> {
  let done = 0;
  let finish!: () => void;
  const all = new Promise<void>((resolve) => (finish = resolve));
  const stop = await start(() => {
    if (++done === n) finish();
  });
  await all;
  await stop();
}

async function publishPair(ctx: BenchContext, target: Target, concurrency: number): Promise<Pair> {
  const ours = await openStowage(ctx, target, concurrency);
  const bull = await openBull(ctx, target);
  return {
    stowage: { label: `stowage ${target}://`, run: (n) => inFlight(n, concurrency, () => ours.publish(TOPIC, payload)) },
    baseline: { label: 'BullMQ Queue.add', run: (n) => inFlight(n, concurrency, () => bull.queue.add('job', payload)) },
    async teardown() {
      await ours.close();
      await bull.close();
    },
  };
}

/**
 * Processes a backlog of `n` jobs with `CONCURRENCY` handlers on each side; with `failOnce`, every job's first
 * attempt throws and the retry succeeds (no backoff on either side).
 */
async function processPair(ctx: BenchContext, target: Target, failOnce: boolean): Promise<Pair> {
  const ours = await openStowage(ctx, target, CONCURRENCY);
  const bull = await openBull(ctx, target);
  const workerConnection = bull.connection.duplicate();
  const attempts = failOnce ? 2 : 1;
  return {
    stowage: {
      label: `stowage ${target}:// process`,
      prepare: (n) => inFlight(n, 256, () => ours.publish(TOPIC, payload)),
      run: (n) =>
        untilProcessed(n, async (onDone) => {
          const processor = ours.process(
            TOPIC,
            GROUP,
            async (delivery) => {
              JSON.parse(delivery.text());
              if (failOnce && delivery.deliveryCount === 1) throw new Error('first attempt fails');
              onDone();
            },
            { concurrency: CONCURRENCY, prefetch: CONCURRENCY * 2, maxDeliver: attempts, backoffMs: [0], ackWaitMs: 60_000, onError: () => undefined },
          );
          return () => processor.stop();
        }),
    },
    baseline: {
      label: 'BullMQ Worker',
      prepare: (n) => inFlight(n, 256, () => bull.queue.add('job', payload, { attempts })),
      run: (n) =>
        untilProcessed(n, async (onDone) => {
          const worker = new BullWorker(
            bull.name,
            async (job: Job) => {
              JSON.parse(job.data as string);
              if (failOnce && job.attemptsMade === 0) throw new Error('first attempt fails');
              onDone();
            },
            { connection: workerConnection, concurrency: CONCURRENCY },
          );
          worker.on('error', () => undefined);
          return () => worker.close();
        }),
    },
    async teardown() {
      await ours.close();
      workerConnection.disconnect();
      await bull.close();
    },
  };
}

const DURABILITY: Record<Target, string> = {
  disk: 'Durability matched: disk:// writes and fdatasyncs each publish before it resolves (fsync=always one at a time, group commit with fsync=batch when many are in flight); Redis runs with appendonly yes, appendfsync always (it fsyncs its log before answering a turn\'s commands).',
  nats: 'Durability matched: JetStream (file storage) acknowledges once the message is in its page cache and syncs every 2 min by default; Redis runs with appendonly yes, appendfsync everysec. Both survive a process crash; both can lose their last moments on a power loss.',
};
const PROCESS_NOTE =
  `A backlog processed by ${CONCURRENCY} concurrent handlers on each side; a job counts when its handler returned. Stowage acknowledges after the handler (the ack is confirmed by the server on nats://); BullMQ moves the job to completed (removed) with a Lua script. BullMQ has no consumer groups: every group of the Stowage side would be a queue of its own there.`;
const RETRY_NOTE = 'Every job fails its first attempt and succeeds on the second, redelivered at once (Stowage: maxDeliver 2, backoffMs [0]; BullMQ: attempts 2, no backoff).';

function bench(name: string, target: Target, setup: (ctx: BenchContext) => Promise<Pair>, note: string): Benchmark {
  return {
    kind: 'pair',
    name,
    group: 'queue peers',
    adapters: [target === 'disk' ? 'disk-queue' : 'nats'],
    unit: 'msgs/s',
    requires: target === 'disk' ? ['redis'] : ['redis', 'nats'],
    note,
    setup,
  };
}

/** The queue peer benchmarks. */
export const benchmarks: Benchmark[] = [
  ...(['disk', 'nats'] as const).flatMap((target) => [
    bench(`${target} queue publish (1 at a time) vs BullMQ`, target, (ctx) => publishPair(ctx, target, 1), DURABILITY[target]),
    bench(`${target} queue publish (256 in flight) vs BullMQ`, target, (ctx) => publishPair(ctx, target, 256), DURABILITY[target]),
    bench(`${target} queue process + ack vs BullMQ Worker`, target, (ctx) => processPair(ctx, target, false), `${PROCESS_NOTE} ${DURABILITY[target]}`),
    bench(`${target} queue process, every job retried once, vs BullMQ`, target, (ctx) => processPair(ctx, target, true), `${RETRY_NOTE} ${DURABILITY[target]}`),
  ]),
];
