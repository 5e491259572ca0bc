import assert from 'node:assert/strict';
import { describe, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { runService, signResult, type JobResult, type ServiceEvent } from '../../examples/service/service.js';
import { eventually } from '../../src/testing/harness.js';

const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

describe('example service', () => {
  it('stores each job once, counts a redelivered job as a duplicate, signs results and applies a settings change live', async () => {
    await using stowage = await createStowage(MEM, { env: {} });
    await stowage.config.put('service/settings', { concurrency: 4, lookupTtlMs: 60_000, greeting: 'Hello' });
    await stowage.secrets.put('service/api-token', 'tok-123');
    const stop = new AbortController();
    const events: ServiceEvent[] = [];
    const running = runService(stowage, { nodeId: 'n1', signal: stop.signal, onEvent: (e) => events.push(e), progressEveryMs: 50 });
    for (let i = 0; i < 100; i++) await stowage.queue.publish('jobs', JSON.stringify({ id: `job-${i}`, customer: `c${i % 5}`, n: i }));
    // The same job published again under another message id: a redelivery as far as the service can tell.
    await stowage.queue.publish('jobs', JSON.stringify({ id: 'job-7', customer: 'c2', n: 7 }));
    await eventually(() => events.some((e) => e.type === 'progress' && e.stats.stored + e.stats.duplicates === 101), '101 jobs handled');
    await stowage.config.put('service/settings', { concurrency: 2, lookupTtlMs: 60_000, greeting: 'Bonjour' });
    await eventually(() => events.some((e) => e.type === 'settings' && e.settings.greeting === 'Bonjour'), 'the new greeting applied');
    await stowage.queue.publish('jobs', JSON.stringify({ id: 'job-late', customer: 'c1', n: 3 }));
    await eventually(async () => (await (await stowage.documents.collection('results')).get('job-late')) !== undefined, 'the late job stored');
    stop.abort();
    const stats = await running;
    assert.deepEqual([stats.stored, stats.duplicates, stats.cacheMisses], [101, 1, 5]);
    const results = await stowage.documents.collection<JobResult>('results');
    assert.equal(await results.count(), 101);
    const late = await results.get('job-late');
    assert.equal(late?.data.message.startsWith('Bonjour, '), true);
    const { signature, nodeId: _n, storedAt: _s, ...body } = late!.data;
    const token = (await stowage.secrets.get('service/api-token')).value;
    assert.equal(signature, signResult(token, body));
    assert.ok(!JSON.stringify(events).includes('tok-123'));
    assert.ok(stats.audited >= 102);
  });
});
