import { describe, expect, it } from 'vitest';
import { StowageError } from '../../src/ports/errors.js';
import { pause, sleep } from '../../src/driver/sleep.js';

describe('driver sleep and pause', () => {
  it('sleep waits the time it is given', async () => {
    const started = performance.now();
    await sleep(30);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('sleep rejects with the signal\'s reason when it aborts first, at once', async () => {
    const controller = new AbortController();
    const reason = new StowageError('TIMEOUT', 'deadline');
    const started = performance.now();
    setTimeout(() => controller.abort(reason), 10);
    await expect(sleep(10_000, controller.signal)).rejects.toBe(reason);
    expect(performance.now() - started).toBeLessThan(1000);
  });

  it('sleep rejects with CANCELLED when the reason is not an Error', async () => {
    const controller = new AbortController();
    controller.abort('stop');
    await expect(sleep(10_000, controller.signal)).rejects.toMatchObject({ code: 'CANCELLED' });
  });

  it('pause resolves early, without rejecting, when the signal aborts', async () => {
    const controller = new AbortController();
    const started = performance.now();
    setTimeout(() => controller.abort(new Error('x')), 10);
    await expect(pause(10_000, controller.signal)).resolves.toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
