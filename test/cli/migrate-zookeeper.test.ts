/**
 * `stowage migrate` to and from ZooKeeper (config): a populated standalone folder goes to a `zookeeper://` store
 * and back to a fresh folder, with every verification row matching and the round trip equal to the original.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterAll, beforeAll, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { serviceSuite, tempDir } from '../support/services.js';
import { cleanEnv, lastJson, runCli } from './run-cli.js';

interface Report {
  ok: boolean;
  verification: { port: string; item: string; source: number; target: number; status: string }[];
}

serviceSuite('zookeeper', (zk) => {
  let root: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    root = await tempDir('stowage-cli-zookeeper-');
    env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });
    const ns = `m${randomBytes(4).toString('hex')}`;
    await writeFile(join(root, 'servers.yaml'), `dataDir: ${join(root, 'servers')}\nconfig: "${zk().url}/${ns}"\n`);
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
  }, 60_000);
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const cli = (args: string[]) => runCli(args, { env, cwd: root, timeoutMs: 50_000 });

  it('migrates config to ZooKeeper and back, every row matching and every key equal', async () => {
    const written = new Map<string, unknown>();
    {
      await using s = await createStowage({ dataDir: join(root, 'a') }, { env });
      for (let i = 0; i < 150; i++) {
        const value = { i, name: `svc-${i}`, tags: [i % 3, 'é✓𝄞'], nested: { on: i % 2 === 0 } };
        await s.config.put(`app/${i % 5}/key-${i}`, value);
        written.set(`app/${i % 5}/key-${i}`, value);
      }
      await s.config.put('top', 'level');
      written.set('top', 'level');
    }
    const matching = (report: Report): void => assert.ok(report.verification.every((r) => r.status === 'match'), JSON.stringify(report.verification));

    const there = await cli(['migrate', '--from', 'a.yaml', '--to', 'servers.yaml', '--json']);
    assert.equal(there.code, 0, there.stdout + there.stderr);
    matching(lastJson<Report>(there));
    assert.ok(lastJson<Report>(there).verification.some((r) => r.port === 'config' && r.target === written.size), JSON.stringify(lastJson<Report>(there).verification));

    const back = await cli(['migrate', '--from', 'servers.yaml', '--to', 'b.yaml', '--json']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    matching(lastJson<Report>(back));

    await using b = await createStowage({ dataDir: join(root, 'b') }, { env });
    const { entries } = await b.config.list('');
    assert.deepEqual(new Map(entries.map((e) => [e.key, e.value])), written);
  }, 120_000);
});
