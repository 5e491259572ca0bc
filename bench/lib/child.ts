/**
 * Runs benchmarks of one module in a process of their own:
 * `node --import tsx --expose-gc bench/lib/child.ts <module> <out.json> <name>…`.
 *
 * A full run gives each benchmark its own process; `--quick` runs a module's benchmarks one after the other
 * in one process, to save the start-up of a process per benchmark. The parent passes `--quick` and the
 * running servers through the environment (`BENCH_QUICK`, `BENCH_SERVICES`). Results are written to
 * `<out.json>` after each benchmark, so a later one that hangs does not lose the earlier figures.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BenchmarkSkipped, type BenchContext, type BenchService, type Benchmark, type Figure, type ServiceKind } from './benchmark.js';
import { roundPlan, runPair, type SidePeaks } from './measure.js';

/** What a child reports for one benchmark. */
export interface ChildResult {
  /** The benchmark's name. */
  readonly name: string;
  /** `ok`, `skipped` (with the reason) or `failed` (with the error). */
  readonly status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or how it failed. */
  readonly reason?: string;
  /** The figures measured. */
  readonly figures: readonly Figure[];
  /**
   * Peak RSS while the benchmark ran, in bytes: sampled every 20 ms and after every timed chunk. When the
   * benchmark had the process to itself this is close to the process's own peak (`maxRSS`).
   */
  readonly peakRssBytes: number;
  /** Peak RSS sampled after each side's chunks (pairs only), in bytes. */
  readonly sidePeaks?: SidePeaks;
  /** Wall time of the benchmark, in seconds. */
  readonly seconds: number;
}

/** How long a teardown may take before the figures are reported anyway. */
const TEARDOWN_MS = 10_000;

/** Waits for `work`, but not longer than `ms`: a close that hangs must not cost the figures already measured. */
async function bounded(work: Promise<void> | undefined, ms: number, what: string): Promise<void> {
  if (!work) return;
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<void>((resolve) => {
    timer = setTimeout(() => {
      process.stderr.write(`bench: ${what} did not finish within ${ms} ms; going on\n`);
      resolve();
    }, ms);
  });
  await Promise.race([work, late]);
  clearTimeout(timer);
}

function gc(): void {
  (globalThis as { gc?: () => void }).gc?.();
}

async function runOne(bench: Benchmark, quick: boolean, services: Partial<Record<ServiceKind, BenchService>>): Promise<ChildResult> {
  const dir = await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'stowage-bench-'));
  const ctx: BenchContext = {
    quick,
    services,
    dir,
    skip: (reason) => {
      throw new BenchmarkSkipped(reason);
    },
  };
  gc();
  let peak = process.memoryUsage.rss();
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  const started = performance.now();
  let result: Omit<ChildResult, 'peakRssBytes' | 'seconds'>;
  try {
    if (bench.kind === 'pair') {
      const pair = await bench.setup(ctx);
      try {
        const { figure, peaks } = await runPair(bench, pair, roundPlan(quick));
        result = { name: bench.name, status: 'ok', figures: [figure], sidePeaks: peaks };
      } finally {
        await bounded(pair.teardown?.(), TEARDOWN_MS, `${bench.name}: teardown`);
      }
    } else {
      result = { name: bench.name, status: 'ok', figures: await bench.measure(ctx) };
    }
  } catch (err) {
    result =
      err instanceof BenchmarkSkipped
        ? { name: bench.name, status: 'skipped', reason: err.message, figures: [] }
        : { name: bench.name, status: 'failed', reason: err instanceof Error ? `${err.name}: ${err.message}` : String(err), figures: [] };
  } finally {
    clearInterval(sampler);
  }
  peak = Math.max(peak, process.memoryUsage.rss(), result.sidePeaks?.stowage ?? 0, result.sidePeaks?.baseline ?? 0);
  await rm(dir, { recursive: true, force: true });
  return { ...result, peakRssBytes: peak, seconds: (performance.now() - started) / 1000 };
}

async function main(): Promise<void> {
  const [modulePath, outFile, ...names] = process.argv.slice(2);
  if (!modulePath || !outFile || names.length === 0) throw new Error('usage: child.ts <module> <out.json> <benchmark name>…');
  const quick = process.env.BENCH_QUICK === '1';
  const services = JSON.parse(process.env.BENCH_SERVICES ?? '{}') as Partial<Record<ServiceKind, BenchService>>;
  const mod = (await import(pathToFileURL(modulePath).href)) as { benchmarks?: Benchmark[] };
  const results: ChildResult[] = [];
  for (const name of names) {
    const bench = mod.benchmarks?.find((b) => b.name === name);
    results.push(
      bench
        ? await runOne(bench, quick, services)
        : { name, status: 'failed', reason: `no benchmark named "${name}" in ${modulePath}`, figures: [], peakRssBytes: 0, seconds: 0 },
    );
    await writeFile(outFile, JSON.stringify(results));
    process.stderr.write(`bench-done: ${name}\n`);
  }
}

main().then(
  // Exit explicitly: a client that keeps a socket or timer open must not hold the run.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
