/**
 * `stowage migrate` standalone ↔ PostgreSQL: a populated standalone folder goes to postgres:// (config and
 * documents) and postgres+sealed:// (secrets) on one server and back to a fresh folder, with every
 * verification row matching and the round trip equal to the original.
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

serviceSuite('postgres', (pg) => {
  let root: string;
  let env: Record<string, string>;

  beforeAll(async () => {
    root = await tempDir('stowage-cli-postgres-');
    env = cleanEnv({ STOWAGE_MASTER_KEY: randomBytes(24).toString('base64') });
    const ns = `m${randomBytes(4).toString('hex')}_`;
    const url = (prefix: string, scheme = 'postgres') => `"${pg().url.replace(/^postgres:/, `${scheme}:`)}?tablePrefix=${prefix}"`;
    await writeFile(
      join(root, 'servers.yaml'),
      [`dataDir: ${join(root, 'servers')}`, `config: ${url(ns)}`, `secrets: ${url(`${ns}s_`, 'postgres+sealed')}`, `documents: ${url(ns)}`].join('\n') + '\n',
    );
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
  }, 60_000);
  afterAll(async () => {
    if (root) await rm(root, { recursive: true, force: true });
  });

  const cli = (args: string[]) => runCli(args, { env, cwd: root, timeoutMs: 50_000 });

  it('migrates config, secrets and documents to PostgreSQL and back, every row matching', async () => {
    {
      await using s = await createStowage({ dataDir: join(root, 'a') }, { env });
      for (let i = 0; i < 40; i++) await s.config.put(`app/k${i}`, { i, tags: [`t${i % 3}`], nested: { on: i % 2 === 0 } });
      await s.config.put('app/é/ü', 'unicode');
      await s.secrets.put('db/password', 'v1');
      await s.secrets.put('db/password', 'v2');
      await s.secrets.put('db/password', 'v3');
      await s.secrets.delete('db/password', { versions: [2] });
      await s.secrets.put('api/token', randomBytes(40));
      const people = await s.documents.collection('people', { indexes: [{ name: 'by_email', fields: ['email'], unique: true }, { fields: ['team', 'age'] }] });
      await people.insertMany(Array.from({ length: 120 }, (_, i) => ({ email: `p${i}@x.org`, team: `t${i % 7}`, age: 20 + (i % 50), nested: { a: [i, { b: i % 2 === 0 }] } })));
      const orders = await s.documents.collection('orders');
      for (let i = 0; i < 30; i++) await orders.put(`o-${i}`, { total: i * 1.5, customer: `c${i % 4}` });
    }
    const matching = (report: Report): void => assert.ok(report.verification.every((r) => r.status === 'match'), JSON.stringify(report.verification));

    const there = await cli(['migrate', '--from', 'a.yaml', '--to', 'servers.yaml', '--json']);
    assert.equal(there.code, 0, there.stdout + there.stderr);
    matching(lastJson<Report>(there));
    assert.deepEqual(lastJson<Report>(there).verification.filter((r) => r.port === 'documents').map((r) => [r.item, r.target]), [['orders', 30], ['orders indexes', 0], ['people', 120], ['people indexes', 2]]);

    const back = await cli(['migrate', '--from', 'servers.yaml', '--to', 'b.yaml', '--json']);
    assert.equal(back.code, 0, back.stdout + back.stderr);
    matching(lastJson<Report>(back));

    const same = await cli(['migrate', '--from', 'a.yaml', '--to', 'b.yaml', '--verify-only', '--json']);
    assert.equal(same.code, 0, same.stdout);
    matching(lastJson<Report>(same));
    await using b = await createStowage({ dataDir: join(root, 'b') }, { env });
    assert.equal((await b.secrets.get('db/password')).value.reveal(), 'v3');
    assert.deepEqual((await b.config.get('app/k7'))?.value, { i: 7, tags: ['t1'], nested: { on: false } });
    const [p7] = (await (await b.documents.collection('people')).find({ email: 'p7@x.org' })).items;
    assert.equal(p7?.data.team, 't0');
  }, 120_000);
});
