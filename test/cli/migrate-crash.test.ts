/**
 * `migrate` killed (SIGKILL) right after each write it makes — every target write and every checkpoint — then
 * resumed: the resumed run must verify, a repeated run must too, and the target must hold what the source holds
 * (a deleted secret version stays unreadable).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { migrate } from '../../src/cli/migrate.js';
import { queueTransfer } from '../../src/core/queue/queue.js';
import { createStowage, type Stowage } from '../../src/index.js';
import type { Delivery } from '../../src/ports/queue.js';
import { cleanEnv } from './run-cli.js';

const child = fileURLToPath(new URL('./fixtures/migrate-crash-child.ts', import.meta.url));
const env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });
let root: string;

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-migrate-crash-'));
  await using s = await createStowage({ dataDir: join(root, 'source') }, { env });
  await s.config.put('app/name', 'shop');
  await s.config.put('app/limits', { rps: 10 });
  await s.secrets.put('db', 'one');
  await s.secrets.put('db', 'two');
  await s.secrets.put('db', 'three');
  await s.secrets.delete('db', { versions: [2] });
  await s.secrets.put('api', 'old');
  await s.secrets.put('api', 'new');
  await s.secrets.destroy('api', { versions: [1] });
  const users = await s.documents.collection('users', { indexes: [{ name: 'by_email', fields: ['email'], unique: true }] });
  for (let i = 0; i < 3; i++) await users.insert({ email: `u${i}@x`, n: i }, { id: `u${i}` });
  for (let i = 0; i < 4; i++) await s.queue.publish('jobs', `j${i}`, { id: `job-${i}` });
  const c = s.queue.consume('jobs', 'workers', { prefetch: 1 });
  const deliveries = c[Symbol.asyncIterator]();
  await ((await deliveries.next()).value as Delivery).ack();
  // A dead letter, so that copying dead letters is a step too.
  await ((await deliveries.next()).value as Delivery).term('bad job');
  await c.close();
}, 60_000);
afterAll(() => rm(root, { recursive: true, force: true }));

/** A folder for one run: profiles for the shared source and a fresh target. */
async function runFolder(name: string): Promise<string> {
  const dir = join(root, name);
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'a.yaml'), `dataDir: ${join(root, 'source')}\n`);
  await writeFile(join(dir, 'b.yaml'), `dataDir: ${join(dir, 'target')}\n`);
  return dir;
}

/** Runs the migration in a child that kills itself after its `killAfter`th write (0: never). */
function runChild(dir: string, killAfter: number): Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, dir, 'a.yaml', 'b.yaml', 'ck.json', String(killAfter)], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    proc.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    proc.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    proc.on('exit', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
}

/** What a side holds, read through the ports, in a form two sides can be compared by. */
async function contents(s: Stowage): Promise<unknown> {
  const secrets: Record<string, (string | null)[]> = {};
  for (const name of await s.secrets.list('')) {
    secrets[name] = [];
    for (const v of await s.secrets.versions(name)) {
      secrets[name].push(v.deleted || v.destroyed ? null : Buffer.from((await s.secrets.get(name, { version: v.version })).value.bytes()).toString());
    }
  }
  const users = await s.documents.collection('users');
  return {
    config: (await s.config.list('')).entries.map((e) => [e.key, e.value]),
    secrets,
    users: (await users.find({})).items.map((d) => [d.id, d.data]),
    indexes: await users.indexes(),
    // What the group has still to receive: the messages after its ack floor (sequence numbers differ).
    jobs: (await s.queue.browse('jobs', { fromSeq: ((await s.queue.stats('jobs')).groups[0]?.ackFloor ?? 0) + 1 })).map((m) => [m.id, Buffer.from(m.payload).toString()]),
    deadLetters: (await queueTransfer(s.queue).readDeadLetters('jobs', 1, 100)).map((m) => [m.id, Buffer.from(m.payload).toString()]),
  };
}

it('a migration killed after any one of its writes resumes, verifies, and leaves the target equal to the source', async () => {
  const clean = await runFolder('clean');
  const full = await runChild(clean, 0);
  // Node 22 announces node:sqlite (the engine where better-sqlite3 does not load) as experimental: not an error.
  expect(full.stderr.replace(/^.*ExperimentalWarning: SQLite is an experimental feature.*\n(.*--trace-warnings.*\n)?/m, '')).toBe('');
  expect(full.stdout).toContain('OK true');
  const total = Number(/WRITES (\d+)/.exec(full.stdout)?.[1]);
  expect(total).toBeGreaterThan(10);
  let expected: unknown;
  {
    await using source = await createStowage({ dataDir: join(root, 'source') }, { env });
    expected = await contents(source);
  }
  expect(expected).toMatchObject({ deadLetters: [['dlq:jobs:workers:2', 'j1']], secrets: { db: ['one', null, 'three'], api: [null, 'new'] } });
  let kills = 0;
  let verified = 0;
  const failures: string[] = [];
  for (let n = 1; n <= total; n++) {
    const dir = await runFolder(`kill-${n}`);
    const killed = await runChild(dir, n);
    if (killed.signal === 'SIGKILL') kills++;
    else failures.push(`write ${n}: not killed (${killed.code}) ${killed.stderr}`);
    const base = { from: 'a.yaml', to: 'b.yaml', cwd: dir, checkpoint: 'ck.json', env, batchSize: 2 };
    const resumed = await migrate(base).catch((err: unknown) => err as Error);
    const again = await migrate(base).catch((err: unknown) => err as Error);
    if (resumed instanceof Error || !resumed.ok) failures.push(`write ${n}: resumed run ${resumed instanceof Error ? resumed.message : JSON.stringify(resumed.verification.filter((r) => r.status !== 'match'))}`);
    else if (again instanceof Error || !again.ok) failures.push(`write ${n}: repeated run ${again instanceof Error ? again.message : 'MISMATCH'}`);
    else {
      await using target = await createStowage({ dataDir: join(dir, 'target') }, { env });
      const got = await contents(target);
      if (JSON.stringify(got) === JSON.stringify(expected)) verified++;
      else failures.push(`write ${n}: target differs: ${JSON.stringify(got)}`);
    }
  }
  console.log(`migrate crash test: ${total} writes per run, ${kills} runs killed (one after each write), ${verified} resumed and verified, ${failures.length} failed`);
  expect(failures).toEqual([]);
  expect(kills).toBe(total);
}, 600_000);
