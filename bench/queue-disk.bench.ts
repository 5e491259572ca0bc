/**
 * `disk://` queue against the machine's raw append + fdatasync rate and against NATS JetStream (file
 * storage) on the same machine, 128-byte messages (issue 4). The measuring functions are the disk-queue
 * owner's, exported by `bench/disk-queue.bench.ts`; this module alternates them over rounds (Stowage,
 * comparison, Stowage, comparison, …) against the run's shared nats-server, and applies the bars.
 */
import {
  measureDiskConsumeAck,
  measureDiskMemory,
  measureDiskPublishAlways,
  measureDiskPublishBatch,
  measureJetStreamConsumeAck,
  measureJetStreamPublish,
  measureRawAppendFdatasync,
  type NatsServer,
  type Rate,
} from './disk-queue.bench.js';
import { stats, type BenchContext, type Benchmark, type Figure } from './lib/benchmark.js';

/** Alternates two measurements for `rounds` rounds and returns their per-second samples. */
async function alternate(rounds: number, ours: () => Promise<Rate>, theirs: () => Promise<Rate>): Promise<{ a: Rate[]; b: Rate[] }> {
  const a: Rate[] = [];
  const b: Rate[] = [];
  for (let r = 0; r < rounds; r++) {
    a.push(await ours());
    b.push(await theirs());
  }
  return { a, b };
}

/** A count of operations that takes about `ms` at `rate` per second (at least `min`). */
function countFor(rate: Rate, ms: number, min: number): number {
  return Math.max(min, Math.round((rate.perSecond * ms) / 1000));
}

function pairFigure(name: string, a: Rate[], b: Rate[], bar: Figure['bar'], note: string): Figure {
  return {
    name,
    unit: 'msgs/s',
    higherIsBetter: true,
    stowage: stats(a.map((r) => r.perSecond)),
    stowageLabel: a[0]?.name ?? 'stowage disk://',
    baseline: { label: b[0]?.name ?? 'comparison', stats: stats(b.map((r) => r.perSecond)) },
    ...(bar ? { bar } : {}),
    note,
  };
}

function natsOf(ctx: BenchContext): NatsServer {
  const svc = ctx.services.nats;
  if (!svc) ctx.skip('nats unavailable');
  // The run owns the server; the disk-queue functions only connect to it.
  return { url: svc.url, stop: async () => undefined };
}

const rounds = (ctx: BenchContext): number => (ctx.quick ? 3 : 7);
const chunkMs = (ctx: BenchContext): number => (ctx.quick ? 400 : 2000);

