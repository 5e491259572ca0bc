/**
 * The CLI's following commands, `stowage config watch` and `stowage queue sub`, on the standalone profile:
 * they stay until Ctrl-C (SIGINT), printing what comes in meanwhile, and then exit with status 0.
 */
import type { ChildProcess } from 'node:child_process';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { cleanEnv, startCli } from '../cli/run-cli.js';

const STAY_MS = 5_000;

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Collects a child's stdout and stderr and its exit status. */
function follow(child: ChildProcess): { out: () => string; err: () => string; exited: Promise<number | null> } {
  let out = '';
  let err = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (err += c.toString()));
  child.stdin?.end();
  return { out: () => out, err: () => err, exited: new Promise((resolve) => child.on('exit', (code) => resolve(code))) };
}

async function until(check: () => boolean, what: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

describe.concurrent('stowage CLI following commands', () => {
  it('config watch stays until SIGINT, prints a change another process makes meanwhile, and exits 0', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-cli-follow-'));
    const dataDir = join(root, 'data');
    const child = startCli(['config', 'watch', 'app/'], { env: cleanEnv({ STOWAGE_DATA_DIR: dataDir }), cwd: root });
    const run = follow(child);
    try {
      await until(() => run.err().includes('watching'), 'the watch to start');
      await sleep(STAY_MS);
      expect(child.exitCode, run.err()).toBeNull();
      // The data folder is locked by the CLI; its config file is shared between processes.
      const other = await createStowage({ config: `file://${join(dataDir, 'config.json')}` }, { env: {}, cwd: root, ports: ['config'] });
      await other.config.put('app/motd', 'hello').finally(() => other.close());
      await until(() => run.out().includes('app/motd'), 'the change to be printed');
      child.kill('SIGINT');
      expect(await run.exited, run.err()).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);

  it('queue sub on an empty topic stays until SIGINT, and exits 0', async () => {
    const root = await mkdtemp(join(tmpdir(), 'stowage-cli-follow-'));
    // The disk queue's folder is locked by the CLI, so nothing can be published to it meanwhile; what a
    // running `queue sub` prints is covered by the CLI tests.
    const child = startCli(['queue', 'sub', 'jobs', '--group', 'tail'], { env: cleanEnv({ STOWAGE_DATA_DIR: join(root, 'data') }), cwd: root });
    const run = follow(child);
    try {
      await until(() => run.err().includes('consuming'), 'the consumer to start');
      await sleep(STAY_MS);
      expect(child.exitCode, run.err()).toBeNull();
      child.kill('SIGINT');
      expect(await run.exited, run.err()).toBe(0);
    } finally {
      child.kill('SIGKILL');
    }
  }, 60_000);
});
