import { existsSync } from 'node:fs';
import { mkdtemp, readdir, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createStowage, type Stowage } from '../../src/index.js';
import { fuzzCache, fuzzConfig, fuzzDocuments, fuzzNames, fuzzQueue, fuzzSecrets, type FuzzReport } from './fuzz.js';

const OPS = 10_000;

async function listTree(dir: string, prefix = ''): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const rel = join(prefix, entry.name);
    out.push(rel);
    if (entry.isDirectory()) out.push(...(await listTree(join(dir, entry.name), rel)));
  }
  return out;
}

describe('hostile input on the standalone adapters (file://, file:// keyring, disk://, sqlite://)', () => {
  it.each([
    ['config', (s: Stowage) => fuzzConfig(s.config, OPS, 11)],
    ['secrets', (s: Stowage) => fuzzSecrets(s.secrets, OPS, 12)],
    ['queue', (s: Stowage) => fuzzQueue(s.queue, OPS, 13)],
    ['cache', (s: Stowage) => fuzzCache(s.cache, OPS, 14)],
    ['documents', (s: Stowage) => fuzzDocuments(s.documents, OPS, 15)],
  ] as const)('%s: 10,000 hostile operations give only StowageErrors, write nothing outside the data folder, and match the model', async (_port, run) => {
    const sandbox = await mkdtemp(join(tmpdir(), 'stowage-hostile-'));
    const dataDir = join(sandbox, 'data');
    const passwd = await stat('/etc/passwd');
    const stowage = await createStowage({ dataDir }, { env: { STOWAGE_MASTER_KEY: randomBytes(32).toString('base64') }, cwd: sandbox });
    let report: FuzzReport;
    try {
      report = await run(stowage);
    } finally {
      await stowage.close();
    }
    expect(report.ops).toBe(OPS);
    expect(report.accepted).toBeGreaterThan(OPS / 10);
    expect(await readdir(sandbox)).toEqual(['data']);
    const tree = await listTree(dataDir);
    expect(tree.filter((p) => /escape|passwd|Windows|polluted|hostile-abs/.test(p))).toEqual([]);
    expect(existsSync('/tmp/stowage-hostile-abs')).toBe(false);
    expect((await stat('/etc/passwd')).mtimeMs).toBe(passwd.mtimeMs);
  }, 180_000);
});

describe('hostile input on file+sealed:// (sealed secrets in a file:// config file)', () => {
  // Every accepted write is two fsynced file:// puts (sealed value, then the version record), so 2,000
  // operations keep this near 25 s; the hostile input mix is the same as the 10,000-operation runs.
  const SEALED_OPS = 2_000;
  it('secrets: 2,000 hostile operations give only StowageErrors, write nothing outside the file, and match the model', async () => {
    const sandbox = await mkdtemp(join(tmpdir(), 'stowage-hostile-sealed-'));
    const stowage = await createStowage(
      { dataDir: join(sandbox, 'data'), secrets: `file+sealed://${join(sandbox, 'sealed.json')}` },
      { env: { STOWAGE_MASTER_KEY: randomBytes(32).toString('base64') }, cwd: sandbox },
    );
    let report: FuzzReport;
    try {
      report = await fuzzSecrets(stowage.secrets, SEALED_OPS, 16);
    } finally {
      await stowage.close();
    }
    expect(report.ops).toBe(SEALED_OPS);
    expect(report.accepted).toBeGreaterThan(SEALED_OPS / 10);
    expect((await readdir(sandbox)).sort()).toEqual(['data', 'sealed.json']);
  }, 180_000);
});

describe('hostile names on sqlite:// (table names ignore case, index names share one namespace)', () => {
  it('documents: 400 opens and inserts with colliding collection and index names match the model', async () => {
    const sandbox = await mkdtemp(join(tmpdir(), 'stowage-hostile-names-'));
    const stowage = await createStowage({ dataDir: join(sandbox, 'data') }, { ports: ['documents'] });
    try {
      const report = await fuzzNames(stowage.documents, 400, 17);
      expect(report.rejected.ALREADY_EXISTS ?? 0).toBeGreaterThan(0);
    } finally {
      await stowage.close();
    }
  }, 120_000);
});
