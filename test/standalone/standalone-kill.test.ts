/**
 * Standalone mode under a crash: one example-service process on the embedded adapters (file config,
 * keyring, disk queue, SQLite) killed with SIGKILL mid-run and restarted. Nothing acknowledged is lost.
 */
import { randomBytes } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { JOBS_TOPIC, RESULTS_COLLECTION, SETTINGS_KEY, TOKEN_SECRET, WORKERS_GROUP } from '../../examples/service/service.js';
import { ServiceNode } from '../cluster/node-harness.js';

const JOBS = 3000;

describe('standalone mode', () => {
  it('loses no acknowledged job or write when the process is killed with SIGKILL mid-run and restarted', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-standalone-'));
    const env = { STOWAGE_DATA_DIR: dataDir, STOWAGE_MASTER_KEY: randomBytes(32).toString('base64'), SERVICE_PROGRESS_MS: '200', SERVICE_ACK_WAIT_MS: '3000', SERVICE_AUDIT: '0' };
    const ids: string[] = [];
    {
      const operator = await createStowage({}, { env });
      await operator.config.put(SETTINGS_KEY, { concurrency: 8, lookupTtlMs: 60_000, greeting: 'Hello' });
      await operator.secrets.put(TOKEN_SECRET, randomBytes(24).toString('hex'));
      for (let i = 0; i < JOBS; i++) {
        const id = `job-${i}`;
        ids.push(id);
        await operator.queue.publish(JOBS_TOPIC, JSON.stringify({ id, customer: `c${i % 20}`, n: i }), { id });
      }
      await operator.close();
    }

    const first = new ServiceNode('standalone-1', env);
    await first.waitFor((e) => e.type === 'progress' && ((e.stats as { stored: number }).stored ?? 0) > 200, 'progress past 200 jobs', 60_000);
    await first.kill();

    const second = new ServiceNode('standalone-2', env);
    await second.waitFor((e) => e.type === 'started', 'restart', 60_000);
    // Run until the node has been idle for a while: every job stored or found stored.
    let last = -1;
    let idleSince = Date.now();
    const deadline = Date.now() + 120_000;
    while (Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 250));
      const s = second.latestStats();
      const done = (s?.stored ?? 0) + (s?.duplicates ?? 0);
      if (done !== last) {
        last = done;
        idleSince = Date.now();
      } else if (Date.now() - idleSince > 4000) break;
    }
    expect(await second.stop()).toBe(0);

    const check = await createStowage({}, { env });
    try {
      const results = await check.documents.collection(RESULTS_COLLECTION);
      expect(await results.count()).toBe(JOBS);
      for (const id of [ids[0]!, ids[JOBS >> 1]!, ids[JOBS - 1]!]) expect((await results.get(id))?.data.jobId).toBe(id);
      const stats = await check.queue.stats(JOBS_TOPIC);
      const workers = stats.groups.find((g) => g.group === WORKERS_GROUP);
      expect(workers?.backlog).toBe(0);
      expect(workers?.pending).toBe(0);
      expect((await check.config.get(SETTINGS_KEY))?.value).toMatchObject({ greeting: 'Hello' });
      expect((await check.secrets.get(TOKEN_SECRET)).version).toBe(1);
    } finally {
      await check.close();
    }
  }, 240_000);
});
