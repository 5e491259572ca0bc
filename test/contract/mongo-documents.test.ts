import { describe, it } from 'vitest';
import { mongoDocumentsScheme } from '../../src/adapters/mongo/index.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { parseUrl } from '../../src/driver/url.js';
import { documentsContract } from '../../src/testing/documents.js';
import { serviceSuite } from '../support/services.js';

const context = {
  dataDir: '/nonexistent',
  env: {},
  logger: { warn: () => undefined, info: () => undefined, debug: () => undefined },
  openDriver: () => Promise.reject(new Error('not used')),
};

serviceSuite('mongodb', (svc) => {
  const run = `${process.pid}_${Date.now().toString(36)}`;
  let n = 0;
  documentsContract({
    test: { describe, it },
    name: 'mongodb://',
    // Each instance gets its own database on the shared server.
    factory: async () => {
      const parsed = new URL(svc().url);
      parsed.pathname = `/stowage_docs_${run}_${n++}`;
      return createDocumentStore(await mongoDocumentsScheme.open(parseUrl(parsed.toString()), context), { maxDocumentBytes: 64 * 1024 });
    },
  });
});
