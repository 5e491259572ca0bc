/**
 * Waiting that an abort ends: the two behaviours adapters need, on `node:timers/promises` (no timer or
 * listener is left behind either way).
 *
 * @module
 */
import { setTimeout as wait } from 'node:timers/promises';
import { StowageError } from '../ports/errors.js';

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
