/**
 * Turns a run's results into `bench/results/latest.json`, the stdout table, `BENCHMARKS.md` and the ratio
 * chart `bench/results/ratios.svg` (drawn by hand: no plotting dependency).
 */
import type { Bar, Figure, Stats } from './benchmark.js';
import type { MachineFacts } from './machine.js';

/** One benchmark as it ended. */
export interface BenchmarkOutcome {
  /** The benchmark's name. */
  readonly benchmark: string;
  /** Its group. */
  readonly group: string;
  /** The module it came from, relative to the repository. */
  readonly module: string;
  /** How it ended. */
  readonly status: 'ok' | 'skipped' | 'failed';
  /** Why it was skipped or how it failed. */
  readonly reason?: string;
  /** Peak RSS of its process, in MiB. */
  readonly peakRssMiB?: number;
  /** Peak RSS sampled on each side of a pair, in MiB. */
  readonly sidePeakRssMiB?: { readonly stowage: number; readonly baseline: number };
  /** Wall time, in seconds. */
  readonly seconds: number;
  /** The figures it produced. */
  readonly figures: readonly Figure[];
}

/** One figure with its verdict, as written to `latest.json`. */
export interface RatedFigure {
  /** The benchmark that measured it. */
  readonly benchmark: string;
  /** The group. */
  readonly group: string;
  /** What was measured. */
  readonly name: string;
  /** Unit of the figures. */
  readonly unit: string;
  /** Whether larger is better. */
  readonly higherIsBetter: boolean;
  /** Stowage's figure. */
  readonly stowage: Stats & { readonly label: string };
  /** The comparison, measured in the same run. */
  readonly baseline?: Stats & { readonly label: string };
  /** How many times better Stowage is than the comparison (medians; > 1 = Stowage better). */
  readonly ratio?: number;
  /** The bar. */
  readonly bar?: Bar;
  /** The bar in words, e.g. `≥ 0.95× raw`. */
  readonly barText: string;
  /** Whether the bar was met (undefined when there is no bar). */
  readonly pass?: boolean;
  /**
   * Whether the verdict is within the noise: the bar lies between the pessimistic and optimistic readings of
   * the interquartile ranges (Stowage q1 ÷ comparison q3 … Stowage q3 ÷ comparison q1).
   */
  readonly uncertain?: boolean;
  /** Peak RSS of the process that measured it, in MiB. */
  readonly peakRssMiB?: number;
  /** Remarks. */
  readonly note?: string;
  /** CPU time of the measuring process per operation, in microseconds, each side (pairs only; see {@link Figure.cpuPerOpUs}). */
  readonly cpuPerOpUs?: { readonly stowage: number; readonly baseline: number };
}

/** The whole run, as written to `latest.json`. */
export interface RunReport {
  /** ISO time the run started. */
  readonly startedAt: string;
  /** Wall time of the run in seconds. */
  readonly seconds: number;
  /** `quick` or `full`. */
  readonly mode: 'quick' | 'full';
  /** `--only` filter, if any. */
  readonly only?: string;
  /** The machine. */
  readonly machine: MachineFacts;
  /** 1-minute load average when the run ended. */
  readonly loadAverageAtEnd: number;
  /** The servers used, with versions where known. */
  readonly services: Readonly<Record<string, string>>;
  /** Every figure with its verdict. */
  readonly figures: readonly RatedFigure[];
  /** Every benchmark, including skipped and failed ones. */
  readonly benchmarks: readonly BenchmarkOutcome[];
}

