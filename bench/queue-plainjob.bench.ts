/**
 * `disk://` against a SQLite-backed Node job queue, the embedded queue a Node application would otherwise
 * pick: plainjob 0.0.14 over better-sqlite3.
 *
 * Why plainjob: of the SQLite job queues on npm, liteque (Karakeep's queue, the best kept by its releases)
 * cannot dequeue on better-sqlite3 11.10 or later, which refuses its async transaction callback ("Transaction
 * function cannot return a promise", karakeep-app/karakeep#1594; Karakeep pins better-sqlite3 11.3), and
 * Stowage runs on better-sqlite3 12; better-queue-sqlite was last published in 2024, on the `sqlite3` addon.
 * plainjob works on the better-sqlite3 connection it is given, with synchronous statements.
 *
 * Durability is matched: plainjob sets `journal_mode = WAL` and `synchronous = NORMAL` (a commit is not
 * synced: it survives a process crash, not a power loss); the benchmark sets `synchronous = FULL` on its
 * connection after that (every commit fsyncs the WAL). `disk://` acknowledges each publish once it is on
 * the disk. Both sides then resolve a publish only when a power loss can no longer take it.
 *
 * What differs besides: plainjob commits each state change on its own (add; claim; done: one sync each),
 * polls for work, has one pool of workers per job type (no consumer groups), no retries (a job that throws
 * is marked failed) and no ordering; its claimed jobs go back to the queue after its `timeout` (30 min), as
 * `ackWaitMs` does on `disk://`. A worker runs one job at a time: concurrency is a number of workers.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { better, defineQueue, defineWorker, type Queue as PlainQueue } from 'plainjob';
import { RECORD_OVERHEAD } from '../src/adapters/disk-queue/record-format.js';
import { createQueue } from '../src/core/queue/queue.js';
import type { Queue } from '../src/ports/queue.js';
import { openDriver } from './lib/adapters.js';
import { inFlight, type BenchContext, type Benchmark, type Pair, type Side } from './lib/benchmark.js';

const TOPIC = 'bench';
const GROUP = 'workers';
const CONCURRENCY = 16;
const IN_FLIGHT = 256;
const BATCH = 100;
const job = { id: 42, kind: 'resize', url: 'https://example.invalid/a.png', width: 640 };
const payload = JSON.stringify(job);
const quiet = { error: () => undefined, warn: () => undefined, info: () => undefined, debug: () => undefined };

/** A plainjob queue on a database file of its own, every commit synced. */
function openPlainjob(ctx: BenchContext): PlainQueue {
  const connection = better(new Database(join(ctx.dir, `plainjob-${randomBytes(4).toString('hex')}.db`)));
  const queue = defineQueue({ connection, logger: quiet });
  // defineQueue sets synchronous = NORMAL; raised afterwards on the same connection.
  connection.pragma('synchronous = FULL');
  return queue;
}

async function openStowage(ctx: BenchContext, fsync: 'always' | 'batch'): Promise<Queue> {
  return createQueue(await openDriver(ctx, 'disk-queue', 'queue', `disk://${join(ctx.dir, `queue-${randomBytes(4).toString('hex')}`)}?fsync=${fsync}`));
}

async function publishPair(ctx: BenchContext, width: number): Promise<Pair> {
  // One at a time each publish waits for its own sync (fsync=always); many in flight share one (group commit).
  const fsync = width === 1 ? 'always' : 'batch';
  const ours = await openStowage(ctx, fsync);
  const theirs = openPlainjob(ctx);
  return {
    stowage: { label: `stowage disk://?fsync=${fsync}`, run: (n) => inFlight(n, width, () => ours.publish(TOPIC, payload)) },
    // add() is synchronous (better-sqlite3): with many callers in flight each still commits on its own.
    baseline: { label: 'plainjob add (synchronous=FULL)', run: (n) => inFlight(n, width, async () => theirs.add(TOPIC, job)) },
    async teardown() {
      await ours.close();
      theirs.close();
    },
  };
}

