/**
 * The standalone stores on a full disk (a small real tmpfs): each is written to until the disk refuses, then
 * every acknowledged write must be readable after a reopen, no refused write may show, nothing is corrupted,
 * the same open store works again once space is freed, and no call outlasts its deadline.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { FileConfigDriver, fileConfigScheme } from '../../src/adapters/file/config-driver.js';
import { fileSecretsScheme } from '../../src/adapters/file/keyring-driver.js';
import { fileSealedSecretsScheme } from '../../src/adapters/sealed/index.js';
import { SqliteDocumentsDriver } from '../../src/adapters/sqlite/documents-driver.js';
import { chooseSqliteEngine, openSqlite } from '../../src/adapters/sqlite/engine.js';
import { migrate } from '../../src/cli/migrate.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { createStowage } from '../../src/index.js';
import { StowageError } from '../../src/ports/errors.js';
import { fullDiskSuite } from '../support/tmpfs.js';

/** The deadline given to every call; none may take longer. */
const DEADLINE_MS = 3000;
const VALUE = 'x'.repeat(4096);

/** What writing until the disk refused gave. */
interface Outcome {
  /** Indexes of the writes that resolved. */
  readonly acked: number[];
  /** Indexes of the writes that were refused. */
  readonly refused: number[];
  /** The refusals' errors. */
  readonly errors: unknown[];
  /** The slowest call, in milliseconds. */
  slowestMs: number;
}

async function timed<T>(outcome: Outcome, call: () => Promise<T>): Promise<T> {
  const start = performance.now();
  try {
    return await call();
  } finally {
    outcome.slowestMs = Math.max(outcome.slowestMs, performance.now() - start);
  }
}

/** Writes until the disk refuses, then three more times (a refused write must not break the next). */
async function writeUntilRefused(write: (i: number) => Promise<unknown>, limit = 10_000): Promise<Outcome> {
  const outcome: Outcome = { acked: [], refused: [], errors: [], slowestMs: 0 };
  for (let i = 0; i < limit && outcome.refused.length < 4; i++) {
    try {
      await timed(outcome, () => write(i));
      outcome.acked.push(i);
    } catch (err) {
      outcome.refused.push(i);
      outcome.errors.push(err);
    }
  }
  return outcome;
}

function expectFullDiskErrors(outcome: Outcome, file: string): void {
  expect(outcome.acked.length).toBeGreaterThan(0);
  expect(outcome.refused.length).toBeGreaterThan(0);
  for (const err of outcome.errors) {
    expect(err).toBeInstanceOf(StowageError);
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect((err as Error).message).toContain(file);
  }
}

function report(store: string, outcome: Outcome): void {
  console.log(
    `full disk, ${store}: ${outcome.acked.length} writes acknowledged, ${outcome.refused.length} refused (${[...new Set(outcome.errors.map((e) => (e as StowageError).code))].join(', ')}), slowest call ${Math.round(outcome.slowestMs)} ms (deadline ${DEADLINE_MS})`,
  );
}

/** Files left beside the store that are not the store's own (temporary files, lock files). */
async function leftovers(dir: string, own: readonly string[]): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n !== '.ballast' && !own.includes(n));
}

