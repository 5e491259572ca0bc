import { randomBytes, randomUUID } from 'node:crypto';
import { expect, it } from 'vitest';
import { createStowage, type Profile, type Stowage } from '../../src/index.js';
import { serviceSuite, type Service } from '../support/services.js';
import { fuzzCache, fuzzConfig, fuzzDocuments, fuzzNames, fuzzQueue, fuzzSecrets, type FuzzReport } from './fuzz.js';

const OPS = 10_000;
const MEM: Profile = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

async function fuzzWith(profile: Profile, run: (s: Stowage) => Promise<FuzzReport>, env: Readonly<Record<string, string>> = {}): Promise<void> {
  const stowage = await createStowage({ ...MEM, ...profile }, { env: { STOWAGE_MASTER_KEY: randomBytes(32).toString('base64'), ...env } });
  try {
    const report = await run(stowage);
    expect(report.ops).toBe(OPS);
    expect(report.accepted).toBeGreaterThan(OPS / 10);
  } finally {
    await stowage.close();
  }
}

const run = (): string => randomUUID().slice(0, 8);

serviceSuite('etcd', (svc: () => Service) => {
  it('etcd:// config: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ config: `etcd://127.0.0.1:${svc().port}/hostile-${run()}` }, (s) => fuzzConfig(s.config, OPS, 21));
  }, 180_000);
  it('etcd+sealed:// secrets: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ secrets: `etcd+sealed://127.0.0.1:${svc().port}/hostile-${run()}` }, (s) => fuzzSecrets(s.secrets, OPS, 22));
  }, 180_000);
}, { title: 'hostile input on etcd' });

serviceSuite('zookeeper', (svc: () => Service) => {
  it('zookeeper:// config: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ config: `zookeeper://127.0.0.1:${svc().port}/hostile-${run()}` }, (s) => fuzzConfig(s.config, OPS, 29));
  }, 180_000);
}, { title: 'hostile input on zookeeper' });

serviceSuite('nats', (svc: () => Service) => {
  it('nats:// queue: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ queue: `nats://127.0.0.1:${svc().port}?stream=hostile_${run()}` }, (s) => fuzzQueue(s.queue, OPS, 23));
  }, 180_000);
}, { title: 'hostile input on nats' });

serviceSuite('postgres', (svc: () => Service) => {
  it('postgres:// queue: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ queue: `${svc().url}?schema=hostile_${run().replaceAll('-', '_')}` }, (s) => fuzzQueue(s.queue, OPS, 29));
  }, 180_000);
}, { title: 'hostile input on postgres (queue)' });
serviceSuite('kafka', (svc: () => Service) => {
  it('kafka:// queue: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ queue: `kafka://127.0.0.1:${svc().port}?prefix=hostile_${run()}` }, (s) => fuzzQueue(s.queue, OPS, 29));
  }, 180_000);
}, { title: 'hostile input on kafka' });
serviceSuite('rabbitmq', (svc: () => Service) => {
  it('rabbitmq:// queue: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ queue: `${svc().url}?prefix=hostile_${run()}` }, (s) => fuzzQueue(s.queue, OPS, 29));
  }, 180_000);
}, { title: 'hostile input on rabbitmq' });

serviceSuite('redis', (svc: () => Service) => {
  it('redis:// cache: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ cache: `redis://127.0.0.1:${svc().port}/0` }, (s) => fuzzCache(s.cache.withNamespace(`h${run()}`), OPS, 24));
  }, 180_000);
  it('tiered:// cache: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    const remote = encodeURIComponent(`redis://127.0.0.1:${svc().port}/1`);
    await fuzzWith({ cache: `tiered://?remote=${remote}` }, (s) => fuzzCache(s.cache.withNamespace(`h${run()}`), OPS, 25));
  }, 180_000);
}, { title: 'hostile input on redis' });

serviceSuite('mariadb', (svc: () => Service) => {
  it('mysql:// documents: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    const mysql = await import('mysql2/promise');
    const db = `hostile_${run()}`;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: svc().port, user: 'root' });
    await conn.query(`CREATE DATABASE ${db}`);
    await conn.end();
    await fuzzWith({ documents: `mysql://root@127.0.0.1:${svc().port}/${db}` }, (s) => fuzzDocuments(s.documents, OPS, 26));
  }, 240_000);
  it('mysql:// documents: 400 opens and inserts with colliding collection and index names match the model', async () => {
    const mysql = await import('mysql2/promise');
    const db = `hostile_names_${run()}`;
    const conn = await mysql.createConnection({ host: '127.0.0.1', port: svc().port, user: 'root' });
    await conn.query(`CREATE DATABASE ${db}`);
    await conn.end();
    const stowage = await createStowage({ ...MEM, documents: `mysql://root@127.0.0.1:${svc().port}/${db}` });
    try {
      const report = await fuzzNames(stowage.documents, 400, 27);
      expect(report.rejected.ALREADY_EXISTS ?? 0).toBeGreaterThan(0);
    } finally {
      await stowage.close();
    }
  }, 240_000);
}, { title: 'hostile input on mariadb' });

serviceSuite('postgres', (svc: () => Service) => {
  const url = (): string => `postgres://postgres@127.0.0.1:${svc().port}/postgres?tablePrefix=h${run()}_`;
  it('postgres:// documents: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ documents: url() }, (s) => fuzzDocuments(s.documents, OPS, 28));
  }, 240_000);
  it('postgres:// documents: 400 opens and inserts with colliding collection and index names match the model', async () => {
    const stowage = await createStowage({ ...MEM, documents: url() });
    try {
      await fuzzNames(stowage.documents, 400, 29);
    } finally {
      await stowage.close();
    }
  }, 240_000);
  it('postgres:// config: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ config: url() }, (s) => fuzzConfig(s.config, OPS, 30));
  }, 240_000);
  it('postgres+sealed:// secrets: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ secrets: url().replace(/^postgres:/, 'postgres+sealed:') }, (s) => fuzzSecrets(s.secrets, OPS, 31));
  }, 240_000);
}, { title: 'hostile input on postgres' });

serviceSuite('vault', (svc: () => Service) => {
  it('vault:// secrets: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ secrets: `vault://127.0.0.1:${svc().port}/secret/hostile-${run()}?tls=false` }, (s) => fuzzSecrets(s.secrets, OPS, 27), svc().env);
  }, 240_000);
}, { title: 'hostile input on vault' });

serviceSuite('mongodb', (svc: () => Service) => {
  it('mongodb:// documents: 10,000 hostile operations give only StowageErrors and match the model', async () => {
    await fuzzWith({ documents: `mongodb://127.0.0.1:${svc().port}/hostile_${run()}` }, (s) => fuzzDocuments(s.documents, OPS, 28));
  }, 240_000);
}, { title: 'hostile input on mongodb' });
