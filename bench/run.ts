/**
 * `npm run bench [-- --quick] [-- --only <text> [--section <title>]]`: runs every benchmark of
 * `bench/*.bench.ts`, each in its own child process, with the servers it needs started once for the whole
 * run; prints the table and writes `bench/results/latest.json`, `bench/results/ratios.svg` and
 * `BENCHMARKS.md`.
 *
 * `BENCHMARKS.md` is generated whole, so figures measured apart from a full run live in
 * `bench/results/*.md` and are included as sections of their own: tables of separate scripts
 * (`bench/sqlite-engines.ts`), and partial runs saved with `--section`, which writes `BENCHMARKS.md` again
 * from the last full run's `latest.json` with the new section in it. A partial run's section lists its
 * benchmarks; the first full run that measures them all drops it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { access, mkdir, mkdtemp, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { startService, type Service, type ServiceKind } from '../test/support/servers.js';
import type { BenchService, Benchmark } from './lib/benchmark.js';
import type { ChildResult } from './lib/child.js';
import { machineFacts } from './lib/machine.js';
import { formatValue, markdown, partialSection, rate, supersedes, svgChart, textTable, type BenchmarkOutcome, type RunReport } from './lib/report.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BENCH_DIR = join(ROOT, 'bench');
const RESULTS_DIR = join(BENCH_DIR, 'results');
/**
 * Benchmarks run compiled JavaScript, as an application would: tsx (esbuild with keepNames) wraps every
 * closure it creates in a naming call, which made a port call measure ~9× its real cost (0.5 µs compiled,
 * ~5 µs under tsx) and handicapped Stowage against client libraries that ship plain JavaScript.
 */
const BUILD_DIR = join(ROOT, '.bench-build');
const CHILD = join(BUILD_DIR, 'bench', 'lib', 'child.js');

/** Compiles the repository (src, bench, test support) into {@link BUILD_DIR}. */
function compile(): void {
  process.stderr.write('compiling to .bench-build/ (benchmarks run compiled JavaScript)…\n');
  const tsc = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc');
  try {
    execFileSync(process.execPath, [tsc, '-p', join(ROOT, 'tsconfig.json'), '--noEmit', 'false', '--outDir', BUILD_DIR, '--rootDir', ROOT, '--declaration', 'false', '--sourceMap', 'false'], {
      cwd: ROOT,
      stdio: ['ignore', 'ignore', 'inherit'],
    });
  } catch {
    // Type errors do not stop emission; the build is used as long as the child exists.
  }
}

interface Discovered {
  readonly module: string;
  readonly bench: Benchmark;
}

/** Every `benchmarks` entry of `bench/*.bench.ts`; modules without that export (helpers) are ignored. */
async function discover(): Promise<Discovered[]> {
  const files = (await readdir(BENCH_DIR)).filter((f) => f.endsWith('.bench.ts')).sort();
  const found: Discovered[] = [];
  for (const file of files) {
    const mod = (await import(pathToFileURL(join(BENCH_DIR, file)).href)) as { benchmarks?: unknown };
    if (!Array.isArray(mod.benchmarks)) continue;
    for (const bench of mod.benchmarks as Benchmark[]) found.push({ module: `bench/${file}`, bench });
  }
  return found;
}

/** The binaries the harness starts, by kind (the first one on PATH is the one it uses). */
const SERVER_BINARIES: Partial<Record<ServiceKind, readonly string[]>> = {
  etcd: ['etcd'],
  nats: ['nats-server'],
  redis: ['redis-server'],
  mariadb: ['mariadbd', 'mysqld'],
};

