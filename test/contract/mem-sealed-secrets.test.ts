import { describe, it } from 'vitest';
import { MemoryConfigDriver } from '../../src/adapters/memory/config-driver.js';
import { memConfigScheme } from '../../src/adapters/memory/config-driver.js';
import { memSealedSecretsScheme, SealedSecretsDriver } from '../../src/adapters/sealed/index.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { secretsContract } from '../../src/testing/secrets.js';

// A low scrypt cost keeps the suite quick on a loaded machine; the scheme (default cost) is opened once below.
const TEST_KDF_COST = { N: 1024, r: 8, p: 1 };
const MASTER = Buffer.from('sealed-contract-master-key-0123456789');

secretsContract({
  test: { describe, it },
  name: 'mem+sealed:// (driver)',
  factory: async () =>
    createSecretStore(await SealedSecretsDriver.open('mem+sealed', new MemoryConfigDriver(), MASTER, AbortSignal.timeout(10_000), TEST_KDF_COST)),
});

describe('mem+sealed:// scheme', () => {
  it('opens through the registry with the master key from STOWAGE_MASTER_KEY', async () => {
    const registry = new SchemeRegistry().register(memConfigScheme).register(memSealedSecretsScheme);
    const context = {
      dataDir: '/nonexistent',
      env: { STOWAGE_MASTER_KEY: MASTER.toString() },
      logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
    };
    const store = createSecretStore(await registry.open('secrets', 'mem+sealed://?historySize=10', context));
    await store.put('a', 'v');
    if ((await store.get('a')).value.reveal() !== 'v') throw new Error('value not read back');
    await store.close();
  });
});
