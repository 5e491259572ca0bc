import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { fuzzCache, fuzzConfig, fuzzDocuments, fuzzQueue, fuzzSecrets } from './fuzz.js';

const OPS = 10_000;
const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

describe('hostile input on mem://', () => {
  it.each([
    ['config', (s: Awaited<ReturnType<typeof createStowage>>) => fuzzConfig(s.config, OPS, 1)],
    ['secrets', (s: Awaited<ReturnType<typeof createStowage>>) => fuzzSecrets(s.secrets, OPS, 2)],
    ['queue', (s: Awaited<ReturnType<typeof createStowage>>) => fuzzQueue(s.queue, OPS, 3)],
    ['cache', (s: Awaited<ReturnType<typeof createStowage>>) => fuzzCache(s.cache, OPS, 4)],
    ['documents', (s: Awaited<ReturnType<typeof createStowage>>) => fuzzDocuments(s.documents, OPS, 5)],
  ])('%s: 10,000 hostile operations give only StowageErrors and leave the store matching its model', async (_port, run) => {
    const stowage = await createStowage(MEM, { env: {} });
    try {
      const report = await run(stowage);
      expect(report.ops).toBe(OPS);
      expect(report.accepted).toBeGreaterThan(OPS / 10);
      expect(report.rejected.INVALID_ARGUMENT ?? 0).toBeGreaterThan(OPS / 10);
    } finally {
      await stowage.close();
    }
  }, 120_000);
});

describe('hostile input on mem+sealed://', () => {
  it('secrets: 10,000 hostile operations give only StowageErrors and leave the store matching its model', async () => {
    const stowage = await createStowage({ ...MEM, secrets: 'mem+sealed://' }, { env: { STOWAGE_MASTER_KEY: randomBytes(32).toString('base64') } });
    try {
      const report = await fuzzSecrets(stowage.secrets, OPS, 6);
      expect(report.ops).toBe(OPS);
      expect(report.accepted).toBeGreaterThan(OPS / 10);
      expect(report.rejected.INVALID_ARGUMENT ?? 0).toBeGreaterThan(OPS / 10);
    } finally {
      await stowage.close();
    }
  }, 120_000);
});
