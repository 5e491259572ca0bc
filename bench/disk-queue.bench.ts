/**
 * Disk queue benchmarks, side by side with NATS JetStream (file storage) on the same machine, 128-byte
 * messages. Run: `npx tsx bench/disk-queue.bench.ts` (options: `--quick` for smaller counts, `--no-nats`).
 *
 * Measured through the queue port (`createQueue`), as an application sees it:
 * - raw: the machine's append + fdatasync rate (one 164-byte write + fdatasync at a time: the size of one
 *   128-byte message's record);
 * - publish one at a time, fsync=always (bar: ≥ 0.8 × raw);
 * - publish with 256 in flight, fsync=batch, every ack durable (bar: ≥ 3 × JetStream at 256 in flight);
 * - consume + ack with prefetch 256, acks durable (bar: ≥ 2 × JetStream consume + ack);
 * - memory: RSS while a backlog of 1M messages builds up and is consumed.
 *
 * The functions are exported so a bench runner can call them.
 *
 * @module
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, open, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { join } from 'node:path';
import { DiskQueueDriver } from '../src/adapters/disk-queue/index.js';
import { createQueue } from '../src/core/queue/queue.js';
import type { Queue } from '../src/ports/queue.js';

/** One measured rate. */
export interface Rate {
  /** What was measured. */
  name: string;
  /** Operations per second. */
  perSecond: number;
  /** Operations done. */
  ops: number;
  /** Wall time in ms. */
  ms: number;
}

const PAYLOAD = Buffer.alloc(128, 0x61);

async function tempDir(label: string): Promise<string> {
  return mkdtemp(join(tmpdir(), `stowage-bench-${label}-`));
}

function rate(name: string, ops: number, ms: number): Rate {
  return { name, ops, ms, perSecond: (ops * 1000) / ms };
}

/** Runs `op` `total` times with at most `inFlight` running at once. */
async function inFlight(total: number, width: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const lane = async (): Promise<void> => {
    while (next < total) await op(next++);
  };
  await Promise.all(Array.from({ length: Math.min(width, total) }, lane));
}

/** The machine's rate of one small append followed by fdatasync, one at a time. */
export async function measureRawAppendFdatasync(durationMs = 3000): Promise<Rate> {
  const dir = await tempDir('raw');
  const fh = await open(join(dir, 'raw.bin'), 'w');
  const buf = Buffer.alloc(164, 1);
  let pos = 0;
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < durationMs) {
    await fh.write(buf, 0, buf.length, pos);
    pos += buf.length;
    await fh.datasync();
    n++;
  }
  const ms = performance.now() - t0;
  await fh.close();
  await rm(dir, { recursive: true, force: true });
  return rate('raw append+fdatasync (1 at a time)', n, ms);
}

/** Publishes one at a time with fsync=always, through the port or straight to the driver. */
export async function measureDiskPublishAlways(durationMs = 3000, via: 'port' | 'driver' = 'port'): Promise<Rate> {
  const dir = await tempDir('always');
  const driver = await DiskQueueDriver.open(dir, { durability: { mode: 'always' } });
  const q = createQueue(driver);
  const signal = new AbortController().signal;
  const publish =
    via === 'port' ? () => q.publish('bench', PAYLOAD) : () => driver.publish('bench', PAYLOAD, {}, undefined, signal);
  await publish();
  let n = 0;
  const t0 = performance.now();
  while (performance.now() - t0 < durationMs) {
    await publish();
    n++;
  }
  const ms = performance.now() - t0;
  await q.close();
  await rm(dir, { recursive: true, force: true });
  return rate(`disk:// publish fsync=always, 1 at a time (${via})`, n, ms);
}

/**
 * Publishes `total` messages with `width` in flight and fsync=batch (each resolves after its fdatasync),
 * through the port or straight to the driver (which shows what core's per-call work costs).
 */
