/**
 * `kafka://` queue through the Queue port against the raw `@platformatic/kafka` client doing the same work
 * (issue 21: at least 0.95× raw): publish one at a time, publish with 256 in flight, and consume + ack with
 * every ack's commit confirmed. 128-byte payloads; each side has its own one-partition topic on one broker.
 */
import { randomBytes } from 'node:crypto';
import { Admin, Consumer, MessagesStreamFallbackModes, MessagesStreamModes, Producer, ProduceAcks, type Message } from '@platformatic/kafka';
import { createQueue } from '../src/core/queue/queue.js';
import type { Delivery, Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair } from './lib/benchmark.js';

const TOPIC = 'bench';
const GROUP = 'bench';
const PREFETCH = 256;
const payload = Buffer.alloc(128, 0x61);

interface Sides {
  queue: Queue;
  brokers: string[];
  rawTopic: string;
  close(): Promise<void>;
}

async function open(ctx: BenchContext): Promise<Sides> {
  const svc = ctx.services.kafka;
  if (!svc) ctx.skip('kafka unavailable');
  const tag = randomBytes(4).toString('hex');
  const queue = createQueue(await openDriver(ctx, 'kafka', 'queue', `${svc.url}?prefix=bench_${tag}`));
  const brokers = [`${svc.host}:${svc.port}`];
  const rawTopic = `raw_${tag}`;
  const admin = new Admin({ clientId: 'bench', bootstrapBrokers: brokers });
  await admin.createTopics({ topics: [rawTopic], partitions: 1, replicas: 1 });
  await admin.close();
  return { queue, brokers, rawTopic, close: () => queue.close() };
}

/** One message at a time: both sides use an idempotent producer with acks=all and await each publish. */
async function publishOnePair(ctx: BenchContext): Promise<Pair> {
  const s = await open(ctx);
  const producer = new Producer({ clientId: 'bench-raw', bootstrapBrokers: s.brokers, idempotent: true, acks: ProduceAcks.ALL });
  const message = { topic: s.rawTopic, partition: 0, value: payload };
  return {
    stowage: { label: 'stowage kafka://', run: (n) => inFlight(n, 1, () => s.queue.publish(TOPIC, payload)) },
    baseline: { label: '@platformatic/kafka', run: (n) => inFlight(n, 1, () => producer.send({ messages: [message] })) },
    async teardown() {
      await producer.close();
      await s.close();
    },
  };
}

/**
 * 256 publishes in flight. The raw side cannot use an idempotent producer here: @platformatic/kafka 1.x
 * gives concurrent sends to one partition the same sequence number (see the adapter), so it sends each
 * message as its own request from a plain producer with acks=all — more requests, fewer guarantees.
 */
async function publishManyPair(ctx: BenchContext): Promise<Pair> {
  const s = await open(ctx);
  const producer = new Producer({ clientId: 'bench-raw', bootstrapBrokers: s.brokers, idempotent: false, acks: ProduceAcks.ALL });
  const message = { topic: s.rawTopic, partition: 0, value: payload };
  return {
    stowage: { label: 'stowage kafka://', run: (n) => inFlight(n, 256, () => s.queue.publish(TOPIC, payload)) },
    baseline: { label: '@platformatic/kafka', run: (n) => inFlight(n, 256, () => producer.send({ messages: [message] })) },
    async teardown() {
      await producer.close();
      await s.close();
    },
  };
}

/** Consume + ack: each ack (adapter) or offset commit (raw) awaited before the next message is taken. */
async function consumeAckPair(ctx: BenchContext): Promise<Pair> {
  const s = await open(ctx);
  const consumer = s.queue.consume(TOPIC, GROUP, { prefetch: PREFETCH, ackWaitMs: 60_000 });
  const ours: AsyncIterator<Delivery> = consumer[Symbol.asyncIterator]();
  const producer = new Producer({ clientId: 'bench-raw', bootstrapBrokers: s.brokers, idempotent: false, acks: ProduceAcks.ALL });
  const raw = new Consumer({ clientId: 'bench-raw', groupId: `raw_${GROUP}_${s.rawTopic}`, bootstrapBrokers: s.brokers });
  let theirs: AsyncIterator<Message> | undefined;
  return {
    stowage: {
      label: 'stowage kafka://',
      prepare: (n) => inFlight(n, 256, () => s.queue.publish(TOPIC, payload)),
      async run(n) {
        for (let i = 0; i < n; i++) {
          const next = await ours.next();
          if (next.done) throw new Error('the Stowage consumer ended early');
          await next.value.ack();
        }
      },
    },
    baseline: {
      label: '@platformatic/kafka',
      prepare: (n) => inFlight(n, 256, () => producer.send({ messages: [{ topic: s.rawTopic, partition: 0, value: payload }] })),
      async run(n) {
        theirs ??= (await raw.consume({ topics: [s.rawTopic], mode: MessagesStreamModes.COMMITTED, fallbackMode: MessagesStreamFallbackModes.EARLIEST, autocommit: false }))[Symbol.asyncIterator]();
        for (let i = 0; i < n; i++) {
          const next = await theirs.next();
          if (next.done) throw new Error('the raw consumer ended early');
          await next.value.commit();
        }
      },
    },
    async teardown() {
      await consumer.close();
      await raw.close(true);
      await producer.close();
      await s.close();
    },
  };
}

const BAR = { ratio: 0.95, source: 'issue 21' } as const;
const requires = ['kafka'] as const;

/** The Kafka queue benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    kind: 'pair',
    name: 'kafka queue publish (1 at a time)',
    group: 'queue',
    adapters: ['kafka'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: 'Both sides: an idempotent producer with acks=all, each publish awaited before the next.',
    setup: publishOnePair,
  },
  {
    kind: 'pair',
    name: 'kafka queue publish (256 in flight)',
    group: 'queue',
    adapters: ['kafka'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: 'The adapter sends what queued while a request is out as the next batch (one request in flight per topic, idempotent). The raw side sends each message as its own request from a non-idempotent producer: an idempotent one gives concurrent sends to one partition the same sequence number and the broker drops all but the first.',
    setup: publishManyPair,
  },
  {
    kind: 'pair',
    name: 'kafka queue consume + ack',
    group: 'queue',
    adapters: ['kafka'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `Both sides commit each message's offset and await the commit before taking the next (adapter: ack() of an in-order message; raw: message.commit() with autocommit off). The adapter holds up to ${PREFETCH} fetched messages.`,
    setup: consumeAckPair,
  },
];
