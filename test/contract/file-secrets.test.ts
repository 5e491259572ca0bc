import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { KeyringSecretsDriver } from '../../src/adapters/file/keyring-driver.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { secretsContract } from '../../src/testing/secrets.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-keyring-contract-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
// A low scrypt cost keeps the suite quick on a loaded machine; test/adapters/file-keyring.test.ts opens
// keyrings through the file:// scheme at the default cost.
const kdfCost = { N: 1024, r: 8, p: 1 };
let n = 0;

secretsContract({
  test: { describe, it },
  name: 'file:// keyring',
  factory: async () =>
    createSecretStore(
      await KeyringSecretsDriver.open({
        path: join(root, `t${n++}`, 'secrets.keyring'),
        env: { STOWAGE_MASTER_KEY: 'contract-suite-master-key-0123456789' },
        logger,
        kdfCost,
      }),
    ),
});
