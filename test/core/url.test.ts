import { describe, expect, it } from 'vitest';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkParams, parseUrl, redactUrlText, urlPassword } from '../../src/driver/url.js';
import { StowageError } from '../../src/index.js';

describe('backend URLs', () => {
  it('parses several hosts, a path and parameters', () => {
    const url = parseUrl('etcd://a.example:2379,10.0.0.2:2380,[::1]:2381/my/app?dial=1');
    expect(url.scheme).toBe('etcd');
    expect(url.hosts).toEqual([
      { host: 'a.example', port: 2379 },
      { host: '10.0.0.2', port: 2380 },
      { host: '::1', port: 2381 },
    ]);
    expect(url.path).toBe('/my/app');
    expect(url.params.get('dial')).toBe('1');
  });

  it('keeps the password out of the printable form', () => {
    const url = parseUrl('mysql://app:hunter2@db:3306/app');
    expect(url.password).toBe('hunter2');
    expect(url.redacted).not.toContain('hunter2');
  });

  it('redacts passwords of URLs nested in query parameters', () => {
    const text = `tiered://?remote=${encodeURIComponent('redis://:hunter2@cache:6379/0')}`;
    expect(redactUrlText(text)).not.toContain('hunter2');
    expect(parseUrl(text).redacted).not.toContain('hunter2');
  });

  it('refuses a port that is not a number', () => {
    expect(() => parseUrl('redis://host:abc')).toThrow(StowageError);
  });

  it('refuses secrets in the query, pointing to a file parameter instead', () => {
    expect(() => parseUrl('vault://v:8200/secret?token=abc')).toThrow(/tokenFile/);
  });

  it('names the unknown parameter and the known ones', () => {
    expect(() => checkParams(parseUrl('disk:///q?fsnyc=always'), ['fsync', 'segmentBytes'])).toThrow(/"fsnyc".*fsync, segmentBytes/);
  });

  it('reads a password from passwordFile without its trailing newline, and refuses a password given twice', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-url-'));
    const file = join(dir, 'pw');
    await writeFile(file, 'hunter2\n');
    expect(await urlPassword(parseUrl(`mysql://app@db/app?passwordFile=${file}`))).toBe('hunter2');
    expect(await urlPassword(parseUrl('mysql://app:inline@db/app'))).toBe('inline');
    await expect(urlPassword(parseUrl(`mysql://app:inline@db/app?passwordFile=${file}`))).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });
});