/** Applies the bar to a figure. */
export function rate(outcome: BenchmarkOutcome, figure: Figure): RatedFigure {
  const s = figure.stowage.median;
  const b = figure.baseline?.stats.median;
  const ratio = b === undefined || b === 0 || s === 0 ? undefined : figure.higherIsBetter ? s / b : b / s;
  const bar = figure.bar;
  let pass: boolean | undefined;
  let uncertain = false;
  const words: string[] = [];
  const between = (lo: number, x: number, hi: number): boolean => lo < x && x <= hi;
  if (bar) {
    const checks: boolean[] = [];
    const q = figure.stowage;
    const c = figure.baseline?.stats;
    if (bar.ratio !== undefined) {
      words.push(`≥ ${bar.ratio}×`);
      checks.push(ratio !== undefined && ratio >= bar.ratio);
      if (c && c.q1 > 0 && c.q3 > 0 && q.q1 > 0) uncertain ||= between(q.q1 / c.q3, bar.ratio, q.q3 / c.q1);
    }
    if (bar.min !== undefined) {
      words.push(`≥ ${formatValue(bar.min, figure.unit)}`);
      checks.push(s >= bar.min);
      uncertain ||= between(q.q1, bar.min, q.q3);
    }
    if (bar.max !== undefined) {
      words.push(`≤ ${formatValue(bar.max, figure.unit)}`);
      checks.push(s <= bar.max);
      uncertain ||= between(q.q1, bar.max, q.q3);
    }
    pass = checks.every(Boolean);
  }
  return {
    benchmark: outcome.benchmark,
    group: outcome.group,
    name: figure.name,
    unit: figure.unit,
    higherIsBetter: figure.higherIsBetter,
    stowage: { label: figure.stowageLabel, ...figure.stowage },
    ...(figure.baseline ? { baseline: { label: figure.baseline.label, ...figure.baseline.stats } } : {}),
    ...(ratio !== undefined ? { ratio } : {}),
    ...(bar ? { bar } : {}),
    barText: words.length ? `${words.join(', ')} (${bar?.source ?? ''})` : '—',
    ...(pass !== undefined ? { pass, uncertain } : {}),
    ...(outcome.peakRssMiB !== undefined ? { peakRssMiB: outcome.peakRssMiB } : {}),
    ...(figure.note ? { note: figure.note } : {}),
    ...(figure.cpuPerOpUs ? { cpuPerOpUs: figure.cpuPerOpUs } : {}),
  };
}

/** CPU µs per operation, each side, and the ratio (comparison ÷ Stowage: > 1 means Stowage spends less): `12 / 10 µs (0.83×)`. */
function cpuCell(cpu: RatedFigure['cpuPerOpUs']): string {
  if (!cpu || !(cpu.stowage > 0) || !(cpu.baseline > 0)) return '';
  const us = (x: number): string => (x >= 100 ? x.toFixed(0) : x >= 10 ? x.toFixed(1) : x.toFixed(2));
  return `${us(cpu.stowage)} / ${us(cpu.baseline)} µs (${(cpu.baseline / cpu.stowage).toFixed(2)}×)`;
}

/** A figure in its unit, compactly: `1.23M ops/s`, `0.42 ms`, `312 B/entry`. */
export function formatValue(value: number, unit: string): string {
  if (!Number.isFinite(value)) return '—';
  if (unit === 'ms') return value < 10 ? `${value.toFixed(2)} ms` : `${value.toFixed(0)} ms`;
  if (unit.startsWith('bytes')) return `${Math.round(value).toLocaleString('en-US')} B${unit.slice(5)}`;
  if (unit === 'MiB') return `${value.toFixed(0)} MiB`;
  const abs = Math.abs(value);
  const short = abs >= 1e6 ? `${(value / 1e6).toFixed(2)}M` : abs >= 1e4 ? `${(value / 1e3).toFixed(1)}k` : abs >= 100 ? value.toFixed(0) : value.toFixed(1);
  return `${short} ${unit}`;
}

function spread(s: Stats, unit: string): string {
  if (s.samples.length < 2) return formatValue(s.median, unit);
  const lo = formatValue(s.min, unit).split(' ')[0];
  const hi = formatValue(s.max, unit).split(' ')[0];
  return `${formatValue(s.median, unit)} [${lo}–${hi}]`;
}

function verdict(f: RatedFigure): string {
  if (f.pass === undefined) return '';
  return `${f.pass ? 'PASS' : 'MISS'}${f.uncertain ? ' (within noise)' : ''}`;
}

interface Row {
  group: string;
  name: string;
  stowage: string;
  baseline: string;
  ratio: string;
  cpu: string;
  bar: string;
  result: string;
  rss: string;
}

function rows(report: RunReport): Row[] {
  const out: Row[] = [];
  for (const b of report.benchmarks) {
    const figures = report.figures.filter((f) => f.benchmark === b.benchmark);
    if (b.status !== 'ok') {
      out.push({
        group: b.group,
        name: b.benchmark,
        stowage: b.status === 'skipped' ? `skipped: ${b.reason ?? ''}` : `FAILED: ${b.reason ?? ''}`,
        baseline: '',
        ratio: '',
        cpu: '',
        bar: '',
        result: b.status === 'skipped' ? 'skip' : 'FAIL',
        rss: '',
      });
      continue;
    }
    for (const f of figures) {
      out.push({
        group: f.group,
        name: f.name,
        stowage: spread(f.stowage, f.unit),
        baseline: f.baseline ? `${f.baseline.label}: ${spread(f.baseline, f.unit)}` : '',
        ratio: f.ratio === undefined ? '' : `${f.ratio.toFixed(2)}×`,
        cpu: cpuCell(f.cpuPerOpUs),
        bar: f.barText,
        result: verdict(f),
        rss: f.peakRssMiB === undefined ? '' : `${f.peakRssMiB.toFixed(0)} MiB`,
      });
    }
  }
  return out;
}

