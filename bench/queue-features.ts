/**
 * Issue 22's queue feature figures, printed as Markdown rows for BENCHMARKS.md:
 * - delayed publish throughput (256 in flight, delay 10 s) and delivery lateness p50/p99 (1000 messages
 *   due 2 ms apart, one consumer) for Stowage on disk:// and nats:// against BullMQ's delayed jobs on Redis;
 * - ordered-key throughput (50 keys, concurrency 16) against the same messages without keys (disk://);
 * - the same across processes: three stowages (each its own NATS and etcd connections, as three processes
 *   would have) consuming one group of nats:// with etcd:// as config, keys ordered group-wide, against the
 *   same messages without keys;
 * - publishMany (calls of 100) against publishing one at a time (disk:// and nats://).
 *
 * Run: `npx tsx bench/queue-features.ts` (starts redis-server, nats-server and etcd from the test harness).
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Queue as BullQueue, Worker } from 'bullmq';
import { diskQueueScheme } from '../src/adapters/disk-queue/index.js';
import { natsQueueScheme } from '../src/adapters/nats/index.js';
import { createQueue } from '../src/core/queue/queue.js';
import type { OpenContext } from '../src/core/registry.js';
import { parseUrl } from '../src/driver/url.js';
import type { Queue } from '../src/ports/queue.js';
import { createStowage } from '../src/index.js';
import { startService, type Service } from '../test/support/servers.js';
import { inFlight, percentile } from './lib/benchmark.js';

const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const PUBLISHES = 5_000;
const LATE_MESSAGES = 1_000;
const SPACING_MS = 2;
const LEAD_MS = 1_500;
const ROUNDS = 3;
const payload = new Uint8Array(128).fill(0x61);

const median = (xs: number[]): number => percentile(xs, 50);
const fmt = (n: number): string => (n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0));

async function openDisk(dir: string): Promise<Queue> {
  const context: OpenContext = { dataDir: dir, env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('unused')) };
  return createQueue(await diskQueueScheme.open(parseUrl(`disk://${join(dir, randomBytes(4).toString('hex'))}`), context));
}

async function openNats(nats: Service): Promise<Queue> {
  const context: OpenContext = { dataDir: '/nonexistent', env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('unused')) };
  return createQueue(await natsQueueScheme.open(parseUrl(`${nats.url}?stream=b${randomBytes(4).toString('hex')}&storage=file`), context));
}

/** Delayed publishes per second, 256 in flight. */
async function stowagePublishRate(open: () => Promise<Queue>): Promise<number> {
  const q = await open();
  try {
    const t = performance.now();
    await inFlight(PUBLISHES, 256, () => q.publish('delayed', payload, { delayMs: 10_000 }));
    return PUBLISHES / ((performance.now() - t) / 1000);
  } finally {
    await q.close();
  }
}

/** Lateness (ms) of each message: delivery time minus its due time. */
async function stowageLateness(open: () => Promise<Queue>): Promise<number[]> {
  const q = await open();
  const late: number[] = [];
  try {
    const start = Date.now() + LEAD_MS;
    await inFlight(LATE_MESSAGES, 64, (i) => q.publish('due', String(start + i * SPACING_MS), { notBefore: new Date(start + i * SPACING_MS) }));
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const p = q.process(
      'due',
      'g',
      async (d) => {
        late.push(Date.now() - Number(d.text()));
        if (late.length === LATE_MESSAGES) done();
      },
      { concurrency: 64 },
    );
    await all;
    await p.stop();
    return late;
  } finally {
    await q.close();
  }
}

async function bullPublishRate(redis: Service): Promise<number> {
  const connection = { host: redis.host, port: redis.port };
  const q = new BullQueue(`d${randomBytes(4).toString('hex')}`, { connection });
  try {
    const t = performance.now();
    await inFlight(PUBLISHES, 256, (i) => q.add('job', { i }, { delay: 10_000 }));
    return PUBLISHES / ((performance.now() - t) / 1000);
  } finally {
    await q.obliterate({ force: true });
    await q.close();
  }
}

