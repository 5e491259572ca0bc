import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { createConfigStore, defaultLogger, SchemeRegistry } from '../../src/index.js';
import { configContract } from '../../src/testing/index.js';
import { tinyConfigScheme } from './fixtures/tiny-config.js';

const registry = new SchemeRegistry().register(tinyConfigScheme);

describe('a third-party adapter written against stowage/driver', () => {
  it('imports nothing but the ports and stowage/driver', async () => {
    const source = await readFile(new URL('./fixtures/tiny-config.ts', import.meta.url), 'utf8');
    const specifiers = [...source.matchAll(/^import\b[^;]*?from '([^']+)'/gms)].map((m) => m[1]);
    expect(specifiers.length).toBeGreaterThan(0);
    for (const specifier of specifiers) expect(specifier).toMatch(/^\.\.\/\.\.\/\.\.\/src\/(ports|driver)\/index\.js$/);
  });
});

configContract({
  test: { describe, it },
  name: 'tiny:// (third-party, stowage/driver only)',
  factory: async () => createConfigStore(await registry.open('config', 'tiny://?historySize=5000', { dataDir: '/nonexistent', env: {}, logger: defaultLogger })),
});