async function batchPair(ctx: BenchContext): Promise<Pair> {
  const ours = await openStowage(ctx, 'batch');
  const theirs = openPlainjob(ctx);
  const batch = Array.from({ length: BATCH }, () => ({ payload }));
  const jobs = Array.from({ length: BATCH }, () => job);
  return {
    stowage: {
      label: `stowage disk:// publishMany of ${BATCH}`,
      async run(n) {
        for (let i = 0; i < n; i += BATCH) await ours.publishMany(TOPIC, batch);
      },
    },
    baseline: {
      label: `plainjob addMany of ${BATCH} (synchronous=FULL)`,
      async run(n) {
        for (let i = 0; i < n; i += BATCH) theirs.addMany(TOPIC, jobs);
      },
    },
    async teardown() {
      await ours.close();
      theirs.close();
    },
  };
}

/**
 * A side that processes a backlog of `n` jobs with {@link CONCURRENCY} handlers. The timing ends when the
 * n-th handler returned; the processor is stopped in the next (untimed) `prepare`, so neither side is
 * charged for its shutdown.
 */
function processingSide(label: string, publishBacklog: (n: number) => Promise<void>, start: (onDone: () => void) => () => Promise<void>): Side & { stop(): Promise<void> } {
  let stopping: (() => Promise<void>) | undefined;
  const stop = async (): Promise<void> => {
    const s = stopping;
    stopping = undefined;
    await s?.();
  };
  return {
    label,
    async prepare(n) {
      await stop();
      await publishBacklog(n);
    },
    async run(n) {
      let done = 0;
      let finish!: () => void;
      const all = new Promise<void>((resolve) => (finish = resolve));
      stopping = start(() => {
        if (++done === n) finish();
      });
      await all;
    },
    stop,
  };
}

async function processPair(ctx: BenchContext): Promise<Pair> {
  const ours = await openStowage(ctx, 'batch');
  const theirs = openPlainjob(ctx);
  const stowage = processingSide(
    'stowage disk:// process',
    (n) => inFlight(n, IN_FLIGHT, () => ours.publish(TOPIC, payload)),
    (onDone) => {
      const processor = ours.process(
        TOPIC,
        GROUP,
        async (delivery) => {
          JSON.parse(delivery.text());
          onDone();
        },
        { concurrency: CONCURRENCY, prefetch: CONCURRENCY * 2, ackWaitMs: 60_000, onError: () => undefined },
      );
      return () => processor.stop();
    },
  );
  const baseline = processingSide(
    `plainjob, ${CONCURRENCY} workers (synchronous=FULL)`,
    // The untimed backlog, in batches of one transaction.
    async (n) => {
      for (let i = 0; i < n; i += 1000) theirs.addMany(TOPIC, Array.from({ length: Math.min(1000, n - i) }, () => job));
    },
    (onDone) => {
      const workers = Array.from({ length: CONCURRENCY }, () =>
        defineWorker(
          TOPIC,
          async (j) => {
            JSON.parse(j.data);
            onDone();
          },
          { queue: theirs, logger: quiet, pollIntervall: 10 },
        ),
      );
      const running = workers.map((w) => w.start());
      return async () => {
        await Promise.all(workers.map((w) => w.stop()));
        await Promise.all(running);
      };
    },
  );
  return {
    stowage,
    baseline,
    async teardown() {
      await stowage.stop();
      await baseline.stop();
      await ours.close();
      theirs.close();
    },
  };
}

/** The bytes of one disk:// record of {@link payload} (no id, no headers). */
const RECORD = Buffer.alloc(RECORD_OVERHEAD + Buffer.byteLength(payload), 7);

/**
 * A raw side that writes {@link RECORD}s one at a time, each returning once it is on the disk (O_DSYNC, as
 * disk://?fsync=always opens its segment): appended to a growing file, or written over zeros written and
 * synced beforehand (untimed), as SQLite's WAL reuses its file once it has wrapped.
 */
