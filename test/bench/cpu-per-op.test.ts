import { describe, expect, it } from 'vitest';
import { runPair } from '../../bench/lib/measure.js';
import { stats, type PairBenchmark } from '../../bench/lib/benchmark.js';
import { markdown, rate, type BenchmarkOutcome, type RunReport } from '../../bench/lib/report.js';

/** Keeps the CPU busy for `us` microseconds. */
function spin(us: number): void {
  const until = performance.now() + us / 1000;
  while (performance.now() < until) {
    // busy on purpose: this side costs CPU
  }
}

const bench: PairBenchmark = { kind: 'pair', name: 'spin vs sleep', group: 'g', adapters: [], unit: 'ops/s', setup: () => Promise.reject(new Error('not used')) };

describe('CPU time per operation in a pair benchmark', () => {
  it('is measured per side: a side that computes shows its CPU, a side that waits shows little', async () => {
    const { figure } = await runPair(
      bench,
      {
        stowage: { label: 'spins 300 µs', run: async (n) => { for (let i = 0; i < n; i++) { spin(300); await Promise.resolve(); } } },
        baseline: { label: 'sleeps 1 ms', run: async (n) => { for (let i = 0; i < n; i++) await new Promise((resolve) => setTimeout(resolve, 1)); } },
      },
      { rounds: 2, chunkMs: 20 },
    );
    const cpu = figure.cpuPerOpUs;
    expect(cpu).toBeDefined();
    expect(cpu!.stowage).toBeGreaterThanOrEqual(250);
    expect(cpu!.baseline).toBeLessThan(cpu!.stowage / 2);
  });

  it('shows in the table as both sides and their ratio', () => {
    const figure = { name: 'x', unit: 'ops/s', higherIsBetter: true, stowage: stats([10]), stowageLabel: 's', baseline: { label: 'b', stats: stats([8]) }, cpuPerOpUs: { stowage: 40, baseline: 30 } };
    const outcome: BenchmarkOutcome = { benchmark: 'x', group: 'g', module: 'bench/x.bench.ts', status: 'ok', seconds: 1, figures: [figure] };
    const report: RunReport = {
      startedAt: '2026-12-06T11:00:00.000Z',
      seconds: 1,
      mode: 'full',
      machine: { cpu: 'cpu', cores: 2, memoryMiB: 1024, node: 'v20', os: 'linux', loadAverageAtStart: 1, fsyncPerSec: 1000, fsyncDir: '/tmp' },
      loadAverageAtEnd: 1,
      services: {},
      figures: [rate(outcome, figure)],
      benchmarks: [outcome],
    };
    const md = markdown(report);
    expect(md).toContain('| CPU per op, Stowage / comparison (ratio) |');
    expect(md).toContain('| 40.0 / 30.0 µs (0.75×) |');
  });
});
