/**
 * What the tests that open an adapter's scheme directly (not through `createStowage`) share.
 */
import { expect } from 'vitest';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import { StowageError } from '../../src/ports/errors.js';

/** A logger that drops everything: the adapters' warnings are expected in these tests. */
export const quietLogger: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

/** What a scheme's `open` is given: no data folder, no environment, no logs, no other driver to open. */
export const openContext: OpenContext = { dataDir: '/nonexistent', env: {}, logger: quietLogger, openDriver: () => Promise.reject(new Error('not used')) };

/** A payload as UTF-8 text. */
export const text = (payload: Uint8Array): string => Buffer.from(payload).toString('utf8');

/** The outcome of a call: its value, or the code of the StowageError it failed with. */
export async function outcome<T>(call: Promise<T>): Promise<{ value: T } | { code: string }> {
  try {
    return { value: await call };
  } catch (err) {
    return { code: StowageError.is(err) ? err.code : `not a StowageError: ${String(err)}` };
  }
}

/**
 * What a frozen server must give: every call fails with TIMEOUT or UNAVAILABLE, all within `deadlineMs` (the
 * deadline the calls were given) and 1.5 s more for a loaded machine.
 */
export async function expectEachFailsInTime(deadlineMs: number, calls: readonly Promise<unknown>[]): Promise<void> {
  const started = Date.now();
  const results = await Promise.all(calls.map((call) => outcome(call)));
  for (const r of results) expect(r).toMatchObject({ code: expect.stringMatching(/^(TIMEOUT|UNAVAILABLE)$/) });
  expect(Date.now() - started).toBeLessThan(deadlineMs + 1_500);
}
