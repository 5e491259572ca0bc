/**
 * W3C trace context through messages: `publish` stores the active trace context (`traceparent`,
 * `tracestate`) and baggage in reserved headers, and the handler form runs each handler in a span that is a
 * child of that context, so one trace goes from the publisher to every group's handler, on every adapter
 * (it is done here, in core, over headers every driver stores).
 *
 * Child rather than only linked: the issue this answers is "one trace from publish to handler", and a
 * handler span with a link but a fresh trace id shows up as a separate trace in most backends. A message
 * handled by several groups gives several children of the same publish span, which is what happened.
 *
 * The W3C formats are written here with the OpenTelemetry API alone (no SDK, no propagator package in the
 * core's dependencies), and always W3C whatever propagator the application registered: the headers are
 * Stowage's own, read back only by Stowage.
 *
 * @module
 */
import {
  context,
  createTraceState,
  isSpanContextValid,
  propagation,
  SpanKind,
  SpanStatusCode,
  trace,
  TraceFlags,
  baggageEntryMetadataFromString,
  type BaggageEntry,
  type Context,
  type SpanContext,
} from '@opentelemetry/api';
import type { Delivery, Headers } from '../../ports/queue.js';
import { recordHandler } from '../metrics.js';
import { tracing } from '../runtime.js';

/** Reserved header: the publisher's W3C `traceparent`. */
export const HEADER_TRACEPARENT = 'stowage-traceparent';
/** Reserved header: the publisher's W3C `tracestate`. */
export const HEADER_TRACESTATE = 'stowage-tracestate';
/** Reserved header: the publisher's W3C `baggage`. */
export const HEADER_BAGGAGE = 'stowage-baggage';

/** The W3C limit of a baggage header; longer baggage is not carried (as a propagator would drop it). */
const MAX_BAGGAGE_BYTES = 8192;
const TRACEPARENT = /^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/;

/**
 * `headers` plus the active context's trace headers, or `headers` itself when the active context has no
 * valid span context and no baggage (nothing is allocated then: this runs on every publish).
 */
export function withTraceContext(headers: Headers): Headers {
  const active = context.active();
  const span = trace.getSpanContext(active);
  const baggage = propagation.getBaggage(active);
  const traced = span !== undefined && isSpanContextValid(span);
  if (!traced && (baggage === undefined || baggage.getAllEntries().length === 0)) return headers;
  const out: Record<string, string> = { ...headers };
  if (traced) {
    out[HEADER_TRACEPARENT] = `00-${span.traceId}-${span.spanId}-0${(span.traceFlags & TraceFlags.SAMPLED).toString(16)}`;
    const state = span.traceState?.serialize();
    if (state !== undefined && state.length > 0) out[HEADER_TRACESTATE] = state;
  }
  if (baggage !== undefined) {
    const encoded = encodeBaggage(baggage.getAllEntries());
    if (encoded.length > 0) out[HEADER_BAGGAGE] = encoded;
  }
  return out;
}

/** The trace headers of a stored message, to carry them onto a dead-lettered or replayed copy. */
export function traceHeaders(stored: Headers): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of [HEADER_TRACEPARENT, HEADER_TRACESTATE, HEADER_BAGGAGE]) {
    const value = stored[name];
    if (value !== undefined) out[name] = value;
  }
  return out;
}

/**
 * The context a message was published in, over `base`: its remote span context and its baggage. A
 * malformed header is ignored (a message is never refused for its trace headers).
 */
export function messageContext(stored: Headers, base: Context = context.active()): Context {
  let ctx = base;
  const parent = parseTraceparent(stored[HEADER_TRACEPARENT], stored[HEADER_TRACESTATE]);
  if (parent !== undefined) ctx = trace.setSpanContext(ctx, parent);
  const baggage = stored[HEADER_BAGGAGE];
  if (baggage !== undefined) {
    const entries = decodeBaggage(baggage);
    if (entries.length > 0) ctx = propagation.setBaggage(ctx, propagation.createBaggage(Object.fromEntries(entries)));
  }
  return ctx;
}

/**
 * The context a delivery's message was published in (its publisher's span as a remote parent, and its
 * baggage), for the iterator form: `process()` runs handlers in it by itself; a loop over `consume()` does
 * it with this.
 *
 * @example
 * ```ts
 * for await (const delivery of queue.consume('jobs', 'workers')) {
 *   await context.with(deliveryContext(delivery), () => handle(delivery));
 *   await delivery.ack();
 * }
 * ```
 */
