import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { context, propagation, trace } from '@opentelemetry/api';
import { AsyncLocalStorageContextManager } from '@opentelemetry/context-async-hooks';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { diskQueueScheme } from '../../src/adapters/disk-queue/index.js';
import { memQueueScheme } from '../../src/adapters/memory/queue-driver.js';
import { natsQueueScheme } from '../../src/adapters/nats/index.js';
import { kafkaQueueScheme } from '../../src/adapters/kafka/index.js';
import { postgresQueueScheme } from '../../src/adapters/postgres/index.js';
import { rabbitmqQueueScheme } from '../../src/adapters/rabbitmq/index.js';
import { createQueue, queueTransfer } from '../../src/core/queue/queue.js';
import { deliveryContext, HEADER_TRACEPARENT } from '../../src/core/queue/trace-context.js';
import { parseUrl } from '../../src/driver/url.js';
import type { Logger, OpenContext } from '../../src/core/registry.js';
import type { Queue } from '../../src/ports/queue.js';
import { serviceSuite } from '../support/services.js';

const quiet: Logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
const base = await mkdtemp(join(tmpdir(), 'stowage-queue-trace-'));
const ctx: OpenContext = { dataDir: base, env: {}, logger: quiet, openDriver: () => Promise.reject(new Error('not used')) };
afterAll(() => rm(base, { recursive: true, force: true }));

const exporter = new InMemorySpanExporter();
const contextManager = new AsyncLocalStorageContextManager();

beforeEach(() => {
  exporter.reset();
  context.setGlobalContextManager(contextManager.enable());
  trace.setGlobalTracerProvider(new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] }));
});
afterEach(() => {
  trace.disable();
  context.disable();
});

/** What a handler saw of its context. */
interface Seen {
  traceId: string | undefined;
  spanId: string | undefined;
  tenant: string | undefined;
  headers: Record<string, string>;
}

function span(name: string): ReadableSpan {
  const found = exporter.getFinishedSpans().find((s) => s.name === name);
  if (found === undefined) throw new Error(`no span ${name} among ${exporter.getFinishedSpans().map((s) => s.name).join(', ')}`);
  return found;
}

/** Publishes inside an application span with baggage, and resolves with what the handler saw. */
async function publishAndHandle(queue: Queue, topic: string): Promise<Seen> {
  const seen = new Promise<Seen>((resolve) => {
    queue.process(topic, 'g', async (delivery) => {
      const active = context.active();
      resolve({
        traceId: trace.getSpanContext(active)?.traceId,
        spanId: trace.getSpanContext(active)?.spanId,
        tenant: propagation.getBaggage(active)?.getEntry('tenant')?.value,
        headers: { ...delivery.headers },
      });
    });
  });
  const withBaggage = propagation.setBaggage(context.active(), propagation.createBaggage({ tenant: { value: 'acme corp' } }));
  await context.with(withBaggage, () =>
    trace.getTracer('app').startActiveSpan('app.request', async (request) => {
      await queue.publish(topic, 'x', { headers: { plain: 'yes' } });
      request.end();
    }),
  );
  return seen;
}

function traceSuite(name: string, open: () => Promise<Queue>): void {
  describe(`trace context through ${name}`, () => {
    it('runs the handler in a span that is a child of the publish span, in the publisher’s trace, with its baggage', async () => {
      const queue = await open();
      try {
        const seen = await publishAndHandle(queue, 'traced');
        await queue.close();
        const request = span('app.request');
        const publish = span('stowage.queue.publish');
        const processSpan = span('stowage.queue.process');
        expect(publish.spanContext().traceId).toBe(request.spanContext().traceId);
        expect(processSpan.spanContext().traceId).toBe(request.spanContext().traceId);
        expect(processSpan.parentSpanContext?.spanId).toBe(publish.spanContext().spanId);
        expect(seen.traceId).toBe(request.spanContext().traceId);
        expect(seen.spanId).toBe(processSpan.spanContext().spanId);
        expect(seen.tenant).toBe('acme corp');
        // The reserved headers are Stowage's: the application sees only its own.
        expect(seen.headers).toEqual({ plain: 'yes' });
      } finally {
        await queue.close();
      }
    });
  });
}

