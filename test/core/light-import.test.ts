import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const CLIENTS = ['etcd3', 'ioredis', 'mysql2', 'mongodb', 'node-vault', 'node-zookeeper-client', 'better-sqlite3', '@nats-io/', 'testcontainers'];

/** Imports `entry` in a fresh process and returns every module URL that was resolved or required. */
async function resolvedBy(entry: string, then = ''): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-imports-'));
  const log = join(dir, 'resolved.log');
  const hooks = join(dir, 'hooks.mjs');
  await writeFile(
    hooks,
    `import { appendFileSync } from 'node:fs';
export async function resolve(specifier, context, next) {
  const result = await next(specifier, context);
  appendFileSync(${JSON.stringify(log)}, result.url + '\\n');
  return result;
}`,
  );
  await writeFile(log, '');
  // The resolve hook sees imports; CommonJS require() calls (the sqlite adapter's) are read from require.cache.
  const script = `import { createRequire, register } from 'node:module';
import { appendFileSync } from 'node:fs';
register(${JSON.stringify(pathToFileURL(hooks).href)});
const m = await import(${JSON.stringify(pathToFileURL(entry).href)});
${then}
appendFileSync(${JSON.stringify(log)}, Object.keys(createRequire(import.meta.url).cache).map((p) => p + '\\n').join(''));`;
  const res = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  expect(res.status, res.stderr).toBe(0);
  return (await readFile(log, 'utf8')).split('\n').filter(Boolean);
}

describe('importing stowage', () => {
  it('loads no client library until a URL names its scheme', async () => {
    const urls = await resolvedBy(join(process.cwd(), 'src/index.ts'));
    expect(urls.some((u) => u.includes('/src/core/'))).toBe(true);
    for (const client of CLIENTS) expect(urls.filter((u) => u.includes(`/node_modules/${client}`))).toEqual([]);
  }, 60_000);

  it('loads better-sqlite3 once a sqlite:// URL is opened, and nothing else', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-imports-data-'));
    const urls = await resolvedBy(
      join(process.cwd(), 'src/index.ts'),
      `const s = await m.createStowage({ config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'sqlite://${dir}/d.db' }, { env: {} }); await s.close();`,
    );
    expect(urls.some((u) => u.includes('/node_modules/better-sqlite3'))).toBe(true);
    for (const client of CLIENTS.filter((c) => c !== 'better-sqlite3')) {
      expect(urls.filter((u) => u.includes(`/node_modules/${client}`))).toEqual([]);
    }
  }, 60_000);
});
