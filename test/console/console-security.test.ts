import { createServer, request, type Server } from 'node:http';
import { mkdtemp, rm } from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../src/cli/main.js';
import { consoleHandler, serveConsole } from '../../src/console/index.js';
import { createStowage, type Stowage } from '../../src/index.js';

const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };
const TOKEN = 'console-token-0123456789';

/** A raw request (fetch cannot set the Host header). */
function get(url: string, headers: Record<string, string> = {}, method = 'GET', body?: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('console security', () => {
  let stowage: Stowage;
  beforeAll(async () => {
    stowage = await createStowage(MEM, { env: {} });
  });
  afterAll(() => stowage.close());

  it('refuses to listen on a non-loopback address without a token', async () => {
    await expect(serveConsole(stowage, { host: '0.0.0.0' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    await expect(serveConsole(stowage, { host: '::' })).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
  });

  it('stowage ui refuses a non-loopback --host without a token, before opening any port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-ui-cli-'));
    try {
      const errors: string[] = [];
      const stderr = { write: (t: string) => errors.push(t), isTTY: false } as unknown as NodeJS.WriteStream;
      const stdout = { write: () => true, isTTY: false } as unknown as NodeJS.WriteStream;
      expect(await runCli(['ui', '--host', '0.0.0.0', '--data-dir', dir], { env: {}, cwd: dir, stdout, stderr })).toBe(2);
      expect(errors.join('')).toContain('without a token');
      // The data folder was not opened (and so not locked): a service can still open it.
      const standalone = await createStowage({ dataDir: dir }, { env: {}, ports: ['config'] });
      await standalone.close();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('asks for the token on every route when bound beyond loopback', async () => {
    const server = await serveConsole(stowage, { host: '0.0.0.0', token: TOKEN });
    try {
      const url = server.url.replace('0.0.0.0', '127.0.0.1');
      const none = await get(`${url}api/doctor`);
      expect(none.status).toBe(401);
      expect(none.headers['www-authenticate']).toContain('Basic');
      expect((await get(`${url}`)).status).toBe(401);
      expect((await get(`${url}api/doctor`, { authorization: 'Bearer wrong-token-000000' })).status).toBe(401);
      expect((await get(`${url}api/doctor`, { authorization: `Bearer ${TOKEN}` })).status).toBe(200);
      const basic = Buffer.from(`admin:${TOKEN}`).toString('base64');
      expect((await get(`${url}api/doctor`, { authorization: `Basic ${basic}` })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('on loopback, answers only to a loopback Host (no DNS rebinding)', async () => {
    const server = await serveConsole(stowage);
    try {
      const port = new URL(server.url).port;
      expect((await get(`${server.url}api/doctor`, { host: `rebound.example:${port}` })).status).toBe(421);
      expect((await get(`${server.url}api/doctor`, { host: `localhost:${port}` })).status).toBe(200);
    } finally {
      await server.close();
    }
  });

  it('refuses a write without the console header, and a purge without the topic name, changing nothing', async () => {
    await stowage.queue.publish('keep', 'x');
    const server = await serveConsole(stowage);
    try {
      const json = { 'content-type': 'application/json' };
      const forged = await get(`${server.url}api/config/put`, json, 'POST', JSON.stringify({ key: 'forged', value: 1 }));
      expect(forged.status).toBe(403);
      expect(await stowage.config.get('forged')).toBeUndefined();
      const purge = await get(`${server.url}api/queue/purge`, { ...json, 'x-stowage-console': '1' }, 'POST', JSON.stringify({ topic: 'keep' }));
      expect(purge.status).toBe(400);
      expect((await stowage.queue.stats('keep')).messages).toBe(1);
    } finally {
      await server.close();
    }
  });

  it('answers NOT_FOUND for an unknown collection without creating it', async () => {
    const server = await serveConsole(stowage);
    try {
      const answer = await get(`${server.url}api/documents?collection=typo`);
      expect(answer.status).toBe(404);
      expect(await stowage.documents.collections()).not.toContain('typo');
    } finally {
      await server.close();
    }
  });

  it('sends a strict content security policy with the page', async () => {
    const server = await serveConsole(stowage);
    try {
      const page = await get(server.url);
      expect(page.status).toBe(200);
      expect(String(page.headers['content-security-policy'])).toContain("script-src 'self'");
      expect(page.body).toContain('app.js');
    } finally {
      await server.close();
    }
  });
});

describe('console mounted in a standalone service', () => {
  let dataDir: string;
  let service: Stowage;
  let server: Server;
  let base: string;

  beforeAll(async () => {
    dataDir = await mkdtemp(join(tmpdir(), 'stowage-console-mount-'));
    service = await createStowage({ dataDir }, { env: {} });
    const console = consoleHandler(service, { basePath: '/ops/stowage' });
    server = createServer(async (req, res) => {
      if (await console(req, res)) return;
      res.writeHead(200, { 'content-type': 'text/plain' }).end('the application');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => server.close(resolve));
    await service.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it('serves the locked data folder from the service process, beside the application’s routes', async () => {
    await service.config.put('svc/mode', 'live');
    // The data folder stays locked by the service: a second process (such as `stowage ui`) cannot open it.
    await expect(createStowage({ dataDir }, { env: {} })).rejects.toMatchObject({ code: 'UNAVAILABLE' });
    const config = await get(`${base}/ops/stowage/api/config?prefix=svc/`);
    expect(config.status).toBe(200);
    expect((JSON.parse(config.body) as { entries: { key: string; value: unknown }[] }).entries).toEqual([expect.objectContaining({ key: 'svc/mode', value: 'live' })]);
    expect((await get(`${base}/ops/stowage`)).status).toBe(308);
    expect((await get(`${base}/elsewhere`)).body).toBe('the application');
  });
});