export async function measureDiskPublishBatch(total = 200_000, width = 256, via: 'port' | 'driver' = 'port'): Promise<Rate> {
  const dir = await tempDir('batch');
  const driver = await DiskQueueDriver.open(dir, { durability: { mode: 'batch' } });
  const q = createQueue(driver);
  const signal = new AbortController().signal;
  const publish =
    via === 'port' ? () => q.publish('bench', PAYLOAD) : () => driver.publish('bench', PAYLOAD, {}, undefined, signal);
  await publish();
  const t0 = performance.now();
  await inFlight(total, width, publish);
  const ms = performance.now() - t0;
  await q.close();
  await rm(dir, { recursive: true, force: true });
  return rate(`disk:// publish fsync=batch, ${width} in flight (${via})`, total, ms);
}

/** Consumes and acks `total` messages (prefetch `prefetch`); ends when every ack is durable. */
export async function measureDiskConsumeAck(total = 200_000, prefetch = 256, via: 'port' | 'driver' = 'port'): Promise<Rate> {
  const dir = await tempDir('consume');
  const driver = await DiskQueueDriver.open(dir, { durability: { mode: 'batch' } });
  const q = createQueue(driver);
  await inFlight(total, 256, () => q.publish('bench', PAYLOAD));
  const t0 = performance.now();
  if (via === 'port') await consumeAll(q, total, prefetch);
  else await drain(driver.subscribe('bench', 'g', { prefetch, ackWaitMs: 600_000, maxDeliver: 5 }), total);
  const ms = performance.now() - t0;
  await q.close();
  await rm(dir, { recursive: true, force: true });
  return rate(`disk:// consume+ack, prefetch ${prefetch} (${via})`, total, ms);
}

/** Anything that delivers acknowledgeable messages: a port consumer or a driver subscription. */
type AckStream = AsyncIterable<{ ack(): Promise<void> }> & { close(): Promise<void> };

async function consumeAll(q: Queue, total: number, prefetch: number, onProgress?: (n: number) => void): Promise<void> {
  await drain(q.consume('bench', 'g', { prefetch, ackWaitMs: 600_000 }), total, onProgress);
}

/** Takes `total` deliveries, acking each without waiting; resolves when every ack is durable. */
async function drain(stream: AckStream, total: number, onProgress?: (n: number) => void): Promise<void> {
  let acked = 0;
  let seen = 0;
  let done!: () => void;
  const allAcked = new Promise<void>((resolve) => {
    done = resolve;
  });
  for await (const d of stream) {
    seen++;
    void d.ack().then(() => {
      if (++acked === total) done();
    });
    if (onProgress && seen % 50_000 === 0) onProgress(seen);
    if (seen === total) break;
  }
  await allAcked;
  await stream.close();
}

/**
 * RSS and heap (after a full GC) while a backlog of `backlog` messages is published and then consumed,
 * through the port (`via: 'port'`) or straight from the driver (`via: 'driver'`).
 */
export async function measureDiskMemory(
  backlog = 1_000_000,
  via: 'port' | 'driver' = 'port',
): Promise<{ name: string; samples: Array<{ at: string; rssMiB: number; heapMiB: number }> }> {
  const dir = await tempDir('memory');
  const driver = await DiskQueueDriver.open(dir, { durability: { mode: 'batch' } });
  const q = createQueue(driver);
  // A full GC before each sample, so RSS shows what is live rather than garbage not yet collected.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const samples: Array<{ at: string; rssMiB: number; heapMiB: number }> = [];
  const sample = (at: string): void => {
    gc();
    const m = process.memoryUsage();
    samples.push({ at, rssMiB: Math.round(m.rss / 1048576), heapMiB: Math.round(m.heapUsed / 1048576) });
  };
  sample('empty');
  const step = backlog / 4;
  // The backlog is written straight to the driver: this measures memory, not core's per-call cost.
  const signal = new AbortController().signal;
  for (let part = 1; part <= 4; part++) {
    await inFlight(step, 256, () => driver.publish('bench', PAYLOAD, {}, undefined, signal));
    sample(`backlog ${(part * step).toLocaleString('en')}`);
  }
  const progress = (n: number): void => {
    if (n % (backlog / 4) === 0) sample(`consumed ${n.toLocaleString('en')}`);
  };
  if (via === 'port') await consumeAll(q, backlog, 256, progress);
  else await drain(driver.subscribe('bench', 'g', { prefetch: 256, ackWaitMs: 600_000, maxDeliver: 5 }), backlog, progress);
  sample('all consumed');
  await q.close();
  await rm(dir, { recursive: true, force: true });
  return { name: `disk:// memory, ${backlog.toLocaleString('en')}-message backlog, consumed via the ${via}`, samples };
}

