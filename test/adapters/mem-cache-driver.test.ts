import assert from 'node:assert/strict';
import { afterEach, describe, it, vi } from 'vitest';
import { MemoryCacheDriver } from '../../src/adapters/memory/cache-driver.js';
import { StowageError } from '../../src/ports/errors.js';

describe('mem:// cache driver', () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it('evicts the least recently used entry beyond maxEntries; a read counts as a use', async () => {
    const driver = new MemoryCacheDriver({ maxEntries: 3, maxBytes: 1 << 20 });
    driver.setSync('a', '1', undefined);
    driver.setSync('b', '2', undefined);
    driver.setSync('c', '3', undefined);
    driver.getSync('a');
    driver.setSync('d', '4', undefined);
    assert.deepEqual(await driver.getMany(['a', 'b', 'c', 'd']), ['1', undefined, '3', '4']);
    assert.equal(driver.size, 3);
  });

  it('keeps the bytes held under maxBytes and accounts for overwrites and deletes', async () => {
    const driver = new MemoryCacheDriver({ maxEntries: 1000, maxBytes: 1000 });
    for (let i = 0; i < 20; i++) driver.setSync(`k${i}`, 'x'.repeat(100), undefined);
    assert.ok(driver.bytes <= 1000, `${driver.bytes} bytes held`);
    assert.equal(driver.getSync('k19'), 'x'.repeat(100));
    assert.equal(driver.getSync('k0'), undefined);
    const before = driver.bytes;
    driver.setSync('k19', 'y', undefined);
    assert.equal(driver.bytes, before - 99 * 2);
    await driver.delete('k19');
    assert.equal(driver.bytes, before - (2 * ('k19'.length + 100) + 96));
  });

  it('refuses an entry larger than maxBytes with RESOURCE_EXHAUSTED and keeps the old one', () => {
    const driver = new MemoryCacheDriver({ maxEntries: 10, maxBytes: 1024 });
    driver.setSync('k', 'old', undefined);
    assert.throws(() => driver.setSync('k', 'x'.repeat(1024), undefined), (e) => StowageError.is(e, 'RESOURCE_EXHAUSTED'));
    assert.equal(driver.getSync('k'), 'old');
  });

  it('drops expired entries that nobody reads in its periodic sweep', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'Date'] });
    const driver = new MemoryCacheDriver({ maxEntries: 10_000, maxBytes: 1 << 26 });
    for (let i = 0; i < 5000; i++) driver.setSync(`k${i}`, 'v', 100);
    driver.setSync('forever', 'v', undefined);
    vi.advanceTimersByTime(5000);
    assert.equal(driver.size, 1);
    assert.equal(driver.getSync('forever'), 'v');
    await driver.close();
  });

  it('clearPrefix removes exactly the keys with that prefix', async () => {
    const driver = new MemoryCacheDriver({ maxEntries: 100, maxBytes: 1 << 20 });
    for (const k of [':a', ':b', 'ns:a', 'ns/x:a', 'nsx:a']) driver.setSync(k, '0|1', undefined);
    await driver.clearPrefix('ns:');
    assert.deepEqual(await driver.getMany([':a', ':b', 'ns:a', 'ns/x:a', 'nsx:a']), ['0|1', '0|1', undefined, '0|1', '0|1']);
  });
});
