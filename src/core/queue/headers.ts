/**
 * Message headers: Stowage's reserved names, and the checks and filters every path applies to headers.
 *
 * @module
 */
import type { Headers } from '../../ports/queue.js';
import { quote } from '../../driver/validate.js';
import { invalid } from '../../driver/errors.js';

/** The most headers a message may carry. */
export const MAX_HEADERS = 64;
/** The suffix of a topic's dead-letter topic in the driver (`orders` → `orders.dlq`). */
export const DLQ_SUFFIX = '.dlq';
/** Reserved header names: applications may not set any header starting with `stowage-`. */
export const RESERVED_HEADER_PREFIX = 'stowage-';
/** Reserved header: the group that dead-lettered a message. */
export const HEADER_DLQ_GROUP = 'stowage-dlq-group';
/** Reserved header: why a message was dead-lettered. */
export const HEADER_DLQ_REASON = 'stowage-dlq-reason';
/** Reserved header: the message of the error that made the last attempt fail (see {@link DeadLetter.error}). */
export const HEADER_DLQ_ERROR = 'stowage-dlq-error';
/** Reserved header: the `code` of the error that made the last attempt fail, when it had a string one. */
export const HEADER_DLQ_ERROR_CODE = 'stowage-dlq-error-code';
/** Reserved header: the sequence of a dead letter in its original topic. */
export const HEADER_ORIGINAL_SEQ = 'stowage-original-seq';
/** Reserved header: how many deliveries a dead letter had. */
export const HEADER_DELIVERY_COUNT = 'stowage-delivery-count';
/** Reserved header: the publisher's id of a dead-lettered or replayed message (the stored id is Stowage's). */
export const HEADER_ORIGINAL_ID = 'stowage-original-id';
/** Reserved header: the only group that should process a replayed message. */
export const HEADER_REPLAY_GROUP = 'stowage-replay-group';

const MAX_HEADER_NAME = 256;
const MAX_HEADER_VALUE = 8 * 1024;
/** The longest error message kept with a dead letter or logged. */
const MAX_ERROR_TEXT = 1024;
// RFC 7230 token characters: what every backend (NATS, HTTP-like framings) accepts as a header name.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
/** Characters refused in header values (and term reasons): control characters other than tab. */
// eslint-disable-next-line no-control-regex
export const HEADER_VALUE_BAD = /[\u0000-\u0008\u000a-\u001f\u007f]/;
const EMPTY_HEADERS: Headers = Object.freeze({});

/** An error as one safe line: its string `code` and its message, without control characters, bounded. */
export function describeError(err: unknown): { message: string; code: string | undefined } {
  let message: string;
  try {
    message = err instanceof Error ? err.message : typeof err === 'string' ? err : JSON.stringify(err) ?? String(err);
  } catch {
    message = Object.prototype.toString.call(err);
  }
  message = message.replace(new RegExp(HEADER_VALUE_BAD.source, 'g'), ' ').slice(0, MAX_ERROR_TEXT);
  const raw = typeof err === 'object' && err !== null ? (err as { code?: unknown }).code : undefined;
  const code = typeof raw === 'string' && raw.length > 0 ? raw.replace(new RegExp(HEADER_VALUE_BAD.source, 'g'), ' ').slice(0, 128) : undefined;
  return { message: message.length > 0 ? message : '(no message)', code };
}

/** Whether a header name is one of Stowage's reserved `stowage-` names (compared without case). */
export function isReserved(name: string): boolean {
  return name.toLowerCase().startsWith(RESERVED_HEADER_PREFIX);
}

/** The headers an application sees: the stored ones without Stowage's reserved ones. */
export function userHeaders(headers: Headers): Headers {
  let empty = true;
  for (const _ in headers) {
    empty = false;
    break;
  }
  if (empty) return EMPTY_HEADERS;
  const out: Record<string, string> = {};
  for (const [name, value] of Object.entries(headers)) if (!isReserved(name)) out[name] = value;
  return Object.freeze(out);
}

/**
 * Checks application headers (or, with `allowReserved`, a copied message's stored ones) and returns them as a
 * plain object; INVALID_ARGUMENT names the first bad one.
 */
export function validateHeaders(headers: unknown, { allowReserved = false } = {}): Headers {
  if (headers === undefined) return {};
  if (typeof headers !== 'object' || headers === null || Array.isArray(headers)) {
    throw invalid('headers must be an object of string values');
  }
  const entries = Object.entries(headers);
  if (entries.length > MAX_HEADERS) throw invalid(`a message may carry at most ${MAX_HEADERS} headers, got ${entries.length}`);
  const out: Record<string, string> = {};
  for (const [name, value] of entries) {
    if (name.length === 0 || name.length > MAX_HEADER_NAME || !HEADER_NAME.test(name)) {
      throw invalid(`header name ${quote(name)} must be 1 to ${MAX_HEADER_NAME} token characters (letters, digits, !#$%&'*+.^_\`|~-)`);
    }
    // An own "__proto__" key would be dropped (or change the prototype) wherever headers are copied into a
    // plain object, in Stowage or in the application: refused rather than silently lost.
    if (name === '__proto__') throw invalid('header name "__proto__" is not allowed');
    if (isReserved(name) && !allowReserved) throw invalid(`header name ${quote(name)} is reserved (names starting with "${RESERVED_HEADER_PREFIX}" belong to Stowage)`);
    if (typeof value !== 'string') throw invalid(`header ${quote(name)} must have a string value, got ${typeof value}`);
    if (HEADER_VALUE_BAD.test(value)) throw invalid(`header ${quote(name)} has a control character in its value`);
    if (Buffer.byteLength(value, 'utf8') > MAX_HEADER_VALUE) throw invalid(`header ${quote(name)} is longer than ${MAX_HEADER_VALUE} bytes`);
    out[name] = value;
  }
  return out;
}

/** Reserved header: a delayed message's earliest delivery time, in milliseconds since the epoch. */
export const HEADER_NOT_BEFORE = 'stowage-not-before';
/** Reserved header: the message's ordering key. */
export const HEADER_KEY = 'stowage-key';
/**
 * Reserved header: the message's place among the messages of its ordering key in its topic (1, 2, 3, …),
 * given at publish by a queue whose consumers may live in several processes (see key-turns.ts).
 */
export const HEADER_KEY_SEQ = 'stowage-key-seq';

/**
 * Reserved header, on the first message of a key numbered after the key's entries were pruned: every
 * earlier message of the key has a key sequence at or below it (see key-turns.ts).
 */
export const HEADER_KEY_BASE = 'stowage-key-base';

function counter(raw: string | undefined, min: number): number | undefined {
  if (raw === undefined) return undefined;
  const n = Number(raw);
  return Number.isSafeInteger(n) && n >= min ? n : undefined;
}

/** A stored message's key sequence (see {@link HEADER_KEY_SEQ}); undefined when it has none. */
export function keySeqOf(headers: Headers): number | undefined {
  return counter(headers[HEADER_KEY_SEQ], 1);
}

/** A stored message's key base (see {@link HEADER_KEY_BASE}); undefined when it has none. */
export function keyBaseOf(headers: Headers): number | undefined {
  return counter(headers[HEADER_KEY_BASE], 0);
}

/** The earliest delivery time of a stored message (0 when it is not delayed, or the header is not a time). */
export function notBeforeOf(headers: Headers): number {
  const raw = headers[HEADER_NOT_BEFORE];
  if (raw === undefined) return 0;
  const at = Number(raw);
  return Number.isSafeInteger(at) ? at : 0;
}
