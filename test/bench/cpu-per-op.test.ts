import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { stats } from '../../bench/lib/benchmark.js';
import { markdown, rate, type BenchmarkOutcome, type RunReport } from '../../bench/lib/report.js';

describe('CPU time per operation in a pair benchmark', () => {
  it('is measured per side: a side that computes shows its CPU, a side that waits shows little', async () => {
    // In a process of its own, as the bench runs each benchmark (see the fixture).
    const fixture = fileURLToPath(new URL('./fixtures/cpu-pair.ts', import.meta.url));
    const { stdout } = await promisify(execFile)(process.execPath, ['--import', 'tsx', fixture], { timeout: 60_000 });
    const cpu = JSON.parse(stdout) as { stowage: number; baseline: number };
    expect(cpu.stowage).toBeGreaterThanOrEqual(300);
    expect(cpu.baseline).toBeLessThan(cpu.stowage / 2);
  }, 90_000);

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
