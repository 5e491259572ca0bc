/**
 * A scheme whose client library is not installed is reported once, with the `npm install` line that installs
 * every package the scheme needs, and doctor repeats that line as its hint.
 */
import { readFile } from 'node:fs/promises';
import { describe, expect, it } from 'vitest';
import { SchemeRegistry, type SchemeDefinition } from '../../src/core/registry.js';
import { BUILTIN_SCHEMES } from '../../src/schemes.js';
import { doctor } from '../../src/cli/doctor.js';
import { rejectsWith } from '../../src/testing/harness.js';

/** Imports a package that is not installed, as an adapter's loader does on a machine without its client. */
function absentClient(): Promise<SchemeDefinition<'queue'>> {
  const name: string = '@stowage-test/absent-client';
  return import(name) as Promise<SchemeDefinition<'queue'>>;
}

const NATS = BUILTIN_SCHEMES.find((e) => e.scheme === 'nats')!;

describe('a missing client library', () => {
  it('is UNSUPPORTED (not retryable) with one npm install line naming every package of the scheme', async () => {
    const registry = new SchemeRegistry().register({ port: 'queue', scheme: 'nats', packages: NATS.packages, load: absentClient });
    const err = await rejectsWith(registry.open('queue', 'nats://127.0.0.1:4222', { dataDir: '/nonexistent', env: {}, logger: console }), 'UNSUPPORTED');
    expect(err.retryable).toBe(false);
    expect(err.message).toContain('@stowage-test/absent-client is not installed');
    expect(err.message).toContain('npm install @nats-io/transport-node@3 @nats-io/jetstream@3 @nats-io/nats-core@3');
    expect(err.details.install).toBe('npm install @nats-io/transport-node@3 @nats-io/jetstream@3 @nats-io/nats-core@3');
  });

  it('names the package itself when the scheme does not list its packages', async () => {
    const registry = new SchemeRegistry().register({ port: 'queue', scheme: 'my', load: absentClient });
    const err = await rejectsWith(registry.open('queue', 'my://x', { dataDir: '/nonexistent', env: {}, logger: console }), 'UNSUPPORTED');
    expect(err.details.install).toBe('npm install @stowage-test/absent-client');
  });

  it('gets doctor\'s hint with that npm install line', async () => {
    const registry = new SchemeRegistry().register({ port: 'queue', scheme: 'nats', packages: NATS.packages, load: absentClient });
    const [row] = await doctor({ registry, profile: { queue: 'nats://127.0.0.1:4222' }, ports: ['queue'], env: {} });
    expect(row?.error?.code).toBe('UNSUPPORTED');
    expect(row?.error?.reason).toBe('missing-client');
    expect(row?.hint).toBe("missing client: run `npm install @nats-io/transport-node@3 @nats-io/jetstream@3 @nats-io/nats-core@3` in the service's project");
  });

  it('every built-in scheme lists packages that are optional peer dependencies, at the peer range\'s major', async () => {
    const pkg = JSON.parse(await readFile('package.json', 'utf8')) as { peerDependencies: Record<string, string> };
    for (const entry of BUILTIN_SCHEMES) {
      for (const spec of entry.packages ?? []) {
        const [, name, major] = /^(@?[^@]+)@(.+)$/.exec(spec) ?? [];
        const range = pkg.peerDependencies[name ?? ''];
        expect(range, `${entry.scheme}: ${spec} is a peer dependency`).toBeDefined();
        const [want = 0, wantMinor = 0] = (major ?? '').split('.').map(Number);
        const [low = 0, lowMinor = 0] = range!.replace(/^[\^>=~]*/, '').split('.').map(Number);
        const fits = range!.startsWith('>=') ? want > low || (want === low && wantMinor >= lowMinor) : want === low;
        expect(fits, `${entry.scheme}: ${spec} fits ${range}`).toBe(true);
      }
    }
  });
});
