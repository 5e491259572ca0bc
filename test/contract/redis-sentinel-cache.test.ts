/**
 * The cache contract on `redis+sentinel://`: one redis-server master and one Sentinel watching it, started
 * here on free loopback ports.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { redisSentinelCacheScheme } from '../../src/adapters/redis/index.js';
import { createCache } from '../../src/core/cache/cache.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Cache } from '../../src/ports/cache.js';
import { cacheContract } from '../../src/testing/cache.js';
import { fuzzCache } from '../hostile/fuzz.js';
import { eventually } from '../../src/testing/harness.js';
import { requiredServices } from '../support/services.js';

const execFileAsync = promisify(execFile);
const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined };

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer().once('error', reject).listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

let sentinelUrl: string | undefined;
let skip: string | undefined;
const servers: ChildProcess[] = [];
let dir: string | undefined;

beforeAll(async () => {
  try {
    await execFileAsync('redis-server', ['--version']);
  } catch {
    skip = 'redis-server is not on PATH';
    if (requiredServices().has('redis')) throw new Error(`STOWAGE_TEST_REQUIRE names redis, but ${skip}`);
    console.warn(`skipped redis+sentinel:// suite: ${skip}`);
    return;
  }
  dir = await mkdtemp(join(tmpdir(), 'stowage-redis-sentinel-'));
  const masterPort = await freePort();
  const sentinelPort = await freePort();
  servers.push(spawn('redis-server', ['--port', String(masterPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' }));
  const conf = join(dir, 'sentinel.conf');
  await writeFile(
    conf,
    [`port ${sentinelPort}`, 'bind 127.0.0.1', `dir ${dir}`, `sentinel monitor stowage-master 127.0.0.1 ${masterPort} 1`, 'sentinel down-after-milliseconds stowage-master 5000', ''].join('\n'),
  );
  servers.push(spawn('redis-server', [conf, '--sentinel'], { stdio: 'ignore' }));
  await eventually(async () => {
    try {
      const { stdout } = await execFileAsync('redis-cli', ['-p', String(sentinelPort), 'sentinel', 'get-master-addr-by-name', 'stowage-master']);
      return stdout.includes(String(masterPort));
    } catch {
      return false;
    }
  }, 'the sentinel knows the master', 20_000);
  sentinelUrl = `redis+sentinel://127.0.0.1:${sentinelPort}?name=stowage-master`;
}, 60_000);

afterAll(async () => {
  for (const s of servers) s.kill('SIGKILL');
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

beforeEach((context) => {
  if (skip !== undefined) context.skip(skip);
});

let counter = 0;
async function open(url: string): Promise<Cache> {
  return createCache(await redisSentinelCacheScheme.open(parseUrl(url), { dataDir: process.cwd(), env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('none')) }));
}

describe('redis+sentinel://', () => {
  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'redis+sentinel://',
    factory: async () => (await open(sentinelUrl as string)).withNamespace(`s${process.pid}-${counter++}`),
    peer: async (cache) => (await open(sentinelUrl as string)).withNamespace(cache.namespace),
  });

  it('redis+sentinel://: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    const cache = await open(sentinelUrl as string);
    try {
      const report = await fuzzCache(cache.withNamespace(`s${process.pid}-${counter++}`), 10_000, 27);
      expect(report.ops).toBe(10_000);
      expect(report.accepted).toBeGreaterThan(1_000);
    } finally {
      await cache.close();
    }
  }, 180_000);
});
