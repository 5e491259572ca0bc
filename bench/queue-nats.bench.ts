/**
 * `nats://` queue through the Queue port against the raw `@nats-io/jetstream` client doing the same work
 * (issue 6: at least 0.95× raw): publish one at a time, publish with 256 in flight, and consume + ack.
 * 128-byte payloads; each side has its own file-storage stream on the same nats-server.
 */
import { randomBytes } from 'node:crypto';
import { connect } from '@nats-io/transport-node';
import { AckPolicy, StorageType, jetstream, jetstreamManager, type JsMsg } from '@nats-io/jetstream';
import { createQueue } from '../src/core/queue/queue.js';
import type { Delivery, Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair } from './lib/benchmark.js';

const TOPIC = 'bench';
const GROUP = 'bench';
const PREFETCH = 256;
const payload = new Uint8Array(128).fill(0x61);

interface Sides {
  queue: Queue;
  publishRaw(): Promise<unknown>;
  rawStream: string;
  rawSubject: string;
  js: ReturnType<typeof jetstream>;
  jsm: Awaited<ReturnType<typeof jetstreamManager>>;
  close(): Promise<void>;
}

async function open(ctx: BenchContext, extraParams = ''): Promise<Sides> {
  const svc = ctx.services.nats;
  if (!svc) ctx.skip('nats unavailable');
  const tag = randomBytes(4).toString('hex');
  const queue = createQueue(await openDriver(ctx, 'nats', 'queue', `${svc.url}?stream=bench_${tag}&storage=file${extraParams}`));
  const nc = await connect({ servers: `${svc.host}:${svc.port}` });
  const js = jetstream(nc);
  const jsm = await jetstreamManager(nc);
  const rawStream = `raw_${tag}`;
  const rawSubject = `${rawStream}.${TOPIC}`;
  await jsm.streams.add({ name: rawStream, subjects: [rawSubject], storage: StorageType.File });
  return {
    queue,
    publishRaw: () => js.publish(rawSubject, payload),
    rawStream,
    rawSubject,
    js,
    jsm,
    async close() {
      await queue.close();
      await nc.close();
    },
  };
}

async function publishPair(ctx: BenchContext, concurrency: number): Promise<Pair> {
  const s = await open(ctx);
  return {
    stowage: { label: 'stowage nats://', run: (n) => inFlight(n, concurrency, () => s.queue.publish(TOPIC, payload)) },
    baseline: { label: '@nats-io/jetstream', run: (n) => inFlight(n, concurrency, () => s.publishRaw()) },
    teardown: () => s.close(),
  };
}

/** Consume + ack on both sides, with acks confirmed by the server (the adapter's default) or sent blind. */
async function consumeAckPair(ctx: BenchContext, confirmed: boolean): Promise<Pair> {
  const s = await open(ctx, confirmed ? '' : '&ackConfirm=false');
  const consumer = s.queue.consume(TOPIC, GROUP, { prefetch: PREFETCH, ackWaitMs: 60_000 });
  const ours: AsyncIterator<Delivery> = consumer[Symbol.asyncIterator]();
  await s.jsm.consumers.add(s.rawStream, { durable_name: GROUP, ack_policy: AckPolicy.Explicit, ack_wait: 60_000_000_000, filter_subject: s.rawSubject });
  const rawConsumer = await s.js.consumers.get(s.rawStream, GROUP);
  const messages = await rawConsumer.consume({ max_messages: PREFETCH });
  const theirs: AsyncIterator<JsMsg> = messages[Symbol.asyncIterator]();
  return {
    stowage: {
      label: 'stowage nats://',
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
      label: '@nats-io/jetstream',
      prepare: (n) => inFlight(n, 256, () => s.publishRaw()),
      async run(n) {
        for (let i = 0; i < n; i++) {
          const next = await theirs.next();
          if (next.done) throw new Error('the JetStream consumer ended early');
          if (confirmed) await next.value.ackAck();
          else next.value.ack();
        }
      },
    },
    async teardown() {
      await consumer.close();
      // close() waits for buffered messages to be iterated; stop() just ends the iterator.
      messages.stop();
      await s.close();
    },
  };
}

const BAR = { ratio: 0.95, source: 'issue 6' } as const;
const TRACES =
  "Both sides await each publish's ack. The adapter connects with the client's noAsyncTraces option; the raw side keeps the client's defaults, which build two Error objects (stack traces) per request in advance.";
const requires = ['nats'] as const;

/** The NATS JetStream queue benchmarks. */
export const benchmarks: Benchmark[] = [
  { kind: 'pair', name: 'nats queue publish (1 at a time)', group: 'queue', adapters: ['nats'], unit: 'msgs/s', requires, bar: BAR, note: TRACES, setup: (ctx) => publishPair(ctx, 1) },
  { kind: 'pair', name: 'nats queue publish (256 in flight)', group: 'queue', adapters: ['nats'], unit: 'msgs/s', requires, bar: BAR, note: TRACES, setup: (ctx) => publishPair(ctx, 256) },
  {
    kind: 'pair',
    name: 'nats queue consume + ack (confirmed acks)',
    group: 'queue',
    adapters: ['nats'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `Both sides hold up to ${PREFETCH} unacknowledged messages and wait for the server to confirm each ack (the adapter's default; raw: await msg.ackAck()), so a lost ack is known.`,
    setup: (ctx) => consumeAckPair(ctx, true),
  },
  {
    kind: 'pair',
    name: 'nats queue consume + ack (unconfirmed acks)',
    group: 'queue',
    adapters: ['nats'],
    unit: 'msgs/s',
    requires,
    bar: BAR,
    note: `Both sides hold up to ${PREFETCH} unacknowledged messages and send acks without waiting for the server (adapter URL ?ackConfirm=false; raw: msg.ack(), as the JetStream examples do). The adapter hands the acks of one event-loop turn to the client together, so they share a socket write; in this loop each msg.ack() gets a write of its own.`,
    setup: (ctx) => consumeAckPair(ctx, false),
  },
];
