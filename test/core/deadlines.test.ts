import { describe, expect, it } from 'vitest';
import { BUCKET_MS, bucketWindowMs, callWithDeadline } from '../../src/core/deadlines.js';
import { rejectsWith } from '../../src/testing/index.js';
import { PortRuntime } from '../../src/core/runtime.js';
import { StowageError, type DriverBase } from '../../src/index.js';

/**
 * Starts one call through `start` whose driver answers only when told, closes `runtime` (drain time 5 s),
 * and checks that close waits for that call and no longer: close ends within 1 s of the answer only if no
 * earlier refused or failed call was left counted in flight.
 */
async function expectCloseWaitsFor(runtime: PortRuntime, start: (fn: () => Promise<number>) => Promise<number>): Promise<void> {
  let finish: (v: number) => void = () => undefined;
  const slow = start(() => new Promise<number>((resolve) => (finish = resolve)));
  let closed = false;
  const closing = runtime.close().then(() => (closed = true));
  await new Promise((r) => setTimeout(r, 30));
  expect(closed).toBe(false);
  const released = performance.now();
  finish(7);
  expect(await slow).toBe(7);
  await closing;
  expect(performance.now() - released).toBeLessThan(1000);
  expect(closed).toBe(true);
}

const hanging: DriverBase = { backend: 'hang', close: async () => undefined, ping: () => new Promise(() => undefined) };