/** First line of `<binary> --version` for the server the harness started, or why it is unknown. */
function serverVersion(kind: ServiceKind): string {
  for (const binary of SERVER_BINARIES[kind] ?? []) {
    try {
      const out = execFileSync(binary, ['--version'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'], timeout: 5_000 });
      const line = out.split('\n').find((l) => l.trim() !== '');
      if (line !== undefined) return line.trim().replace(/\s+/g, ' ');
    } catch {
      // Not this binary; try the next.
    }
  }
  return 'version unknown';
}

/** Starts each kind of server at most once, when a benchmark first needs it. */
class Servers {
  readonly #started = new Map<ServiceKind, Promise<Service>>();

  get(kind: ServiceKind): Promise<Service> {
    let p = this.#started.get(kind);
    if (!p) {
      // Production durability: etcd syncs every write, as it does by default (tests turn that off).
      p = startService(kind, { fsync: true });
      // A failed start is remembered too: every benchmark needing it is skipped with the same reason.
      p.catch(() => undefined);
      this.#started.set(kind, p);
    }
    return p;
  }

  async describe(): Promise<Record<string, string>> {
    const out: Record<string, string> = {};
    for (const [kind, p] of this.#started) {
      out[kind] = await p.then(
        (s) => `${s.url.replace(/\/\/[^@/]*@/, '//')} (${s.managed ? `started by the harness from PATH: ${serverVersion(kind)}` : 'from STOWAGE_TEST_* URL'})`,
        (err: unknown) => `unavailable: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    return out;
  }

  async disposeAll(): Promise<void> {
    for (const p of this.#started.values()) await p.then((s) => s.dispose()).catch(() => undefined);
  }
}

/**
 * Runs `names` (benchmarks of one module) in one child process; resolves with the results it wrote and,
 * when it did not finish them all, why.
 */
function runChild(module: string, names: readonly string[], env: NodeJS.ProcessEnv, timeoutMs: number, outFile: string, onDone: (name: string) => void): Promise<{ results: ChildResult[]; error?: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ['--expose-gc', CHILD, join(BUILD_DIR, module.replace(/\.ts$/, '.js')), outFile, ...names], {
      cwd: ROOT,
      env,
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      const text = chunk.toString('utf8');
      for (const m of text.matchAll(/^bench-done: (.*)$/gm)) onDone(m[1] ?? '');
      stderr = (stderr + text.replace(/^bench-done: .*\n?/gm, '')).slice(-2000);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      const error = timedOut
        ? `timed out after ${Math.round(timeoutMs / 1000)} s`
        : code === 0
          ? undefined
          : `process exited (${signal ?? code}): ${stderr.trim().split('\n').slice(-3).join(' | ')}`;
      readFile(outFile, 'utf8').then(
        (text) => resolve({ results: JSON.parse(text) as ChildResult[], ...(error ? { error } : {}) }),
        () => resolve({ results: [], error: error ?? 'no result written' }),
      );
    });
  });
}

const MiB = 1024 * 1024;

async function exists(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}

/** `bench/results/<file>.md` for a `--section` title, e.g. `Large filters (issue 17)` → `large-filters-issue-17.md`. */
function sectionFileName(title: string, only: string | undefined): string {
  if (only === undefined) throw new Error('--section saves a partial run: give --only <text> with it');
  const slug = title
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-|-$/g, '');
  if (slug === '' || slug === 'only-run' || slug === 'latest') throw new Error(`--section ${JSON.stringify(title)} does not make a usable file name`);
  return `${slug}.md`;
}

/**
 * The sections kept in `bench/results/*.md`, in file-name order, for `BENCHMARKS.md`. After a full run, a
 * partial run's section whose benchmarks that run all measured is stale: it is deleted, not included. After a
 * partial run (`report` undefined) every section is kept: the one just saved is newer than the full run.
 */
async function resultSections(report: RunReport | undefined): Promise<string[]> {
  const files = (await readdir(RESULTS_DIR)).filter((f) => f.endsWith('.md')).sort();
  const sections: string[] = [];
  for (const file of files) {
    const text = await readFile(join(RESULTS_DIR, file), 'utf8');
    if (report !== undefined && supersedes(report, text)) {
      await unlink(join(RESULTS_DIR, file));
      process.stderr.write(`bench/results/${file}: every benchmark of it was measured in this run; removed\n`);
    } else sections.push(text.endsWith('\n') ? text : `${text}\n`);
  }
  return sections;
}

/** Writes `BENCHMARKS.md`: the tables of a full run's `report`, with `sections` before its "Running" part. */
async function writeBenchmarksMd(report: RunReport, sections: string[]): Promise<void> {
  const text = markdown(report);
  // A function, not a string: a replacement string would read `$'`, `$&`… in a section (filters are full of `$`).
  await writeFile(join(ROOT, 'BENCHMARKS.md'), sections.length === 0 ? text : text.replace('## Running', () => `${sections.join('\n')}\n## Running`));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { quick: { type: 'boolean', default: false }, only: { type: 'string' }, section: { type: 'string' } },
    allowPositionals: false,
  });
  // Checked before anything runs: a partial run meant to be kept must not be lost to a typo at the end.
  const sectionFile = values.section === undefined ? undefined : sectionFileName(values.section, values.only);
  const quick = values.quick ?? false;
  const only = values.only?.toLowerCase();
  const startedAt = new Date();
  const t0 = performance.now();

  compile();
  const all = await discover();
  // The group too, so that one table section (e.g. `queue features`) can be run and saved as one.
  const selected = only ? all.filter((d) => d.bench.name.toLowerCase().includes(only) || d.bench.group.toLowerCase() === only) : all;
  if (selected.length === 0) throw new Error(only ? `no benchmark name contains "${values.only}" and no group is named so` : 'no benchmarks found in bench/*.bench.ts');
  process.stderr.write(`stowage bench: ${selected.length} benchmark(s), ${quick ? 'quick' : 'full'} mode\n`);

  const machine = await machineFacts(quick ? 700 : 3000);
  process.stderr.write(`machine: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, load ${machine.loadAverageAtStart}, fsync ${machine.fsyncPerSec}/s\n`);

  const servers = new Servers();
  const scratch = await mkdtemp(join(tmpdir(), 'stowage-bench-run-'));
  const outcomes = new Map<Discovered, BenchmarkOutcome>();
  // Generous: a full run consumes a 1M-message backlog through the port, minutes on a busy machine.
  const perBenchTimeoutMs = quick ? 90_000 : 900_000;
  try {
    // First what can run: adapters present, servers started (once each); the rest is skipped with the reason.
    const runnable: { d: Discovered; services: Partial<Record<ServiceKind, BenchService>> }[] = [];
    for (const d of selected) {
      const services: Partial<Record<ServiceKind, BenchService>> = {};
      let unavailable: string | undefined;
      for (const adapter of d.bench.adapters ?? []) {
        if (!(await exists(join(ROOT, 'src', 'adapters', adapter)))) {
          unavailable = `adapter src/adapters/${adapter}/ has not landed yet`;
          break;
        }
      }
      for (const kind of unavailable ? [] : (d.bench.requires ?? [])) {
        try {
          const s = await servers.get(kind);
          services[kind] = { url: s.url, host: s.host, port: s.port };
        } catch (err) {
          unavailable = `${kind} unavailable: ${err instanceof Error ? err.message : String(err)}`;
          break;
        }
      }
      if (unavailable) {
        outcomes.set(d, { benchmark: d.bench.name, group: d.bench.group, module: d.module, status: 'skipped', reason: unavailable, seconds: 0, figures: [] });
        process.stderr.write(`[skip] ${d.bench.name}: ${unavailable}\n`);
      } else runnable.push({ d, services });
    }
    // A full run gives each benchmark its own process (its peak RSS is its own); --quick shares one per module.
    const batches: (typeof runnable)[] = [];
    for (const r of runnable) {
      const last = batches[batches.length - 1];
      if (quick && last && last[0]?.d.module === r.d.module) last.push(r);
      else batches.push([r]);
    }
    let done = 0;
    for (const [b, batch] of batches.entries()) {
      const first = batch[0];
      if (!first) continue;
      const module = first.d.module;
      const env = {
        ...process.env,
        BENCH_QUICK: quick ? '1' : '0',
        BENCH_SERVICES: JSON.stringify(Object.assign({}, ...batch.map((r) => r.services)) as Record<string, BenchService>),
        BENCH_TMPDIR: scratch,
      };
      const names = batch.map((r) => r.d.bench.name);
      const outFile = join(scratch, `result-${b}.json`);
      const { results, error } = await runChild(module, names, env, perBenchTimeoutMs * batch.length, outFile, (name) => {
        // The child writes its results before announcing a benchmark done, so the figures can be shown now.
        const outcome = (JSON.parse(readFileSync(outFile, 'utf8')) as ChildResult[]).find((r) => r.name === name);
        const summary =
          outcome?.status === 'ok'
            ? outcome.figures
                .map((f) => rate({ benchmark: name, group: '', module, status: 'ok', seconds: 0, figures: [] }, f))
                .map((f) => `${f.ratio === undefined ? formatValue(f.stowage.median, f.unit) : `${f.ratio.toFixed(2)}×`}${f.pass === undefined ? '' : f.pass ? ' PASS' : ' MISS'}`)
                .join(', ')
            : `${outcome?.status ?? '?'}: ${outcome?.reason ?? ''}`;
        process.stderr.write(`[${++done}/${runnable.length}] ${name}: ${summary}\n`);
      });
      for (const { d } of batch) {
        const result = results.find((x) => x.name === d.bench.name);
        const base = { benchmark: d.bench.name, group: d.bench.group, module: d.module };
        outcomes.set(
          d,
          result
            ? {
                ...base,
                status: result.status,
                ...(result.reason ? { reason: result.reason } : {}),
                peakRssMiB: result.peakRssBytes / MiB,
                ...(result.sidePeaks ? { sidePeakRssMiB: { stowage: result.sidePeaks.stowage / MiB, baseline: result.sidePeaks.baseline / MiB } } : {}),
                seconds: result.seconds,
                figures: result.figures,
              }
            : { ...base, status: 'failed', reason: error ?? 'no result', seconds: 0, figures: [] },
        );
      }
    }
  } finally {
    await servers.disposeAll();
    await rm(scratch, { recursive: true, force: true });
  }

  const ordered = selected.map((d) => outcomes.get(d)).filter((o): o is BenchmarkOutcome => o !== undefined);
  const report: RunReport = {
    startedAt: startedAt.toISOString(),
    seconds: (performance.now() - t0) / 1000,
    mode: quick ? 'quick' : 'full',
    ...(values.only ? { only: values.only } : {}),
    machine,
    loadAverageAtEnd: Number((loadavg()[0] ?? 0).toFixed(2)),
    services: await servers.describe(),
    figures: ordered.flatMap((o) => o.figures.map((f) => rate(o, f))),
    benchmarks: ordered,
  };
  // A partial run (--only) must not replace the full report: it goes to only-run.tmp (ignored by git), and to
  // a section of its own with --section.
  await mkdir(RESULTS_DIR, { recursive: true });
  let wrote: string;
  if (values.only) {
    await writeFile(join(RESULTS_DIR, 'only-run.tmp'), `${JSON.stringify(report, null, 2)}\n`);
    wrote = 'bench/results/only-run.tmp (JSON; BENCHMARKS.md and latest.json are left as they were)';
    if (sectionFile !== undefined && values.section !== undefined) {
      await writeFile(join(RESULTS_DIR, sectionFile), partialSection(report, values.section));
      // BENCHMARKS.md again from the last full run's report, with the new section in it.
      const full = JSON.parse(await readFile(join(RESULTS_DIR, 'latest.json'), 'utf8')) as RunReport;
      await writeBenchmarksMd(full, await resultSections(undefined));
      wrote += `, bench/results/${sectionFile} and BENCHMARKS.md (the last full run, with this section)`;
    }
  } else {
    await writeFile(join(RESULTS_DIR, 'latest.json'), `${JSON.stringify(report, null, 2)}\n`);
    await writeFile(join(RESULTS_DIR, 'ratios.svg'), svgChart(report));
    await writeBenchmarksMd(report, await resultSections(report));
    wrote = 'bench/results/latest.json, bench/results/ratios.svg, BENCHMARKS.md';
  }
  process.stdout.write(`${textTable(report)}\n`);
  const misses = report.figures.filter((f) => f.pass === false).length;
  process.stdout.write(
    `\n${report.figures.length} figures, ${misses} below their bar, ${ordered.filter((o) => o.status === 'skipped').length} skipped, ${ordered.filter((o) => o.status === 'failed').length} failed; ${report.seconds.toFixed(0)} s. Wrote ${wrote}.\n`,
  );
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
