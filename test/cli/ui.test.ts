import { once } from 'node:events';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, runCli, startCli } from './run-cli.js';

describe('stowage ui', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'stowage-ui-'));
  });
  afterAll(() => rm(dir, { recursive: true, force: true }));

  it('serves the console and /metrics over the profile until interrupted, then releases the data folder', async () => {
    const env = cleanEnv({ STOWAGE_DATA_DIR: join(dir, 'data') });
    expect((await runCli(['queue', 'pub', 'jobs', 'hello'], { env, cwd: dir })).code).toBe(0);
    const child = startCli(['ui', '--port', '0', '--json'], { env, cwd: dir });
    try {
      const [line] = (await once(createInterface({ input: child.stdout! }), 'line')) as [string];
      const { url } = JSON.parse(line) as { url: string };
      expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);

      const topics = (await (await fetch(`${url}api/queue/topics`)).json()) as { topics: { topic: string; messages: number }[] };
      expect(topics.topics).toEqual([expect.objectContaining({ topic: 'jobs', messages: 1 })]);
      const metrics = await (await fetch(`${url}metrics`)).text();
      expect(metrics).toMatch(/^stowage_queue_messages\{[^}]*stowage_topic="jobs"[^}]*\} 1$/m);
      expect(metrics).toMatch(/^stowage_calls_total\{[^}]*stowage_operation="topics"[^}]*\} [1-9]/m);
    } finally {
      child.kill('SIGINT');
      await once(child, 'close');
    }
    expect(child.exitCode).toBe(0);
    // The console closed its ports on the way out: the folder's lock is free for the next process.
    expect((await runCli(['queue', 'stats', 'jobs'], { env, cwd: dir })).code).toBe(0);
  }, 60_000);
});
