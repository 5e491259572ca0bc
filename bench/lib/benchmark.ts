/**
 * The shared format of benchmark modules.
 *
 * A module `bench/<name>.bench.ts` exports `benchmarks: Benchmark[]`. `bench/run.ts` discovers it, starts
 * the servers its benchmarks `require` (once per run), and runs each benchmark in its own child process so
 * that its peak RSS is its own and a hung adapter cannot stop the run.
 *
 * Two kinds:
 * - a **pair** (`setup` → `{ stowage, baseline }`): both sides do the same work; the runner alternates them
 *   (Stowage, baseline, baseline, Stowage, …: the side going first alternates) over several rounds and reports the median and spread of
 *   each and the ratio Stowage / baseline against `bar`;
 * - a **measurement** (`measure`): the benchmark measures figures itself (latency percentiles, bytes per
 *   entry, figures computed by another module's exported functions) and returns them.
 */
import type { ServiceKind } from '../../test/support/servers.js';

/** The servers a benchmark can need (the test harness's kinds). */
export type { ServiceKind };

/** A server handed to a benchmark: the test harness's URL for it. */
export interface BenchService {
  /** The Stowage URL of the server, e.g. `etcd://127.0.0.1:23791` (no path). */
  readonly url: string;
  /** Loopback host. */
  readonly host: string;
  /** Port. */
  readonly port: number;
}

/** What a benchmark receives. */
export interface BenchContext {
  /** `--quick`: fewer and shorter rounds, smaller data sets. */
  readonly quick: boolean;
  /** The servers named in `requires`, already running. */
  readonly services: Readonly<Partial<Record<ServiceKind, BenchService>>>;
  /** A fresh temporary folder for this benchmark, removed afterwards. */
  readonly dir: string;
  /** Ends the benchmark as skipped with a one-line reason (e.g. the adapter has not landed). */
  skip(reason: string): never;
}

/** One side of a pair: does `n` operations of the measured kind, the same work as the other side. */
export interface Side {
  /** What this side is, e.g. `stowage redis://` or `ioredis`. */
  readonly label: string;
  /** Untimed preparation before each timed run of `n` operations (e.g. publish a backlog to consume). */
  prepare?(n: number): Promise<void>;
  /** Does `n` operations; the runner times this call. */
  run(n: number): Promise<void>;
}

/** What a pair's `setup` returns. */
export interface Pair {
  /** Stowage through its port object. */
  readonly stowage: Side;
  /** The raw client (or comparison system) doing the same work. */
  readonly baseline: Side;
  /** Releases what setup opened. */
  teardown?(): Promise<void>;
}

/**
 * A pass/fail bar. `ratio`: Stowage / baseline must be at least this. `min` / `max`: the Stowage figure
 * itself must be at least / at most this (in the figure's unit).
 */
export interface Bar {
  /** Minimum ratio Stowage / baseline (higher-is-better figures). */
  readonly ratio?: number;
  /** Minimum absolute value. */
  readonly min?: number;
  /** Maximum absolute value. */
  readonly max?: number;
  /** Where the bar comes from, e.g. `issue 6`. */
  readonly source: string;
}

interface BenchmarkBase {
  /** Unique across the run, e.g. `redis cache get (1 at a time)`; `--only` matches a substring of it. */
  readonly name: string;
  /** The table section, e.g. `cache`, `config`, `documents`, `queue`. */
  readonly group: string;
  /** Servers this benchmark needs; without one it is listed as skipped with the reason. */
  readonly requires?: readonly ServiceKind[];
  /**
   * Adapter folders under `src/adapters/` it measures; while one has not landed the benchmark is listed as
   * skipped without starting a process.
   */
  readonly adapters?: readonly string[];
}

/** A Stowage-vs-baseline throughput pair. */
export interface PairBenchmark extends BenchmarkBase {
  /** Discriminant. */
  readonly kind: 'pair';
  /** The unit of the throughput, e.g. `ops/s` or `msgs/s`. */
  readonly unit: string;
  /** The bar from the issue, if any. */
  readonly bar?: Bar;
  /** A remark for the report (what exactly is compared, caveats). */
  readonly note?: string;
  /** Opens both sides. */
  setup(ctx: BenchContext): Promise<Pair>;
}

/** Statistics of repeated samples. */
export interface Stats {
  /** The median sample. */
  readonly median: number;
  /** Smallest sample. */
  readonly min: number;
  /** Largest sample. */
  readonly max: number;
  /** First quartile. */
  readonly q1: number;
  /** Third quartile. */
  readonly q3: number;
  /** Every sample, in the order taken. */
  readonly samples: readonly number[];
}

/** One figure of the report. */
export interface Figure {
  /** What was measured, e.g. `redis cache get (1 at a time)`. */
  readonly name: string;
  /** The unit, e.g. `ops/s`, `ms`, `bytes/entry`. */
  readonly unit: string;
  /** Whether a larger figure is better (throughput) or worse (latency, bytes). */
  readonly higherIsBetter: boolean;
  /** Stowage's figure. */
  readonly stowage: Stats;
  /** What the Stowage side was. */
  readonly stowageLabel: string;
  /** The comparison measured in the same run, if any. */
  readonly baseline?: { readonly label: string; readonly stats: Stats };
  /** The bar, if any. */
  readonly bar?: Bar;
  /** A remark shown under the table (caveats, what was compared). */
  readonly note?: string;
  /**
   * CPU time of the measuring process per operation, in microseconds, each side over all its timed chunks
   * (every thread of the process: the event loop, the thread pool, the GC). Unlike the rate, it hardly moves
   * with the machine's load, so it tells a slower adapter from a busier machine. A server's own CPU is not in it.
   */
  readonly cpuPerOpUs?: { readonly stowage: number; readonly baseline: number };
}

/** A benchmark that measures its own figures. */
export interface MeasureBenchmark extends BenchmarkBase {
  /** Discriminant. */
  readonly kind: 'measure';
  /** Measures and returns the figures. */
  measure(ctx: BenchContext): Promise<Figure[]>;
}

/** Any benchmark. */
export type Benchmark = PairBenchmark | MeasureBenchmark;

/** Thrown by {@link BenchContext.skip}. */
export class BenchmarkSkipped extends Error {
  override name = 'BenchmarkSkipped';
}

/** Statistics of samples (median, quartiles by linear interpolation, min, max). */
export function stats(samples: readonly number[]): Stats {
  if (samples.length === 0) throw new Error('stats of no samples');
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number): number => {
    const pos = (sorted.length - 1) * q;
    const lo = Math.floor(pos);
    const hi = Math.ceil(pos);
    const a = sorted[lo] ?? 0;
    const b = sorted[hi] ?? a;
    return a + (b - a) * (pos - lo);
  };
  return { median: at(0.5), min: sorted[0] ?? 0, max: sorted[sorted.length - 1] ?? 0, q1: at(0.25), q3: at(0.75), samples: [...samples] };
}

/** The `p`-th percentile (0–100) of samples (nearest rank). */
export function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

/**
 * Runs `n` calls of `op(i)` keeping at most `concurrency` in flight (the "100 in flight" pattern), and
 * rejects with the first failure.
 */
export async function inFlight(n: number, concurrency: number, op: (i: number) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < n) {
      const i = next++;
      await op(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
}