const HEADERS: Row = {
  group: 'group',
  name: 'benchmark',
  stowage: 'Stowage median [min–max]',
  baseline: 'comparison median [min–max]',
  ratio: 'ratio',
  cpu: 'CPU per op, Stowage / comparison (ratio)',
  bar: 'bar',
  result: 'result',
  rss: 'peak RSS',
};
const COLUMNS = Object.keys(HEADERS) as (keyof Row)[];
/** Columns aligned right in the markdown table. */
const RIGHT: ReadonlySet<keyof Row> = new Set<keyof Row>(['ratio', 'cpu', 'rss']);

/** The markdown table's header and alignment lines. */
function mdHeader(): string[] {
  return [`| ${COLUMNS.map((c) => HEADERS[c]).join(' | ')} |`, `|${COLUMNS.map((c) => (RIGHT.has(c) ? '---:' : '---')).join('|')}|`];
}

/** The table for stdout: fixed-width columns, long cells cut. */
export function textTable(report: RunReport): string {
  const all = [HEADERS, ...rows(report)];
  const widths = COLUMNS.map((c) => Math.min(c === 'stowage' || c === 'baseline' ? 48 : 44, Math.max(...all.map((r) => r[c].length))));
  const cut = (s: string, w: number): string => (s.length > w ? `${s.slice(0, w - 1)}…` : s.padEnd(w));
  const lines = all.map((r) => COLUMNS.map((c, i) => cut(r[c], widths[i] ?? 10)).join('  ').trimEnd());
  lines.splice(1, 0, widths.map((w) => '-'.repeat(w)).join('  '));
  return lines.join('\n');
}

function mdCell(s: string): string {
  return s.replace(/\|/g, '\\|');
}