function dsyncWrites(ctx: BenchContext, label: string, inPlace: boolean): Side & { close(): Promise<void> } {
  let fh: FileHandle | undefined;
  let at = 0;
  return {
    label,
    async prepare(n) {
      await fh?.close();
      fh = await open(join(ctx.dir, `raw-${randomBytes(4).toString('hex')}.log`), constants.O_RDWR | constants.O_CREAT | constants.O_DSYNC, 0o600);
      at = 0;
      if (inPlace) {
        const zeros = Buffer.alloc(1024 * 1024);
        for (let off = 0; off < n * RECORD.length; off += zeros.length) await fh.write(zeros, 0, zeros.length, off);
      }
    },
    async run(n) {
      const file = fh as FileHandle;
      for (let i = 0; i < n; i++) {
        await file.write(RECORD, 0, RECORD.length, at);
        at += RECORD.length;
      }
    },
    async close() {
      await fh?.close();
    },
  };
}

async function ceilingPair(ctx: BenchContext): Promise<Pair> {
  const ours = await openStowage(ctx, 'always');
  const raw = dsyncWrites(ctx, 'O_DSYNC append of the same bytes', false);
  return {
    stowage: { label: 'stowage disk://?fsync=always', run: (n) => inFlight(n, 1, () => ours.publish(TOPIC, payload)) },
    baseline: raw,
    async teardown() {
      await ours.close();
      await raw.close();
    },
  };
}

async function fileSystemPair(ctx: BenchContext): Promise<Pair> {
  const append = dsyncWrites(ctx, 'O_DSYNC append (as disk://)', false);
  const inPlace = dsyncWrites(ctx, 'O_DSYNC over written zeros (as a wrapped SQLite WAL)', true);
  return {
    stowage: append,
    baseline: inPlace,
    async teardown() {
      await append.close();
      await inPlace.close();
    },
  };
}

const DURABILITY =
  'Durability matched: plainjob on synchronous=FULL (its default, NORMAL, does not sync a commit) fsyncs every commit of its WAL; disk:// resolves a publish once it is on the disk.';

function bench(name: string, note: string, setup: (ctx: BenchContext) => Promise<Pair>): Benchmark {
  return { kind: 'pair', name, group: 'queue peers', adapters: ['disk-queue'], unit: 'msgs/s', note, setup };
}

/** `disk://` against plainjob. */
export const benchmarks: Benchmark[] = [
  bench('disk queue publish (1 at a time) vs plainjob', `${DURABILITY} One at a time each side waits for one sync per publish (disk://?fsync=always).`, (ctx) => publishPair(ctx, 1)),
  bench(
    'disk queue publish (1 at a time) vs its ceiling',
    `The ceiling of the row above: the same record bytes written one at a time to a file opened with O_DSYNC, with no queue around them. disk://?fsync=always makes exactly that one system call per publish.`,
    ceilingPair,
  ),
  bench(
    'file system: O_DSYNC append vs write in place',
    'Raw file writes only, no Stowage: why plainjob is faster one at a time. An append that grows the file makes each synced write also commit the new file size to the ext4 journal; a write over bytes written and synced before (what SQLite does once its WAL has wrapped) syncs the data only. disk:// appends: with space written ahead, a crash would leave zeros or stale bytes after a torn record instead of the end of the file, and recovery could no longer tell a torn unacknowledged tail from a damaged acknowledged record — which it refuses to cut (README, the disk:// queue row: "torn tail cut, mid-log damage is CORRUPTED").',
    fileSystemPair,
  ),
  bench(
    `disk queue publish (${IN_FLIGHT} in flight) vs plainjob`,
    `${DURABILITY} With ${IN_FLIGHT} publishes outstanding disk:// (fsync=batch) covers those waiting with one sync; plainjob's add() is synchronous and commits each job on its own, one sync each.`,
    (ctx) => publishPair(ctx, IN_FLIGHT),
  ),
  bench(
    `disk queue publishMany of ${BATCH} vs plainjob addMany`,
    `${DURABILITY} Each call awaited; both sides store the ${BATCH} messages of a call under one sync.`,
    batchPair,
  ),
  bench(
    'disk queue process + ack vs plainjob workers',
    `${DURABILITY} A backlog processed by ${CONCURRENCY} concurrent handlers on each side (plainjob: ${CONCURRENCY} workers, each one job at a time), timed until the last handler returned. disk:// (fsync=batch) group-commits the acks; plainjob commits a claim and a "done" per job, two syncs each, and polls every 10 ms when it finds no job.`,
    processPair,
  ),
];
