import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { createStowage, type Profile, type Stowage } from '../../src/index.js';
import { fuzzCache, fuzzConfig, fuzzDocuments, fuzzNames, fuzzQueue, fuzzSecrets, type FuzzReport } from './fuzz.js';

const OPS = 10_000;
const MEM: Profile = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

describe('hostile input on mem://', () => {
  it.each([
    ['config on mem://', {}, (s: Stowage) => fuzzConfig(s.config, OPS, 1)],
    ['secrets on mem://', {}, (s: Stowage) => fuzzSecrets(s.secrets, OPS, 2)],
    ['queue on mem://', {}, (s: Stowage) => fuzzQueue(s.queue, OPS, 3)],
    ['cache on mem://', {}, (s: Stowage) => fuzzCache(s.cache, OPS, 4)],
    ['documents on mem://', {}, (s: Stowage) => fuzzDocuments(s.documents, OPS, 5)],
    ['secrets on mem+sealed://', { secrets: 'mem+sealed://' }, (s: Stowage) => fuzzSecrets(s.secrets, OPS, 6)],
  ] as [string, Profile, (s: Stowage) => Promise<FuzzReport>][])(
    '%s: 10,000 hostile operations give only StowageErrors and leave the store matching its model',
    async (_what, profile, run) => {
      const stowage = await createStowage({ ...MEM, ...profile }, { env: { STOWAGE_MASTER_KEY: randomBytes(32).toString('base64') } });
      try {
        const report = await run(stowage);
        expect(report.ops).toBe(OPS);
        expect(report.accepted).toBeGreaterThan(OPS / 10);
        expect(report.rejected.INVALID_ARGUMENT ?? 0).toBeGreaterThan(OPS / 10);
      } finally {
        await stowage.close();
      }
    },
    120_000,
  );
});

describe('hostile names on mem://', () => {
  it('documents: 400 opens and inserts with colliding collection and index names match the model', async () => {
    const stowage = await createStowage(MEM);
    try {
      const report = await fuzzNames(stowage.documents, 400, 7);
      expect(report.rejected.ALREADY_EXISTS ?? 0).toBeGreaterThan(0);
    } finally {
      await stowage.close();
    }
  });
});