/**
 * fsync=always against raw append+fdatasync, alternating 1-second runs (raw, driver, port, raw) `rounds`
 * times: a shared disk's fsync rate drifts by several times within seconds, so only rates measured side by
 * side compare. Returns the median ratios.
 */
export async function measureAlwaysAgainstRaw(
  rounds = 6,
): Promise<{ rounds: Array<{ raw: number; driver: number; port: number }>; driverRatio: number; portRatio: number }> {
  const out: Array<{ raw: number; driver: number; port: number }> = [];
  for (let i = 0; i < rounds; i++) {
    const before = (await measureRawAppendFdatasync(1000)).perSecond;
    const driver = (await measureDiskPublishAlways(1000, 'driver')).perSecond;
    const port = (await measureDiskPublishAlways(1000, 'port')).perSecond;
    const after = (await measureRawAppendFdatasync(1000)).perSecond;
    out.push({ raw: (before + after) / 2, driver, port });
  }
  const median = (xs: number[]): number => {
    const s = [...xs].sort((a, b) => a - b);
    return ((s[(s.length - 1) >> 1] as number) + (s[s.length >> 1] as number)) / 2;
  };
  return {
    rounds: out,
    driverRatio: median(out.map((r) => r.driver / r.raw)),
    portRatio: median(out.map((r) => r.port / r.raw)),
  };
}

// ------------------------------------------------------------------ JetStream

/** A nats-server with JetStream file storage in a temp dir, on a free loopback port. */
export interface NatsServer {
  /** `nats://127.0.0.1:<port>`. */
  url: string;
  /** Stops the server and removes its folder. */
  stop(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });
}