async function bullLateness(redis: Service): Promise<number[]> {
  const connection = { host: redis.host, port: redis.port };
  const name = `l${randomBytes(4).toString('hex')}`;
  const q = new BullQueue(name, { connection });
  const late: number[] = [];
  let done!: () => void;
  const all = new Promise<void>((resolve) => (done = resolve));
  const worker = new Worker(
    name,
    async (job) => {
      late.push(Date.now() - (job.data as { due: number }).due);
      if (late.length === LATE_MESSAGES) done();
    },
    { connection, concurrency: 64 },
  );
  try {
    await worker.waitUntilReady();
    const start = Date.now() + LEAD_MS;
    await inFlight(LATE_MESSAGES, 64, (i) => {
      const due = start + i * SPACING_MS;
      return q.add('job', { due }, { delay: Math.max(0, due - Date.now()) });
    });
    await all;
    return late;
  } finally {
    await worker.close();
    await q.obliterate({ force: true });
    await q.close();
  }
}

/** Messages per second published one at a time, then in publishMany calls of 100 (each awaited). */
async function publishManyRates(open: () => Promise<Queue>): Promise<[number, number]> {
  const q = await open();
  try {
    const n = 2_000;
    let t = performance.now();
    for (let i = 0; i < n; i++) await q.publish('many', payload);
    const single = n / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let i = 0; i < n; i += 100) await q.publishMany('many', Array.from({ length: 100 }, () => ({ payload })));
    return [single, n / ((performance.now() - t) / 1000)];
  } finally {
    await q.close();
  }
}

/** Messages per second through process() with concurrency 16, with or without 50 ordering keys. */
async function keyedRate(dir: string, keyed: boolean): Promise<number> {
  const q = await openDisk(dir);
  try {
    const n = 5_000;
    await q.publishMany(
      'k',
      Array.from({ length: n }, (_, i) => ({ payload, ...(keyed ? { key: `k${i % 50}` } : {}) })),
    );
    let seen = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const t = performance.now();
    const p = q.process(
      'k',
      'g',
      async () => {
        if (++seen === n) done();
      },
      { concurrency: 16 },
    );
    await all;
    const rate = n / ((performance.now() - t) / 1000);
    await p.stop();
    return rate;
  } finally {
    await q.close();
  }
}

/**
 * Messages per second through three stowages' processors (concurrency 16 each) of one group on nats://
 * with etcd:// config, with or without 50 ordering keys (keys ordered across the three).
 */
async function sharedKeyedRate(etcd: Service, nats: Service, keyed: boolean): Promise<number> {
  const run = randomBytes(4).toString('hex');
  const env = { STOWAGE_CONFIG_URL: `etcd://127.0.0.1:${etcd.port}/bench-${run}`, STOWAGE_QUEUE_URL: `${nats.url}?stream=kb${run}` };
  const nodes = await Promise.all([0, 1, 2].map(() => createStowage({}, { ports: ['config', 'queue'], env, logger: quiet })));
  try {
    const n = 1_500;
    const [first] = nodes;
    for (let i = 0; i < n; i += 500) {
      await first?.queue.publishMany(
        'k',
        Array.from({ length: 500 }, (_, j) => ({ payload, ...(keyed ? { key: `k${(i + j) % 50}` } : {}) })),
      );
    }
    let seen = 0;
    let done!: () => void;
    const all = new Promise<void>((resolve) => (done = resolve));
    const t = performance.now();
    const processors = nodes.map((node) =>
      node.queue.process(
        'k',
        'g',
        async () => {
          if (++seen === n) done();
        },
        { concurrency: 16 },
      ),
    );
    await all;
    const rate = n / ((performance.now() - t) / 1000);
    await Promise.all(processors.map((p) => p.stop()));
    return rate;
  } finally {
    await Promise.allSettled(nodes.map((node) => node.close()));
  }
}

