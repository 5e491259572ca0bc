import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { redisCacheScheme } from '../../src/adapters/redis/index.js';
import { TieredCacheDriver, tieredCacheScheme } from '../../src/adapters/tiered/index.js';
import { MemoryCacheDriver, memCacheScheme } from '../../src/adapters/memory/cache-driver.js';
import { parseUrl } from '../../src/driver/url.js';
import type { CacheDriver } from '../../src/ports/cache.js';
import { createCache } from '../../src/core/cache/cache.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import type { Cache } from '../../src/ports/cache.js';
import { cacheContract } from '../../src/testing/cache.js';
import { eventually, rejectsWith, sleep } from '../../src/testing/harness.js';
import { serviceSuite } from '../support/services.js';

const registry = new SchemeRegistry().register(memCacheScheme).register(redisCacheScheme).register(tieredCacheScheme);
const quiet = { warn: () => undefined, info: () => undefined, debug: () => undefined };

let counter = 0;
const uniqueNamespace = (): string => `t${process.pid}-${Date.now().toString(36)}-${counter++}`;

function tieredUrl(redisUrl: string, extra = ''): string {
  return `tiered://?remote=${encodeURIComponent(redisUrl)}&localTtlMs=600000${extra}`;
}

async function open(redisUrl: string, extra = ''): Promise<Cache> {
  return createCache(await registry.open('cache', tieredUrl(redisUrl, extra), { dataDir: process.cwd(), env: {}, logger: quiet }));
}

/** A tiered cache node in a child process, driven over stdin/stdout. */
class Node {
  readonly #child: ChildProcess;
  readonly #waiting = new Map<number, (reply: { result?: unknown; error?: string }) => void>();
  #next = 0;
  readonly ready: Promise<void>;

  constructor(url: string) {
    const script = fileURLToPath(new URL('../fixtures/tiered-cache-node.ts', import.meta.url));
    this.#child = spawn(process.execPath, ['--import', 'tsx', script], {
      env: { ...process.env, STOWAGE_TIERED_URL: url },
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let markReady: () => void = () => undefined;
    this.ready = new Promise((resolve) => {
      markReady = resolve;
    });
    createInterface({ input: this.#child.stdout! }).on('line', (line) => {
      const message = JSON.parse(line) as { id?: number; ready?: boolean; result?: unknown; error?: string };
      if (message.ready) markReady();
      else if (message.id !== undefined) this.#waiting.get(message.id)?.(message);
    });
  }

  async call(op: 'get' | 'set' | 'delete', key: string, value?: unknown): Promise<unknown> {
    const id = this.#next++;
    const reply = await new Promise<{ result?: unknown; error?: string }>((resolve) => {
      this.#waiting.set(id, resolve);
      this.#child.stdin!.write(`${JSON.stringify({ id, op, key, value })}\n`);
    });
    this.#waiting.delete(id);
    if (reply.error !== undefined) throw new Error(reply.error);
    return reply.result;
  }

  async stop(): Promise<void> {
    const exited = new Promise((resolve) => this.#child.once('exit', resolve));
    this.#child.stdin!.end();
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 5000);
    await exited;
    clearTimeout(timer);
  }
}

