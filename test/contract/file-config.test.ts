import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, it } from 'vitest';
import { FileConfigDriver } from '../../src/adapters/file/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { configContract } from '../../src/testing/config.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-file-config-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

configContract({
  test: { describe, it },
  name: 'file:// (JSON)',
  factory: async () => createConfigStore(await FileConfigDriver.open(join(root, `json-${++n}`, 'config.json'))),
});

describe('YAML', () => {
  configContract({
    test: { describe, it },
    name: 'file:// (YAML)',
    factory: async () => createConfigStore(await FileConfigDriver.open(join(root, `yaml-${++n}`, 'config.yaml'))),
  });
});
