import { describe, it } from 'vitest';
import { MemorySecretsDriver } from '../../src/adapters/memory/secrets-driver.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { secretsContract } from '../../src/testing/secrets.js';

secretsContract({
  test: { describe, it },
  name: 'mem://',
  factory: async () => createSecretStore(new MemorySecretsDriver()),
});
