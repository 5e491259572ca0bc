import { describe, expect, it } from 'vitest';
import { BUCKET_MS, joinDeadline } from '../../src/core/deadlines.js';
import { PortRuntime } from '../../src/core/runtime.js';
import { StowageError, type DriverBase } from '../../src/index.js';

const hanging: DriverBase = { backend: 'hang', close: async () => undefined, ping: () => new Promise(() => undefined) };

describe('deadlines', () => {
  it('expires a call that has not left by its deadline and aborts the signal it was given', async () => {
    let expired = false;
    const deadline = joinDeadline(30, () => {
      expired = true;
    });
    await new Promise((r) => setTimeout(r, 30 + BUCKET_MS + 40));
    expect(expired).toBe(true);
    expect(deadline.signal.aborted).toBe(true);
    expect(StowageError.is(deadline.signal.reason, 'TIMEOUT')).toBe(true);
  });

  it('does not expire a call that left in time', async () => {
    let expired = false;
    const deadline = joinDeadline(40, () => {
      expired = true;
    });
    deadline.leave();
    await new Promise((r) => setTimeout(r, 40 + BUCKET_MS + 40));
    expect(expired).toBe(false);
  });

  it('expires only the calls of a shared bucket that are still running', async () => {
    const fired: string[] = [];
    const a = joinDeadline(50, () => fired.push('a'));
    joinDeadline(50, () => fired.push('b'));
    a.leave();
    await new Promise((r) => setTimeout(r, 50 + BUCKET_MS + 40));
    expect(fired).toEqual(['b']);
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
});
