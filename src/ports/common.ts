/**
 * Types shared by every port: JSON values, call options, health, lifecycle, and the base of every driver.
 *
 * @module
 */
import type { StowageError } from './errors.js';

/** A JSON scalar. */
export type JsonPrimitive = string | number | boolean | null;

/**
 * A value that survives `JSON.stringify` → `JSON.parse` unchanged: no `undefined`, functions, `NaN`,
 * `Infinity`, `BigInt`, `Date`, class instances or cycles. Core rejects anything else with INVALID_ARGUMENT.
 */
export type JsonValue = JsonPrimitive | JsonValue[] | { [key: string]: JsonValue };

/** A JSON object. */
export type JsonObject = { [key: string]: JsonValue };

/** The five ports. */
export type PortName = 'config' | 'secrets' | 'queue' | 'cache' | 'documents';

/**
 * Options every call accepts.
 *
 * Every call has a deadline: `timeoutMs` when given, otherwise the store's default (see each port's
 * `defaultTimeoutMs`). When the deadline passes the call rejects with TIMEOUT; when `signal` aborts it
 * rejects with CANCELLED — promptly, even if the backend never answers. A write that timed out or was
 * cancelled may or may not have been applied.
 */
export interface CallOptions {
  /** Cancels the call; the promise rejects with CANCELLED. */
  signal?: AbortSignal;
  /** Deadline for this call in milliseconds; the promise rejects with TIMEOUT after it. */
  timeoutMs?: number;
}

/** The result of `health()`: one real round-trip to the backend. */
export interface HealthReport {
  /** Whether the round-trip succeeded. */
  ok: boolean;
  /** The backend's scheme, e.g. `mem`, `etcd`, `file`. */
  backend: string;
  /** How long the round-trip took, in milliseconds. */
  latencyMs: number;
  /** The server's version, when the backend reports one. */
  serverVersion?: string;
  /** The failure, when `ok` is false. */
  error?: StowageError;
}

/**
 * What every port object has: a backend name, health, and an idempotent close.
 *
 * `close()` stops accepting calls (later calls reject with CLOSED), waits for calls in flight, then releases
 * the backend. `await using store = …` calls it through `[Symbol.asyncDispose]`.
 */
export interface Lifecycle extends AsyncDisposable {
  /** The scheme of the backend behind this port, e.g. `mem`, `file`, `etcd`. */
  readonly backend: string;
  /** One real round-trip to the backend. Never throws; failures are reported in the result. */
  health(options?: CallOptions): Promise<HealthReport>;
  /** Drains calls in flight and releases the backend. Idempotent. */
  close(): Promise<void>;
  /** Whether `close()` has been called. */
  readonly closed: boolean;
}

/** What a driver's `ping` learns. */
export interface PingResult {
  /** The server's version, when the backend reports one. */
  readonly serverVersion?: string;
}

/**
 * What every driver has. Drivers receive validated input and an `AbortSignal` that carries the call's
 * deadline; they may throw raw backend errors, which `mapError` (or core's generic mapping) turns into
 * {@link StowageError}s.
 */
export interface DriverBase {
  /** The scheme name, e.g. `etcd`. */
  readonly backend: string;
  /** Releases connections and timers. Called once by core, after calls in flight have drained. */
  close(): Promise<void>;
  /** One real round-trip; resolves with the server version when known. */
  ping(signal: AbortSignal): Promise<PingResult>;
  /**
   * Classifies a raw error thrown by this driver. Returns undefined to let core apply its generic mapping
   * (network errors → UNAVAILABLE, everything else → INTERNAL). Must strip credentials from the message.
   */
  mapError?(err: unknown): StowageError | undefined;
  /** The backend's own client, for what the port does not cover. */
  native?(): unknown;
}
