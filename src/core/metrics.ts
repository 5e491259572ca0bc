/**
 * OpenTelemetry metrics of every port call and of the queue's handler form, through the API only: an
 * application that installs a MeterProvider (an SDK) gets them; without one nothing is recorded and no
 * instrument or attribute object is made.
 *
 * Instruments (attributes `stowage.port`, `stowage.backend`, `stowage.operation`):
 * - `stowage.calls` — counter of calls;
 * - `stowage.call.errors` — counter of failed calls, with `stowage.error_code` (the StowageError code);
 * - `stowage.call.duration` — histogram of call durations, in seconds;
 * - `stowage.queue.handler.duration` — histogram of handler durations (attributes `stowage.topic`,
 *   `stowage.group`, `stowage.outcome` = `ok` | `error`), in seconds.
 *
 * @module
 */
import { createNoopMeter, metrics, type Attributes, type Counter, type Histogram, type Meter, type MeterProvider } from '@opentelemetry/api';

/** Buckets for durations in seconds, from half a millisecond (an in-memory call) to ten seconds (the default deadline). */
export const DURATION_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

const NOOP_METER = createNoopMeter().constructor;

/** The instruments of one MeterProvider. */
interface Instruments {
  readonly meter: Meter;
  readonly calls: Counter;
  readonly errors: Counter;
  readonly duration: Histogram;
  readonly handlerDuration: Histogram;
}

let provider: MeterProvider | undefined;
let instruments: Instruments | undefined;

/**
 * The instruments of the installed MeterProvider, or undefined while none is installed. Checked per call
 * (one global lookup and an identity comparison) so a provider installed or replaced later is honoured.
 */
export function meters(): Instruments | undefined {
  const current = metrics.getMeterProvider();
  if (current !== provider) {
    provider = current;
    const meter = current.getMeter('stowage');
    // The API hands out a no-op meter while no SDK is installed; making instruments on it would be wasted.
    instruments =
      meter.constructor === NOOP_METER
        ? undefined
        : {
            meter,
            calls: meter.createCounter('stowage.calls', { description: 'Calls of a Stowage port operation' }),
            errors: meter.createCounter('stowage.call.errors', { description: 'Failed calls of a Stowage port operation, by error code' }),
            duration: meter.createHistogram('stowage.call.duration', {
              description: 'Duration of a Stowage port operation',
              unit: 's',
              advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
            }),
            handlerDuration: meter.createHistogram('stowage.queue.handler.duration', {
              description: 'Duration of a queue handler (the handler form)',
              unit: 's',
              advice: { explicitBucketBoundaries: DURATION_BUCKETS_S },
            }),
          };
  }
  return instruments;
}

/** Records one call: its count, its duration and, when it failed, its error code. */
export function recordCall(attributes: Attributes, elapsedMs: number, errorCode: string | undefined): void {
  const m = meters();
  if (m === undefined) return;
  m.calls.add(1, attributes);
  m.duration.record(elapsedMs / 1000, attributes);
  if (errorCode !== undefined) m.errors.add(1, { ...attributes, 'stowage.error_code': errorCode });
}

/** Records one run of a queue handler. */
export function recordHandler(topic: string, group: string, elapsedMs: number, failed: boolean): void {
  const m = meters();
  if (m === undefined) return;
  m.handlerDuration.record(elapsedMs / 1000, { 'stowage.topic': topic, 'stowage.group': group, 'stowage.outcome': failed ? 'error' : 'ok' });
}
