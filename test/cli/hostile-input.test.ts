/**
 * Hostile input given to the `stowage` command: refused with a clear error, never silently dropped.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { cleanEnv, lastJson, runCli } from './run-cli.js';

let root: string;
let env: Record<string, string>;
const cli = (args: string[], input?: string) => runCli(args, { env, cwd: root, input });

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-cli-hostile-'));
  env = cleanEnv({ STOWAGE_DATA_DIR: join(root, 'data') });
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('stowage CLI with hostile input', () => {
  it('refuses --header __proto__=… with INVALID_ARGUMENT and publishes nothing; constructor=… is kept', async () => {
    const refused = await cli(['queue', 'pub', 'jobs', 'x', '--header', '__proto__=polluted']);
    assert.notEqual(refused.code, 0);
    assert.match(refused.stderr, /INVALID_ARGUMENT/);
    assert.match(refused.stderr, /__proto__/);
    assert.equal((await cli(['queue', 'pub', 'jobs', 'y', '--header', 'constructor=kept'])).code, 0);
    const sub = await cli(['queue', 'sub', 'jobs', '--group', 'g', '--count', '1', '--json']);
    const got = lastJson<{ payload: string; headers: Record<string, string> }>(sub);
    assert.equal(got.payload, 'y');
    assert.equal(got.headers.constructor, 'kept');
  });

  it('a NUL in a URL path is INVALID_ARGUMENT, not INTERNAL', async () => {
    const result = await cli(['config', 'get', 'k', '--config-url', `file://${join(root, 'a%00b.json')}`]);
    assert.notEqual(result.code, 0);
    assert.match(result.stderr, /INVALID_ARGUMENT/);
    assert.doesNotMatch(result.stderr, /INTERNAL/);
  });
});
