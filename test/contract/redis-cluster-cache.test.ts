/**
 * The cache contract on `redis+cluster://` and `tiered://` over it: three redis-server nodes in cluster
 * mode, started here on free loopback ports (STOWAGE_TEST_REDIS_CLUSTER_URL to use an existing cluster).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { memCacheScheme } from '../../src/adapters/memory/cache-driver.js';
import { redisCacheSchemes } from '../../src/adapters/redis/index.js';
import { tieredCacheScheme } from '../../src/adapters/tiered/index.js';
import { createCache } from '../../src/core/cache/cache.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import type { Cache, CacheDriver } from '../../src/ports/cache.js';
import { cacheContract } from '../../src/testing/cache.js';
import { eventually } from '../../src/testing/harness.js';
import { requiredServices } from '../support/services.js';
import { fuzzCache } from '../hostile/fuzz.js';

const execFileAsync = promisify(execFile);
const registry = new SchemeRegistry().register(memCacheScheme).register(tieredCacheScheme);
for (const scheme of redisCacheSchemes) registry.register(scheme);
const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let clusterUrl = process.env.STOWAGE_TEST_REDIS_CLUSTER_URL;
let skip: string | undefined;
const servers: ChildProcess[] = [];
let dir: string | undefined;

beforeAll(async () => {
  if (clusterUrl !== undefined) return;
  try {
    await execFileAsync('redis-server', ['--version']);
    await execFileAsync('redis-cli', ['--version']);
  } catch {
    skip = 'redis-server or redis-cli is not on PATH';
    if (requiredServices().has('redis')) throw new Error(`STOWAGE_TEST_REQUIRE names redis, but ${skip}`);
    console.warn(`skipped redis+cluster:// suite: ${skip}`);
    return;
  }
  dir = await mkdtemp(join(tmpdir(), 'stowage-redis-cluster-'));
  const ports: number[] = [];
  for (let i = 0; i < 3; i++) {
    const port = await freePort();
    ports.push(port);
    servers.push(
      spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', join(dir, `nodes-${port}.conf`), '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }),
    );
  }
  await eventually(async () => {
    try {
      for (const p of ports) await execFileAsync('redis-cli', ['-p', String(p), 'ping']);
      return true;
    } catch {
      return false;
    }
  }, 'cluster nodes answer', 10_000);
  await execFileAsync('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  await eventually(async () => {
    const { stdout } = await execFileAsync('redis-cli', ['-p', String(ports[0]), 'cluster', 'info']);
    return stdout.includes('cluster_state:ok');
  }, 'cluster state ok', 20_000);
  clusterUrl = `redis+cluster://${ports.map((p) => `127.0.0.1:${p}`).join(',')}`;
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

beforeEach((context) => {
  if (skip !== undefined) context.skip(skip);
});

let counter = 0;
const uniqueNamespace = (): string => `c${process.pid}-${counter++}`;

async function open(url: string): Promise<Cache> {
  return createCache(await registry.open('cache', url, { dataDir: process.cwd(), env: {}, logger: quiet }));
}
const tiered = (): string => `tiered://?remote=${encodeURIComponent(`${clusterUrl}?lock=true`)}&localTtlMs=600000`;

describe('redis+cluster://', () => {
  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'redis+cluster:// with ?lock=true',
    factory: async () => (await open(`${clusterUrl}?lock=true`)).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(`${clusterUrl}?lock=true`)).withNamespace(cache.namespace),
  });

  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'tiered:// over redis+cluster://',
    factory: async () => (await open(tiered())).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(tiered())).withNamespace(cache.namespace),
  });

  it('redis+cluster:// declares no call bound: core keeps its own deadlines (redirections and retries are outside the watchdog)', async () => {
    const driver = (await registry.open('cache', clusterUrl as string, { dataDir: process.cwd(), env: {}, logger: quiet })) as CacheDriver;
    try {
      expect(driver.callBoundMs).toBeUndefined();
    } finally {
      await driver.close();
    }
  });

  it('redis+cluster://: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    const cache = await open(clusterUrl as string);
    try {
      const report = await fuzzCache(cache.withNamespace(uniqueNamespace()), 10_000, 26);
      expect(report.ops).toBe(10_000);
      expect(report.accepted).toBeGreaterThan(1_000);
    } finally {
      await cache.close();
    }
  }, 180_000);
});
