import { expect, it } from 'vitest';
import { StowageError } from '../../src/ports/errors.js';
import { expectEachFailsInTime } from './adapters.js';

const fails = (code: 'TIMEOUT' | 'UNAVAILABLE' | 'INTERNAL', afterMs = 0): Promise<never> =>
  new Promise((_, reject) => setTimeout(() => reject(new StowageError(code, code.toLowerCase())), afterMs));

it('expectEachFailsInTime passes when every call fails with TIMEOUT or UNAVAILABLE in time', async () => {
  await expectEachFailsInTime(100, [fails('TIMEOUT', 20), fails('UNAVAILABLE')]);
});

it('expectEachFailsInTime fails for a call that answers, fails otherwise, or fails too late', async () => {
  await expect(expectEachFailsInTime(100, [fails('TIMEOUT'), Promise.resolve('answered')])).rejects.toThrow();
  await expect(expectEachFailsInTime(100, [fails('INTERNAL')])).rejects.toThrow();
  await expect(expectEachFailsInTime(0, [fails('TIMEOUT', 1_600)])).rejects.toThrow();
});
