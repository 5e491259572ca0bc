import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { describe, it } from 'vitest';
import type { Redis } from 'ioredis';
import { redisCacheScheme } from '../../src/adapters/redis/index.js';
import { createCache } from '../../src/core/cache/cache.js';
import { defaultLogger, SchemeRegistry, type OpenContext } from '../../src/core/registry.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Cache, CacheDriver } from '../../src/ports/cache.js';
import { cacheContract } from '../../src/testing/cache.js';
import { eventually, rejectsWith } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const context: OpenContext = {
  dataDir: process.cwd(),
  env: {},
  logger: { ...defaultLogger, warn: () => undefined },
  openDriver: () => Promise.reject(new Error('redis:// opens no other driver')),
};

let counter = 0;
/** Each test gets its own namespace on the shared server, so tests never see each other's keys. */
const uniqueNamespace = (): string => `t${process.pid}-${Date.now().toString(36)}-${counter++}`;

async function open(url: string): Promise<Cache> {
  return createCache(await redisCacheScheme.open(parseUrl(url), context));
}

/** A free loopback port. */
async function freePort(): Promise<number> {
  return new Promise<number>((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** A redis-server of the test's own (its config changes or stalls touch no other test), stopped by `kill()`. */
async function privateRedis(dir: string, ...args: string[]): Promise<{ port: number; kill: () => void }> {
  const port = await freePort();
  const server = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, ...args], { stdio: 'ignore' });
  return { port, kill: () => server.kill('SIGKILL') };
}

/** What {@link withPrivateCache} hands its body: a cache on a server of the test's own, its driver and an admin client. */
interface PrivateCache {
  readonly url: string;
  readonly cache: Cache;
  readonly driver: CacheDriver;
  readonly admin: Redis;
}

/**
 * Runs `body` with a cache on a redis-server of its own, opened with `query` (e.g. `?commandTimeoutMs=1000`);
 * the cache is closed (if `body` did not) and the server removed afterwards.
 */
async function withPrivateCache(query: string, body: (opened: PrivateCache) => Promise<void>): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'stowage-redis-private-'));
  const { port, kill } = await privateRedis(dir);
  try {
    const url = `redis://127.0.0.1:${port}${query}`;
    await eventually(async () => open(url).then(async (c) => (await c.close(), true), () => false), 'the server answers');
    const driver = await redisCacheScheme.open(parseUrl(url), context);
    const cache = createCache(driver);
    try {
      await body({ url, cache, driver, admin: driver.native?.() as Redis });
    } finally {
      await cache.close();
    }
  } finally {
    kill();
    await rm(dir, { recursive: true, force: true });
  }
}

