/**
 * Runs a Stowage-vs-baseline pair: calibrate each side to a chunk of about `chunkMs`, warm both up, then
 * alternate timed chunks (Stowage, baseline, Stowage, baseline, …) for `rounds` rounds, so both sides see
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
  return quick ? { rounds: 3, chunkMs: 200 } : { rounds: 7, chunkMs: 1000 };
}

const debug = process.env.BENCH_DEBUG === '1';

async function timed(side: Side, n: number): Promise<number> {
  if (side.prepare) await side.prepare(n);
  const started = performance.now();
  await side.run(n);
  const ms = performance.now() - started;
  if (debug) process.stderr.write(`bench: ${side.label}: ${n} ops in ${ms.toFixed(1)} ms\n`);
  return ms;
}

/** Finds how many operations of `side` take about `chunkMs` (the calibration runs double as warm-up). */
async function calibrate(side: Side, chunkMs: number): Promise<number> {
  let n = 8;
  let ms = await timed(side, n);
  // Grow by at most 10× per step so a side that is slow to start is not asked for a huge first chunk.
  while (ms < chunkMs / 4 && n < 50_000_000) {
    n = Math.ceil(n * Math.min(10, chunkMs / Math.max(ms, 0.5)));
    ms = await timed(side, n);
  }
  return Math.max(1, Math.round((n * chunkMs) / Math.max(ms, 0.001)));
}

/** Peak RSS sampled after each chunk of each side, in bytes. */
export interface SidePeaks {
  /** Stowage side. */
  stowage: number;
  /** Baseline side. */
  baseline: number;
}

/** Runs a pair benchmark's sides and returns its one figure. */
export async function runPair(bench: PairBenchmark, pair: Pair, plan: RoundPlan): Promise<{ figure: Figure; peaks: SidePeaks }> {
  const nStowage = await calibrate(pair.stowage, plan.chunkMs);
  const nBaseline = await calibrate(pair.baseline, plan.chunkMs);
  const ours: number[] = [];
  const theirs: number[] = [];
  const peaks: SidePeaks = { stowage: 0, baseline: 0 };
  for (let round = 0; round < plan.rounds; round++) {
    const a = await timed(pair.stowage, nStowage);
    ours.push((nStowage / a) * 1000);
    peaks.stowage = Math.max(peaks.stowage, process.memoryUsage.rss());
    const b = await timed(pair.baseline, nBaseline);
    theirs.push((nBaseline / b) * 1000);
    peaks.baseline = Math.max(peaks.baseline, process.memoryUsage.rss());
  }
  const figure: Figure = {
    name: bench.name,
    unit: bench.unit,
    higherIsBetter: true,
    stowage: stats(ours),
    stowageLabel: pair.stowage.label,
    baseline: { label: pair.baseline.label, stats: stats(theirs) },
    ...(bench.bar ? { bar: bench.bar } : {}),
    ...(bench.note ? { note: bench.note } : {}),
  };
  return { figure, peaks };
}