fullDiskSuite('file:// config on a full disk', 1024 * 1024, (fs) => {
  const open = async (path: string) => createConfigStore(await FileConfigDriver.open(path, { watch: false }), { defaultTimeoutMs: DEADLINE_MS });

  it('keeps every acknowledged put, shows no refused one, and works again once space is freed', async () => {
    const path = join(fs().dir, 'config.json');
    const store = await open(path);
    await fs().fill(256 * 1024);
    const outcome = await writeUntilRefused((i) => store.put(`k${i}`, { i, v: VALUE }, { timeoutMs: DEADLINE_MS }));
    report('file:// config', outcome);
    expectFullDiskErrors(outcome, path);
    expect(await leftovers(fs().dir, ['config.json'])).toEqual([]);
    await fs().free();
    const after = await timed(outcome, () => store.put('after', 1, { timeoutMs: DEADLINE_MS }));
    expect(after.revision).toBeGreaterThan(0);
    await store.close();
    const again = await open(path);
    for (const i of outcome.acked) expect((await again.get(`k${i}`))?.value).toEqual({ i, v: VALUE });
    for (const i of outcome.refused) expect(await again.get(`k${i}`)).toBeUndefined();
    expect((await again.get('after'))?.value).toBe(1);
    await again.close();
    expect(outcome.slowestMs).toBeLessThan(DEADLINE_MS);
  });

  it('a put refused because not even the lock file fits leaves no lock behind, and the next put does not wait', async () => {
    const path = join(fs().dir, 'config.json');
    const store = await open(path);
    await store.put('a', 1);
    await fs().fill();
    const err = await store.put('b', 2).catch((e: unknown) => e);
    await fs().free();
    const start = performance.now();
    await store.put('b', 2, { timeoutMs: 1000 });
    expect(performance.now() - start).toBeLessThan(1000);
    expect((await store.get('b'))?.value).toBe(2);
    await store.close();
    expect(await leftovers(fs().dir, ['config.json'])).toEqual([]);
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect((err as Error).message).toContain(`${path}.lock`);
  });
});

fullDiskSuite('file:// keyring on a full disk', 1024 * 1024, (fs) => {
  const registry = new SchemeRegistry().register(fileSecretsScheme);
  const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
  const open = async (dir: string) =>
    createSecretStore(await registry.open('secrets', `file://${join(dir, 'secrets.keyring')}`, { dataDir: dir, env: { STOWAGE_MASTER_KEY: 'full-disk-test-master-key-0123456789' }, logger }), {
      defaultTimeoutMs: DEADLINE_MS,
    });

  it('keeps every acknowledged version, shows no refused one, and works again once space is freed', async () => {
    const path = join(fs().dir, 'secrets.keyring');
    const store = await open(fs().dir);
    await fs().fill(256 * 1024);
    const outcome = await writeUntilRefused((i) => store.put(`s${i}`, `${i}:${VALUE}`, { timeoutMs: DEADLINE_MS }));
    report('file:// keyring', outcome);
    expectFullDiskErrors(outcome, path);
    expect(await leftovers(fs().dir, ['secrets.keyring'])).toEqual([]);
    await fs().free();
    await timed(outcome, () => store.put('after', 'back', { timeoutMs: DEADLINE_MS }));
    await store.close();
    const again = await open(fs().dir);
    for (const i of outcome.acked) expect(Buffer.from((await again.get(`s${i}`)).value.bytes()).toString()).toBe(`${i}:${VALUE}`);
    expect((await again.list('')).sort()).toEqual([...outcome.acked.map((i) => `s${i}`), 'after'].sort());
    expect(Buffer.from((await again.get('after')).value.bytes()).toString()).toBe('back');
    await again.close();
    expect(outcome.slowestMs).toBeLessThan(DEADLINE_MS);
  });

  it('a put refused because not even the lock file fits leaves no lock behind, and the next put does not wait', async () => {
    const store = await open(fs().dir);
    await store.put('a', 'one');
    await fs().fill();
    const err = await store.put('b', 'two').catch((e: unknown) => e);
    await fs().free();
    const start = performance.now();
    await store.put('b', 'two', { timeoutMs: 1000 });
    expect(performance.now() - start).toBeLessThan(1000);
    await store.close();
    expect(await leftovers(fs().dir, ['secrets.keyring'])).toEqual([]);
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect((err as Error).message).toContain(`${join(fs().dir, 'secrets.keyring')}.lock`);
  });

  it('a master key file that does not fit is not left behind half written, and opening works once space is freed', async () => {
    const open = () => registry.open('secrets', `file://${join(fs().dir, 'secrets.keyring')}`, { dataDir: fs().dir, env: {}, logger });
    await fs().fill();
    const err = await open().catch((e: unknown) => e);
    expect(await leftovers(fs().dir, [])).toEqual([]);
    expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
    expect((err as Error).message).toContain(join(fs().dir, 'secrets.keyring.key'));
    await fs().free();
    const store = createSecretStore(await open());
    await store.put('a', 'one');
    await store.close();
  });
});

