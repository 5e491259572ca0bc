import { MeterProvider } from '@opentelemetry/sdk-metrics';
import { describe, expect, it } from 'vitest';
import { prometheusReader } from '../../src/metrics/index.js';

describe('Prometheus text', () => {
  it('escapes label values, names counters *_total, gauges as gauges and histograms with cumulative buckets', async () => {
    const reader = prometheusReader();
    const meter = new MeterProvider({ readers: [reader] }).getMeter('t');
    meter.createCounter('app.jobs').add(3, { 'job.kind': 'a"b\\c\nd' });
    meter.createUpDownCounter('app.in_flight').add(-2);
    const histogram = meter.createHistogram('app.wait', { unit: 's', advice: { explicitBucketBoundaries: [1, 10] } });
    for (const v of [0.5, 5, 50]) histogram.record(v);
    const text = await reader.text();
    expect(text).toContain('# TYPE app_jobs_total counter\n');
    expect(text).toContain('app_jobs_total{job_kind="a\\"b\\\\c\\nd"} 3\n');
    expect(text).toContain('# TYPE app_in_flight gauge\napp_in_flight -2\n');
    expect(text).toContain('# TYPE app_wait_seconds histogram\n');
    expect(text).toContain('app_wait_seconds_bucket{le="1"} 1\napp_wait_seconds_bucket{le="10"} 2\napp_wait_seconds_bucket{le="+Inf"} 3\n');
    expect(text).toContain('app_wait_seconds_sum 55.5\napp_wait_seconds_count 3\n');
  });
});
