import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { freePort } from '../support/servers.js';

// DEBUG=* turns on every `debug`-module logger of every library. (NODE_DEBUG=http is Node's own tracing: it
// prints the options of every HTTP request, headers included, for any client, and is not covered here.)

describe('no secret or credential ever reaches output, logs or errors', () => {
  it('with every backend down and DEBUG=*, no printout of any port contains the canary token or secret', async () => {
    const token = `tok-${randomBytes(12).toString('hex')}`;
    const secret = `sec-${randomBytes(12).toString('hex')}`;
    const dead = await freePort();
    const child = spawn(process.execPath, ['--import', 'tsx', join(process.cwd(), 'test/leak/leak-child.ts')], {
      env: {
        ...process.env,
        DEBUG: '*',
        LEAK_CANARY_TOKEN: token,
        LEAK_CANARY_SECRET: secret,
        LEAK_DEAD_PORT: String(dead),
        STOWAGE_MASTER_KEY: randomBytes(32).toString('base64'),
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
    child.stderr.on('data', (d: Buffer) => (out += d.toString('utf8')));
    const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
    expect(out, out.slice(-2000)).toContain('--- done');
    expect(code).toBe(0);
    for (const name of ['etcd', 'zookeeper', 'sealed', 'vault', 'nats', 'postgres-queue', 'kafka-credentials', 'kafka', 'rabbitmq', 'redis', 'tiered', 'mysql', 'postgres', 'postgres+sealed', 'mongodb']) expect(out).toContain(`--- ${name}: `);
    expect(out, 'every scheme must be known, so that its adapter really ran').not.toMatch(/unknown \w+ scheme/);
    const leaks = out.split('\n').filter((line) => line.includes(token) || line.includes(secret));
    expect(leaks, `leaked lines:\n${leaks.slice(0, 10).join('\n')}`).toEqual([]);
  }, 180_000);
});