fullDiskSuite('file+sealed:// secrets on a full disk', 1024 * 1024, (fs) => {
  const registry = new SchemeRegistry().register(fileConfigScheme).register(fileSealedSecretsScheme);
  const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
  const open = async (path: string) =>
    createSecretStore(await registry.open('secrets', `file+sealed://${path}?watch=false`, { dataDir: fs().dir, env: { STOWAGE_MASTER_KEY: 'full-disk-test-master-key-0123456789' }, logger }), {
      defaultTimeoutMs: DEADLINE_MS,
    });

  it('keeps every acknowledged version (its values live in the file:// config), and works again once space is freed', async () => {
    const path = join(fs().dir, 'sealed.json');
    const store = await open(path);
    await fs().fill(256 * 1024);
    const outcome = await writeUntilRefused((i) => store.put(`s${i}`, `${i}:${VALUE}`, { timeoutMs: DEADLINE_MS }));
    report('file+sealed:// secrets', outcome);
    expectFullDiskErrors(outcome, path);
    expect(await leftovers(fs().dir, ['sealed.json'])).toEqual([]);
    await fs().free();
    await timed(outcome, () => store.put('after', 'back', { timeoutMs: DEADLINE_MS }));
    await store.close();
    const again = await open(path);
    for (const i of outcome.acked) expect(Buffer.from((await again.get(`s${i}`)).value.bytes()).toString()).toBe(`${i}:${VALUE}`);
    expect((await again.list('')).sort()).toEqual([...outcome.acked.map((i) => `s${i}`), 'after'].sort());
    await again.close();
    expect(outcome.slowestMs).toBeLessThan(DEADLINE_MS);
  });
});

fullDiskSuite('sqlite:// documents on a full disk', 2 * 1024 * 1024, (fs) => {
  const open = (file: string) => createDocumentStore(new SqliteDocumentsDriver({ file }), { defaultTimeoutMs: DEADLINE_MS });

  it('keeps every acknowledged insert, shows no refused one, and works again once space is freed', async () => {
    const file = join(fs().dir, 'documents.db');
    const store = open(file);
    const col = await store.collection('docs');
    await fs().fill(256 * 1024);
    const outcome = await writeUntilRefused((i) => col.insert({ i, v: VALUE }, { id: `d${i}`, timeoutMs: DEADLINE_MS }));
    report('sqlite:// documents', outcome);
    expectFullDiskErrors(outcome, file);
    await fs().free();
    await timed(outcome, () => col.insert({ after: true }, { id: 'after', timeoutMs: DEADLINE_MS }));
    await store.close();
    const again = open(file);
    const reopened = await again.collection('docs');
    for (const i of outcome.acked) expect((await reopened.get(`d${i}`))?.data).toEqual({ i, v: VALUE });
    for (const i of outcome.refused) expect(await reopened.get(`d${i}`)).toBeUndefined();
    expect(await reopened.get('after')).toBeDefined();
    expect(await reopened.count()).toBe(outcome.acked.length + 1);
    await again.close();
    const db = openSqlite(file, chooseSqliteEngine(), 5000);
    expect(db.prepare('PRAGMA integrity_check').all()).toEqual([{ integrity_check: 'ok' }]);
    db.close();
    expect(outcome.slowestMs).toBeLessThan(DEADLINE_MS);
  });
});

fullDiskSuite('migrate checkpoints on a full disk', 256 * 1024, (fs) => {
  it('a checkpoint that does not fit stops the migration with RESOURCE_EXHAUSTED naming it, and the run resumes once space is freed', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-migrate-full-'));
    try {
      const env = { STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') };
      {
        await using source = await createStowage({ dataDir: join(root, 'a') }, { env, ports: ['config', 'secrets'] });
        await source.config.put('app/name', 'shop');
        await source.secrets.put('db', 'one');
      }
      await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
      await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
      const checkpoint = join(fs().dir, 'checkpoint.json');
      const options = { from: 'a.yaml', to: 'b.yaml', cwd: root, env, checkpoint };
      await fs().fill();
      const err = await migrate(options).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'RESOURCE_EXHAUSTED' });
      expect((err as Error).message).toContain(checkpoint);
      expect(await leftovers(fs().dir, [])).toEqual([]);
      await fs().free();
      const report = await migrate(options);
      expect(report.ok).toBe(true);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });
});
