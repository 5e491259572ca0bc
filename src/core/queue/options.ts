/**
 * The options every consuming form takes (`consume`, `process`, `processBatch`), checked once.
 *
 * @module
 */
import type { ConsumeOptions, RateLimit } from '../../ports/queue.js';
import { validateInt, validatePositiveInt } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';

const DEFAULT_ACK_WAIT_MS = 30_000;
const DEFAULT_MAX_DELIVER = 5;
/** The longest delay a timer takes (setTimeout's limit). */
export const MAX_TIMER_MS = 2_147_483_647;

/** An integer option in `[min, max]`, or `fallback` when it is not given. */
export function intOption(value: unknown, what: string, fallback: number, min: number, max: number): number {
  return value === undefined ? fallback : validateInt(value, what, { min, max });
}

/** Checks the handler form's `rateLimit` option. */
export function validateRateLimit(value: unknown): RateLimit | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'object' || value === null) throw invalid('rateLimit must be { max, perMs }');
  const { max, perMs } = value as Partial<RateLimit>;
  return {
    max: validatePositiveInt(max, 'rateLimit.max', { min: 1, max: 1_000_000 }),
    perMs: validatePositiveInt(perMs, 'rateLimit.perMs', { min: 1, max: MAX_TIMER_MS }),
  };
}

/** A consumer's options, checked and with their defaults. */
export interface ResolvedConsume {
  ackWaitMs: number;
  maxDeliver: number;
  prefetch: number;
  signal: AbortSignal | undefined;
}

/** Checks the options every consuming form takes. */
export function validateConsumeOptions(options: ConsumeOptions | undefined): ResolvedConsume {
  if (options !== undefined && (typeof options !== 'object' || options === null)) throw invalid('options must be an object');
  const signal = options?.signal;
  if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalid('signal must be an AbortSignal');
  return {
    ackWaitMs: intOption(options?.ackWaitMs, 'ackWaitMs', DEFAULT_ACK_WAIT_MS, 1, MAX_TIMER_MS),
    maxDeliver: intOption(options?.maxDeliver, 'maxDeliver', DEFAULT_MAX_DELIVER, 1, 10_000),
    prefetch: intOption(options?.prefetch, 'prefetch', 1, 1, 10_000),
    signal,
  };
}
