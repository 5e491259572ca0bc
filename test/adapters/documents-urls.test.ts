import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import type { MongoClient } from 'mongodb';
import { mongoDocumentsScheme } from '../../src/adapters/mongo/index.js';
import { mysqlDocumentsScheme } from '../../src/adapters/mysql/index.js';
import { parseUrl } from '../../src/driver/url.js';

const dir = mkdtempSync(join(tmpdir(), 'stowage-doc-urls-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const context = {
  dataDir: dir,
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

describe('mysql:// URLs', () => {
  it('refuses a URL without a database, with several hosts or with a bad tablePrefix', async () => {
    for (const url of ['mysql://db:3306', 'mysql://a:1,b:2/app', 'mysql://db/app?tablePrefix=a-b']) {
      await expect(mysqlDocumentsScheme.open(parseUrl(url), context)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
  });

  it('reads the password from passwordFile, and an unreadable file is PERMISSION_DENIED naming it', async () => {
    const file = join(dir, 'pw');
    writeFileSync(file, 's3cret-pw\n');
    const driver = await mysqlDocumentsScheme.open(parseUrl(`mysql://app@db:3306/app?passwordFile=${file}`), context);
    const pool = driver.native?.() as { pool: { config: { connectionConfig: { password: string } } } };
    expect(pool.pool.config.connectionConfig.password).toBe('s3cret-pw');
    await driver.close();
    const err = await mysqlDocumentsScheme.open(parseUrl(`mysql://app@db/app?passwordFile=${join(dir, 'missing')}`), context).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'PERMISSION_DENIED' });
    expect(String((err as Error).message)).toContain('missing');
  });
});

describe('mongodb:// URLs', () => {
  it('passes hosts, credentials and known options to the driver, and refuses a missing database', async () => {
    const file = join(dir, 'mpw');
    writeFileSync(file, 'p@ss:word\n');
    const driver = await mongoDocumentsScheme.open(parseUrl(`mongodb://app@h1:27017,h2:27018/appdb?replicaSet=rs0&passwordFile=${file}`), context);
    const client = driver.native?.() as MongoClient;
    expect(client.options.hosts.map(String)).toEqual(['h1:27017', 'h2:27018']);
    expect(client.options.credentials?.password).toBe('p@ss:word');
    expect(client.options.replicaSet).toBe('rs0');
    await driver.close();
    await expect(mongoDocumentsScheme.open(parseUrl('mongodb://h1:27017'), context)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