/** `BENCHMARKS.md`. */
export function markdown(report: RunReport): string {
  const m = report.machine;
  const rated = report.figures.filter((f) => f.pass !== undefined);
  const passed = rated.filter((f) => f.pass).length;
  const lines = [
    '# Benchmarks',
    '',
    `Generated by \`npm run bench${report.mode === 'quick' ? ' -- --quick' : ''}\` on ${report.startedAt} (${report.mode} mode, ${report.seconds.toFixed(0)} s). Do not edit by hand: the next run rewrites this file (sections measured apart, kept in \`bench/results/*.md\`, are included as they are); the raw figures are in [bench/results/latest.json](bench/results/latest.json).`,
    '',
    `**Machine:** ${m.cpu}, ${m.cores} cores, ${m.memoryMiB} MiB, Node ${m.node}, ${m.os}. Load average at start: ${m.loadAverageAtStart}. **Raw fsync rate** (128-byte append + fdatasync, one at a time, in ${m.fsyncDir}): **${m.fsyncPerSec.toLocaleString('en-US')}/s**.`,
    '',
    `**Bars met:** ${passed} of ${rated.length} figures with a bar (${rated.filter((f) => f.uncertain).length} verdicts within the noise).${
      m.loadAverageAtStart > m.cores ? ` The CPU was shared with other work during this run (load ${m.loadAverageAtStart} at the start and ${report.loadAverageAtEnd} at the end, on ${m.cores} cores), so figures are noisy: read the spread, and re-run before drawing conclusions from a single miss.` : ''
    }`,
    '',
    `How to read it: each pair runs Stowage (through the port object) and its comparison (the raw client doing the same work) in the same process, alternating timed chunks over several rounds; the table shows the median and the [min–max] of the rounds. **ratio** = how many times better Stowage is (throughput: Stowage / comparison; latency and size: comparison / Stowage). **CPU per op** is the measuring process's CPU time (all its threads; a server's own work is not in it) per operation over all timed chunks: it hardly moves with the machine's load, so when a ratio swings between runs while the CPU ratio holds, the swing is the machine's. A verdict marked *within noise* would flip somewhere between the pessimistic and optimistic readings of the interquartile ranges. ${report.mode === 'quick' ? 'Peak RSS is sampled while the benchmark ran (both sides); in quick mode the benchmarks of one module share a process, so it includes what earlier ones in that module left behind.' : 'Peak RSS is sampled while the benchmark ran, in a process of its own (both sides).'}`,
    '',
    '![Ratios against their bars](bench/results/ratios.svg)',
    '',
    ...mdHeader(),
    ...rows(report).map((r) => `| ${COLUMNS.map((c) => mdCell(r[c])).join(' | ')} |`),
    '',
  ];
  const notes = report.figures.filter((f) => f.note);
  if (notes.length) {
    lines.push('## Notes', '');
    for (const f of notes) lines.push(`- **${f.name}**: ${f.note}`);
    lines.push('');
  }
  if (Object.keys(report.services).length) {
    lines.push('## Servers', '');
    for (const [kind, what] of Object.entries(report.services)) lines.push(`- ${kind}: ${what}`);
    lines.push('');
  }
  lines.push(
    '## Running',
    '',
    '- `npm run bench` — every benchmark, full rounds (several minutes).',
    '- `npm run bench -- --quick` — fewer, shorter rounds (under 3 minutes); use it before a commit that touches a hot path.',
    '- `npm run bench -- --only <text>` — only benchmarks whose name contains `<text>`, or the group named `<text>` (its JSON goes to `bench/results/only-run.tmp`; this file is left alone).',
    '- `npm run bench -- --only <text> --section <title>` — the same, and its table is kept as a section of this file (`bench/results/<title, lower-case, dashed>.md`) until a full run measures all of its benchmarks. A script measuring outside `npm run bench` writes its own `bench/results/<name>.md`, kept until it is deleted.',
    '- Adding a benchmark: export `benchmarks: Benchmark[]` from `bench/<name>.bench.ts` (format in `bench/lib/benchmark.ts`): a *pair* gives a Stowage side and a comparison side doing the same work, a *measurement* returns its own figures.',
    '',
    'Servers (etcd, nats-server, redis-server, mariadbd) come from the test harness (`test/support/servers.ts`): `STOWAGE_TEST_<KIND>_URL` when set, else the binary on PATH on a free loopback port. A benchmark whose server or adapter is missing is listed as skipped with the reason. Benchmarks are never part of `npm test`.',
    '',
  );
  return lines.join('\n');
}

/**
 * The first line of a section of `bench/results/*.md` that holds figures of `npm run bench` benchmarks
 * measured apart from the full run (`--only … --section`, or a table written by hand): the JSON list of the
 * benchmarks it covers, so that a full run which measured every one of them drops the section.
 */
const SECTION_MARK = /^<!-- bench section: (\[.*\]) -->$/m;

/** The benchmarks a section of `bench/results/*.md` covers, or undefined when it is not marked (always kept). */
export function sectionBenchmarks(section: string): string[] | undefined {
  const m = SECTION_MARK.exec(section);
  if (!m?.[1]) return undefined;
  const list: unknown = JSON.parse(m[1]);
  return Array.isArray(list) ? list.map(String) : undefined;
}

/** Whether `report` (a full run) measured every benchmark a marked section covers, so the section is stale. */
export function supersedes(report: RunReport, section: string): boolean {
  const covered = sectionBenchmarks(section);
  if (covered === undefined || covered.length === 0) return false;
  const measured = new Set(report.benchmarks.filter((b) => b.status === 'ok').map((b) => b.benchmark));
  return covered.every((name) => measured.has(name));
}

/**
 * A section of `BENCHMARKS.md` holding a partial run (`npm run bench -- --only <text> --section <file>`),
 * kept in `bench/results/<file>.md` until a full run measures the same benchmarks.
 */
