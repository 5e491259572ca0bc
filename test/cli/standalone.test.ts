import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { cleanEnv, lastJson, runCli } from './run-cli.js';

let root: string;
let env: Record<string, string>;
const cli = (args: string[], input?: string) => runCli(args, { env, cwd: root, input });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-cli-'));
  env = cleanEnv({ STOWAGE_DATA_DIR: join(root, 'data') });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('stowage CLI on the standalone profile', () => {
  it('puts, gets, lists, watches and deletes config keys', async () => {
    assert.equal((await cli(['config', 'put', 'app/limits', '{"max":5}'])).code, 0);
    assert.equal((await cli(['config', 'put', 'app/motd', 'back at 5', '--string'])).code, 0);
    const got = lastJson<{ value: unknown; revision: number }>(await cli(['config', 'get', 'app/limits', '--json']));
    assert.deepEqual(got.value, { max: 5 });
    const listed = lastJson<{ entries: { key: string }[] }>(await cli(['config', 'ls', 'app/', '--json']));
    assert.deepEqual(listed.entries.map((e) => e.key), ['app/limits', 'app/motd']);
    const watched = await cli(['config', 'watch', 'app/', '--after-revision', '0', '--count', '2', '--json']);
    assert.deepEqual(watched.stdout.trim().split('\n').map((l) => (JSON.parse(l) as { key: string }).key), ['app/limits', 'app/motd']);
    // The former option name still works, says it is deprecated, and cannot be mixed with the new one.
    const old = await cli(['config', 'watch', 'app/', '--from-revision', '0', '--count', '2', '--json']);
    assert.equal(old.stdout, watched.stdout);
    assert.match(old.stderr, /--from-revision is deprecated: it is --after-revision/);
    assert.equal((await cli(['config', 'watch', 'app/', '--from-revision', '0', '--after-revision', '0'])).code, 2);
    assert.equal((await cli(['config', 'rm', 'app/motd'])).code, 0);
    assert.equal((await cli(['config', 'get', 'app/motd'])).code, 1);
  });

  it('takes secret values from stdin only and shows them only with --reveal', async () => {
    const value = 'canary-7f3a9c-secret';
    assert.equal((await cli(['secrets', 'put', 'db/password'], `${value}\n`)).code, 0);
    const refused = await cli(['secrets', 'put', 'db/password', value]);
    assert.equal(refused.code, 2);
    assert.ok(!refused.stderr.includes(value) && !refused.stdout.includes(value));
    const hidden = await cli(['secrets', 'get', 'db/password', '--json']);
    assert.ok(!hidden.stdout.includes(value));
    assert.equal(lastJson<{ value: string; version: number }>(hidden).value, '[redacted]');
    const revealed = await cli(['secrets', 'get', 'db/password', '--reveal']);
    assert.equal(revealed.stdout, value);
    await writeFile(join(root, 'v2'), 'second');
    assert.equal((await cli(['secrets', 'put', 'db/password', '--file', join(root, 'v2')])).code, 0);
    const versions = lastJson<{ version: number; deleted: boolean }[]>(await cli(['secrets', 'versions', 'db/password', '--json']));
    assert.deepEqual(versions.map((v) => v.version), [1, 2]);
  });

  it('publishes, consumes with a group, and reports stats', async () => {
    assert.equal(lastJson<{ seq: number }>(await cli(['queue', 'pub', 'jobs', '{"n":1}', '--id', 'j1', '--json'])).seq, 1);
    assert.equal(lastJson<{ duplicate: boolean }>(await cli(['queue', 'pub', 'jobs', '{"n":1}', '--id', 'j1', '--json'])).duplicate, true);
    await cli(['queue', 'pub', 'jobs', '-', '--header', 'source=test'], '{"n":2}');
    const sub = await cli(['queue', 'sub', 'jobs', '--group', 'g1', '--count', '2', '--json']);
    const got = sub.stdout.trim().split('\n').map((l) => JSON.parse(l) as { payload: string; headers: Record<string, string> });
    assert.deepEqual(got.map((d) => d.payload), ['{"n":1}', '{"n":2}']);
    assert.equal(got[1]?.headers.source, 'test');
    const stats = lastJson<{ messages: number; groups: { group: string; backlog: number; pending: number }[] }>(await cli(['queue', 'stats', 'jobs', '--json']));
    assert.deepEqual(stats.groups.map((g) => [g.group, g.backlog, g.pending]), [['g1', 0, 0]]);
    assert.deepEqual(lastJson(await cli(['queue', 'dlq', 'ls', 'jobs', '--json'])), []);
  });

  it('writes documents and finds them with a filter, sort and limit', async () => {
    // One at a time: the standalone data folder is locked by whichever process has it open.
    for (const [id, age] of [['a', 30], ['b', 20], ['c', 40]] as const) {
      assert.equal((await cli(['docs', 'put', 'people', id, JSON.stringify({ age, team: 'x' })])).code, 0);
    }
    const page = lastJson<{ items: { id: string }[] }>(await cli(['docs', 'find', 'people', '{"age":{"$gte":25}}', '--sort', 'age:-1', '--limit', '5', '--json']));
    assert.deepEqual(page.items.map((d) => d.id), ['c', 'a']);
    assert.equal(lastJson<{ count: number }>(await cli(['docs', 'count', 'people', '{"team":"x"}', '--json'])).count, 3);
    const absent = await cli(['docs', 'get', 'nosuch', 'a']);
    assert.equal(absent.code, 1);
    assert.match(absent.stderr, /no collection "nosuch"/);
  });

  it('doctor passes on the standalone profile and fails with a hint for an unreachable backend', async () => {
    const good = await cli(['doctor', '--json']);
    assert.equal(good.code, 0, good.stderr);
    const rows = lastJson<{ ok: boolean; ports: { port: string; backend: string }[] }>(good).ports;
    assert.deepEqual(rows.map((r) => r.backend), ['file', 'file', 'disk', 'mem', 'sqlite']);
    const bad = await cli(['doctor', '--ports', 'queue', '--queue-url', 'nats://127.0.0.1:1', '--timeout-ms', '2000']);
    assert.equal(bad.code, 1);
    assert.match(bad.stdout, /hint: unreachable/);
  });

  it('prints help with examples for every command, without colours when not on a TTY', async () => {
    const main = await cli(['--help']);
    assert.equal(main.code, 0);
    const commands = [...main.stdout.matchAll(/^ {2}((?:config|secrets|queue|cache|docs|doctor|migrate)(?: (?:get|put|rm|ls|watch|versions|destroy|pub|sub|stats|dlq|replay|purge|set|clear|find|count|indexes))*)/gm)].map((m) => m[1] ?? '');
    assert.equal(commands.length, 28);
    const helps = await Promise.all([commands[0], commands[12], commands[27]].map((c) => c ?? '').map((c) => cli([...c.split(' '), '--help'])));
    for (const h of helps) assert.match(h.stdout, /Examples:\n {2}stowage /);
    assert.ok(!(main.stdout + helps.map((h) => h.stdout).join("")).includes("\u001b["));
    assert.equal((await cli(['config', 'frobnicate'])).code, 2);
  });

  it('migrates a standalone data folder to another one and verifies counts and hashes', async () => {
    await writeFile(join(root, 'from.yaml'), `dataDir: ${join(root, 'data')}\n`);
    await writeFile(join(root, 'to.yaml'), `dataDir: ${join(root, 'copy')}\n`);
    const result = await cli(['migrate', '--from', 'from.yaml', '--to', 'to.yaml', '--json']);
    assert.equal(result.code, 0, result.stderr + result.stdout);
    const report = lastJson<{ ok: boolean; verification: { port: string; item: string; status: string; source: number }[] }>(result);
    assert.ok(report.verification.every((r) => r.status === 'match'));
    assert.deepEqual(report.verification.filter((r) => r.port === 'documents').map((r) => [r.item, r.source]), [['people', 3], ['people indexes', 0]]);
    await assert.rejects(readFile(join(root, `.stowage-migrate.json`)));
  });
});
