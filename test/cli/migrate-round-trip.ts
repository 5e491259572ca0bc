/**
 * What the `stowage migrate` round-trip tests share: a folder with a standalone profile `a.yaml` to populate,
 * a clustered `servers.yaml` and an empty standalone `b.yaml`, and the run a → servers → b with every
 * verification row checked.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll } from 'vitest';
import { createStowage, type Stowage } from '../../src/index.js';
import { tempDir } from '../support/services.js';
import { cleanEnv, lastJson, runCli, type CliResult } from './run-cli.js';

/** The JSON report of `stowage migrate --json`. */
export interface MigrateReport {
  ok: boolean;
  verification: { port: string; item: string; source: number; target: number; status: string }[];
}

/** The clustered profile: a URL per port, and what the CLI's environment needs besides (a Vault token, …). */
export interface ServersProfile {
  readonly urls: Readonly<Record<string, string>>;
  readonly env?: Readonly<Record<string, string>>;
}

/** The folder of a round trip, ready once the suite's `beforeAll` has run. */
export interface MigrateFolder {
  /** Runs the CLI in the folder, with a fresh master key and the servers' environment. */
  cli(args: readonly string[]): Promise<CliResult>;
  /** Opens the standalone stowage of profile `a` (the source) or `b` (the round trip's end). */
  open(profile: 'a' | 'b'): Promise<Stowage>;
}

/**
 * Registers, in the calling suite, a `beforeAll` that makes the folder (`servers` is called then, once the
 * servers run) and an `afterAll` that removes it.
 */
export function migrateFolder(prefix: string, servers: () => ServersProfile): MigrateFolder {
  let root: string | undefined;
  let env: Record<string, string> = {};
  beforeAll(async () => {
    root = await tempDir(prefix);
    const profile = servers();
    env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64'), ...profile.env });
    const lines = [`dataDir: ${join(root, 'servers')}`, ...Object.entries(profile.urls).map(([port, url]) => `${port}: ${JSON.stringify(url)}`)];
    await writeFile(join(root, 'servers.yaml'), `${lines.join('\n')}\n`);
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
  }, 60_000);
  afterAll(async () => {
    if (root !== undefined) await rm(root, { recursive: true, force: true });
  });
  const folder = (): string => {
    assert.ok(root !== undefined, 'the folder is made in beforeAll');
    return root;
  };
  return {
    cli: (args) => runCli(args, { env, cwd: folder(), timeoutMs: 50_000 }),
    open: (profile) => createStowage({ dataDir: join(folder(), profile) }, { env }),
  };
}

/**
 * Writes the secrets and documents the round trips compare: `db/password` with versions 1 and 3 (2 deleted),
 * a binary `api/token`, `people` (unique and compound indexes, nested arrays) and `orders`.
 */
export async function writeSecretsAndDocuments(s: Stowage, counts: { people: number; orders: number }): Promise<void> {
  await s.secrets.put('db/password', 'v1');
  await s.secrets.put('db/password', 'v2');
  await s.secrets.put('db/password', 'v3');
  await s.secrets.delete('db/password', { versions: [2] });
  await s.secrets.put('api/token', randomBytes(40));
  const people = await s.documents.collection('people', { indexes: [{ name: 'by_email', fields: ['email'], unique: true }, { fields: ['team', 'age'] }] });
  await people.insertMany(Array.from({ length: counts.people }, (_, i) => ({ email: `p${i}@x.org`, team: `t${i % 7}`, age: 20 + (i % 50), nested: { a: [i, { b: i % 2 === 0 }] } })));
  const orders = await s.documents.collection('orders');
  for (let i = 0; i < counts.orders; i++) await orders.put(`o-${i}`, { total: i * 1.5, customer: `c${i % 4}` });
}

/** Asserts that a migrate run succeeded and every verification row matches; gives its report. */
export function matched(result: CliResult): MigrateReport {
  assert.equal(result.code, 0, result.stdout + result.stderr);
  const report = lastJson<MigrateReport>(result);
  assert.ok(report.verification.every((r) => r.status === 'match'), JSON.stringify(report.verification));
  return report;
}

/**
 * Migrates `a` to the servers and the servers to `b`, each run with every row matching, and checks `a`
 * against `b` with `--verify-only`. Gives the first run's report.
 */
export async function roundTrip(folder: MigrateFolder): Promise<MigrateReport> {
  const there = matched(await folder.cli(['migrate', '--from', 'a.yaml', '--to', 'servers.yaml', '--json']));
  matched(await folder.cli(['migrate', '--from', 'servers.yaml', '--to', 'b.yaml', '--json']));
  matched(await folder.cli(['migrate', '--from', 'a.yaml', '--to', 'b.yaml', '--verify-only', '--json']));
  return there;
}