export function partialSection(report: RunReport, title: string): string {
  const m = report.machine;
  const lines = [
    `<!-- bench section: ${JSON.stringify(report.benchmarks.map((b) => b.benchmark))} -->`,
    `## ${title} — partial run`,
    '',
    `Measured with \`npm run bench -- ${report.mode === 'quick' ? '--quick ' : ''}--only ${JSON.stringify(report.only ?? '')}\` on ${report.startedAt} (${report.mode} mode, ${report.seconds.toFixed(0)} s), Node ${m.node}, load average ${m.loadAverageAtStart} at the start and ${report.loadAverageAtEnd} at the end on ${m.cores} cores, raw fsync ${m.fsyncPerSec.toLocaleString('en-US')}/s.${
      m.loadAverageAtStart > m.cores ? ' The CPU was shared with other work: read the ratios and the spreads, not the absolute rates.' : ''
    } The next full \`npm run bench\` that measures all of these benchmarks puts them in the table above and drops this section.`,
    '',
    ...mdHeader(),
    ...rows(report).map((r) => `| ${COLUMNS.map((c) => mdCell(r[c])).join(' | ')} |`),
    '',
  ];
  for (const f of report.figures.filter((x) => x.note)) lines.push(`- **${f.name}**: ${f.note}`);
  const servers = Object.entries(report.services);
  if (servers.length) lines.push(`- Servers: ${servers.map(([kind, what]) => `${kind}: ${what}`).join('; ')}.`);
  lines.push('');
  return lines.join('\n');
}

function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * The chart: one horizontal bar per figure that has a ratio or a bar, on a log scale; the bar's threshold
 * is a black tick. A figure with an absolute bar (e.g. ≥ 1M ops/s) is drawn as figure ÷ threshold
 * against 1×.
 */
export function svgChart(report: RunReport): string {
  const items = report.figures
    .map((f) => {
      if (f.bar?.ratio !== undefined && f.ratio !== undefined) return { f, value: f.ratio, bar: f.bar.ratio, label: f.name };
      if (f.bar?.min !== undefined) return { f, value: f.stowage.median / f.bar.min, bar: 1, label: `${f.name} (÷ target)` };
      if (f.bar?.max !== undefined) return { f, value: f.bar.max / f.stowage.median, bar: 1, label: `${f.name} (limit ÷ value)` };
      if (f.ratio !== undefined) return { f, value: f.ratio, bar: undefined, label: f.name };
      return undefined;
    })
    .filter((x): x is { f: RatedFigure; value: number; bar: number | undefined; label: string } => x !== undefined && Number.isFinite(x.value) && x.value > 0);
  const labelW = 380;
  const plotW = 460;
  const rowH = 22;
  const top = 48;
  const width = labelW + plotW + 90;
  const height = top + Math.max(1, items.length) * rowH + 40;
  const lo = 0.1;
  const hi = Math.max(10, ...items.map((i) => i.value * 1.2), ...items.map((i) => (i.bar ?? 0) * 1.2));
  const x = (v: number): number => labelW + (Math.log(Math.min(Math.max(v, lo), hi) / lo) / Math.log(hi / lo)) * plotW;
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="14" font-weight="bold">Stowage ÷ comparison (log scale); black tick = bar; green met, red missed, grey no bar</text>`,
    `<text x="10" y="36" fill="#555">${escapeXml(`${report.mode} run ${report.startedAt}, ${report.machine.cpu}, ${report.machine.cores} cores, fsync ${report.machine.fsyncPerSec}/s`)}</text>`,
  ];
  for (const g of [0.1, 0.25, 0.5, 1, 2, 4, 8, 16, 32, 64].filter((v) => v <= hi)) {
    const gx = x(g).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 4}" x2="${gx}" y2="${top + items.length * rowH}" stroke="${g === 1 ? '#888' : '#ddd'}" stroke-width="1"/>`);
    out.push(`<text x="${gx}" y="${top + items.length * rowH + 16}" text-anchor="middle" fill="#555">${g}×</text>`);
  }
  items.forEach((item, i) => {
    const y = top + i * rowH;
    const colour = item.f.pass === undefined ? '#9e9e9e' : item.f.pass ? '#2e7d32' : '#c62828';
    const label = item.label.length > 58 ? `${item.label.slice(0, 57)}…` : item.label;
    out.push(`<text x="${labelW - 8}" y="${y + 15}" text-anchor="end">${escapeXml(label)}</text>`);
    out.push(`<rect x="${x(lo)}" y="${y + 4}" width="${Math.max(1, x(item.value) - x(lo)).toFixed(1)}" height="${rowH - 8}" fill="${colour}"/>`);
    if (item.bar !== undefined) {
      const bx = x(item.bar).toFixed(1);
      out.push(`<line x1="${bx}" y1="${y + 1}" x2="${bx}" y2="${y + rowH - 1}" stroke="#000" stroke-width="2.5"/>`);
    }
    out.push(`<text x="${(x(item.value) + 6).toFixed(1)}" y="${y + 15}" fill="#222">${item.value.toFixed(2)}×</text>`);
  });
  out.push('</svg>', '');
  return out.join('\n');
}
