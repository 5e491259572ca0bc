/**
 * Waiting that an abort ends: the two behaviours adapters need, on `node:timers/promises` (no timer or
 * listener is left behind either way).
 *
 * @module
 */
import { setTimeout as wait } from 'node:timers/promises';
import { StowageError } from '../ports/errors.js';

/**
 * The first wait of a background loop's retries (a consumer subscribing again, a claim after a failure); each
 * next retry waits twice as long, up to {@link RETRY_MAX_MS}. Long enough not to hammer a server that is
 * restarting, short enough to resume within a fraction of a second once it is back.
 */
export const RETRY_MIN_MS = 100;

/** The longest wait between a background loop's retries (see {@link RETRY_MIN_MS}). */
export const RETRY_MAX_MS = 2_000;

/**
 * Waits `ms` milliseconds. When `signal` aborts first, rejects with its reason if that is an Error (the
 * caller's deadline or cancellation, as a StowageError) and with CANCELLED otherwise.
 */
export async function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await wait(ms, undefined, { signal });
  } catch (err) {
    if (signal?.aborted !== true) throw err;
    throw signal.reason instanceof Error ? signal.reason : new StowageError('CANCELLED', 'cancelled');
  }
}

/**
 * Waits `ms` milliseconds or until `signal` aborts, whichever comes first, and never rejects: for a retry
 * loop that checks the signal itself and decides what the abort means.
 */
export async function pause(ms: number, signal?: AbortSignal): Promise<void> {
  try {
    await wait(ms, undefined, { signal });
  } catch (err) {
    if (signal?.aborted !== true) throw err;
  }
}
