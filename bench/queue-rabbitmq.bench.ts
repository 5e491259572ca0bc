/**
 * `rabbitmq://` queue through the Queue port against the raw `rabbitmq-client` doing the same broker work
 * (issue 21: at least 0.95× raw): a confirmed publish to a topic exchange whose routing key reaches a stream
 * and a quorum queue, one at a time and with 256 in flight; and consume + ack from that quorum queue with 256
 * unacknowledged. 128-byte payloads; each side has its own exchange, stream and queue on the same broker.
 *
 * Each message the adapter publishes carries one header, its sequence (microseconds of the publisher's
 * clock: what ordering, replay and the dedupe window read back). The raw side sends the same message: the
 * same header, stamped from the same clock, so that both clients encode, and the broker routes and stores,
 * the same bytes. What that header costs on its own is shown by one more row, the adapter against a raw
 * publish without it.
 */
import { randomBytes } from 'node:crypto';
import { Connection, type AsyncMessage } from 'rabbitmq-client';
import { createQueue } from '../src/core/queue/queue.js';
import type { Delivery, Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair } from './lib/benchmark.js';

const TOPIC = 'bench';
const GROUP = 'bench';
const PREFETCH = 256;
const payload = Buffer.alloc(128, 0x61);

/** The adapter's sequence header (see `src/adapters/rabbitmq/queue-driver.ts`). */
const SEQ_HEADER = 'x-stowage-seq';

/** The clock the adapter stamps messages with: microseconds since the epoch, as a string. */
const stamp = (): string => String(Math.floor((performance.timeOrigin + performance.now()) * 1000));

interface Sides {
  queue: Queue;
  conn: Connection;
  /** A raw publish of the message the adapter sends: the payload and its sequence header. */
  publishRaw(): Promise<void>;
  /** A raw publish of the payload alone. */
  publishBare(): Promise<void>;
  rawQueue: string;
  close(): Promise<void>;
}

async function open(ctx: BenchContext): Promise<Sides> {
  const svc = ctx.services.rabbitmq;
  if (!svc) ctx.skip('rabbitmq unavailable');
  const tag = randomBytes(4).toString('hex');
  const queue = createQueue(await openDriver(ctx, 'rabbitmq', 'queue', `${svc.url}?prefix=bench_${tag}`));
  const conn = new Connection(`amqp://guest:guest@${svc.host}:${svc.port}`);
  const exchange = `raw_${tag}`;
  const rawQueue = `${exchange}.${TOPIC}.${GROUP}`;
  // The same topology the adapter makes: a stream (history) and a quorum queue (the group) behind a topic exchange.
  await conn.exchangeDeclare({ exchange, type: 'topic', durable: true });
  await conn.queueDeclare({ queue: `${exchange}.${TOPIC}`, durable: true, arguments: { 'x-queue-type': 'stream' } });
  await conn.queueBind({ queue: `${exchange}.${TOPIC}`, exchange, routingKey: TOPIC });
  await conn.queueDeclare({ queue: rawQueue, durable: true, arguments: { 'x-queue-type': 'quorum' } });
  await conn.queueBind({ queue: rawQueue, exchange, routingKey: TOPIC });
  const publisher = conn.createPublisher({ confirm: true, maxAttempts: 1 });
  return {
    queue,
    conn,
    publishRaw: () => publisher.send({ exchange, routingKey: TOPIC, durable: true, headers: { [SEQ_HEADER]: stamp() } }, payload),
    publishBare: () => publisher.send({ exchange, routingKey: TOPIC, durable: true }, payload),
    rawQueue,
    async close() {
      await queue.close();
      await publisher.close();
      await conn.close();
    },
  };
}

async function publishPair(ctx: BenchContext, concurrency: number, bare = false): Promise<Pair> {
  const s = await open(ctx);
  // The adapter's group queue exists too, so that both sides route each message to a stream and a quorum queue.
  await s.queue.seekGroup(TOPIC, GROUP, 1);
  const raw = bare ? () => s.publishBare() : () => s.publishRaw();
  return {
    stowage: { label: 'stowage rabbitmq://', run: (n) => inFlight(n, concurrency, () => s.queue.publish(TOPIC, payload)) },
    baseline: { label: bare ? 'rabbitmq-client, no header' : 'rabbitmq-client', run: (n) => inFlight(n, concurrency, raw) },
    teardown: () => s.close(),
  };
}