export function deliveryContext(delivery: Delivery): Context {
  // Core's deliveries keep the stored headers (the trace headers are reserved, so not in `headers`).
  const stored = (delivery as Partial<HandledMessage>).storedHeaders;
  return stored === undefined ? context.active() : messageContext(stored);
}

/** What the handler form knows of the delivery it runs a handler for. */
export interface HandledMessage {
  readonly topic: string;
  readonly group: string;
  readonly seq: number;
  readonly deliveryCount: number;
  /** The headers as stored, reserved ones included. */
  readonly storedHeaders: Headers;
}

/**
 * Runs a handler inside the message's context: while tracing, in a consumer span `stowage.queue.process`
 * that is a child of the publisher's span; otherwise in the publisher's context (so baggage and the
 * remote parent reach whatever the handler calls). Records the handler's duration when metered.
 */
export async function runHandler(message: HandledMessage, handler: () => Promise<void>): Promise<void> {
  const stored = message.storedHeaders;
  const carried = stored[HEADER_TRACEPARENT] !== undefined || stored[HEADER_BAGGAGE] !== undefined;
  const started = performance.now();
  let failed = false;
  try {
    if (!tracing()) {
      await (carried ? context.with(messageContext(stored), handler) : handler());
      return;
    }
    const parent = carried ? messageContext(stored) : context.active();
    const span = trace.getTracer('stowage').startSpan(
      'stowage.queue.process',
      {
        kind: SpanKind.CONSUMER,
        attributes: {
          'stowage.port': 'queue',
          'stowage.topic': message.topic,
          'stowage.group': message.group,
          'messaging.operation.type': 'process',
          'messaging.destination.name': message.topic,
          'messaging.consumer.group.name': message.group,
          'stowage.seq': message.seq,
          'messaging.message.delivery_count': message.deliveryCount,
        },
      },
      parent,
    );
    try {
      await context.with(trace.setSpan(parent, span), handler);
    } catch (err) {
      // The error's name only: an application's message may carry data that does not belong in a trace.
      span.setStatus({ code: SpanStatusCode.ERROR, message: err instanceof Error ? err.name : typeof err });
      throw err;
    } finally {
      span.end();
    }
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    recordHandler(message.topic, message.group, performance.now() - started, failed);
  }
}

function parseTraceparent(value: string | undefined, state: string | undefined): SpanContext | undefined {
  if (value === undefined) return undefined;
  const match = TRACEPARENT.exec(value);
  if (match === null) return undefined;
  const parsed: SpanContext = {
    traceId: match[1] as string,
    spanId: match[2] as string,
    traceFlags: Number.parseInt(match[3] as string, 16) & TraceFlags.SAMPLED,
    isRemote: true,
  };
  if (!isSpanContextValid(parsed)) return undefined;
  if (state !== undefined && state.length > 0) parsed.traceState = createTraceState(state);
  return parsed;
}

/** W3C baggage: `key=value;metadata` members joined by commas, keys and values percent-encoded. */
function encodeBaggage(entries: ReadonlyArray<[string, BaggageEntry]>): string {
  let out = '';
  for (const [key, entry] of entries) {
    const metadata = entry.metadata?.toString();
    const member = `${encodeURIComponent(key)}=${encodeURIComponent(entry.value)}${metadata ? `;${metadata}` : ''}`;
    const next = out.length === 0 ? member : `${out},${member}`;
    if (Buffer.byteLength(next, 'utf8') > MAX_BAGGAGE_BYTES) break;
    out = next;
  }
  return out;
}

function decodeBaggage(value: string): Array<[string, BaggageEntry]> {
  const entries: Array<[string, BaggageEntry]> = [];
  for (const member of value.split(',')) {
    const [pair = '', ...properties] = member.split(';');
    const eq = pair.indexOf('=');
    if (eq <= 0) continue;
    try {
      const key = decodeURIComponent(pair.slice(0, eq).trim());
      const entry: BaggageEntry = { value: decodeURIComponent(pair.slice(eq + 1).trim()) };
      if (properties.length > 0) entry.metadata = baggageEntryMetadataFromString(properties.join(';'));
      entries.push([key, entry]);
    } catch {
      // A member that is not valid percent-encoding is dropped, as a W3C propagator does.
    }
  }
  return entries;
}
