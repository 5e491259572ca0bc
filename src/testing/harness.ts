/**
 * What every contract suite needs from the test runner, so the suites run under vitest, jest, mocha or
 * `node:test` alike. Assertions use `node:assert/strict`.
 *
 * @module
 */
import assert from 'node:assert/strict';
import { StowageError, type StowageErrorCode } from '../ports/errors.js';

/** The test-runner functions a suite uses (vitest's and jest's `describe`/`it` fit as they are). */
export interface TestApi {
  /** Groups tests. */
  describe(name: string, fn: () => void): void;
  /**
   * Declares one test; `timeoutMs` is passed as the runner's third argument. The runner's test context (vitest,
   * `node:test`) arrives as `fn`'s first argument, and is used to report a test skipped.
   */
  it(name: string, fn: () => Promise<void> | void, timeoutMs?: number): void;
}

/** Options every contract suite takes. */
export interface ContractOptions<P> {
  /** The test runner's functions. */
  test: TestApi;
  /** Shown in the suite's title, e.g. `mem://` or `etcd://`. */
  name: string;
  /**
   * Returns a fresh, empty, open instance for one test (for a shared server: a unique prefix, database or
   * topic namespace). The suite closes it at the end of the test.
   */
  factory: () => Promise<P>;
}

/**
 * Asserts that `promise` rejects with a StowageError of one of `codes`, and returns it.
 */
export async function rejectsWith(promise: Promise<unknown>, ...codes: StowageErrorCode[]): Promise<StowageError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(StowageError.is(err), `expected a StowageError, got ${String(err)}`);
    assert.ok(codes.includes(err.code), `expected ${codes.join(' or ')}, got ${err.code}: ${err.message}`);
    return err;
  }
  assert.fail(`expected a rejection with ${codes.join(' or ')}, but it resolved`);
}

/**
 * Thrown by {@link skipUnless} inside a contract test: the test does not apply to this instance (a capability
 * it does not declare). {@link runnable} turns it into the runner's skip, so the report says *skipped* and why.
 */
export class SkipTest extends Error {
  /** `SkipTest`. */
  override readonly name = 'SkipTest';
}

/** Skips the running contract test with `reason` unless `condition` holds (see {@link runnable}). */
export function skipUnless(condition: boolean, reason: string): asserts condition {
  if (!condition) throw new SkipTest(reason);
}

/**
 * Wraps a test body for `it`: a {@link SkipTest} it throws marks the test skipped with its reason — through
 * vitest's `ctx.skip(reason)`, `node:test`'s `t.skip(reason)` (both passed as the first argument) or mocha's
 * `this.skip()`. Under a runner with none of these (jest) the test passes. The wrapper declares no parameter,
 * so jest does not take it for a callback-style test.
 */
export function runnable(fn: () => Promise<void>): (...args: unknown[]) => Promise<void> {
  return async function (this: unknown, ...args: unknown[]): Promise<void> {
    try {
      await fn();
    } catch (err) {
      if (!(err instanceof SkipTest)) throw err;
      const context = args[0] as { skip?: (reason?: string) => void } | undefined;
      const self = this as { skip?: () => void } | undefined;
      if (typeof context?.skip === 'function') context.skip(err.message);
      else if (typeof self?.skip === 'function') self.skip();
    }
  };
}

/** Anything with an async `close()`: every port object. */
export interface Closable {
  /** Releases the instance. */
  close(): Promise<void>;
}

/** Runs `fn` with a fresh instance from `factory` and closes the instance afterwards. */
export async function withInstance<P extends Closable>(
  factory: () => Promise<P>,
  fn: (instance: P) => Promise<void>,
): Promise<void> {
  const instance = await factory();
  try {
    await fn(instance);
  } finally {
    await instance.close();
  }
}

/** Resolves after `ms` milliseconds. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls `check` every `intervalMs` until it returns true or `timeoutMs` passes (then fails with `what`). */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000, intervalMs = 20): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await sleep(intervalMs);
  }
  assert.fail(`timed out after ${timeoutMs} ms waiting for: ${what}`);
}