async function consumeAckPair(ctx: BenchContext): Promise<Pair> {
  const s = await open(ctx);
  // The group exists before the messages are published, as the raw queue does: creating it later would fill it
  // from the stream inside the timed loop.
  await s.queue.seekGroup(TOPIC, GROUP, 1);
  const consumer = s.queue.consume(TOPIC, GROUP, { prefetch: PREFETCH, ackWaitMs: 60_000 });
  const ours: AsyncIterator<Delivery> = consumer[Symbol.asyncIterator]();
  // The raw consumer acks a message when its handler resolves, and the handler resolves once the loop has taken
  // the message: ack after the application took it, as on the adapter's side.
  let waiting: ((m: AsyncMessage) => void) | undefined;
  const arrived: { m: AsyncMessage; take: () => void }[] = [];
  const raw = s.conn.createConsumer({ queue: s.rawQueue, queueOptions: { passive: true }, qos: { prefetchCount: PREFETCH }, concurrency: PREFETCH }, (m) => {
    const w = waiting;
    waiting = undefined;
    if (w) {
      w(m);
      return undefined;
    }
    return new Promise<void>((take) => arrived.push({ m, take }));
  });
  const nextRaw = (): Promise<AsyncMessage> => {
    const a = arrived.shift();
    if (a === undefined) return new Promise((resolve) => (waiting = resolve));
    a.take();
    return Promise.resolve(a.m);
  };
  return {
    stowage: {
      label: 'stowage rabbitmq://',
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
      label: 'rabbitmq-client',
      prepare: (n) => inFlight(n, 256, () => s.publishRaw()),
      async run(n) {
        for (let i = 0; i < n; i++) await nextRaw();
      },
    },
    async teardown() {
      await consumer.close();
      await raw.close();
      await s.close();
    },
  };
}

const BAR = { ratio: 0.95, source: 'issue 21' } as const;
const NOTE =
  'Both sides publish with publisher confirms to a topic exchange that routes each message to a stream and a quorum queue, and await each confirm. Both send the same message: the payload and the one header the adapter stamps it with (its sequence, for ordering, replay and dedupe).';
const BARE_NOTE =
  'The raw side publishes the payload alone, without the sequence header the adapter sends (the 256-in-flight row above gives the raw side that header too): the difference between the two rows is what that header costs the client and the broker.';
const requires = ['rabbitmq'] as const;

/** The RabbitMQ queue benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'rabbitmq queue publish (1 at a time)', group: 'queue', adapters: ['rabbitmq'], unit: 'msgs/s', requires, bar: BAR, note: NOTE, setup: (ctx) => publishPair(ctx, 1) },
  { kind: 'pair', name: 'rabbitmq queue publish (256 in flight)', group: 'queue', adapters: ['rabbitmq'], unit: 'msgs/s', requires, bar: BAR, note: NOTE, setup: (ctx) => publishPair(ctx, 256) },
  {
    kind: 'pair',
    name: 'rabbitmq queue publish (256 in flight) vs a raw publish without headers',
    group: 'queue',
    adapters: ['rabbitmq'],
    unit: 'msgs/s',
    requires,
    note: BARE_NOTE,
    setup: (ctx) => publishPair(ctx, 256, true),
  },
  {
    kind: 'pair',
    name: 'rabbitmq queue consume + ack',
    group: 'queue',
    adapters: ['rabbitmq'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `Both sides hold up to ${PREFETCH} unacknowledged messages of a quorum queue and ack each once the loop has taken it (raw: the consumer's handler resolves then, and the client acks). The messages carry the adapter's sequence header on both sides. The raw side is rabbitmq-client's Consumer, which sends one basic.ack per message; the adapter sends one basic.ack (multiple) for each run of messages acked in the same turn of the event loop, and one each for acks past a message still held.`,
    setup: (ctx) => consumeAckPair(ctx),
  },
];
