/**
 * The machinery every port class shares: deadlines and cancellation, the closed state, draining, error
 * mapping, OpenTelemetry spans and metrics. One {@link PortRuntime} per port object.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { context, ProxyTracerProvider, SpanStatusCode, trace, type Attributes } from '@opentelemetry/api';
import { StowageError } from '../ports/errors.js';
import type { CallOptions, DriverBase, HealthReport, PortName } from '../ports/common.js';
import { callWithDeadline, type CallObserver } from './deadlines.js';
import { toStowageError } from '../driver/errors.js';
import { validateCallOptions } from '../driver/validate.js';
import { meters, recordCall } from './metrics.js';

/** Default deadline of a call when neither the call nor the profile sets one. */
export const DEFAULT_TIMEOUT_MS = 10_000;
/** How long `close()` waits for calls in flight before closing the driver anyway. */
export const DEFAULT_DRAIN_MS = 5_000;

/** The provider the API falls back to while no SDK is installed. */
const NOOP_PROVIDER = new ProxyTracerProvider().getDelegate();

/**
 * Whether an OpenTelemetry SDK is installed. Checked per call (cheap) so an SDK installed after Stowage was
 * imported is honoured; without one, no span object is made at all.
 */
export function tracing(): boolean {
  const provider = trace.getTracerProvider();
  return !(provider instanceof ProxyTracerProvider) || provider.getDelegate() !== NOOP_PROVIDER;
}

