import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createServiceRegistry, type ServiceEvent } from '../../src/core/config/service-registry.js';
import { rejectsWith } from '../../src/testing/harness.js';

async function takeEvents(iterable: AsyncIterable<ServiceEvent>, count: number): Promise<string[]> {
  const out: string[] = [];
  if (count === 0) return out;
  for await (const event of iterable) {
    out.push(`${event.type} ${event.instance.id} ${JSON.stringify(event.instance.meta)}`);
    if (out.length === count) break;
  }
  return out;
}

describe('service registry on mem://', () => {
  it('a registered instance is listed with its meta until it deregisters', async () => {
    const config = createConfigStore(new MemoryConfigDriver());
    const registry = createServiceRegistry(config);
    const reg = await registry.register('api', { ttlMs: 5000, meta: { url: 'http://a' }, id: 'a' });
    const listed = await registry.list('api');
    assert.deepEqual(listed.map((i) => [i.id, i.name, i.meta]), [['a', 'api', { url: 'http://a' }]]);
    assert.ok(!Number.isNaN(Date.parse(listed[0]!.registeredAt)));
    await reg.deregister();
    assert.equal(reg.lost.aborted, true);
    assert.deepEqual(await registry.list('api'), []);
    await config.close();
  });

  it('watch gives the current instances first, then ups and downs', async () => {
    const config = createConfigStore(new MemoryConfigDriver());
    const registry = createServiceRegistry(config, { prefix: 'reg' });
    await registry.register('api', { ttlMs: 5000, id: 'one' });
    const controller = new AbortController();
    const events = takeEvents(registry.watch('api', { signal: controller.signal }), 3);
    const two = await registry.register('api', { ttlMs: 5000, id: 'two', meta: { zone: 'b' } });
    await registry.register('other', { ttlMs: 5000, id: 'x' });
    await two.deregister();
    assert.deepEqual(await events, ['up one {}', 'up two {"zone":"b"}', 'down two {"zone":"b"}']);
    controller.abort();
    await config.close();
  });

  it('an instance of a process whose store closes goes down for everyone else', async () => {
    const driver = new MemoryConfigDriver();
    const mine = createConfigStore(driver);
    const theirs = createConfigStore(driver);
    await createServiceRegistry(theirs).register('api', { ttlMs: 1000, id: 'theirs' });
    const registry = createServiceRegistry(mine);
    const events = takeEvents(registry.watch('api'), 2);
    await new Promise((r) => setTimeout(r, 20));
    await theirs.close();
    assert.deepEqual(await events, ['up theirs {}', 'down theirs {}']);
    await mine.close();
  });

  it('registering an id that is already live gives CONFLICT', async () => {
    const config = createConfigStore(new MemoryConfigDriver());
    const registry = createServiceRegistry(config);
    await registry.register('api', { ttlMs: 5000, id: 'same' });
    await rejectsWith(registry.register('api', { ttlMs: 5000, id: 'same' }), 'CONFLICT');
    assert.equal((await registry.list('api')).length, 1);
    await config.close();
  });

  it('bad names, ids and TTLs give INVALID_ARGUMENT', async () => {
    const config = createConfigStore(new MemoryConfigDriver());
    const registry = createServiceRegistry(config);
    await rejectsWith(registry.register('a/b', { ttlMs: 5000 }), 'INVALID_ARGUMENT');
    await rejectsWith(registry.register('api', { ttlMs: 5000, id: '..' }), 'INVALID_ARGUMENT');
    await rejectsWith(registry.register('api', { ttlMs: 10 }), 'INVALID_ARGUMENT');
    assert.deepEqual((await config.list('')).entries, []);
    await config.close();
  });
});
