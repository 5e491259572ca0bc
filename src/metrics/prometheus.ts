/**
 * The Prometheus text exposition format (version 0.0.4) of what an OpenTelemetry SDK collected.
 *
 * Written here rather than taken from `@opentelemetry/exporter-prometheus`: that exporter is a MetricReader
 * with its own HTTP server and a request handler bound to it, and it pulls `@opentelemetry/resources` and
 * semantic conventions along; what Stowage needs is the text of one collection, served from the
 * application's own server or the console. The format is small and stable; this covers counters, gauges,
 * up-down counters and explicit-bucket histograms (exponential histograms are skipped: Prometheus' text
 * format has no counterpart).
 *
 * @module
 */
import { DataPointType, type MetricData, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { Attributes } from '@opentelemetry/api';

/** Units that Prometheus' conventions append to a metric's name. */
const UNIT_SUFFIX: Readonly<Record<string, string>> = { s: 'seconds', ms: 'milliseconds', By: 'bytes' };

/** A metric name Prometheus accepts: OpenTelemetry's dots and other characters become underscores. */
function metricName(data: MetricData): string {
  let name = data.descriptor.name.replace(/[^a-zA-Z0-9_:]/g, '_');
  if (/^[0-9]/.test(name)) name = `_${name}`;
  const unit = UNIT_SUFFIX[data.descriptor.unit];
  if (unit !== undefined && !name.endsWith(`_${unit}`)) name = `${name}_${unit}`;
  if (data.dataPointType === DataPointType.SUM && data.isMonotonic && !name.endsWith('_total')) name = `${name}_total`;
  return name;
}

function labelName(name: string): string {
  const cleaned = name.replace(/[^a-zA-Z0-9_]/g, '_');
  return /^[0-9]/.test(cleaned) ? `_${cleaned}` : cleaned;
}

function labelValue(value: unknown): string {
  const text = Array.isArray(value) ? JSON.stringify(value) : String(value);
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(attributes: Attributes, extra?: [string, string]): string {
  const parts: string[] = [];
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== undefined) parts.push(`${labelName(name)}="${labelValue(value)}"`);
  }
  if (extra !== undefined) parts.push(`${extra[0]}="${extra[1]}"`);
  return parts.length === 0 ? '' : `{${parts.join(',')}}`;
}

function number(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (value === Infinity) return '+Inf';
  if (value === -Infinity) return '-Inf';
  return String(value);
}

function help(text: string): string {
  return text.replace(/\\/g, '\\\\').replace(/\n/g, '\\n');
}

function serializeMetric(data: MetricData): string {
  const name = metricName(data);
  let type: string;
  const lines: string[] = [];
  switch (data.dataPointType) {
    case DataPointType.SUM:
      type = data.isMonotonic ? 'counter' : 'gauge';
      for (const point of data.dataPoints) lines.push(`${name}${labels(point.attributes)} ${number(point.value)}`);
      break;
    case DataPointType.GAUGE:
      type = 'gauge';
      for (const point of data.dataPoints) lines.push(`${name}${labels(point.attributes)} ${number(point.value)}`);
      break;
    case DataPointType.HISTOGRAM:
      type = 'histogram';
      for (const point of data.dataPoints) {
        const { boundaries, counts } = point.value.buckets;
        let cumulative = 0;
        boundaries.forEach((bound, i) => {
          cumulative += counts[i] ?? 0;
          lines.push(`${name}_bucket${labels(point.attributes, ['le', number(bound)])} ${cumulative}`);
        });
        lines.push(`${name}_bucket${labels(point.attributes, ['le', '+Inf'])} ${point.value.count}`);
        lines.push(`${name}_sum${labels(point.attributes)} ${number(point.value.sum ?? 0)}`);
        lines.push(`${name}_count${labels(point.attributes)} ${point.value.count}`);
      }
      break;
    default:
      return '';
  }
  const head = `${data.descriptor.description ? `# HELP ${name} ${help(data.descriptor.description)}\n` : ''}# TYPE ${name} ${type}\n`;
  return head + lines.map((line) => `${line}\n`).join('');
}

/** The text of one collection, in the Prometheus exposition format. */
export function toPrometheusText(collected: ResourceMetrics): string {
  let out = '';
  for (const scope of collected.scopeMetrics) {
    for (const metric of scope.metrics) out += serializeMetric(metric);
  }
  return out;
}
