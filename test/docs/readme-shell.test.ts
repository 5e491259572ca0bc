/**
 * The README's shell recipes run as written: each `sh` block is taken from README.md, its example hosts and
 * paths replaced by the harness's servers and a temporary folder, and run by bash with `stowage` on PATH.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { chmod, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { requiredServices, ServiceUnavailable, startService, tempDir, type Service, type ServiceKind } from '../support/services.js';
import { BIN, cleanEnv } from '../cli/run-cli.js';

/** The README's `sh` blocks. */
async function shellBlocks(): Promise<string[]> {
  const text = await readFile(join(process.cwd(), 'README.md'), 'utf8');
  return [...text.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1] ?? '');
}

/** The one `sh` block containing `needle`. */
async function shellBlock(needle: string): Promise<string> {
  const found = (await shellBlocks()).filter((b) => b.includes(needle));
  expect(found, `one README sh block contains ${needle}`).toHaveLength(1);
  return found[0]!;
}

/** A folder with a `stowage` command that runs this repository's bin, as `npm i -g stowage` would give. */
async function binDir(root: string): Promise<string> {
  const dir = join(root, 'bin');
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'stowage'), `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(BIN)} "$@"\n`);
  await chmod(join(dir, 'stowage'), 0o755);
  return dir;
}

/** Runs a script with bash (errexit, pipefail) in `cwd` with `stowage` on PATH. */
function bash(script: string, cwd: string, bin: string, env: Record<string, string> = {}): { status: number | null; out: string } {
  const res = spawnSync('bash', ['-euo', 'pipefail', '-c', script], {
    cwd,
    encoding: 'utf8',
    timeout: 180_000,
    env: cleanEnv({ ...env, PATH: `${bin}:${process.env.PATH ?? ''}` }),
  });
  return { status: res.status, out: `${res.stdout}\n${res.stderr}` };
}

/** Starts the servers a block needs; a missing one skips the block (or fails it when STOWAGE_TEST_REQUIRE names it). */
function withServices(kinds: readonly ServiceKind[]): { get: (kind: ServiceKind) => Service; skipReason: () => string | undefined } {
  const started = new Map<ServiceKind, Service>();
  let reason: string | undefined;
  beforeAll(async () => {
    for (const kind of kinds) {
      try {
        started.set(kind, await startService(kind));
      } catch (err) {
        if (!(err instanceof ServiceUnavailable)) throw err;
        if (requiredServices().has(kind)) throw new Error(`STOWAGE_TEST_REQUIRE names ${kind}, but it is unavailable: ${err.message}`);
        reason = `${kind}: ${err.message}`;
        return;
      }
    }
  }, 240_000);
  afterAll(async () => {
    await Promise.all([...started.values()].map((s) => s.dispose()));
  }, 60_000);
  return { get: (kind) => started.get(kind)!, skipReason: () => reason };
}

describe('README: stowage migrate recipe', () => {
  const services = withServices(['etcd', 'nats', 'redis', 'mariadb']);
  let root = '';
  beforeAll(async () => {
    root = await tempDir('stowage-readme-migrate-');
  });
  // Guarded: when a server fails to start, the beforeAll above never runs and there is no folder.
  afterAll(() => (root ? rm(root, { recursive: true, force: true }) : undefined));

  it('moves a standalone data folder (keyring with its own key file) to the cluster with STOWAGE_MASTER_KEY set', async (ctx) => {
    const reason = services.skipReason();
    if (reason !== undefined) ctx.skip(reason);
    const bin = await binDir(root);
    const dataDir = join(root, 'srv/app/.stowage');
    // The data folder as `npm start` leaves it: made on the standalone defaults, so the keyring has its own key file.
    const seed = bash(
      [
        `stowage --data-dir ${dataDir} config put service/settings '{"concurrency":8}'`,
        `printf %s s3cr3t-token | stowage --data-dir ${dataDir} secrets put service/api-token`,
        `stowage --data-dir ${dataDir} queue pub jobs '{"n":1}' --id job-1`,
        `stowage --data-dir ${dataDir} docs put results job-1 '{"status":"done"}'`,
        `test -f ${dataDir}/secrets.keyring.key`,
      ].join('\n'),
      root,
      bin,
    );
    expect(seed.status, seed.out).toBe(0);

    const prefix = `readme-${randomUUID().slice(0, 8)}`;
    const mysql = new URL(services.get('mariadb').url.replace(/^mysql:/, 'http:'));
    const recipe = (await shellBlock('stowage migrate --from'))
      .replaceAll('/srv/app/.stowage', dataDir)
      .replaceAll('10.0.0.1:2379', new URL(services.get('etcd').url.replace(/^etcd:/, 'http:')).host)
      .replaceAll('/app-secrets', `/${prefix}-secrets`)
      .replace(/(etcd:\/\/[^/\s]+)\/app\b/, `$1/${prefix}`)
      .replace(/nats:\/\/10\.0\.0\.2:4222\?stream=app/, `${services.get('nats').url}?stream=${prefix}`)
      .replace(/redis:\/\/10\.0\.0\.3:6379/, services.get('redis').url)
      .replace(/mysql:\/\/app@10\.0\.0\.4:3306\/app/, `mysql://root@${mysql.host}/test`)
      .replace('STOWAGE_MASTER_KEY=…', `STOWAGE_MASTER_KEY=${randomBytes(24).toString('base64')}`);
    expect(recipe, 'every example host was replaced').not.toMatch(/10\.0\.0\.\d/);
    const run = bash(recipe, root, bin);
    expect(run.status, run.out).toBe(0);
    expect(run.out).not.toContain('s3cr3t-token');

    const check = bash(
      `stowage --config-url ${services.get('etcd').url}/${prefix} config get service/settings --json
stowage --queue-url '${services.get('nats').url}?stream=${prefix}' queue stats jobs --json`,
      root,
      bin,
    );
    expect(check.status, check.out).toBe(0);
    expect(check.out).toContain('"concurrency":8');
    expect(check.out).toContain('"messages":1');
  }, 300_000);
});

describe('README: the stowage command examples', () => {
  let root: string;
  beforeAll(async () => {
    root = await tempDir('stowage-readme-cli-');
  });
  afterAll(() => rm(root, { recursive: true, force: true }));

  it('run as written on the standalone profile, the watch until Ctrl-C, the secret printed as [redacted]', async () => {
    const bin = await binDir(root);
    const block = await shellBlock('stowage secrets put service/api-token');
    // The watch runs until Ctrl-C: it is given one (SIGINT) after 3 s, and the next lines go on. (That it stays
    // until then is the process-lifetime tests' business; here the line must run and stop cleanly.)
    const script = block
      .split('\n')
      .map((line) => (/# Ctrl-C stops/.test(line) ? `{ timeout -s INT 3 ${line.replace(/#.*$/, '').trim()}; echo $? > watch.status; } || true` : line))
      .join('\n');
    const run = bash(script, root, bin, { TOKEN: 'readme-token-value-123' });
    expect(run.status, run.out).toBe(0);
    expect(run.out).toContain('[redacted]');
    expect(run.out).not.toContain('readme-token-value-123');
    expect(run.out, 'the find prints the document put before it').toContain('job-1');
    const watch = Number((await readFile(join(root, 'watch.status'), 'utf8')).trim());
    // 124: timeout(1) had to send the SIGINT, so the watch was still running after 3 s (a standalone watch that
    // does not hold the process open exits 13, Node's unsettled top-level await, long before).
    expect(watch, 'the watch ran until Ctrl-C').toBe(124);
  }, 120_000);
});
