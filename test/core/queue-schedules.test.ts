import assert from 'node:assert/strict';
import { afterEach, describe, it, vi } from 'vitest';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { MemQueueDriver } from '../../src/adapters/memory/queue-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { createQueue } from '../../src/core/queue/queue.js';
import type { ConfigStore } from '../../src/ports/config.js';
import type { CatchUp, Queue, QueueDriver } from '../../src/ports/queue.js';
import { eventually, sleep } from '../../src/testing/harness.js';

/**
 * Several nodes: queues over one mem driver (as nodes share a backend), sharing one config store. Closing a
 * node leaves the shared driver open, as a node going away leaves the backend; the test closes it.
 */
function nodes(n: number, driver: QueueDriver = new MemQueueDriver(), config: ConfigStore = createConfigStore(new MemoryConfigDriver())): Queue[] {
  const shared = new Proxy(driver, {
    get: (target, name: keyof QueueDriver) => {
      if (name === 'close') return () => Promise.resolve();
      const value = target[name];
      return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
    },
  });
  return Array.from({ length: n }, () => createQueue(shared, { config }));
}

async function slotsOf(q: Queue, topic: string): Promise<number[]> {
  return (await q.browse(topic)).map((m) => Number(/-(\d+)$/.exec(m.id ?? '')?.[1]));
}

afterEach(() => {
  vi.useRealTimers();
});

