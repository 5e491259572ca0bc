import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { stats } from '../../bench/lib/benchmark.js';
import { partialSection, rate, sectionBenchmarks, supersedes, type BenchmarkOutcome, type RunReport } from '../../bench/lib/report.js';

const RESULTS = fileURLToPath(new URL('../../bench/results/', import.meta.url));

function outcome(name: string, status: BenchmarkOutcome['status'] = 'ok'): BenchmarkOutcome {
  const figures =
    status === 'ok'
      ? [{ name, unit: 'ops/s', higherIsBetter: true, stowage: stats([10, 12]), stowageLabel: 'stowage', baseline: { label: 'peer', stats: stats([8, 9]) }, note: `why ${name}` }]
      : [];
  return { benchmark: name, group: 'g', module: 'bench/x.bench.ts', status, ...(status === 'ok' ? {} : { reason: 'down' }), seconds: 1, figures };
}

function report(outcomes: BenchmarkOutcome[], only?: string): RunReport {
  return {
    startedAt: '2026-12-06T11:00:00.000Z',
    seconds: 12,
    mode: 'full',
    ...(only === undefined ? {} : { only }),
    machine: { cpu: 'cpu', cores: 2, memoryMiB: 1024, node: 'v20', os: 'linux', loadAverageAtStart: 1, fsyncPerSec: 1000, fsyncDir: '/tmp' },
    loadAverageAtEnd: 1,
    services: {},
    figures: outcomes.flatMap((o) => o.figures.map((f) => rate(o, f))),
    benchmarks: outcomes,
  };
}

describe('sections of BENCHMARKS.md kept in bench/results', () => {
  it('a partial run section names its benchmarks and shows their rows and notes', () => {
    const text = partialSection(report([outcome('a $in b'), outcome('c')], 'in'), 'Filters (issue 17)');
    expect(sectionBenchmarks(text)).toEqual(['a $in b', 'c']);
    expect(text).toContain('## Filters (issue 17) — partial run');
    expect(text).toContain('--only "in"');
    expect(text).toMatch(/\| g \| a \$in b \| 11\.0 ops\/s \[10\.0–12\.0\] \| peer: 8\.5 ops\/s/);
    expect(text).toContain('- **c**: why c');
  });

  it('a full run that measured every benchmark of a section supersedes it', () => {
    const section = partialSection(report([outcome('a'), outcome('b')], 'x'), 'X');
    expect(supersedes(report([outcome('a'), outcome('b'), outcome('z')]), section)).toBe(true);
  });

  it('a full run that missed one of them (skipped, failed or absent) does not', () => {
    const section = partialSection(report([outcome('a'), outcome('b')], 'x'), 'X');
    expect(supersedes(report([outcome('a'), outcome('b', 'skipped')]), section)).toBe(false);
    expect(supersedes(report([outcome('a'), outcome('b', 'failed')]), section)).toBe(false);
    expect(supersedes(report([outcome('a')]), section)).toBe(false);
  });

  it('a section without the mark (a script of its own, a hand-written table) is always kept', () => {
    expect(sectionBenchmarks('## SQLite engines\n\n| a |\n')).toBeUndefined();
    expect(supersedes(report([outcome('a')]), '## SQLite engines\n\n| a |\n')).toBe(false);
  });

  it('every committed section is a level-2 heading, and its mark, if any, parses', async () => {
    const files = (await readdir(RESULTS)).filter((f) => f.endsWith('.md'));
    expect(files.length).toBeGreaterThan(0);
    for (const file of files) {
      const text = await readFile(join(RESULTS, file), 'utf8');
      expect(text, file).toMatch(/^(<!-- bench section: .* -->\n)?## /);
      if (text.startsWith('<!--')) expect(sectionBenchmarks(text)?.length, file).toBeGreaterThan(0);
    }
  });
});
