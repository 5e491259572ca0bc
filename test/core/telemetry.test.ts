import { trace, type Span, type Tracer, type TracerProvider } from '@opentelemetry/api';
import { afterEach, describe, expect, it } from 'vitest';
import { PortRuntime } from '../../src/core/runtime.js';
import { createStowage } from '../../src/index.js';

const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

/** A tracer provider that records span names and statuses, standing in for an OpenTelemetry SDK. */
function recordingProvider(names: string[]): TracerProvider {
  const tracer = {
    startSpan(name: string) {
      names.push(name);
      const span = { end: () => undefined, setStatus: () => span, setAttribute: () => span } as unknown as Span;
      return span;
    },
  } as unknown as Tracer;
  return { getTracer: () => tracer };
}

describe('OpenTelemetry', () => {
  afterEach(() => trace.disable());

  it('reports each operation as a span once an application installs a tracer provider', async () => {
    const names: string[] = [];
    trace.setGlobalTracerProvider(recordingProvider(names));
    const stowage = await createStowage(MEM, { env: {} });
    await stowage.config.put('a/b', 1);
    await stowage.queue.publish('jobs', 'x');
    await stowage.close();
    expect(names).toContain('stowage.config.put');
    expect(names).toContain('stowage.queue.publish');
  });

  it('gives in-memory reads and writes (the synchronous fast path) a span while traced', async () => {
    const names: string[] = [];
    trace.setGlobalTracerProvider(recordingProvider(names));
    const stowage = await createStowage(MEM, { env: {} });
    await stowage.config.put('a/b', 1);
    expect((await stowage.config.get('a/b'))?.value).toBe(1);
    await stowage.cache.set('k', 'v');
    expect(await stowage.cache.get('k')).toBe('v');
    expect(await stowage.cache.has('k')).toBe(true);
    expect(await stowage.cache.getMany(['k'])).toEqual(['v']);
    const docs = await stowage.documents.collection('c');
    await docs.put('d', { n: 1 });
    expect((await docs.get('d'))?.data).toEqual({ n: 1 });
    await stowage.close();
    for (const name of ['config.get', 'cache.set', 'cache.get', 'cache.has', 'cache.getMany', 'documents.get']) {
      expect(names).toContain(`stowage.${name}`);
    }
  });

  it('gives a call that its driver bounds itself (runWithin) a span too', async () => {
    const names: string[] = [];
    trace.setGlobalTracerProvider(recordingProvider(names));
    const runtime = new PortRuntime('cache', { backend: 'test', close: async () => undefined, ping: async () => ({}) });
    expect(await runtime.runWithin(1000, 'get', undefined, () => Promise.resolve('v'))).toBe('v');
    await runtime.close();
    expect(names).toEqual(['stowage.cache.get']);
  });
});