describe('queue schedules', () => {
  it('three nodes running one schedule publish each slot once, none skipped', async () => {
    const driver = new MemQueueDriver();
    // Slow compare-and-sets, as over a network: every node reads a slot as due before any has moved it.
    const store = createConfigStore(new MemoryConfigDriver());
    const slow = new Proxy(store, {
      get: (target, name: keyof ConfigStore) => {
        const value = target[name];
        if (name === 'put') return async (...args: Parameters<ConfigStore['put']>) => (await sleep(50), target.put(...args));
        return typeof value === 'function' ? (value as (...args: unknown[]) => unknown).bind(target) : value;
      },
    });
    const [a, b, c] = nodes(3, driver, slow) as [Queue, Queue, Queue];
    try {
      await Promise.all([a, b, c].map((q) => q.schedule('tick', { everyMs: 1_000, topic: 'ticks' })));
      await eventually(async () => (await a.stats('ticks')).messages >= 3, 'three slots', 10_000);
      const slots = await slotsOf(a, 'ticks');
      assert.equal(new Set(slots).size, slots.length, `no slot twice: ${slots.join(', ')}`);
      for (let i = 1; i < slots.length; i++) assert.equal((slots[i] as number) - (slots[i - 1] as number), 1_000, `no slot skipped: ${slots.join(', ')}`);
    } finally {
      await Promise.all([a, b, c].map((q) => q.close()));
    }
  }, 15_000);

  it('a node stopped before a slot leaves it to the others', async () => {
    const driver = new MemQueueDriver();
    const [a, b] = nodes(2, driver) as [Queue, Queue];
    try {
      await a.schedule('tick', { everyMs: 1_000, topic: 'ticks' });
      await b.schedule('tick', { everyMs: 1_000, topic: 'ticks' });
      await eventually(async () => (await b.stats('ticks')).messages >= 1, 'a first slot', 5_000);
      await a.close();
      const before = (await b.stats('ticks')).messages;
      await eventually(async () => (await b.stats('ticks')).messages >= before + 2, 'two more slots from the other node', 5_000);
      const slots = await slotsOf(b, 'ticks');
      for (let i = 1; i < slots.length; i++) assert.equal((slots[i] as number) - (slots[i - 1] as number), 1_000, `slots ${slots.join(', ')}`);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  }, 15_000);

  // A node that was down for 5 minutes 40 seconds comes back: the clock (Date only; timers stay real) is moved.
  for (const [catchUp, expected] of [
    ['none', 0],
    ['last', 1],
    ['all', 5],
  ] as Array<[CatchUp, number]>) {
    it(`catchUp ${catchUp} publishes ${expected} of the 5 slots missed while no node ran`, async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const start = Date.UTC(2030, 0, 1, 0, 0, 0);
      vi.setSystemTime(start);
      const driver = new MemQueueDriver();
      const config = createConfigStore(new MemoryConfigDriver());
      const [first] = nodes(1, driver, config) as [Queue];
      await first.schedule('minutely', { everyMs: 60_000, topic: 'ticks', catchUp });
      await first.close();
      vi.setSystemTime(start + 5 * 60_000 + 40_000);
      const [again] = nodes(1, driver, config) as [Queue];
      try {
        await again.schedule('minutely', { everyMs: 60_000, topic: 'ticks', catchUp });
        await sleep(300);
        const slots = await slotsOf(again, 'ticks');
        const all = [1, 2, 3, 4, 5].map((m) => start + m * 60_000);
        assert.deepEqual(slots, catchUp === 'all' ? all : catchUp === 'last' ? [all[4]] : []);
        const [info] = await again.schedules();
        assert.equal(info?.lastSlot.getTime(), start + 5 * 60_000, 'passed over the missed slots');
        assert.equal(info?.nextSlot?.getTime(), start + 6 * 60_000);
      } finally {
        await again.close();
      }
    });
  }

  for (const catchUp of ['none', 'last'] as const) {
    it(`every late slot (under 30 s) is published with catchUp ${catchUp}, not only the newest: a slow tick skips none`, async () => {
      vi.useFakeTimers({ toFake: ['Date'] });
      const start = Date.UTC(2030, 0, 1, 0, 0, 0);
      vi.setSystemTime(start);
      const driver = new MemQueueDriver();
      const config = createConfigStore(new MemoryConfigDriver());
      const [first] = nodes(1, driver, config) as [Queue];
      await first.schedule('secondly', { everyMs: 1_000, topic: 'ticks', catchUp });
      await first.close();
      // As a loaded node's tick that comes 3.5 s late, or a node taking over: three slots are late, none missed.
      vi.setSystemTime(start + 3_500);
      const [again] = nodes(1, driver, config) as [Queue];
      try {
        await again.schedule('secondly', { everyMs: 1_000, topic: 'ticks', catchUp });
        await sleep(300);
        assert.deepEqual(await slotsOf(again, 'ticks'), [start + 1_000, start + 2_000, start + 3_000]);
      } finally {
        await again.close();
      }
    });
  }

  it('a slot less than 30 s late is published even with catchUp none', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2030, 0, 1, 0, 0, 0);
    vi.setSystemTime(start);
    const config = createConfigStore(new MemoryConfigDriver());
    const driver = new MemQueueDriver();
    const [first] = nodes(1, driver, config) as [Queue];
    await first.schedule('minutely', { everyMs: 60_000, topic: 'ticks', catchUp: 'none' });
    await first.close();
    vi.setSystemTime(start + 60_000 + 10_000);
    const [again] = nodes(1, driver, config) as [Queue];
    try {
      await again.schedule('minutely', { everyMs: 60_000, topic: 'ticks', catchUp: 'none' });
      await sleep(300);
      assert.deepEqual(await slotsOf(again, 'ticks'), [start + 60_000]);
    } finally {
      await again.close();
    }
  });

  it('an update that keeps the timing keeps the place; one that changes it starts from now', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.UTC(2030, 0, 1, 0, 0, 0);
    vi.setSystemTime(start);
    const [q] = nodes(1) as [Queue];
    try {
      await q.schedule('job', { everyMs: 60_000, topic: 'a' });
      vi.setSystemTime(start + 10_000);
      await q.schedule('job', { everyMs: 60_000, topic: 'b', payload: 'new' });
      let [info] = await q.schedules();
      assert.equal(info?.topic, 'b');
      assert.equal(info?.lastSlot.getTime(), start);
      await q.schedule('job', { cron: '0 * * * *', timezone: 'Europe/Paris', topic: 'b' });
      [info] = await q.schedules();
      assert.equal(info?.cron, '0 * * * *');
      assert.equal(info?.lastSlot.getTime(), start + 10_000);
      assert.equal(info?.nextSlot?.getTime(), start + 3_600_000, 'the next whole hour (Paris is a whole number of hours from UTC)');
    } finally {
      await q.close();
    }
  });

  it('without a config store schedules are UNSUPPORTED', async () => {
    const q = createQueue(new MemQueueDriver());
    try {
      await assert.rejects(q.schedule('x', { everyMs: 1_000, topic: 't' }), (err: unknown) => (err as { code?: string }).code === 'UNSUPPORTED');
    } finally {
      await q.close();
    }
  });
});
