import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { fileSecretsScheme } from '../../src/adapters/file/keyring-driver.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { secretsContract } from '../../src/testing/secrets.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-keyring-contract-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const registry = new SchemeRegistry().register(fileSecretsScheme);
const env = { STOWAGE_MASTER_KEY: 'contract-suite-master-key-0123456789' };
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };
let n = 0;

secretsContract({
  test: { describe, it },
  name: 'file:// keyring',
  factory: async () => {
    const dataDir = join(root, `t${n++}`);
    return createSecretStore(await registry.open('secrets', `file://${join(dataDir, 'secrets.keyring')}`, { dataDir, env, logger }));
  },
});