/** The call options every port shares: deadlines, draining on close. */
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
  #inFlight = 0;
  #drained: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  /** Aborts when the port closes; long-running work (watches, consumers) listens to it. */
  readonly closeSignal: AbortSignal;
  readonly #closeController = new AbortController();
  readonly #attributes: Attributes;

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
    this.#attributes = Object.freeze({ 'stowage.port': port, 'stowage.backend': driver.backend });
    // Every call or loader in flight listens for close; hundreds at once is normal, not a leak.
    setMaxListeners(0, this.closeSignal);
  }

  /** The driver's backend name. */
  get backend(): string {
    return this.#driver.backend;
  }

  /**
   * Whether calls are being observed (an OpenTelemetry tracer or meter provider is installed). Fast paths
   * that skip {@link run} for synchronous in-process reads take it only while this is false, so that an
   * observed call always has its span and is always counted.
   */
  get traced(): boolean {
    return tracing() || meters() !== undefined;
  }

  /**
   * What {@link run} checks before calling a driver, for a synchronous fast path that does not go through
   * it: the port is open, the options are well formed and the caller's signal has not aborted.
   */
  checkSyncCall(operation: string, options: CallOptions | undefined): void {
    this.assertOpen(operation);
    validateCallOptions(options);
    if (options?.signal?.aborted) throw new StowageError('CANCELLED', `${this.#describe(operation)}: cancelled before it started`);
  }

  /**
   * Runs a synchronous in-process call (a driver's `getSync`, `setSync`) without a deadline timer: it
   * cannot hang, and it has nothing to drain. Checks what {@link run} checks first ({@link checkSyncCall});
   * a failure is mapped as in {@link run}. Callers take this path only while {@link traced} is false, so a
   * traced call always has its span.
   */
  runSync<T>(operation: string, options: CallOptions | undefined, fn: () => T): T {
    this.checkSyncCall(operation, options);
    try {
      return fn();
    } catch (err) {
      throw this.mapError(err, operation);
    }
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

  /** Maps the errors of calls run untraced and counts them out (see {@link run}). */
  readonly #observer: CallObserver = {
    mapError: (err, operation) => this.mapError(err, operation),
    settled: () => this.#countOut(),
  };

  /**
   * Runs `fn` with a signal that carries the call's deadline and cancellation, inside a span named
   * `stowage.<port>.<operation>` while tracing (the span is the active context while `fn` starts, so what
   * it records — a message's trace headers — names it) and counted while metered (see metrics.ts). Every
   * failure is a StowageError (mapped by the driver). Unobserved (the hot path of every port), the call's
   * own deadline promise is returned: no promise wraps it.
   */
  run<T>(
    operation: string,
    options: CallOptions | undefined,
    fn: (signal: AbortSignal) => Promise<T>,
    attributes?: Attributes,
  ): Promise<T> {
    if (tracing() || meters() !== undefined) return this.#runObserved(operation, options, fn, attributes);
    const refused = this.#refusal(operation, options);
    if (refused !== undefined) return refused;
    this.#inFlight++;
    return callWithDeadline(options?.timeoutMs ?? this.#defaultTimeoutMs, options?.signal, this.#describe(operation), fn, this.#observer, operation);
  }

  /**
   * Like {@link run}, for a call that the driver itself settles within `boundMs` (a driver that enforces a
   * timeout of its own on every request, such as a client-side command timeout): when `boundMs` is given,
   * the call has no caller signal and its deadline is at least `boundMs`, the call cannot outlive its
   * deadline, so none is armed — the driver's promise is returned with the call counted in flight (for
   * `close()`) and its error mapped. Otherwise, and while tracing, it is {@link run}. `fn` receives the
   * close signal then.
   */
  runWithin<T>(boundMs: number | undefined, operation: string, options: CallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    if (boundMs === undefined || options?.signal !== undefined || (options?.timeoutMs ?? this.#defaultTimeoutMs) < boundMs || this.traced) {
      return this.run(operation, options, fn);
    }
    const refused = this.#refusal(operation, options);
    if (refused !== undefined) return refused;
    this.#inFlight++;
    const fail = (err: unknown): never => {
      this.#countOut();
      throw this.mapError(err, operation);
    };
    let work: Promise<T>;
    try {
      work = fn(this.closeSignal);
    } catch (err) {
      work = Promise.reject(err);
    }
    // `Promise.resolve` returns a native promise as it is; it is there for a driver returning a plain value.
    return Promise.resolve(work).then(this.#settledWith, fail);
  }

  /** The rejection of a call refused before it starts (port closed, malformed options); undefined if it may start. */
  #refusal(operation: string, options: CallOptions | undefined): Promise<never> | undefined {
    try {
      this.assertOpen(operation);
      validateCallOptions(options);
      return undefined;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /** Counts a call out of flight; the last one out releases a `close()` waiting for the drain. */
  #countOut(): void {
    if (--this.#inFlight === 0) this.#drained?.();
  }

  /** Counts a call out of flight and passes its value on (one function for every call: nothing made per call). */
  readonly #settledWith = <T>(value: T): T => {
    this.#countOut();
    return value;
  };

  async #runObserved<T>(operation: string, options: CallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>, attributes: Attributes | undefined): Promise<T> {
    const started = performance.now();
    try {
      this.assertOpen(operation);
      validateCallOptions(options);
    } catch (err) {
      recordCall(this.#metricAttributes(operation), performance.now() - started, StowageError.is(err) ? err.code : 'INTERNAL');
      throw err;
    }
    // The tracer is asked for per traced call: a tracer taken once keeps the provider of that moment, and an
    // application may replace its provider (or disable and set one again).
    const span = tracing()
      ? trace.getTracer('stowage').startSpan(`stowage.${this.#port}.${operation}`, {
          attributes: attributes === undefined ? this.#attributes : { ...this.#attributes, ...attributes },
        })
      : undefined;
    this.#inFlight++;
    try {
      const result = await (span === undefined
        ? this.#deadline(operation, options, fn)
        : context.with(trace.setSpan(context.active(), span), () => this.#deadline(operation, options, fn)));
      span?.end();
      recordCall(this.#metricAttributes(operation), performance.now() - started, undefined);
      return result;
    } catch (err) {
      const error = this.mapError(err, operation);
      span?.setStatus({ code: SpanStatusCode.ERROR, message: error.code });
      span?.setAttribute('stowage.error_code', error.code);
      span?.end();
      recordCall(this.#metricAttributes(operation), performance.now() - started, error.code);
      throw error;
    } finally {
      this.#countOut();
    }
  }

  /** The metric attributes of an operation, made once per operation (see {@link #describe}). */
  readonly #metricLabels = new Map<string, Attributes>();

  #metricAttributes(operation: string): Attributes {
    let attributes = this.#metricLabels.get(operation);
    if (attributes === undefined) {
      attributes = Object.freeze({ ...this.#attributes, 'stowage.operation': operation });
      if (this.#metricLabels.size < 64) this.#metricLabels.set(operation, attributes);
    }
    return attributes;
  }

  /** `port.operation (backend)` by operation, made once: a call names itself in errors without building it. */
  readonly #labels = new Map<string, string>();

  #describe(operation: string): string {
    let label = this.#labels.get(operation);
    if (label === undefined) {
      label = `${this.#port}.${operation} (${this.#driver.backend})`;
      // Operations are a port's fixed method names; the bound only guards against a caller inventing more.
      if (this.#labels.size < 64) this.#labels.set(operation, label);
    }
    return label;
  }

  /**
   * Settles with the driver's result, or rejects with TIMEOUT / CANCELLED as soon as the deadline passes
   * or the caller aborts, whichever comes first (a late result is dropped). One promise and one entry in
   * a shared deadline lane per call: this is the hot path of every port.
   */
  #deadline<T>(operation: string, options: CallOptions | undefined, fn: (signal: AbortSignal) => Promise<T>): Promise<T> {
    return callWithDeadline(options?.timeoutMs ?? this.#defaultTimeoutMs, options?.signal, this.#describe(operation), fn);
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
      if (this.#inFlight > 0) {
        let timer: NodeJS.Timeout | undefined;
        await new Promise<void>((resolve) => {
          this.#drained = resolve;
          timer = setTimeout(resolve, this.#drainMs);
        });
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
