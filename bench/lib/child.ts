/**
 * Runs one benchmark in its own process: `node --import tsx --expose-gc bench/lib/child.ts <module> <name> <out.json>`.
 * The parent passes `--quick` and the running servers through the environment (`BENCH_QUICK`,
 * `BENCH_SERVICES`); the result, with this process's peak RSS, is written to `<out.json>`.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { BenchmarkSkipped, type BenchContext, type BenchService, type Benchmark, type Figure, type ServiceKind } from './benchmark.js';
import { roundPlan, runPair, type SidePeaks } from './measure.js';

/** What a child reports for its benchmark. */
export interface ChildResult {
  /** `ok`, `skipped` (with the reason) or `failed` (with the error). */
  readonly status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or how it failed. */
  readonly reason?: string;
  /** The figures measured. */
  readonly figures: readonly Figure[];
  /** Peak RSS of the process that ran the benchmark, in bytes. */
  readonly peakRssBytes: number;
  /** Peak RSS sampled after each side's chunks (pairs only), in bytes. */
  readonly sidePeaks?: SidePeaks;
}

/** How long a teardown may take before the figures are reported anyway (the process then exits). */
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

async function main(): Promise<void> {
  const [modulePath, name, outFile] = process.argv.slice(2);
  if (!modulePath || !name || !outFile) throw new Error('usage: child.ts <module> <benchmark name> <out.json>');
  const quick = process.env.BENCH_QUICK === '1';
  const services = JSON.parse(process.env.BENCH_SERVICES ?? '{}') as Partial<Record<ServiceKind, BenchService>>;
  const dir = await mkdtemp(join(process.env.BENCH_TMPDIR ?? tmpdir(), 'stowage-bench-'));
  const ctx: BenchContext = {
    quick,
    services,
    dir,
    skip: (reason) => {
      throw new BenchmarkSkipped(reason);
    },
  };
  let result: ChildResult;
  try {
    const mod = (await import(pathToFileURL(modulePath).href)) as { benchmarks?: Benchmark[] };
    const bench = mod.benchmarks?.find((b) => b.name === name);
    if (!bench) throw new Error(`no benchmark named "${name}" in ${modulePath}`);
    if (bench.kind === 'pair') {
      const pair = await bench.setup(ctx);
      try {
        const { figure, peaks } = await runPair(bench, pair, roundPlan(quick));
        result = { status: 'ok', figures: [figure], peakRssBytes: 0, sidePeaks: peaks };
      } finally {
        await bounded(pair.teardown?.(), TEARDOWN_MS, 'teardown');
      }
    } else {
      result = { status: 'ok', figures: await bench.measure(ctx), peakRssBytes: 0 };
    }
  } catch (err) {
    result =
      err instanceof BenchmarkSkipped
        ? { status: 'skipped', reason: err.message, figures: [], peakRssBytes: 0 }
        : { status: 'failed', reason: err instanceof Error ? `${err.name}: ${err.message}` : String(err), figures: [], peakRssBytes: 0 };
  }
  // resourceUsage().maxRSS is in KiB and covers the whole life of this process.
  result = { ...result, peakRssBytes: process.resourceUsage().maxRSS * 1024 };
  await writeFile(outFile, JSON.stringify(result));
  await rm(dir, { recursive: true, force: true });
}

main().then(
  // Exit explicitly: a client that keeps a socket or timer open must not hold the run.
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
