/**
 * What `publish` and `publishMany` do before the driver stores a message: check it, add the reserved
 * headers (delay, ordering key), and number keyed messages when the group may span processes.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { CallOptions } from '../../ports/common.js';
import type { DriverMessage, PublishOptions, PublishResult } from '../../ports/queue.js';
import { assertWellFormed, quote, validateFlatKey, validateNonNegativeInt } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';
import { HEADER_KEY, HEADER_KEY_SEQ, HEADER_NOT_BEFORE, HEADER_VALUE_BAD, validateHeaders } from './headers.js';
import { keyNumberHeaders, type KeySequencer, type Reservation } from './key-turns.js';

/** The longest delay of a delayed message: a year. */
const MAX_DELAY_MS = 366 * 86_400_000;
/** The longest ordering key, in characters. */
const MAX_KEY = 256;

/**
 * The earliest delivery time given by `delayMs` or `notBefore` (ms since the epoch), or undefined when the
 * message is not delayed (no option, or a time already past).
 */
function notBeforeOption(options: Pick<PublishOptions, 'delayMs' | 'notBefore'> | undefined): number | undefined {
  const delayMs = options?.delayMs;
  const notBefore = options?.notBefore;
  if (delayMs !== undefined && notBefore !== undefined) throw invalid('give delayMs or notBefore, not both');
  if (delayMs !== undefined) {
    validateNonNegativeInt(delayMs, 'delayMs', MAX_DELAY_MS);
    return delayMs === 0 ? undefined : Date.now() + delayMs;
  }
  if (notBefore === undefined) return undefined;
  if (!(notBefore instanceof Date) || Number.isNaN(notBefore.getTime())) throw invalid('notBefore must be a valid Date');
  const at = notBefore.getTime();
  if (at - Date.now() > MAX_DELAY_MS) throw invalid(`notBefore must be at most ${MAX_DELAY_MS / 86_400_000} days ahead`);
  return at > Date.now() ? at : undefined;
}

/** With a sequencer: the messages with each keyed one numbered (one reservation per key for the whole call). */
export async function numberKeys(sequencer: KeySequencer | undefined, topic: string, messages: DriverMessage[], signal: AbortSignal): Promise<DriverMessage[]> {
  if (sequencer === undefined) return messages;
  const counts = new Map<string, number>();
  for (const m of messages) {
    const key = m.headers[HEADER_KEY];
    if (key !== undefined) counts.set(key, (counts.get(key) ?? 0) + 1);
  }
  if (counts.size === 0) return messages;
  // Keys are numbered independently of each other: their reservations go out together.
  const reserved = new Map<string, Reservation>(
    await Promise.all([...counts].map(async ([key, count]) => [key, await sequencer.reserve(topic, key, count, signal)] as const)),
  );
  const next = new Map<string, number>([...reserved].map(([key, r]) => [key, r.first]));
  return messages.map((m) => {
    const key = m.headers[HEADER_KEY];
    if (key === undefined) return m;
    const n = next.get(key) as number;
    next.set(key, n + 1);
    return { ...m, headers: { ...m.headers, ...keyNumberHeaders(reserved.get(key) as Reservation, n) } };
  });
}

/** Numbers of keyed messages that were duplicates (not stored) are given back, so that consumers do not wait for them. */
export async function giveBackDuplicates(
  sequencer: KeySequencer | undefined,
  topic: string,
  messages: readonly DriverMessage[],
  results: readonly PublishResult[],
  signal: AbortSignal,
): Promise<void> {
  if (sequencer === undefined) return;
  // Highest first: a run of duplicates at the end of a reservation goes back whole.
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as DriverMessage;
    const key = m.headers[HEADER_KEY];
    const n = Number(m.headers[HEADER_KEY_SEQ]);
    if (key !== undefined && results[i]?.duplicate === true && n > 0) await sequencer.giveBack(topic, key, n, signal);
  }
}

/**
 * Checks one message and returns what the driver stores: a copy of the payload, headers (reserved ones added), id.
 */
export function prepareMessage(
  topic: string,
  payload: Uint8Array | string,
  options: Omit<PublishOptions, keyof CallOptions> | undefined,
  maxPayloadBytes: number,
): DriverMessage {
  let bytes: Uint8Array;
  if (typeof payload === 'string') bytes = Buffer.from(assertWellFormed(payload, 'payload'), 'utf8');
  else if (payload instanceof Uint8Array) bytes = payload;
  else throw invalid(`payload must be a Uint8Array or a string, got ${payload === null ? 'null' : typeof payload}`);
  if (bytes.byteLength > maxPayloadBytes) {
    throw new StowageError(
      'RESOURCE_EXHAUSTED',
      `payload for topic ${quote(topic)} is ${bytes.byteLength} bytes; the limit is ${maxPayloadBytes}`,
      { details: { limit: maxPayloadBytes } },
    );
  }
  let headers = validateHeaders(options?.headers);
  const id = options?.id === undefined ? undefined : validateFlatKey(options.id, 'message id');
  const notBefore = notBeforeOption(options);
  const key = options?.key;
  if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > MAX_KEY || HEADER_VALUE_BAD.test(key))) {
    throw invalid(`key must be 1 to ${MAX_KEY} characters without control characters`);
  }
  if (notBefore !== undefined || key !== undefined) {
    const extra: Record<string, string> = { ...headers };
    if (notBefore !== undefined) extra[HEADER_NOT_BEFORE] = String(notBefore);
    if (key !== undefined) extra[HEADER_KEY] = key;
    headers = extra;
  }
  // Copy so that a caller reusing its buffer cannot change what is stored.
  return { payload: new Uint8Array(bytes), headers, id };
}
