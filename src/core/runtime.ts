/**
 * The machinery every port class shares: deadlines and cancellation, the closed state, draining, error
 * mapping and OpenTelemetry spans. One {@link PortRuntime} per port object.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { StowageError } from '../ports/errors.js';
import type { CallOptions, DriverBase, HealthReport, PortName } from '../ports/common.js';
import { toStowageError } from './errors.js';
import { validateCallOptions } from './validate.js';

/** Default deadline of a call when neither the call nor the profile sets one. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** How long `close()` waits for calls in flight before closing the driver anyway. */
export const DEFAULT_DRAIN_MS = 5_000;

const tracer = trace.getTracer('stowage');

/** Options of a {@link PortRuntime}. */
export interface RuntimeOptions {
  /** Deadline of calls that give none, in milliseconds. */
  defaultTimeoutMs?: number;
  /** How long `close()` waits for calls in flight. */
  drainMs?: number;
}

/**
 * Runs driver calls for one port object.
 *
 * `run()` rejects with CLOSED after `close()`, with CANCELLED when the caller's signal aborts and with
 * TIMEOUT when the deadline passes — at once, even if the driver never settles (its late result is
 * dropped). Every other failure goes through {@link toStowageError}.
 */
export class PortRuntime {
  readonly #port: PortName;
  readonly #driver: DriverBase;
  readonly #defaultTimeoutMs: number;
  readonly #drainMs: number;
  readonly #inFlight = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  /** Aborts when the port closes; long-running work (watches, consumers) listens to it. */
  readonly closeSignal: AbortSignal;
  readonly #closeController = new AbortController();

  /**
   * @param port - which port, for spans and messages
   * @param driver - the driver whose errors are mapped and which `close()` releases
   * @param options - deadlines
   */
  constructor(port: PortName, driver: DriverBase, options: RuntimeOptions = {}) {
    this.#port = port;
    this.#driver = driver;
    this.#defaultTimeoutMs = options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS;
    this.#drainMs = options.drainMs ?? DEFAULT_DRAIN_MS;
    this.closeSignal = this.#closeController.signal;
    // Every call or loader in flight listens for close; hundreds at once is normal, not a leak.
    setMaxListeners(0, this.closeSignal);
  }

  /** The driver's backend name. */
  get backend(): string {
    return this.#driver.backend;
  }

  /** Whether `close()` was called. */
  get closed(): boolean {
    return this.#closing !== undefined;
  }

  /** Throws CLOSED when the port is closed. */
  assertOpen(operation: string): void {
    if (this.#closing !== undefined) {
      throw new StowageError('CLOSED', `${this.#port} (${this.#driver.backend}): ${operation} called after close()`);
    }
  }

  /** Maps any error thrown by the driver for `operation`. */
  mapError(err: unknown, operation: string): StowageError {
    return toStowageError(err, {
      operation: `${this.#port}.${operation}`,
      backend: this.#driver.backend,
      mapError: this.#driver.mapError?.bind(this.#driver),
    });
  }

  /**
   * Runs `fn` with a signal that carries the call's deadline and cancellation, inside a span named
   * `stowage.<port>.<operation>`.
   */
  async run<T>(
    operation: string,
    options: CallOptions | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
    attributes?: Attributes,
  ): Promise<T> {
    this.assertOpen(operation);
    validateCallOptions(options);
    const span = tracer.startSpan(`stowage.${this.#port}.${operation}`, {
      attributes: { 'stowage.port': this.#port, 'stowage.backend': this.#driver.backend, ...attributes },
    });
    const task = this.#deadline(operation, options, fn);
    this.#inFlight.add(task);
    try {
      const result = await task;
      span.end();
      return result;
    } catch (err) {
      const error = this.mapError(err, operation);
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.code });
      span.setAttribute('stowage.error_code', error.code);
      span.end();
      throw error;
    } finally {
      this.#inFlight.delete(task);
    }
  }

  async #deadline<T>(operation: string, options: CallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    const callerSignal = options?.signal;
    const what = `${this.#port}.${operation} (${this.#driver.backend})`;
    if (callerSignal?.aborted) throw new StowageError('CANCELLED', `${what}: cancelled before it started`);
    const timeoutMs = options?.timeoutMs ?? this.#defaultTimeoutMs;
    const controller = new AbortController();
    let settle: ((err: StowageError) => void) | undefined;
    const stopped = new Promise<never>((_, reject) => {
      settle = reject;
    });
    const timer = setTimeout(() => {
      const err = new StowageError('TIMEOUT', `${what}: no answer within ${timeoutMs} ms`, { details: { timeoutMs } });
      controller.abort(err);
      settle?.(err);
    }, timeoutMs);
    const onAbort = (): void => {
      const err = new StowageError('CANCELLED', `${what}: cancelled`);
      controller.abort(err);
      settle?.(err);
    };
    callerSignal?.addEventListener('abort', onAbort, { once: true });
    try {
      const work = fn(controller.signal);
      // A driver that settles after the deadline must not cause an unhandled rejection.
      work.catch(() => undefined);
      return await Promise.race([work, stopped]);
    } finally {
      clearTimeout(timer);
      callerSignal?.removeEventListener('abort', onAbort);
    }
  }

  /** One round-trip to the backend, never throwing. */
  async health(options?: CallOptions): Promise<HealthReport> {
    const started = performance.now();
    try {
      const { serverVersion } = await this.run('health', options, (signal) => this.#driver.ping(signal));
      return { ok: true, backend: this.#driver.backend, latencyMs: performance.now() - started, serverVersion };
    } catch (err) {
      return {
        ok: false,
        backend: this.#driver.backend,
        latencyMs: performance.now() - started,
        error: StowageError.is(err) ? err : this.mapError(err, 'health'),
      };
    }
  }

  /**
   * Stops new calls, aborts {@link PortRuntime.closeSignal}, waits up to the drain time for calls in flight,
   * runs `beforeDriverClose`, then closes the driver. Idempotent: later calls return the same promise.
   */
  close(beforeDriverClose?: () => Promise<void>): Promise<void> {
    this.#closing ??= (async () => {
      this.#closeController.abort(new StowageError('CLOSED', `${this.#port} (${this.#driver.backend}) was closed`));
      if (this.#inFlight.size > 0) {
        let timer: NodeJS.Timeout | undefined;
        const limit = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, this.#drainMs);
        });
        await Promise.race([Promise.allSettled([...this.#inFlight]), limit]);
        clearTimeout(timer);
      }
      await beforeDriverClose?.();
      try {
        await this.#driver.close();
      } catch (err) {
        throw this.mapError(err, 'close');
      }
    })();
    return this.#closing;
  }
}
