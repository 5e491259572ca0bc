import { describe, it } from 'vitest';
import { MemoryDocumentsDriver } from '../../src/adapters/memory/documents-driver.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';
import { documentsContract } from '../../src/testing/documents.js';

documentsContract({
  test: { describe, it },
  name: 'mem://',
  factory: async () => createDocumentStore(new MemoryDocumentsDriver(), { maxDocumentBytes: 64 * 1024 }),
});
