/**
 * `npm start`: the example service end to end, then the doctor's table.
 *
 * With nothing set it runs standalone (every port under `./.stowage`, or `STOWAGE_DATA_DIR`); with
 * `STOWAGE_*_URL` (or a `stowage.yaml`) it runs the same code against a cluster. Safe to run again and
 * again: each run is a new batch of jobs, and the data folder keeps what earlier runs stored.
 *
 * Environment: `WALKTHROUGH_JOBS` (default 2000).
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { createStowage } from '../src/index.js';
import { StowageError } from '../src/ports/errors.js';
import type { PortName } from '../src/ports/common.js';
import { PORTS } from '../src/core/profile.js';
import { checkOpenPorts, formatDoctorTable } from '../src/cli/doctor.js';
import { paletteFor } from '../src/cli/output.js';
import {
  AUDIT_GROUP,
  JOBS_TOPIC,
  RESULTS_COLLECTION,
  SETTINGS_KEY,
  TOKEN_SECRET,
  WORKERS_GROUP,
  runService,
  signResult,
  type JobResult,
  type ServiceEvent,
  type ServiceSettings,
} from './service/service.js';

const JOBS = Number(process.env.WALKTHROUGH_JOBS ?? 2000);
const CUSTOMERS = 40;
const RUNS_KEY = 'walkthrough/runs';
const c = paletteFor(process.stdout);
const started = performance.now();
const ok = (text: string): void => void process.stdout.write(`${c.green('✓')} ${text}\n`);
const info = (text: string): void => void process.stdout.write(`  ${c.dim(text)}\n`);
const ms = (from: number): string => `${Math.round(performance.now() - from)} ms`;

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new StowageError('TIMEOUT', `walkthrough: gave up waiting for ${what} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

let stowage: Awaited<ReturnType<typeof createStowage>>;
try {
  stowage = await createStowage();
} catch (err) {
  const e = StowageError.is(err) ? err : new StowageError('INTERNAL', String(err));
  process.stderr.write(`${c.red('✗')} ${e.code}: ${e.message}\n  run \`npx stowage doctor\` for a per-port diagnosis with hints\n`);
  process.exit(1);
}
try {
  const standalone = PORTS.every((p: PortName) => stowage.profile.sources[p] === 'default');
  process.stdout.write(`${c.bold('Stowage walkthrough')} — ${standalone ? `standalone, data folder ${stowage.profile.dataDir}` : 'profile from the environment / stowage.yaml'}\n`);
  for (const port of PORTS) info(`${port.padEnd(9)} ${stowage.profile.urls[port]}`);

  // A run number kept in config itself (compare-and-set, so two walkthroughs never share one).
  let run = 1;
  for (;;) {
    const current = await stowage.config.get(RUNS_KEY);
    run = typeof current?.value === 'number' ? current.value + 1 : 1;
    try {
      await stowage.config.put(RUNS_KEY, run, { ifRevision: current?.revision ?? 0 });
      break;
    } catch (err) {
      if (!StowageError.is(err, 'CONFLICT')) throw err;
    }
  }
  // The run number plus a random tag: unique even if the config store was reset while documents were kept.
  const batch = `run-${run}-${randomBytes(3).toString('hex')}`;

  // Settings: start each run from the same greeting so the live change below is visible.
  const initial: ServiceSettings = { concurrency: 16, lookupTtlMs: 60_000, greeting: 'Hello' };
  await stowage.config.put(SETTINGS_KEY, initial);

  // The secret: created on the first run, reused afterwards; only its length and version are shown.
  let tokenVersion: number;
  try {
    tokenVersion = (await stowage.secrets.get(TOKEN_SECRET)).version;
  } catch (err) {
    if (!StowageError.is(err, 'NOT_FOUND')) throw err;
    tokenVersion = (await stowage.secrets.put(TOKEN_SECRET, randomBytes(32).toString('base64url'))).version;
  }
  const token = (await stowage.secrets.get(TOKEN_SECRET)).value;

  const stop = new AbortController();
  const events: ServiceEvent[] = [];
  let settingsSeenAt = 0;
  const service = runService(stowage, {
    nodeId: 'walkthrough',
    signal: stop.signal,
    progressEveryMs: 200,
    onEvent: (e) => {
      events.push(e);
      if (e.type === 'settings' && e.settings.greeting === 'Bonjour') settingsSeenAt = performance.now();
      if (e.type === 'warning') process.stderr.write(`  ${c.yellow('!')} ${e.message}\n`);
    },
  });
  await waitFor('the service to start', async () => events.some((e) => e.type === 'started'), 30_000);

  // Jobs: published in parallel chunks (the disk queue commits concurrent publishes together).
  const publishStart = performance.now();
  let changedAt = 0;
  for (let i = 0; i < JOBS; i += 100) {
    await Promise.all(
      Array.from({ length: Math.min(100, JOBS - i) }, (_, k) => {
        const n = i + k;
        const job = { id: `${batch}-job-${String(n).padStart(5, '0')}`, customer: `customer-${n % CUSTOMERS}`, n, batch };
        return stowage.queue.publish(JOBS_TOPIC, JSON.stringify(job), { id: job.id });
      }),
    );
    if (changedAt === 0 && i + 100 >= JOBS / 2) {
      changedAt = performance.now();
      await stowage.config.put(SETTINGS_KEY, { ...initial, greeting: 'Bonjour' });
    }
  }
  const publishMs = performance.now() - publishStart;

  const results = await stowage.documents.collection<JobResult>(RESULTS_COLLECTION);
  await waitFor('every job to be stored and audited', async () => {
    if ((await results.count({ batch })) < JOBS) return false;
    const stats = await stowage.queue.stats(JOBS_TOPIC);
    return [WORKERS_GROUP, AUDIT_GROUP].every((g) => {
      const s = stats.groups.find((x) => x.group === g);
      return s !== undefined && s.backlog === 0 && s.pending === 0;
    });
  });
  const processMs = performance.now() - publishStart;
  stop.abort();
  const stats = await service;

  process.stdout.write('\n');
  ok(`config watched: greeting changed to "Bonjour" at job ${JOBS / 2}; the service applied it ${settingsSeenAt > 0 ? `${Math.round(settingsSeenAt - changedAt)} ms later` : '(not seen!)'} (run ${run})`);
  const bonjour = await results.count({ batch, message: { $gte: 'Bonjour,', $lt: 'Bonjour-' } });
  info(`${bonjour} of ${JOBS} results were made after the change and say "Bonjour"`);

  const sample = (await results.find({ batch }, { limit: 1 })).items[0];
  const verified = sample !== undefined && (() => {
    const { signature, nodeId: _n, storedAt: _s, ...body } = sample.data;
    return signature === signResult(token, body);
  })();
  ok(`secret ${TOKEN_SECRET} (version ${tokenVersion}, ${token.byteLength} bytes, printed as ${String(token)}) signs every result; sample signature ${verified ? 'verified' : 'DID NOT VERIFY'}`);

  const q = await stowage.queue.stats(JOBS_TOPIC);
  ok(`${JOBS} jobs through the ${stowage.queue.backend}:// queue: published in ${Math.round(publishMs)} ms, all processed in ${Math.round(processMs)} ms by two consumer groups`);
  for (const g of q.groups.filter((x) => x.group === WORKERS_GROUP || x.group === AUDIT_GROUP)) {
    info(`group ${g.group.padEnd(8)} backlog ${g.backlog}, pending ${g.pending}, redelivered ${g.redelivered}`);
  }
  info(`workers stored ${stats.stored}, duplicates ${stats.duplicates}, failed attempts ${stats.failed}; audit counted ${stats.audited}`);

  const lookups = stats.cacheHits + stats.cacheMisses;
  ok(`cache (${stowage.cache.backend}://): ${lookups} customer lookups, ${stats.cacheHits} hits, ${stats.cacheMisses} misses — hit rate ${lookups ? ((100 * stats.cacheHits) / lookups).toFixed(1) : '0'}%`);

  const queryStart = performance.now();
  const top = await results.find({ batch, tier: 'gold', n: { $gte: JOBS / 2 } }, { sort: { n: -1 }, limit: 3 });
  const gold = await results.count({ batch, tier: 'gold' });
  const total = await results.count();
  ok(`documents (${stowage.documents.backend}://): ${await results.count({ batch })} results written this run, ${total} in "${RESULTS_COLLECTION}" over all runs`);
  info(`find { batch: "${batch}", tier: "gold", n ≥ ${JOBS / 2} } sorted by n descending, limit 3 → ${top.items.map((d) => d.id.replace(`${batch}-`, '')).join(', ')}; ${gold} gold results (${ms(queryStart)})`);

  process.stdout.write(`\n${c.bold('stowage doctor')}\n`);
  const rows = await checkOpenPorts(stowage);
  process.stdout.write(formatDoctorTable(rows, c));
  process.stdout.write(`\n${c.dim(`done in ${ms(started)}; run again any time (the data folder keeps ${total} results), or try: npx stowage doctor`)}\n`);
  if (rows.some((r) => !r.ok) || !verified || settingsSeenAt === 0) process.exitCode = 1;
} finally {
  await stowage.close();
}
