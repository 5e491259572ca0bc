import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { describe, it } from 'vitest';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import type { ConfigCapability, ConfigDriver, ConfigEvent, ConfigSnapshot, Lease } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { rejectsWith } from '../../src/testing/harness.js';

/** A driver whose every call waits until its signal aborts: a backend that never answers. */
function hangingDriver(capabilities: ConfigCapability[] = ['watch', 'leases']): ConfigDriver & { signals: AbortSignal[] } {
  const signals: AbortSignal[] = [];
  const hang = <T>(signal: AbortSignal): Promise<T> => {
    signals.push(signal);
    return new Promise<T>(() => undefined);
  };
  return {
    backend: 'hang',
    capabilities: new Set(capabilities),
    signals,
    get: (_key, signal) => hang(signal),
    list: (_prefix, _limit, signal): Promise<ConfigSnapshot> => hang(signal),
    put: (_key, _value, _options, signal) => hang(signal),
    delete: (_key, _options, signal) => hang(signal),
    lease: (_ttl, _keepAlive, signal): Promise<Lease> => hang(signal),
    watch: (_prefix, _from, signal): AsyncIterable<ConfigEvent> => ({
      [Symbol.asyncIterator]: () => ({ next: () => hang(signal) }),
    }),
    ping: (signal) => hang(signal),
    close: async () => undefined,
  };
}

describe('createConfigStore over a driver that never answers', () => {
  it('every call with a tiny timeoutMs rejects with TIMEOUT and aborts the driver signal', async () => {
    const driver = hangingDriver();
    const store = createConfigStore(driver);
    await rejectsWith(store.get('a', { timeoutMs: 20 }), 'TIMEOUT');
    await rejectsWith(store.list('', { timeoutMs: 20 }), 'TIMEOUT');
    await rejectsWith(store.put('a', 1, { timeoutMs: 20 }), 'TIMEOUT');
    await rejectsWith(store.delete('a', { timeoutMs: 20 }), 'TIMEOUT');
    await rejectsWith(store.lease(1000, { timeoutMs: 20 }), 'TIMEOUT');
    assert.equal(driver.signals.length, 5);
    for (const signal of driver.signals) assert.equal(signal.aborted, true);
    await store.close();
  });

  it('the default deadline applies when the call gives none', async () => {
    const store = createConfigStore(hangingDriver(), { defaultTimeoutMs: 30 });
    await rejectsWith(store.put('a', 1), 'TIMEOUT');
    await store.close();
  });

  it('aborting the caller signal mid-call rejects with CANCELLED', async () => {
    const store = createConfigStore(hangingDriver());
    const controller = new AbortController();
    const pending = store.put('a', 1, { signal: controller.signal });
    setTimeout(() => controller.abort(), 10);
    await rejectsWith(pending, 'CANCELLED');
    await store.close();
  });

  it('close() ends a watch whose driver never yields with CLOSED', async () => {
    const store = createConfigStore(hangingDriver(), { drainMs: 50 });
    const pending = store.watch('')[Symbol.asyncIterator]().next();
    await new Promise((r) => setTimeout(r, 10));
    await store.close();
    await rejectsWith(pending, 'CLOSED');
  });

  it('aborting the watch signal ends a hanging watch cleanly', async () => {
    const store = createConfigStore(hangingDriver());
    const controller = new AbortController();
    const pending = store.watch('', { signal: controller.signal })[Symbol.asyncIterator]().next();
    controller.abort();
    assert.deepEqual(await pending, { done: true, value: undefined });
    await store.close();
  });

  it('health reports failure instead of hanging', async () => {
    const store = createConfigStore(hangingDriver());
    const report = await store.health({ timeoutMs: 20 });
    assert.equal(report.ok, false);
    assert.equal(report.error?.code, 'TIMEOUT');
    await store.close();
  });
});

