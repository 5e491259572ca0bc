/**
 * Process lifetime, per adapter: a process whose only work is a queue processor or a config watch stays
 * alive while it waits, handles a message or change made later, and on SIGTERM finishes and settles the
 * handler it is running, then exits with status 0.
 *
 * The disk queue and the mem:// adapters can be opened by one process only, so there the later message or
 * change comes from the child itself, on an unref'd timer (which does not keep a process alive by itself).
 * The file config store is shared between processes, NATS, PostgreSQL and etcd are servers: there another
 * process (this one) makes the change.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { cleanEnv } from '../cli/run-cli.js';
import { serviceSuite } from '../support/services.js';

const CHILD = fileURLToPath(new URL('./service-child.ts', import.meta.url));
/** How long the child must stay up with nothing to do. */
const IDLE_MS = 5_000;
/** How long the child's handler runs: SIGTERM arrives in the middle of it. */
const HANDLER_MS = 1_500;

/** A child service and the lines it printed. */
class Child {
  readonly process: ChildProcess;
  readonly lines: string[] = [];
  stderr = '';
  readonly exited: Promise<number | null>;
  #waiters: { test: (line: string) => boolean; resolve: () => void }[] = [];

  constructor(env: Record<string, string>) {
    this.process = spawn(process.execPath, ['--import', 'tsx', CHILD], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let partial = '';
    this.process.stdout?.on('data', (chunk: Buffer) => {
      partial += chunk.toString();
      const parts = partial.split('\n');
      partial = parts.pop() ?? '';
      for (const l of parts) {
        this.lines.push(l);
        this.#waiters = this.#waiters.filter((w) => (w.test(l) ? (w.resolve(), false) : true));
      }
    });
    this.process.stderr?.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.process.on('exit', (code) => resolve(code)));
  }

  get alive(): boolean {
    return this.process.exitCode === null && this.process.signalCode === null;
  }