serviceSuite('redis', (svc) => {
  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'tiered:// (memory in front of redis)',
    factory: async () => (await open(svc().url)).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(svc().url)).withNamespace(cache.namespace),
  });

  cacheContract({
    test: { describe, it },
    shortTtlMs: 400, // network round-trips on a busy machine must stay well inside it
    name: 'tiered:// over redis:// with ?lock=true',
    factory: async () => (await open(`${svc().url}/2?lock=true`)).withNamespace(uniqueNamespace()),
    peer: async (cache) => (await open(`${svc().url}/2?lock=true`)).withNamespace(cache.namespace),
  });

  describe('tiered:// across processes and outages', () => {
    it('three processes: a value written on one node is not served stale by the others once the invalidation arrives', async () => {
      const url = tieredUrl(svc().url);
      const nodes = [new Node(url), new Node(url), new Node(url)];
      try {
        await Promise.all(nodes.map((n) => n.ready));
        const [a, b, c] = nodes as [Node, Node, Node];
        await a.call('set', 'k', 'v1');
        // b and c now hold v1 in their memory tier (kept 10 minutes unless invalidated).
        assert.deepEqual([await b.call('get', 'k'), await c.call('get', 'k')], ['v1', 'v1']);
        await a.call('set', 'k', 'v2');
        await eventually(async () => (await b.call('get', 'k')) === 'v2' && (await c.call('get', 'k')) === 'v2', 'b and c serve v2', 5000);
        await c.call('delete', 'k');
        await eventually(async () => (await a.call('get', 'k')) === null && (await b.call('get', 'k')) === null, 'a and b see the delete', 5000);
        // Once seen, never stale again: repeated reads keep giving the latest value.
        await b.call('set', 'k', 'v3');
        await eventually(async () => (await a.call('get', 'k')) === 'v3', 'a serves v3', 5000);
        for (let i = 0; i < 5; i++) assert.deepEqual([await a.call('get', 'k'), await c.call('get', 'k')], ['v3', 'v3']);
      } finally {
        await Promise.all(nodes.map((n) => n.stop()));
      }
    }, 60_000);

    it('while redis is down, cached keys are still served from memory and stale-if-error keeps serving', async () => {
      const cache = (await open(`${svc().url}?commandTimeoutMs=300`)).withNamespace(uniqueNamespace());
      try {
        await cache.set('cached', { v: 1 });
        await cache.getOrSet('stale', async () => 'old', { ttlMs: 100, staleIfErrorMs: 600_000 });
        await sleep(250);
        await svc().kill();
        try {
          assert.deepEqual(await cache.get('cached'), { v: 1 });
          assert.deepEqual(await cache.getMany(['cached']), [{ v: 1 }]);
          assert.equal(
            await cache.getOrSet('stale', async () => {
              throw new Error('origin down too');
            }, { ttlMs: 100, staleIfErrorMs: 600_000 }),
            'old',
          );
          await rejectsWith(cache.get('never-cached', { timeoutMs: 2000 }), 'UNAVAILABLE', 'TIMEOUT');
          await rejectsWith(cache.set('cached', { v: 2 }, { timeoutMs: 2000 }), 'UNAVAILABLE', 'TIMEOUT');
          // The failed write's outcome is unknown, so the old local copy is gone: the read goes to redis.
          await rejectsWith(cache.get('cached', { timeoutMs: 2000 }), 'UNAVAILABLE', 'TIMEOUT');
          assert.equal((await cache.health({ timeoutMs: 2000 })).ok, false);
        } finally {
          await svc().start();
        }
        await eventually(async () => cache.set('cached', { v: 3 }).then(() => true, () => false), 'writes succeed after restart');
        await eventually(async () => (await cache.health()).ok, 'health is ok again once the channel is resubscribed');
        assert.deepEqual(await cache.get('cached'), { v: 3 });
      } finally {
        await cache.close();
      }
    }, 60_000);

    it('a remote read racing with a delete or clear on the same node keeps no stale local copy', async () => {
      const ctx = { dataDir: process.cwd(), env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('none')) };
      const remote = await redisCacheScheme.open(parseUrl(svc().url), ctx);
      let gate: Promise<void> | undefined;
      // The real redis driver, with reads held at a gate after they have read.
      const held: CacheDriver = {
        backend: remote.backend,
        capabilities: remote.capabilities,
        get: async (key, signal) => {
          const value = await remote.get(key, signal);
          await gate;
          return value;
        },
        getMany: (keys, signal) => remote.getMany(keys, signal),
        set: (key, value, ttlMs, signal) => remote.set(key, value, ttlMs, signal),
        setMany: (entries, signal) => remote.setMany(entries, signal),
        delete: (key, signal) => remote.delete(key, signal),
        clearPrefix: (prefix, signal) => remote.clearPrefix(prefix, signal),
        ping: (signal) => remote.ping(signal),
        close: () => remote.close(),
        native: () => remote.native?.(),
      };
      const driver = await TieredCacheDriver.open({
        local: new MemoryCacheDriver({ maxEntries: 100, maxBytes: 1 << 20 }),
        remote: held,
        localTtlMs: 600_000,
        channel: `race-${uniqueNamespace()}`,
        logger: quiet,
      });
      const namespace = uniqueNamespace();
      const cache = createCache(driver).withNamespace(namespace);
      const writer = (await open(svc().url)).withNamespace(namespace);
      try {
        for (const finish of [() => cache.delete('k'), () => cache.clear()]) {
          await writer.set('k', 'old'); // written elsewhere: this node holds no copy yet
          let release: () => void = () => undefined;
          gate = new Promise((resolve) => {
            release = resolve;
          });
          const reading = cache.get('k');
          await sleep(50);
          await finish();
          release();
          assert.equal(await reading, 'old');
          gate = undefined;
          assert.equal(await cache.get('k'), undefined, 'the old value read before the delete was kept locally');
        }
      } finally {
        await writer.close();
        await cache.close();
      }
    });

    it('writes made together share invalidation messages, and another node drops every key they name', async () => {
      const channel = `batch-${uniqueNamespace()}`;
      const namespace = uniqueNamespace();
      const writer = (await open(svc().url, `&channel=${channel}`)).withNamespace(namespace);
      const reader = (await open(svc().url, `&channel=${channel}`)).withNamespace(namespace);
      const { Redis } = await import('ioredis');
      const url = new URL(svc().url.replace(/^redis:/, 'http:'));
      const listener = new Redis({ host: url.hostname, port: Number(url.port), lazyConnect: true });
      const messages: string[] = [];
      listener.on('message', (_channel: string, message: string) => messages.push(message));
      await listener.connect();
      await listener.subscribe(channel);
      try {
        const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
        await Promise.all(keys.map((k) => writer.set(k, 'old')));
        for (const k of keys) assert.equal(await reader.get(k), 'old'); // now held in the reader's memory tier
        messages.length = 0;
        await Promise.all(keys.map((k) => writer.set(k, 'new')));
        const named = (): Set<string> => new Set(messages.flatMap((m) => (JSON.parse(m) as { k: string[] }).k));
        await eventually(() => named().size === 100, 'an invalidation of every key', 5000, 10);
        // One PUBLISH per set before: 100 messages for 100 sets made together.
        assert.ok(messages.length < 20, `${messages.length} invalidation messages for 100 concurrent sets`);
        await eventually(async () => (await Promise.all(keys.map((k) => reader.get(k)))).every((v) => v === 'new'), 'the reader sees every new value', 5000, 20);
      } finally {
        listener.disconnect();
        await Promise.all([writer.close(), reader.close()]);
      }
    });

    it('refuses a remote that is not redis, and a missing remote', async () => {
      const ctx = { dataDir: process.cwd(), env: {}, logger: quiet };
      await rejectsWith(registry.open('cache', `tiered://?remote=${encodeURIComponent('mem://')}`, ctx), 'INVALID_ARGUMENT');
      await rejectsWith(registry.open('cache', 'tiered://', ctx), 'INVALID_ARGUMENT');
    });
  });
});