serviceSuite('redis', (svc) => {
  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'redis://',
    factory: async () => (await open(svc().url)).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(svc().url)).withNamespace(cache.namespace),
  });

  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'redis:// with ?lock=true on database 1',
    factory: async () => (await open(`${svc().url}/1?lock=true`)).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(`${svc().url}/1?lock=true`)).withNamespace(cache.namespace),
  });

  describe('redis:// when the server stops answering', () => {
    it('a paused server gives TIMEOUT or UNAVAILABLE within the deadline; calls recover after resume', async () => {
      const cache = await open(`${svc().url}?commandTimeoutMs=300`);
      try {
        await cache.set('k', 'v');
        await svc().pause();
        try {
          await rejectsWith(cache.get('k', { timeoutMs: 2000 }), 'TIMEOUT', 'UNAVAILABLE');
          // The command timeout (300 ms), not the call's 10 s default deadline, bounds each command and pipeline.
          let started = Date.now();
          await rejectsWith(cache.set('k', 'w'), 'TIMEOUT', 'UNAVAILABLE');
          assert.ok(Date.now() - started < 2000, `set took ${Date.now() - started} ms against a paused server`);
          started = Date.now();
          await rejectsWith(cache.setMany([{ key: 'a', value: 1 }, { key: 'b', value: 2 }]), 'TIMEOUT', 'UNAVAILABLE');
          assert.ok(Date.now() - started < 2000, `setMany took ${Date.now() - started} ms against a paused server`);
          assert.equal((await cache.health({ timeoutMs: 1000 })).ok, false);
        } finally {
          svc().resume();
        }
        await eventually(async () => (await cache.get('k').catch(() => 'error')) !== 'error', 'calls succeed after resume');
        await cache.set('k', 'after');
        assert.equal(await cache.get('k'), 'after');
      } finally {
        await cache.close();
      }
    });

    it('a killed server gives UNAVAILABLE or TIMEOUT quickly; calls recover once it is back', async () => {
      const cache = await open(`${svc().url}?commandTimeoutMs=300`);
      try {
        await cache.set('k', 'v');
        await svc().kill();
        try {
          await rejectsWith(cache.get('k', { timeoutMs: 2000 }), 'UNAVAILABLE', 'TIMEOUT');
          await rejectsWith(cache.setMany([{ key: 'a', value: 1 }], { timeoutMs: 2000 }), 'UNAVAILABLE', 'TIMEOUT');
          // getOrSet still answers from the source while the cache is down.
          assert.equal(await cache.getOrSet('j', async () => 'from source', { timeoutMs: 2000 }), 'from source');
        } finally {
          await svc().start();
        }
        await eventually(async () => (await cache.set('k', 'back').then(() => true, () => false)), 'writes succeed after restart');
        assert.equal(await cache.get('k'), 'back');
      } finally {
        await cache.close();
      }
    });

    it('the command timeout fails only commands older than it: a short stall is waited out, a long one is TIMEOUT', async () => {
      await withPrivateCache('?commandTimeoutMs=1000', async ({ cache, admin }) => {
        await cache.set('k', 'v');
        // CLIENT PAUSE holds every client's commands: a stall shorter than the timeout is waited out…
        await admin.call('CLIENT', 'PAUSE', '200', 'ALL');
        assert.equal(await cache.get('k'), 'v');
        // …a longer one fails the call with TIMEOUT after the command timeout (not before, not at the 10 s deadline).
        await admin.call('CLIENT', 'PAUSE', '2500', 'ALL');
        const started = Date.now();
        await rejectsWith(cache.get('k'), 'TIMEOUT');
        const waited = Date.now() - started;
        assert.ok(waited >= 900 && waited < 2400, `the stalled get failed after ${waited} ms (command timeout 1000 ms)`);
        await eventually(async () => (await cache.get('k').catch(() => 'error')) === 'v', 'calls succeed after the stall');
      });
    });

    it('a call given a deadline shorter than the command timeout, or a signal, ends at its own deadline or abort', async () => {
      await withPrivateCache('?commandTimeoutMs=3000', async ({ cache, driver, admin }) => {
        // Every command fails within the watchdog's bound, so calls with a deadline at least that long need none of core's.
        assert.ok(driver.callBoundMs !== undefined && driver.callBoundMs >= 3000 && driver.callBoundMs <= 4000, `callBoundMs ${driver.callBoundMs}`);
        await cache.set('k', 'v');
        await admin.call('CLIENT', 'PAUSE', '2000', 'ALL');
        let started = Date.now();
        await rejectsWith(cache.get('k', { timeoutMs: 300 }), 'TIMEOUT');
        let waited = Date.now() - started;
        assert.ok(waited >= 290 && waited < 1500, `the get with a 300 ms deadline failed after ${waited} ms`);
        const controller = new AbortController();
        started = Date.now();
        setTimeout(() => controller.abort(), 200);
        await rejectsWith(cache.get('k', { signal: controller.signal }), 'CANCELLED');
        waited = Date.now() - started;
        assert.ok(waited >= 190 && waited < 1500, `the cancelled get settled after ${waited} ms`);
        // A call without options outlives the 2 s stall (its bound is the 3 s command timeout) and is answered.
        assert.equal(await cache.get('k'), 'v');
      });
    });

    it('calls sent before close() are answered, not cut off by it; calls after it are CLOSED', async () => {
      await withPrivateCache('', async ({ url, cache, admin }) => {
        await cache.set('k', 'v');
        await admin.call('CLIENT', 'PAUSE', '400', 'WRITE');
        const write = cache.set('k', 'w');
        const read = cache.get('k');
        const closing = cache.close();
        await write;
        assert.equal(await read, 'w');
        await closing;
        await rejectsWith(cache.get('k'), 'CLOSED');
        const check = await open(url);
        assert.equal(await check.get('k'), 'w');
        await check.close();
      });
    });

    it('refuses to open when nothing listens, with UNAVAILABLE', async () => {
      await rejectsWith(open('redis://127.0.0.1:1?connectTimeoutMs=500'), 'UNAVAILABLE');
    });

    it('authenticates with a password from the URL or passwordFile; a wrong one is PERMISSION_DENIED and never shown', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'stowage-redis-auth-'));
      const { port, kill } = await privateRedis(dir, '--requirepass', 'right-pass-123');
      try {
        await eventually(async () => open(`redis://:right-pass-123@127.0.0.1:${port}`).then(async (c) => (await c.close(), true), () => false), 'the server answers');
        await writeFile(join(dir, 'pw'), 'right-pass-123\n', { mode: 0o600 });
        const fromFile = await open(`redis://127.0.0.1:${port}?passwordFile=${encodeURIComponent(join(dir, 'pw'))}`);
        await fromFile.set('k', 'v');
        assert.equal(await fromFile.get('k'), 'v');
        await fromFile.close();
        const err = await rejectsWith(open(`redis://:wrong-pass-456@127.0.0.1:${port}`), 'PERMISSION_DENIED');
        const shown = `${err.message} ${String((err.cause as Error | undefined)?.message)} ${JSON.stringify(err.details)}`;
        assert.ok(!shown.includes('wrong-pass-456'), `the password appears in: ${shown}`);
      } finally {
        kill();
        await rm(dir, { recursive: true, force: true });
      }
    });

    it('refuses bad parameters with INVALID_ARGUMENT naming the parameter, never showing the password', async () => {
      const registry = new SchemeRegistry().register(redisCacheScheme);
      const base = `redis://:secret-pass-789@127.0.0.1:${svc().port}`;
      for (const [query, named] of [
        ['commandTimeoutMs=0', 'commandTimeoutMs'],
        ['commandTimeoutMs=abc', 'commandTimeoutMs'],
        ['connectTimeoutMs=-5', 'connectTimeoutMs'],
        ['lock=maybe', 'lock'],
        ['lockTtlMs=1', 'lockTtlMs'],
        ['comandTimeoutMs=100', 'comandTimeoutMs'],
      ] as const) {
        const err = await rejectsWith(registry.open('cache', `${base}?${query}`, context), 'INVALID_ARGUMENT');
        assert.match(err.message, new RegExp(named));
        assert.ok(!`${err.message} ${JSON.stringify(err.details)}`.includes('secret-pass-789'), err.message);
      }
    });

    it('reads the password from passwordFile and refuses it twice', async () => {
      await rejectsWith(open(`redis://:pw@127.0.0.1:${svc().port}?passwordFile=/nonexistent`), 'INVALID_ARGUMENT');
      await rejectsWith(open(`${svc().url}?passwordFile=/nonexistent/file`), 'PERMISSION_DENIED');
    });
  });
});