describe('createConfigStore capabilities and errors', () => {
  it('watch and lease reject with UNSUPPORTED when the driver lacks them', async () => {
    const driver = hangingDriver([]);
    const store = createConfigStore({ ...driver, watch: undefined, lease: undefined });
    await rejectsWith(store.lease(1000), 'UNSUPPORTED');
    await rejectsWith(store.watch('')[Symbol.asyncIterator]().next(), 'UNSUPPORTED');
    await rejectsWith(store.put('a', 1, { lease: 'x' }), 'UNSUPPORTED');
    await store.close();
  });

  it('a capability declared without its method is not advertised', async () => {
    const store = createConfigStore({ ...hangingDriver(), watch: undefined });
    assert.equal(store.capabilities.has('watch'), false);
    assert.equal(store.capabilities.has('leases'), true);
    await store.close();
  });

  it('a raw driver error becomes a StowageError through the driver mapError', async () => {
    const driver: ConfigDriver = {
      ...hangingDriver(),
      get: async () => {
        throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
      },
    };
    const store = createConfigStore(driver);
    const err = await rejectsWith(store.get('a'), 'UNAVAILABLE');
    assert.ok(err instanceof StowageError);
    await store.close();
  });

  it('put hands the driver the value\'s JSON text, with a private copy unless the driver stores only text', async () => {
    for (const storesJson of [false, true]) {
      const received: { value: unknown; json: string | undefined }[] = [];
      const store = createConfigStore({
        ...hangingDriver(),
        storesJson,
        put: async (_key, value, _options, _signal, json) => {
          received.push({ value, json });
          return { revision: 1 };
        },
      });
      const value = { name: 'é ✓ \u{1F600}', list: [1, 2.5, null, true] };
      await store.put('a', value);
      await store.put('b', 'text');
      assert.deepEqual(received.map((r) => r.json), [JSON.stringify(value), '"text"']);
      assert.deepEqual(received[0]?.value, value);
      assert.equal(received[0]?.value === value, storesJson, storesJson ? 'the caller\'s value, uncopied' : 'a copy');
      await store.close();
    }
  });

  it('maxValueBytes bounds put values with RESOURCE_EXHAUSTED', async () => {
    const store = createConfigStore(new MemoryConfigDriver(), { maxValueBytes: 16 });
    assert.equal(store.maxValueBytes, 16);
    await rejectsWith(store.put('a', 'x'.repeat(20)), 'RESOURCE_EXHAUSTED');
    assert.equal(await store.get('a'), undefined);
    await store.close();
  });

  it('the in-memory read path still refuses bad keys, closed stores and aborted signals', async () => {
    const store = createConfigStore(new MemoryConfigDriver());
    await store.put('a', 1);
    await rejectsWith(store.get('a/../b'), 'INVALID_ARGUMENT');
    await rejectsWith(store.get('a', { signal: AbortSignal.abort() }), 'CANCELLED');
    await store.close();
    await rejectsWith(store.get('a'), 'CLOSED');
  });

  it('closing the store revokes its leases: keys go away and lost aborts with CLOSED', async () => {
    const driver = new MemoryConfigDriver();
    const store = createConfigStore(driver);
    const lease = await store.lease(5000);
    await store.put('eph', 1, { lease: lease.id });
    await store.close();
    assert.equal(lease.lost.aborted, true);
    assert.ok(StowageError.is(lease.lost.reason, 'CLOSED'));
    assert.equal(driver.getSync('eph'), undefined);
  });
  it('a long-running watch does not keep the events it has delivered', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const store = createConfigStore(new MemoryConfigDriver({ historySize: 10 }));
    const abort = new AbortController();
    let seen = 0;
    const loop = (async () => {
      for await (const _event of store.watch('w/', { signal: abort.signal })) seen++;
    })();
    const payload = 'x'.repeat(2000);
    const write = async (from: number, count: number): Promise<void> => {
      for (let i = from; i < from + count; i++) {
        await store.put('w/k', { i, payload });
        if (i % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      while (seen < from + count) await new Promise((resolve) => setTimeout(resolve, 5));
    };
    await write(0, 1000);
    gc();
    const before = process.memoryUsage().heapUsed;
    await write(1000, 10_000);
    gc();
    const grown = process.memoryUsage().heapUsed - before;
    abort.abort();
    await loop;
    await store.close();
    // 10,000 events of over 2 kB each: kept, they would be more than 20 MB.
    assert.ok(grown < 8_000_000, `heap grew by ${grown} bytes over 10,000 delivered events`);
  });
});
