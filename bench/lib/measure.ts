/**
 * Runs a Stowage-vs-baseline pair: calibrate each side to a chunk of about `chunkMs`, warm both up, then
 * alternate timed chunks (Stowage, baseline, baseline, Stowage, …: the side going first alternates) for `rounds` rounds, so both sides see
 * the same machine load, and sample RSS after each chunk.
 */
import { stats, type Figure, type Pair, type PairBenchmark, type Side } from './benchmark.js';

/** How long and how often to measure. */
export interface RoundPlan {
  /** Timed chunks per side. */
  readonly rounds: number;
  /** Target duration of one chunk, in milliseconds. */
  readonly chunkMs: number;
}

/** The plan for `--quick` and for a full run. */
export function roundPlan(quick: boolean): RoundPlan {
  // Many short alternating chunks rather than a few long ones: on a shared CPU the load changes by the second,
  // and short alternation lets both sides see the same load. A full run takes 20 rounds: on the 2-core
  // machine the bench was written on, one round's ratio moves by ±5-10 %, and 10 rounds left a ratio of
  // 0.97 reading anywhere from 0.93 to 1.01 from run to run.
  return quick ? { rounds: 5, chunkMs: 120 } : { rounds: 20, chunkMs: 500 };
}

const debug = process.env.BENCH_DEBUG === '1';

/** One timed chunk: its wall time, and the CPU time the process spent meanwhile, in microseconds. */
interface Chunk {
  readonly ms: number;
  readonly cpuUs: number;
}

async function timed(side: Side, n: number): Promise<Chunk> {
  if (side.prepare) await side.prepare(n);
  const cpu = process.cpuUsage();
  const started = performance.now();
  await side.run(n);
  const ms = performance.now() - started;
  const used = process.cpuUsage(cpu);
  if (debug) process.stderr.write(`bench: ${side.label}: ${n} ops in ${ms.toFixed(1)} ms\n`);
  return { ms, cpuUs: used.user + used.system };
}

/**
 * Finds how many operations of `side` take about `chunkMs`. The calibration runs double as warm-up: it
 * ends only when a run of the chosen size, after at least one earlier run, lands within half to twice the
 * target, so a side that the JIT speeds up after its first runs is not left with tiny chunks.
 */
async function calibrate(side: Side, chunkMs: number): Promise<number> {
  let n = 8;
  for (let step = 0; step < 12; step++) {
    const { ms } = await timed(side, n);
    if (step > 0 && ms >= chunkMs / 2 && ms <= chunkMs * 2) return n;
    // At most 10× up or down per step, so a side that is slow to start is not asked for a huge chunk.
    const next = Math.round((n * chunkMs) / Math.max(ms, 0.5));
    n = Math.max(1, Math.min(n * 10, Math.max(Math.floor(n / 10), next)));
  }
  return n;
}

/** Peak RSS sampled after each chunk of each side, in bytes. */
export interface SidePeaks {
  /** Stowage side. */
  stowage: number;
  /** Baseline side. */
  baseline: number;
}

/**
 * Runs `stowage` and `baseline` once per round, the side going first alternating by round, so neither
 * always runs right after the other (a backend still busy with the previous chunk's work, a GC owed by it)
 * nor always first.
 */
export async function alternating(rounds: number, stowage: () => Promise<void>, baseline: () => Promise<void>): Promise<void> {
  for (let round = 0; round < rounds; round++) {
    const [first, second] = round % 2 === 0 ? [stowage, baseline] : [baseline, stowage];
    await first();
    await second();
  }
}

/** Runs a pair benchmark's sides and returns its one figure. */
export async function runPair(bench: PairBenchmark, pair: Pair, plan: RoundPlan): Promise<{ figure: Figure; peaks: SidePeaks }> {
  let nStowage = await calibrate(pair.stowage, plan.chunkMs);
  let nBaseline = await calibrate(pair.baseline, plan.chunkMs);
  // A load spike during calibration can leave a side with chunks far from the target; keep adjusting (the
  // samples are rates, so chunk sizes may differ between rounds).
  const adjust = (n: number, ms: number): number => Math.max(1, Math.round(Math.min(n * 4, Math.max(n / 4, (n * plan.chunkMs) / Math.max(ms, 0.5)))));
  const ours: number[] = [];
  const theirs: number[] = [];
  const peaks: SidePeaks = { stowage: 0, baseline: 0 };
  const cpu = { stowage: { us: 0, ops: 0 }, baseline: { us: 0, ops: 0 } };
  const runStowage = async (): Promise<void> => {
    const a = await timed(pair.stowage, nStowage);
    ours.push((nStowage / a.ms) * 1000);
    cpu.stowage.us += a.cpuUs;
    cpu.stowage.ops += nStowage;
    peaks.stowage = Math.max(peaks.stowage, process.memoryUsage.rss());
    nStowage = adjust(nStowage, a.ms);
  };
  const runBaseline = async (): Promise<void> => {
    const b = await timed(pair.baseline, nBaseline);
    theirs.push((nBaseline / b.ms) * 1000);
    cpu.baseline.us += b.cpuUs;
    cpu.baseline.ops += nBaseline;
    peaks.baseline = Math.max(peaks.baseline, process.memoryUsage.rss());
    nBaseline = adjust(nBaseline, b.ms);
  };
  await alternating(plan.rounds, runStowage, runBaseline);
  const figure: Figure = {
    name: bench.name,
    unit: bench.unit,
    higherIsBetter: true,
    stowage: stats(ours),
    stowageLabel: pair.stowage.label,
    baseline: { label: pair.baseline.label, stats: stats(theirs) },
    ...(bench.bar ? { bar: bench.bar } : {}),
    ...(bench.note ? { note: bench.note } : {}),
    cpuPerOpUs: { stowage: cpu.stowage.us / cpu.stowage.ops, baseline: cpu.baseline.us / cpu.baseline.ops },
  };
  return { figure, peaks };
}
