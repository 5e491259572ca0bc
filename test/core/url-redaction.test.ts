/**
 * Credentials in backend URLs never show: not in `parseUrl` errors, not in `redactUrlText`, not in
 * `stowage.profile`, not in `stowage doctor`, on every scheme, whatever the password holds.
 */
import { describe, expect, it } from 'vitest';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseUrl, redactUrlText } from '../../src/driver/url.js';
import { createStowage, StowageError } from '../../src/index.js';
import { doctor } from '../../src/cli/doctor.js';
import type { PortName } from '../../src/ports/common.js';

/** Each built-in scheme and the port it serves. */
const SCHEMES: readonly [string, PortName][] = [
  ['etcd', 'config'],
  ['file', 'config'],
  ['vault', 'secrets'],
  ['etcd+sealed', 'secrets'],
  ['file+sealed', 'secrets'],
  ['disk', 'queue'],
  ['nats', 'queue'],
  ['redis', 'cache'],
  ['rediss', 'cache'],
  ['redis+sentinel', 'cache'],
  ['redis+cluster', 'cache'],
  ['tiered', 'cache'],
  ['sqlite', 'documents'],
  ['mysql', 'documents'],
  ['mongodb', 'documents'],
];

/** The two halves of the password, split by a character that ends a user info in a naive parser. */
const HEAD = 'Hd7secretHEAD';
const TAIL = 'Tl9secretTAIL';

function hostileUrls(scheme: string): string[] {
  return ['/', '?', '#', '@'].map((c) => `${scheme}://app:${HEAD}${c}${TAIL}@127.0.0.1:9/x`);
}

function expectClean(text: string): void {
  expect(text).not.toContain(HEAD);
  expect(text).not.toContain(TAIL);
}

function errorText(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(StowageError);
    return `${(err as Error).message} ${String((err as Error).stack)}`;
  }
  return '';
}

describe('URL credentials never print', () => {
  it('a raw "/", "?", "#" or "@" in a password is hidden by redactUrlText and by parseUrl errors, on every scheme', () => {
    for (const [scheme] of SCHEMES) {
      for (const url of hostileUrls(scheme)) {
        expectClean(redactUrlText(url));
        expectClean(errorText(() => parseUrl(url)));
        expectClean(redactUrlText(` ${url}`));
      }
    }
  });

  it('a password holding "@" is parsed whole and its URL prints without it', () => {
    const url = parseUrl(`mysql://app:${HEAD}@${TAIL}@db:3306/app`);
    expect(url.password).toBe(`${HEAD}@${TAIL}`);
    expect(url.hosts).toEqual([{ host: 'db', port: 3306 }]);
    expectClean(url.redacted);
    expect(url.redacted).toBe('mysql://[redacted]@db:3306/app');
  });

  it('a mistyped URL (one slash, no scheme, a forgotten host) is never echoed', () => {
    for (const text of [`mysql:/app:${HEAD}@db/app`, `app:${HEAD}@db/app`, `redis//:${HEAD}@cache`, `redis://app:${HEAD}`]) {
      expectClean(redactUrlText(text));
      expectClean(errorText(() => parseUrl(text)));
    }
  });

  it('an "invalid port" error does not print the URL nor the port text', () => {
    const message = errorText(() => parseUrl(`redis://app:${HEAD}`));
    expect(message).toMatch(/invalid port/);
    expectClean(message);
  });

  it('secret-looking query values are never printed, while ordinary ones and file paths are', () => {
    for (const name of ['pwd', 'passwd', 'apiKey', 'access_token', 'clientSecret', 'sessionToken', 'x-auth']) {
      expectClean(redactUrlText(`nats://n1:4222?stream=jobs&${name}=${HEAD}`));
    }
    expect(redactUrlText('nats://n1:4222?stream=jobs&tokenFile=/run/t')).toBe('nats://n1:4222?stream=jobs&tokenFile=/run/t');
  });

  it('URLs nested in query parameters are redacted the same way, raw or encoded', () => {
    expectClean(redactUrlText(`tiered://?remote=redis://:${HEAD}/${TAIL}@cache:6379/0`));
    expectClean(redactUrlText(`tiered://?remote=${encodeURIComponent(`redis://:${HEAD}@${TAIL}@cache:6379/0`)}`));
  });

  it('"cannot open" errors and stowage.profile hide hostile passwords and secret-looking parameters', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-redact-'));
    for (const [scheme, port] of SCHEMES) {
      for (const url of [...hostileUrls(scheme), `${scheme}://127.0.0.1:9/x?pwd=${HEAD}&apiKey=${TAIL}`]) {
        // Some adapters connect lazily and open fine: then their profile is what could leak.
        const printed = await createStowage({ dataDir, [port]: url }, { ports: [port] }).then(
          async (s) => {
            await s.close();
            return JSON.stringify(s.profile);
          },
          (err: unknown) => {
            expect(err, url).toBeInstanceOf(StowageError);
            return `${(err as Error).message} ${String((err as Error).stack)} ${JSON.stringify(err)}`;
          },
        );
        expectClean(printed);
      }
    }
    // A port that is not opened still shows in the profile: with the password hidden.
    const stowage = await createStowage({ dataDir, cache: 'mem://', documents: `mysql://app:${HEAD}/${TAIL}@db/app` }, { ports: ['cache'] });
    try {
      expectClean(JSON.stringify(stowage.profile));
    } finally {
      await stowage.close();
    }
  }, 60_000);

  it('doctor rows hide hostile passwords on every scheme', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-redact-'));
    for (const [scheme, port] of SCHEMES) {
      for (const url of hostileUrls(scheme).slice(0, 3)) {
        const rows = await doctor({ profile: { dataDir, [port]: url }, ports: [port], timeoutMs: 300, logger: { debug() {}, info() {}, warn() {} } });
        expect(rows[0]?.ok).toBe(false);
        expectClean(JSON.stringify(rows));
      }
    }
  }, 60_000);
});