describe('deadlines', () => {
  it('expires a call that has not left by its deadline and aborts the signal it was given', async () => {
    let given: AbortSignal | undefined;
    const started = performance.now();
    const call = callWithDeadline(30, undefined, 'hung', (signal) => {
      given = signal;
      return new Promise<never>(() => undefined);
    });
    const err = await rejectsWith(call, 'TIMEOUT');
    expect(performance.now() - started).toBeLessThan(30 + BUCKET_MS + 500);
    expect(err.message).toContain('hung');
    expect(given?.aborted).toBe(true);
    expect(StowageError.is(given?.reason, 'TIMEOUT')).toBe(true);
  });

  it('shares one signal among calls made one at a time within a long deadline\'s window', async () => {
    // A signal costs about 10 µs once a driver listens to it; calls made one after another, a few
    // milliseconds apart, must not each pay for one when their deadline is long.
    const signals: AbortSignal[] = [];
    const call = (timeoutMs: number): Promise<void> =>
      callWithDeadline(timeoutMs, undefined, 'one', async (signal) => {
        signals.push(signal);
      });
    for (let i = 0; i < 3; i++) {
      await call(10_000);
      await new Promise((r) => setTimeout(r, 8));
    }
    expect(bucketWindowMs(10_000)).toBe(50);
    expect(new Set(signals).size).toBe(1);
    // A short deadline keeps a short window, so it fires close to its time.
    signals.length = 0;
    for (let i = 0; i < 3; i++) {
      await call(1_000);
      await new Promise((r) => setTimeout(r, 8));
    }
    expect(bucketWindowMs(1_000)).toBe(BUCKET_MS);
    expect(new Set(signals).size).toBe(3);
  });

  it('does not expire a call that left in time', async () => {
    let given: AbortSignal | undefined;
    const call = callWithDeadline(40, undefined, 'quick', async (signal) => {
      given = signal;
      return 7;
    });
    expect(await call).toBe(7);
    expect(given?.aborted).toBe(false);
  });

  it('expires only the calls of a shared bucket that are still running', async () => {
    const a = callWithDeadline(50, undefined, 'a', async () => 'a');
    const b = callWithDeadline(50, undefined, 'b', () => new Promise<never>(() => undefined));
    expect(await a).toBe('a');
    await rejectsWith(b, 'TIMEOUT');
  });

  it('rejects a hung driver call with TIMEOUT and a caller abort with CANCELLED, each naming the operation', async () => {
    const runtime = new PortRuntime('config', hanging);
    const timedOut = await runtime.run('get', { timeoutMs: 20 }, (signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason)))).catch((e: unknown) => e);
    expect(StowageError.is(timedOut, 'TIMEOUT')).toBe(true);
    expect((timedOut as Error).message).toContain('config.get');
    const controller = new AbortController();
    const pending = runtime.run('list', { signal: controller.signal }, () => new Promise(() => undefined)).catch((e: unknown) => e);
    controller.abort();
    const cancelled = await pending;
    expect(StowageError.is(cancelled, 'CANCELLED')).toBe(true);
    expect((cancelled as Error).message).toContain('config.list');
  });

  it('gives a driver called with a caller signal a signal that aborts with either', async () => {
    const runtime = new PortRuntime('cache', hanging);
    const controller = new AbortController();
    let seen: AbortSignal | undefined;
    const pending = runtime.run('get', { signal: controller.signal, timeoutMs: 5000 }, (signal) => {
      seen = signal;
      return new Promise(() => undefined);
    }).catch(() => undefined);
    controller.abort();
    await pending;
    expect(seen?.aborted).toBe(true);
  });

  it('maps every failure of a run call through the driver, and settles even when the mapping throws', async () => {
    const mapped: DriverBase = { ...hanging, mapError: (err) => (err === 'boom' ? new StowageError('UNAVAILABLE', 'mapped boom') : undefined) };
    const runtime = new PortRuntime('config', mapped);
    const failed = await runtime.run('get', undefined, () => Promise.reject('boom')).catch((e: unknown) => e);
    expect(StowageError.is(failed, 'UNAVAILABLE')).toBe(true);
    const thrown = await runtime.run('get', undefined, () => {
      throw new Error('sync');
    }).catch((e: unknown) => e);
    expect(StowageError.is(thrown, 'INTERNAL')).toBe(true);
    const broken: DriverBase = {
      ...hanging,
      mapError: () => {
        throw new Error('mapping bug');
      },
    };
    const brokenRuntime = new PortRuntime('config', broken);
    const settled = await brokenRuntime.run('get', { timeoutMs: 1000 }, () => Promise.reject(new Error('x'))).then(
      () => 'resolved',
      (e: unknown) => (e as Error).message,
    );
    expect(settled).toBe('mapping bug');
    // Nothing is left counted in flight: close does not wait out its drain time.
    const started = performance.now();
    await brokenRuntime.close();
    expect(performance.now() - started).toBeLessThan(900);
  });

  it('counts run calls in flight until they settle: close waits for them, and not for those that already failed', async () => {
    const runtime = new PortRuntime('config', hanging, { drainMs: 5000 });
    const controller = new AbortController();
    controller.abort();
    // Refused before starting (aborted signal, bad options): never counted.
    await expect(runtime.run('get', { signal: controller.signal }, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'CANCELLED' });
    await expect(runtime.run('get', { timeoutMs: -1 }, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expectCloseWaitsFor(runtime, (fn) => runtime.run('get', undefined, fn));
    await expect(runtime.run('get', undefined, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('settles with what a driver returns even when it is not a promise, and rejects when it throws', async () => {
    const runtime = new PortRuntime('cache', hanging);
    expect(await runtime.run('get', undefined, () => 'plain' as unknown as Promise<string>)).toBe('plain');
    expect(await runtime.run('get', undefined, () => undefined as unknown as Promise<undefined>)).toBeUndefined();
    // A driver throwing synchronously: a rejection, never a throw out of run.
    let rejected: unknown;
    const pending = runtime.run('get', undefined, () => {
      throw new StowageError('UNAVAILABLE', 'down');
    });
    await pending.catch((e: unknown) => (rejected = e));
    expect(StowageError.is(rejected, 'UNAVAILABLE')).toBe(true);
    await runtime.close();
  });
});

describe('runWithin: calls the driver bounds itself', () => {
  /** A driver call that settles with `value` after `ms` — later than a deadline core would arm. */
  const after = <T>(ms: number, value: T): Promise<T> => new Promise((resolve) => setTimeout(() => resolve(value), ms));

  it('arms no deadline of its own when the call has no signal and a deadline at least the bound', async () => {
    const runtime = new PortRuntime('cache', hanging);
    // Under run(), a 40 ms deadline would fail this 120 ms call with TIMEOUT; the bound (40 ms) says the
    // driver settles it itself, so the driver's answer is taken.
    expect(await runtime.runWithin(40, 'get', { timeoutMs: 40 }, () => after(120, 'late'))).toBe('late');
    await runtime.close();
  });

  it('keeps core deadlines when the deadline is shorter than the bound, the caller gave a signal, or no bound is given', async () => {
    const runtime = new PortRuntime('cache', hanging);
    await expect(runtime.runWithin(500, 'get', { timeoutMs: 40 }, () => after(300, 'late'))).rejects.toMatchObject({ code: 'TIMEOUT' });
    await expect(runtime.runWithin(undefined, 'get', { timeoutMs: 40 }, () => after(300, 'late'))).rejects.toMatchObject({ code: 'TIMEOUT' });
    const controller = new AbortController();
    const cancelled = runtime.runWithin(40, 'get', { signal: controller.signal }, () => after(300, 'late'));
    setTimeout(() => controller.abort(), 20);
    await expect(cancelled).rejects.toMatchObject({ code: 'CANCELLED' });
    await runtime.close();
  });

  it('maps the driver failures, refuses bad options and calls after close, and counts calls in flight for close', async () => {
    const mapped: DriverBase = { ...hanging, mapError: (err) => (err === 'stalled' ? new StowageError('TIMEOUT', 'command timeout') : undefined) };
    const runtime = new PortRuntime('cache', mapped, { drainMs: 5000 });
    await expect(runtime.runWithin(40, 'get', undefined, () => Promise.reject('stalled'))).rejects.toMatchObject({ code: 'TIMEOUT' });
    const thrown = await runtime
      .runWithin(40, 'get', undefined, () => {
        throw new Error('sync');
      })
      .catch((e: unknown) => e);
    expect(StowageError.is(thrown, 'INTERNAL')).toBe(true);
    await expect(runtime.runWithin(40, 'get', { timeoutMs: -1 }, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expectCloseWaitsFor(runtime, (fn) => runtime.runWithin(40, 'get', undefined, fn));
    await expect(runtime.runWithin(40, 'get', undefined, () => Promise.resolve(1))).rejects.toMatchObject({ code: 'CLOSED' });
  });

  it('hands the driver the close signal, which aborts when the port closes', async () => {
    const runtime = new PortRuntime('cache', hanging);
    let seen: AbortSignal | undefined;
    await runtime.runWithin(40, 'get', undefined, (signal) => {
      seen = signal;
      return Promise.resolve(1);
    });
    expect(seen?.aborted).toBe(false);
    await runtime.close();
    expect(seen?.aborted).toBe(true);
  });
});
