import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { metrics } from '@opentelemetry/api';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { metricsHandler, observeQueue } from '../../src/metrics/index.js';

const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

let server: Server;
let url: string;

beforeAll(async () => {
  const handler = metricsHandler();
  server = createServer((req, res) => (req.url === '/metrics' ? handler(req, res) : res.writeHead(404).end()));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/metrics`;
});
afterAll(async () => {
  await new Promise((resolve) => server.close(resolve));
  metrics.disable();
});

/** The value of one sample line of the Prometheus text whose labels include every one given. */
function sample(text: string, name: string, want: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (match === null || match[1] !== name) continue;
    const labels = Object.fromEntries([...(match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(want).every(([k, v]) => labels[k] === v)) return Number(match[3]);
  }
  return undefined;
}

describe('metrics', () => {
  it('counts calls, errors by code, durations, handler runs and queue gauges in the Prometheus text', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    const observation = observeQueue(stowage.queue);
    let release = (): void => undefined;
    const hold = new Promise<void>((resolve) => (release = resolve));
    try {
      for (let i = 0; i < 3; i++) await stowage.config.put(`app/k${i}`, i);
      await expect(stowage.config.put('app/k0', 'x', { ifRevision: 999 })).rejects.toMatchObject({ code: 'CONFLICT' });
      // An in-memory read takes the synchronous fast path unless observed: it must be counted all the same.
      expect((await stowage.config.get('app/k1'))?.value).toBe(1);
      for (let i = 0; i < 5; i++) await stowage.queue.publish('jobs', `m${i}`);
      let handled = 0;
      const done = new Promise<void>((resolve) => {
        stowage.queue.process('jobs', 'workers', async () => {
          if (++handled === 2) resolve();
          if (handled >= 2) await hold;
        });
      });
      await done;

      const response = await fetch(url);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toContain('text/plain; version=0.0.4');
      const text = await response.text();
      const config = { stowage_port: 'config', stowage_backend: stowage.config.backend };
      expect(sample(text, 'stowage_calls_total', { ...config, stowage_operation: 'put' })).toBe(4);
      expect(sample(text, 'stowage_call_errors_total', { ...config, stowage_operation: 'put', stowage_error_code: 'CONFLICT' })).toBe(1);
      expect(sample(text, 'stowage_call_duration_seconds_count', { ...config, stowage_operation: 'put' })).toBe(4);
      expect(sample(text, 'stowage_call_duration_seconds_bucket', { ...config, stowage_operation: 'put', le: '+Inf' })).toBe(4);
      expect(sample(text, 'stowage_calls_total', { ...config, stowage_operation: 'get' })).toBe(1);
      expect(sample(text, 'stowage_calls_total', { stowage_port: 'queue', stowage_operation: 'publish' })).toBe(5);
      // The first handler run finished; the second is held until the end.
      expect(sample(text, 'stowage_queue_handler_duration_seconds_count', { stowage_topic: 'jobs', stowage_group: 'workers', stowage_outcome: 'ok' })).toBe(1);
      expect(sample(text, 'stowage_queue_messages', { stowage_topic: 'jobs' })).toBe(5);
      expect(sample(text, 'stowage_queue_dead_letters', { stowage_topic: 'jobs' })).toBe(0);
      const group = { stowage_topic: 'jobs', stowage_group: 'workers' };
      expect(sample(text, 'stowage_queue_consumer_lag', group)).toBe(4);
      expect(sample(text, 'stowage_queue_pending', group)).toBeGreaterThanOrEqual(1);
      expect((sample(text, 'stowage_queue_pending', group) ?? 0) + (sample(text, 'stowage_queue_backlog', group) ?? 0)).toBe(4);
    } finally {
      observation.close();
      release();
      await stowage.close();
    }
  });

});
