import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'vitest';
import { cleanEnv } from '../cli/run-cli.js';

const TSX = fileURLToPath(new URL('../../node_modules/tsx/dist/cli.mjs', import.meta.url));
const WALKTHROUGH = fileURLToPath(new URL('../../examples/walkthrough.ts', import.meta.url));

describe('npm start (examples/walkthrough.ts)', () => {
  it('runs the example service standalone end to end, twice on the same data folder', async () => {
    const cwd = await mkdtemp(join(tmpdir(), 'stowage-walkthrough-'));
    try {
      const run = () => spawnSync(process.execPath, [TSX, WALKTHROUGH], { cwd, env: cleanEnv({ WALKTHROUGH_JOBS: '200' }), encoding: 'utf8', timeout: 50_000 });
      const first = run();
      assert.equal(first.status, 0, first.stdout + first.stderr);
      assert.match(first.stdout, /standalone, data folder .*\.stowage/);
      assert.match(first.stdout, /config watched: greeting changed to "Bonjour" .* applied it \d+ ms later \(run 1\)/);
      assert.match(first.stdout, /sample signature verified/);
      assert.match(first.stdout, /200 jobs through the disk:\/\/ queue/);
      assert.match(first.stdout, /workers stored 200, duplicates 0/);
      assert.match(first.stdout, /audit counted 200/);
      assert.match(first.stdout, /hit rate \d+\.\d%/);
      assert.match(first.stdout, /^documents +sqlite +ok/m);
      const second = run();
      assert.equal(second.status, 0, second.stdout + second.stderr);
      assert.match(second.stdout, /\(run 2\)/);
      assert.match(second.stdout, /400 in "results" over all runs/);
    } finally {
      await rm(cwd, { recursive: true, force: true });
    }
  }, 110_000);
});
