/**
 * Prometheus metrics for a service that uses Stowage, published as `stowage/metrics`. Needs the optional
 * peer dependency `@opentelemetry/sdk-metrics` (2.x).
 *
 * Stowage records its metrics through the OpenTelemetry API (calls, errors by code, durations, handler
 * durations; queue gauges with {@link observeQueue}); this module collects them and serves them as
 * Prometheus text from a route of the application's own HTTP server.
 *
 * @example
 * ```ts
 * import { createServer } from 'node:http';
 * import { metricsHandler, observeQueue } from 'stowage/metrics';
 *
 * const metrics = metricsHandler();           // installs a MeterProvider when the application has none
 * observeQueue(stowage.queue);                // backlog, pending, dead letters, lag per topic and group
 * createServer((req, res) => {
 *   if (req.url === '/metrics') return metrics(req, res);
 *   // … the application's routes
 * }).listen(9464);
 * ```
 *
 * @module
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { metrics } from '@opentelemetry/api';
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { StowageError } from '../ports/errors.js';
import { toPrometheusText } from './prometheus.js';

export { observeQueue, type ObserveQueueOptions, type QueueObservation } from '../core/queue/queue-metrics.js';
export { toPrometheusText } from './prometheus.js';

/** The content type of the Prometheus text format. */
export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** A MetricReader that collects when asked (a scrape) and renders the Prometheus text; see {@link prometheusReader}. */
export type PrometheusReader = MetricReader & {
  /** Collects now and renders the Prometheus text. */
  text(): Promise<string>;
};

/** A pull reader: nothing is buffered between scrapes, so there is nothing to flush or release. */
class PullReader extends MetricReader {
  async text(): Promise<string> {
    const { resourceMetrics } = await this.collect();
    return toPrometheusText(resourceMetrics);
  }

  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }

  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/**
 * A reader to add to the application's own MeterProvider (`new MeterProvider({ readers: [reader] })`),
 * then to pass to {@link metricsHandler} as `{ reader }`.
 */
export function prometheusReader(): PrometheusReader {
  return new PullReader();
}

/** A request handler serving the Prometheus text. */
export interface MetricsHandler {
  /** Answers GET and HEAD with the text of a fresh collection; other methods get 405. */
  (req: IncomingMessage, res: ServerResponse): void;
  /** The reader it collects from. */
  readonly reader: PrometheusReader;
}

/** Options of {@link metricsHandler}. */
export interface MetricsHandlerOptions {
  /**
   * The reader to serve, already added to the application's MeterProvider. Without it, a reader is made
   * and a MeterProvider holding it is installed globally — which fails (INVALID_ARGUMENT) when the
   * application installed one already: its readers are fixed, so add a {@link prometheusReader} to them.
   */
  reader?: PrometheusReader;
}

/** The reader this module installed, with its provider (undone by `metrics.disable()`). */
let installed: { reader: PrometheusReader; provider: MeterProvider } | undefined;

/**
 * A Node request handler (`(req, res)`) that answers GET and HEAD with the Prometheus text of every
 * OpenTelemetry metric the process records, Stowage's included. Mount it on a route of your own server.
 */
export function metricsHandler(options: MetricsHandlerOptions = {}): MetricsHandler {
  const reader = options.reader ?? installReader();
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    reader.text().then(
      (text) => {
        res.writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE, 'cache-control': 'no-store' });
        res.end(req.method === 'HEAD' ? undefined : text);
      },
      () => {
        res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics collection failed\n');
      },
    );
  };
  return Object.assign(handler, { reader });
}

/** The reader of the MeterProvider this module installed, made on the first call. */
function installReader(): PrometheusReader {
  if (installed !== undefined && metrics.getMeterProvider() === installed.provider) return installed.reader;
  const reader = prometheusReader();
  const provider = new MeterProvider({ readers: [reader] });
  if (!metrics.setGlobalMeterProvider(provider)) {
    throw new StowageError(
      'INVALID_ARGUMENT',
      'metricsHandler: an OpenTelemetry MeterProvider is installed already; add a PrometheusReader to its readers and pass it as { reader }',
    );
  }
  installed = { reader, provider };
  return reader;
}