/** The disk queue benchmarks. */
export const benchmarks: Benchmark[] = [
  {
    kind: 'measure',
    name: 'disk queue publish fsync=always (1 at a time)',
    group: 'queue',
    adapters: ['disk-queue'],
    async measure(ctx) {
      const ms = chunkMs(ctx);
      await measureDiskPublishAlways(100);
      const { a, b } = await alternate(rounds(ctx), () => measureDiskPublishAlways(ms), () => measureRawAppendFdatasync(ms));
      return [
        pairFigure(
          'disk queue publish fsync=always (1 at a time)',
          a,
          b,
          { ratio: 0.8, source: 'issue 4' },
          'Each publish is acknowledged once its record is on the disk (one O_DSYNC write, the same guarantee as write + fdatasync); the comparison is one 164-byte write (a 128-byte message\'s record) + fdatasync at a time on the same file system.',
        ),
      ];
    },
  },
  {
    kind: 'measure',
    name: 'disk queue publish fsync=batch (256 in flight) vs JetStream',
    group: 'queue',
    adapters: ['disk-queue'],
    requires: ['nats'],
    async measure(ctx) {
      const server = natsOf(ctx);
      const ms = chunkMs(ctx);
      const nOurs = countFor(await measureDiskPublishBatch(2_000), ms, 2_000);
      const nTheirs = countFor(await measureJetStreamPublish(server, 1_000), ms, 1_000);
      const { a, b } = await alternate(rounds(ctx), () => measureDiskPublishBatch(nOurs), () => measureJetStreamPublish(server, nTheirs));
      return [
        pairFigure(
          'disk queue publish fsync=batch (256 in flight) vs JetStream',
          a,
          b,
          { ratio: 3, source: 'issue 4 (aim 5×)' },
          'Every disk:// ack waits for the group-commit fdatasync covering it; JetStream on its default settings acknowledges before its data reaches the disk.',
        ),
      ];
    },
  },
  {
    kind: 'measure',
    name: 'disk queue consume + ack vs JetStream',
    group: 'queue',
    adapters: ['disk-queue'],
    requires: ['nats'],
    async measure(ctx) {
      const server = natsOf(ctx);
      const ms = chunkMs(ctx);
      const nOurs = countFor(await measureDiskConsumeAck(2_000), ms, 2_000);
      const nTheirs = countFor(await measureJetStreamConsumeAck(server, 1_000), ms, 1_000);
      const { a, b } = await alternate(rounds(ctx), () => measureDiskConsumeAck(nOurs), () => measureJetStreamConsumeAck(server, nTheirs));
      return [
        pairFigure(
          'disk queue consume + ack vs JetStream',
          a,
          b,
          { ratio: 2, source: 'issue 4' },
          'Prefetch 256 on both sides; disk:// timing ends when every ack is durable, JetStream\'s when its acks are flushed to the server.',
        ),
      ];
    },
  },
  {
    kind: 'measure',
    name: 'disk queue memory with a backlog',
    group: 'queue',
    adapters: ['disk-queue'],
    async measure(ctx) {
      // The full run shows the 1M-message backlog the issue asks for; --quick uses a smaller one to stay fast.
      const backlog = ctx.quick ? 60_000 : 1_000_000;
      const { samples } = await measureDiskMemory(backlog);
      const empty = samples[0];
      const filled = samples.filter((s) => s.at.startsWith('backlog'));
      const quarter = filled[0];
      const full = filled[filled.length - 1];
      if (!empty || !quarter || !full || filled.length < 2) throw new Error('measureDiskMemory returned too few samples');
      const consuming = samples.filter((s) => !s.at.startsWith('backlog') && s !== empty);
      const peakConsuming = Math.max(...consuming.map((s) => s.rssMiB));
      // Flat means: once the queue is open and warm, a four times larger backlog costs no more resident memory.
      const growth = full.rssMiB - quarter.rssMiB;
      const grownBy = backlog - backlog / filled.length;
      const trace = samples.map((s) => `${s.at}: ${s.rssMiB} MiB`).join(', ');
      return [
        {
          name: `disk queue RSS growth, backlog ${quarter.at.replace('backlog ', '')} → ${full.at.replace('backlog ', '')}`,
          unit: 'MiB',
          higherIsBetter: false,
          stowage: stats([growth]),
          stowageLabel: 'stowage disk://',
          bar: { max: 32, source: 'issue 4, flat RSS read as ≤ 32 MiB' },
          note: `RSS after a full GC at each step: ${trace}.`,
        },
        {
          name: 'disk queue resident bytes per backlog message',
          unit: 'bytes/message',
          higherIsBetter: false,
          stowage: stats([Math.max(0, (growth * 1024 * 1024) / grownBy)]),
          stowageLabel: 'stowage disk://',
          note: `RSS growth (MiB resolution) from a ${quarter.at.replace('backlog ', '')}- to a ${full.at.replace('backlog ', '')}-message backlog, divided by the ${grownBy.toLocaleString('en-US')} messages added; 128-byte payloads stay on disk.`,
        },
        {
          name: `disk queue peak RSS while consuming the ${backlog.toLocaleString('en-US')}-message backlog`,
          unit: 'MiB',
          higherIsBetter: false,
          stowage: stats([peakConsuming]),
          stowageLabel: 'stowage disk://',
          note: `From ${empty.rssMiB} MiB with an empty queue; the consumer holds 256 deliveries and acks each without awaiting it (measureDiskConsumeAck's pattern).`,
        },
      ];
    },
  },
];