/** Starts `nats-server -a 127.0.0.1 -p <port> -js -sd <dir>` from PATH. */
export async function startNatsServer(): Promise<NatsServer> {
  const port = await freePort();
  const dir = await tempDir('nats');
  const proc: ChildProcess = spawn('nats-server', ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', dir], { stdio: ['ignore', 'ignore', 'pipe'] });
  await new Promise<void>((resolve, reject) => {
    let log = '';
    const timer = setTimeout(() => reject(new Error(`nats-server did not start: ${log}`)), 15_000);
    proc.on('error', reject);
    proc.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Server is ready')) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return {
    url: `nats://127.0.0.1:${port}`,
    stop: async () => {
      proc.kill('SIGTERM');
      await new Promise((resolve) => proc.once('exit', resolve));
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/** JetStream publishes with `width` in flight to a file-storage stream. */
export async function measureJetStreamPublish(server: NatsServer, total = 100_000, width = 256): Promise<Rate> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager, StorageType } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'PUB', subjects: ['pub.>'], storage: StorageType.File });
  const js = jetstream(nc);
  await js.publish('pub.x', PAYLOAD);
  const t0 = performance.now();
  await inFlight(total, width, () => js.publish('pub.x', PAYLOAD));
  const ms = performance.now() - t0;
  await jsm.streams.delete('PUB');
  await nc.close();
  return rate(`JetStream publish (file storage), ${width} in flight`, total, ms);
}

/** JetStream consume + ack (pull consumer, explicit acks) of `total` messages. */
export async function measureJetStreamConsumeAck(server: NatsServer, total = 100_000): Promise<Rate> {
  const { connect } = await import('@nats-io/transport-node');
  const { jetstream, jetstreamManager, StorageType, AckPolicy } = await import('@nats-io/jetstream');
  const nc = await connect({ servers: server.url });
  const jsm = await jetstreamManager(nc);
  await jsm.streams.add({ name: 'CON', subjects: ['con.>'], storage: StorageType.File });
  const js = jetstream(nc);
  await inFlight(total, 256, () => js.publish('con.x', PAYLOAD));
  await jsm.consumers.add('CON', { durable_name: 'g', ack_policy: AckPolicy.Explicit });
  const consumer = await js.consumers.get('CON', 'g');
  const t0 = performance.now();
  const messages = await consumer.consume({ max_messages: 256 });
  let n = 0;
  for await (const m of messages) {
    m.ack();
    if (++n === total) break;
  }
  await nc.flush();
  const ms = performance.now() - t0;
  await messages.close();
  await jsm.streams.delete('CON');
  await nc.close();
  return rate('JetStream consume+ack (pull, explicit ack)', total, ms);
}

// ------------------------------------------------------------------ main

function fmt(r: Rate): string {
  return `${r.name.padEnd(52)} ${Math.round(r.perSecond).toLocaleString('en').padStart(10)} /s  (${r.ops.toLocaleString('en')} in ${Math.round(r.ms)} ms)`;
}

async function main(): Promise<void> {
  const quick = process.argv.includes('--quick');
  const withNats = !process.argv.includes('--no-nats');
  const n = quick ? 50_000 : 200_000;
  const nNats = quick ? 30_000 : 100_000;
  console.log(`disk queue benchmark — 128-byte messages, node ${process.version}`);
  const ab = await measureAlwaysAgainstRaw();
  for (const r of ab.rounds) {
    console.log(`  round: raw ${Math.round(r.raw)}/s, always driver ${Math.round(r.driver)}/s, always port ${Math.round(r.port)}/s`);
  }
  console.log(`fsync=always, 1 at a time: median ${ab.driverRatio.toFixed(2)}× raw (driver), ${ab.portRatio.toFixed(2)}× raw (port) (bar 0.8×)`);
  const batch = await measureDiskPublishBatch(n);
  console.log(fmt(batch));
  const batchDriver = await measureDiskPublishBatch(n, 256, 'driver');
  console.log(fmt(batchDriver));
  const consume = await measureDiskConsumeAck(n);
  console.log(fmt(consume));
  const consumeDriver = await measureDiskConsumeAck(n, 256, 'driver');
  console.log(fmt(consumeDriver));
  if (withNats) {
    const server = await startNatsServer();
    try {
      const jsPub = await measureJetStreamPublish(server, nNats);
      console.log(fmt(jsPub));
      const jsCon = await measureJetStreamConsumeAck(server, nNats);
      console.log(fmt(jsCon));
      const x = (a: Rate, b: Rate): string => `${(a.perSecond / b.perSecond).toFixed(2)}×`;
      console.log(`publish, 256 in flight: port ${x(batch, jsPub)}, driver ${x(batchDriver, jsPub)} JetStream (bar 3×, aim 5×)`);
      console.log(`consume+ack:            port ${x(consume, jsCon)}, driver ${x(consumeDriver, jsCon)} JetStream (bar 2×)`);
    } finally {
      await server.stop();
    }
  }
  // Consuming a million through the port takes minutes on a busy machine; 200 000 show its trend.
  for (const [via, backlog] of [['driver', quick ? 200_000 : 1_000_000], ['port', 200_000]] as const) {
    const mem = await measureDiskMemory(backlog, via);
    console.log(mem.name);
    for (const s of mem.samples) console.log(`  ${s.at.padEnd(24)} RSS ${s.rssMiB} MiB, heap used ${s.heapMiB} MiB`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