const dir = await mkdtemp(join(tmpdir(), 'stowage-bench-features-'));
const redis = await startService('redis');
const nats = await startService('nats');
const etcd = await startService('etcd');
try {
  const rows: string[] = [];
  const pubDisk: number[] = [];
  const pubNats: number[] = [];
  const pubBull: number[] = [];
  const lateDisk: number[] = [];
  const lateNats: number[] = [];
  const lateBull: number[] = [];
  const plain: number[] = [];
  const keyed: number[] = [];
  const sharedPlain: number[] = [];
  const sharedKeyed: number[] = [];
  const single = { disk: [] as number[], nats: [] as number[] };
  const many = { disk: [] as number[], nats: [] as number[] };
  for (let r = 0; r < ROUNDS; r++) {
    for (const [side, open] of [
      ['disk', () => openDisk(dir)],
      ['nats', () => openNats(nats)],
    ] as const) {
      const [one, hundred] = await publishManyRates(open);
      single[side].push(one);
      many[side].push(hundred);
    }
    pubDisk.push(await stowagePublishRate(() => openDisk(dir)));
    pubNats.push(await stowagePublishRate(() => openNats(nats)));
    pubBull.push(await bullPublishRate(redis));
    lateDisk.push(...(await stowageLateness(() => openDisk(dir))));
    lateNats.push(...(await stowageLateness(() => openNats(nats))));
    lateBull.push(...(await bullLateness(redis)));
    plain.push(await keyedRate(dir, false));
    keyed.push(await keyedRate(dir, true));
    sharedPlain.push(await sharedKeyedRate(etcd, nats, false));
    sharedKeyed.push(await sharedKeyedRate(etcd, nats, true));
  }
  const range = (xs: number[]): string => `${fmt(median(xs))} msgs/s [${fmt(Math.min(...xs))}–${fmt(Math.max(...xs))}]`;
  const bull = median(pubBull);
  rows.push(`| delayed publish, disk:// (256 in flight) | ${range(pubDisk)} | BullMQ delayed add: ${range(pubBull)} | ${(median(pubDisk) / bull).toFixed(2)}× |`);
  rows.push(`| delayed publish, nats:// (256 in flight) | ${range(pubNats)} | BullMQ delayed add: ${range(pubBull)} | ${(median(pubNats) / bull).toFixed(2)}× |`);
  const lat = (xs: number[]): string => `p50 ${percentile(xs, 50).toFixed(0)} ms, p99 ${percentile(xs, 99).toFixed(0)} ms`;
  rows.push(`| delivery lateness, disk:// | ${lat(lateDisk)} | BullMQ: ${lat(lateBull)} | |`);
  rows.push(`| delivery lateness, nats:// | ${lat(lateNats)} | BullMQ: ${lat(lateBull)} | |`);
  rows.push(`| process() with 50 ordering keys, disk:// (concurrency 16) | ${range(keyed)} | same without keys: ${range(plain)} | ${(median(keyed) / median(plain)).toFixed(2)}× |`);
  rows.push(
    `| process() with 50 ordering keys across 3 stowages, nats:// + etcd:// config (concurrency 16 each) | ${range(sharedKeyed)} | same without keys: ${range(sharedPlain)} | ${(median(sharedKeyed) / median(sharedPlain)).toFixed(2)}× |`,
  );
  for (const side of ['disk', 'nats'] as const) {
    rows.push(`| publishMany of 100, ${side}:// (each call awaited) | ${range(many[side])} | publish 1 at a time: ${range(single[side])} | ${(median(many[side]) / median(single[side])).toFixed(2)}× |`);
  }
  console.log(rows.join('\n'));
} finally {
  await Promise.allSettled([redis.dispose(), nats.dispose(), etcd.dispose()]);
  await rm(dir, { recursive: true, force: true });
}
