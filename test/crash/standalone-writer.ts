/**
 * The writer of the standalone crash test: waits for "go" on stdin, opens the `file://` config and the
 * `file://` keyring in the folder given as argument, and writes counters to both in a loop, printing
 * each acknowledged write (`C <value> <revision>`, `S <value> <version>`) until it is killed.
 */
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { fileConfigScheme } from '../../src/adapters/file/config-driver.js';
import { KeyringSecretsDriver } from '../../src/adapters/file/keyring-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';

export const CRASH_MASTER_KEY = 'crash-test-master-key-0123456789';
/** Low scrypt cost: the test opens the keyring hundreds of times. */
export const CRASH_KDF_COST = { N: 1024, r: 8, p: 1 };
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

async function main(dir: string): Promise<void> {
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.once('line', () => resolve()));
  const registry = new SchemeRegistry().register(fileConfigScheme);
  const config = createConfigStore(await registry.open('config', `file://${join(dir, 'config.json')}?watch=false`, { dataDir: dir, env: {}, logger }));
  const secrets = createSecretStore(
    await KeyringSecretsDriver.open({ path: join(dir, 'secrets.keyring'), env: { STOWAGE_MASTER_KEY: CRASH_MASTER_KEY }, logger, kdfCost: CRASH_KDF_COST }),
  );
  let counter = Number((await config.get('crash/counter'))?.value ?? 0);
  let secret = (await secrets.versions('crash/counter').catch(() => [])).length;
  process.stdout.write('READY\n');
  for (;;) {
    counter++;
    const { revision } = await config.put('crash/counter', counter);
    process.stdout.write(`C ${counter} ${revision}\n`);
    secret++;
    const { version } = await secrets.put('crash/counter', String(secret));
    process.stdout.write(`S ${secret} ${version}\n`);
  }
}

if (process.argv[2] !== undefined) {
  main(process.argv[2]).catch((err: unknown) => {
    process.stderr.write(`writer failed: ${String(err)}\n`);
    process.exit(2);
  });
}
