/**
 * Child of files.test.ts: with umask 0, opens every standalone store — in the data folder and in folders of
 * its own outside it — writes to each, and exits. The parent then checks every mode.
 */
import { pathToFileURL } from 'node:url';
import { join } from 'node:path';
import { createStowage } from '../../src/index.js';

process.umask(0);
const root = process.argv[2] as string;
const url = (scheme: string, path: string): string => `${scheme}://${pathToFileURL(path).pathname}`;

async function exercise(profile: Parameters<typeof createStowage>[0], env: Record<string, string>): Promise<void> {
  const stowage = await createStowage(profile, { env });
  try {
    await stowage.config.put('k', 1);
    await stowage.secrets.put('s', 'value');
    await stowage.queue.publish('orders', 'x');
    const iterator = stowage.queue.consume('orders', 'billing')[Symbol.asyncIterator]();
    const delivery = (await iterator.next()).value as { ack(): Promise<void> };
    await delivery.ack();
    await iterator.return?.();
    await (await stowage.documents.collection('c')).insert({ a: 1 });
  } finally {
    await stowage.close();
  }
}

// Everything in the data folder, the file:// keyring with its default key file.
await exercise({ dataDir: join(root, 'data') }, {});
// Every store in a folder of its own outside the data folder; secrets sealed in a file.
await exercise(
  {
    dataDir: join(root, 'data2'),
    config: url('file', join(root, 'out', 'config', 'c.json')),
    secrets: url('file+sealed', join(root, 'out', 'sealed', 's.json')),
    queue: url('disk', join(root, 'out', 'queue')),
    documents: url('sqlite', join(root, 'out', 'docs', 'd.db')),
  },
  { STOWAGE_MASTER_KEY: 'k'.repeat(40) },
);
await exercise({ dataDir: join(root, 'data3'), secrets: url('file', join(root, 'out', 'keyring', 'k.keyring')) }, {});