traceSuite('mem://', async () => createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx)));
let n = 0;
traceSuite('disk://', async () => createQueue(await diskQueueScheme.open(parseUrl(`disk://${join(base, `q${++n}`)}`), ctx)));
serviceSuite('nats', (svc) => {
  traceSuite('nats://', async () => {
    const stream = `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    return createQueue(await natsQueueScheme.open(parseUrl(`${svc().url}?stream=${stream}&storage=memory`), ctx));
  });
});
const tag = (): string => `t${randomUUID().replaceAll('-', '').slice(0, 12)}`;
serviceSuite('postgres', (svc) => {
  traceSuite('postgres://', async () => createQueue(await postgresQueueScheme.open(parseUrl(`${svc().url}?schema=${tag()}`), ctx)));
});
serviceSuite('kafka', (svc) => {
  traceSuite('kafka://', async () => createQueue(await kafkaQueueScheme.open(parseUrl(`${svc().url}?prefix=${tag()}`), ctx)));
});
serviceSuite('rabbitmq', (svc) => {
  traceSuite('rabbitmq://', async () => createQueue(await rabbitmqQueueScheme.open(parseUrl(`${svc().url}?prefix=${tag()}`), ctx)));
});

describe('trace context through dead letters', () => {
  it('keeps the publisher’s trace across a dead letter and its replay', async () => {
    const queue = createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx));
    try {
      const traces: string[] = [];
      let fail = true;
      const handled = new Promise<void>((resolve) => {
        queue.process(
          'dl',
          'g',
          async () => {
            traces.push(trace.getSpanContext(context.active())?.traceId ?? 'none');
            if (fail) throw new Error('boom');
            resolve();
          },
          { maxDeliver: 1, onError: () => undefined },
        );
      });
      await trace.getTracer('app').startActiveSpan('app.request', async (request) => {
        await queue.publish('dl', 'x');
        request.end();
      });
      const origin = span('app.request').spanContext().traceId;
      let letters = await queue.deadLetters('dl');
      for (let i = 0; i < 100 && letters.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 20));
        letters = await queue.deadLetters('dl');
      }
      expect(letters).toHaveLength(1);
      fail = false;
      expect(await queue.replay('dl')).toBe(1);
      await handled;
      expect(traces).toEqual([origin, origin]);
    } finally {
      await queue.close();
    }
  });

  it('publishes no trace header when nothing is traced and there is no baggage', async () => {
    trace.disable();
    const queue = createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx));
    try {
      await queue.publish('plain', 'x');
      const [message] = await queue.browse('plain');
      expect(message?.headers[HEADER_TRACEPARENT]).toBeUndefined();
    } finally {
      await queue.close();
    }
  });
});

describe('trace context edge cases', () => {
  it('gives a consume() loop the publisher’s context through deliveryContext', async () => {
    const queue = createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx));
    try {
      let origin = '';
      await trace.getTracer('app').startActiveSpan('app.request', async (request) => {
        origin = request.spanContext().traceId;
        await queue.publish('loop', 'x');
        request.end();
      });
      for await (const delivery of queue.consume('loop', 'g')) {
        expect(trace.getSpanContext(deliveryContext(delivery))?.traceId).toBe(origin);
        await delivery.ack();
        break;
      }
    } finally {
      await queue.close();
    }
  });

  it('carries baggage to the handler when nothing is traced', async () => {
    trace.disable();
    const queue = createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx));
    try {
      const seen = new Promise<string | undefined>((resolve) => {
        queue.process('bag', 'g', async () => resolve(propagation.getBaggage(context.active())?.getEntry('tenant, id')?.value));
      });
      const bag = propagation.createBaggage({ 'tenant, id': { value: 'a=b;c,d é' } });
      await context.with(propagation.setBaggage(context.active(), bag), () => queue.publish('bag', 'x'));
      expect(await seen).toBe('a=b;c,d é');
    } finally {
      await queue.close();
    }
  });

  it('ignores a malformed stored traceparent rather than failing the handler', async () => {
    const queue = createQueue(await memQueueScheme.open(parseUrl('mem://'), ctx));
    try {
      const handled = new Promise<string | undefined>((resolve) => {
        queue.process('odd', 'g', async () => resolve(trace.getSpanContext(context.active())?.traceId));
      });
      // A copy restored by a migration keeps reserved headers as stored: one could hold anything.
      await queueTransfer(queue).restore('odd', { payload: new TextEncoder().encode('x'), headers: { [HEADER_TRACEPARENT]: '00-zz-not-a-trace-01' }, id: undefined });
      const traceId = await handled;
      // A fresh trace (the handler's own span), not the garbage one.
      expect(traceId).toMatch(/^[0-9a-f]{32}$/);
      expect(span('stowage.queue.process').parentSpanContext).toBeUndefined();
    } finally {
      await queue.close();
    }
  });
});