  /** Resolves once the child printed `text`; rejects when it exits first or after `timeoutMs`. */
  async waitFor(text: string, timeoutMs = 30_000): Promise<void> {
    if (this.lines.includes(text)) return;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ test: (l) => l === text, resolve })),
        this.exited.then((code) => {
          throw new Error(`the child exited with ${code} before printing "${text}"; printed ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`);
        }),
        new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`no "${text}" within ${timeoutMs} ms; printed ${JSON.stringify(this.lines)}; stderr: ${this.stderr}`)), timeoutMs))),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }

  kill(): void {
    if (this.alive) this.process.kill('SIGKILL');
  }
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * The scenario: ready → still alive after {@link IDLE_MS} → `makeChange` (or the child's own timer) → the
 * handler starts → SIGTERM → the handler settles, the loop ends, status 0.
 */
async function runScenario(env: Record<string, string>, makeChange: (() => Promise<void>) | undefined): Promise<Child> {
  const child = new Child({
    LIFE_HANDLER_MS: String(HANDLER_MS),
    ...(makeChange === undefined ? { LIFE_SELF_CHANGE_MS: String(IDLE_MS + 500) } : {}),
    ...env,
  });
  try {
    await child.waitFor('ready');
    await sleep(IDLE_MS);
    expect(child.alive, `the child exited while waiting for work (status ${child.process.exitCode}); stderr: ${child.stderr}`).toBe(true);
    await makeChange?.();
    await child.waitFor('start later');
    child.process.kill('SIGTERM');
    expect(await child.exited, child.stderr).toBe(0);
    // The handler that was running when SIGTERM came finished and settled before the loop ended.
    expect(child.lines.slice(child.lines.indexOf('start later'))).toEqual(['start later', 'settled later', 'stopped']);
    return child;
  } finally {
    child.kill();
  }
}

const folder = (): Promise<string> => mkdtemp(join(tmpdir(), 'stowage-life-'));

describe.concurrent('a standalone service whose only work is a processor or a watch', () => {
  it('mem:// queue: stays up, processes a message published later, settles it on SIGTERM and exits 0', async () => {
    await runScenario({ LIFE_MODE: 'process', STOWAGE_QUEUE_URL: 'mem://', STOWAGE_DATA_DIR: await folder() }, undefined);
  }, 60_000);

  it('disk:// queue (default profile): stays up, processes a message published later, acks it on SIGTERM and exits 0', async () => {
    const dataDir = await folder();
    await runScenario({ LIFE_MODE: 'process', STOWAGE_DATA_DIR: dataDir }, undefined);
    // The ack is durable: a later process finds nothing pending or left for the group.
    const check = await createStowage({}, { env: { STOWAGE_DATA_DIR: dataDir }, ports: ['queue'] });
    try {
      const stats = await check.queue.stats('jobs');
      expect(stats.groups.find((g) => g.group === 'workers')).toMatchObject({ backlog: 0, pending: 0, ackFloor: 1 });
    } finally {
      await check.close();
    }
  }, 60_000);

  it('mem:// config: a watch stays up, handles a change made later, finishes it on SIGTERM and exits 0', async () => {
    await runScenario({ LIFE_MODE: 'watch', STOWAGE_CONFIG_URL: 'mem://', STOWAGE_DATA_DIR: await folder() }, undefined);
  }, 60_000);

  it('file:// config (default profile): a watch stays up, handles a change another process makes later, exits 0 on SIGTERM', async () => {
    const dataDir = await folder();
    const file = join(dataDir, 'config.json');
    await runScenario({ LIFE_MODE: 'watch', STOWAGE_DATA_DIR: dataDir }, async () => {
      // The data folder is locked by the child; the file store itself is shared between processes.
      const other = await createStowage({ config: `file://${file}` }, { env: {}, cwd: await folder(), ports: ['config'] });
      try {
        await other.config.put('w/later', 1);
      } finally {
        await other.close();
      }
    });
  }, 60_000);
});

serviceSuite('nats', (svc) => {
  it('nats:// queue: a processor stays up, processes a message another process publishes later, acks it on SIGTERM and exits 0', async () => {
    const url = `${svc().url}?stream=life${randomUUID().replaceAll('-', '').slice(0, 12)}&storage=memory`;
    const other = await createStowage({ queue: url }, { env: {}, ports: ['queue'] });
    try {
      await runScenario({ LIFE_MODE: 'process', STOWAGE_QUEUE_URL: url, STOWAGE_DATA_DIR: await folder() }, async () => {
        await other.queue.publish('jobs', 'later');
      });
      const stats = await other.queue.stats('jobs');
      expect(stats.groups.find((g) => g.group === 'workers')).toMatchObject({ backlog: 0, pending: 0, ackFloor: 1 });
    } finally {
      await other.close();
    }
  }, 60_000);
});

serviceSuite('postgres', (svc) => {
  it('postgres:// queue: a processor stays up, processes a message another process publishes later, acks it on SIGTERM and exits 0', async () => {
    const url = `${svc().url}?schema=life${randomUUID().replaceAll('-', '').slice(0, 12)}`;
    const other = await createStowage({ queue: url }, { env: {}, ports: ['queue'] });
    try {
      await runScenario({ LIFE_MODE: 'process', STOWAGE_QUEUE_URL: url, STOWAGE_DATA_DIR: await folder() }, async () => {
        await other.queue.publish('jobs', 'later');
      });
      const stats = await other.queue.stats('jobs');
      expect(stats.groups.find((g) => g.group === 'workers')).toMatchObject({ backlog: 0, pending: 0, ackFloor: 1 });
    } finally {
      await other.close();
    }
  }, 60_000);
});

serviceSuite('etcd', (svc) => {
  it('etcd:// config: a watch stays up, handles a change another process makes later, exits 0 on SIGTERM', async () => {
    const url = `${svc().url}/life-${randomUUID()}`;
    const other = await createStowage({ config: url }, { env: {}, ports: ['config'] });
    try {
      await runScenario({ LIFE_MODE: 'watch', STOWAGE_CONFIG_URL: url, STOWAGE_DATA_DIR: await folder() }, async () => {
        await other.config.put('w/later', 1);
      });
    } finally {
      await other.close();
    }
  }, 60_000);
});
