/**
 * The web console in a real browser: Debian's chromium driven by playwright-core, against the console
 * served over a standalone profile (file config and keyring, disk queue, sqlite documents, mem cache) and
 * a clustered one (etcd config, etcd+sealed secrets, NATS JetStream queue, Redis cache, MariaDB documents).
 * Screenshots go to test-artefacts/console/<profile>/ (gitignored).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveConsole, type ConsoleServer } from '../../src/console/index.js';
import { createStowage, type Profile, type Stowage } from '../../src/index.js';
import { serviceSuite } from '../support/services.js';
import mysql from 'mysql2/promise';

const CHROMIUM = process.env.STOWAGE_TEST_CHROMIUM ?? '/usr/bin/chromium';
const ARTEFACTS_ROOT = join(import.meta.dirname, '..', '..', 'test-artefacts', 'console');
const SECRET_VALUE = 'hunter2-never-shown-7f3a';
const HOSTILE = '<script>window.__pwned = 1</script><img src=x onerror="window.__pwned = 2">';

const required = (process.env.STOWAGE_TEST_REQUIRE ?? '').split(',').includes('chromium');
const available = existsSync(CHROMIUM);
if (!available && required) throw new Error(`STOWAGE_TEST_REQUIRE lists chromium but ${CHROMIUM} is missing`);

/** Opens the profile under test; `dispose` removes what it made. */
type Opener = () => Promise<{ stowage: Stowage; dispose(): Promise<void> }>;

function consoleSuite(name: string, open: Opener): void {
 describe.skipIf(!available)(`web console in chromium (${name} profile)`, () => {
  const ARTEFACTS = join(ARTEFACTS_ROOT, name);
  let dispose: () => Promise<void> = async () => undefined;
  let stowage: Stowage;
  let server: ConsoleServer;
  let browser: Browser;
  let page: Page;
  let failing = true;
  const processed: string[] = [];
  const pageErrors: string[] = [];

  beforeAll(async () => {
    await mkdir(ARTEFACTS, { recursive: true });
    ({ stowage, dispose } = await open());
    await stowage.config.put('app/greeting', 'hello');
    await stowage.config.put('app/limits/rate', 10);
    await stowage.secrets.put('db/password', SECRET_VALUE);
    const notes = await stowage.documents.collection('notes');
    await notes.insert({ title: HOSTILE, n: 1 });
    for (let i = 2; i <= 30; i++) await notes.insert({ title: `note ${i}`, n: i });
    stowage.queue.process(
      'orders',
      'billing',
      async (delivery) => {
        if (failing) throw new Error('card declined');
        processed.push(delivery.text());
      },
      { maxDeliver: 1, onError: () => undefined },
    );
    await stowage.queue.publish('orders', 'order-1');
    for (let i = 0; i < 200 && (await stowage.queue.deadLetters('orders')).length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    server = await serveConsole(stowage);
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
    // A content-security-policy violation (an inline style or script the page tried) is logged as an error.
    page.on('console', (message) => {
      if (message.type() === 'error') pageErrors.push(message.text());
    });
    page.on('pageerror', (err) => pageErrors.push(err.message));
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.close();
    await stowage?.close();
    await dispose();
  });

  it('shows every port of the profile as healthy on the doctor page', async () => {
    await page.goto(`${server.url}#doctor`);
    await page.waitForSelector('#doctor tr[data-port="documents"]');
    for (const port of ['config', 'secrets', 'queue', 'cache', 'documents']) {
      expect(await page.textContent(`#doctor tr[data-port="${port}"] td.ok`)).toBe('ok');
    }
    await page.screenshot({ path: join(ARTEFACTS, 'doctor.png'), fullPage: true });
  });

  it('replays a dead letter from the queue page and the handler processes it', async () => {
    await page.goto(`${server.url}#queue?topic=orders`);
    await page.waitForSelector('#dead-letters tr[data-seq]');
    expect(await page.textContent('#dead-letters')).toContain('card declined');
    await page.screenshot({ path: join(ARTEFACTS, 'queue-dead-letters.png'), fullPage: true });
    failing = false;
    await page.click('#dead-letters button.replay');
    await page.waitForSelector('#no-dead-letters');
    for (let i = 0; i < 200 && processed.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
    expect(processed).toEqual(['order-1']);
    expect(await stowage.queue.deadLetters('orders')).toHaveLength(0);
  });

  it('browses a topic’s messages page by page', async () => {
    for (let i = 1; i <= 60; i++) await stowage.queue.publish('bulk', `message ${i}`);
    await page.goto(`${server.url}#queue?topic=bulk`);
    // The previous page may still show another topic's messages for a moment: wait for this one's.
    await page.waitForFunction(() => document.querySelector('#page-queue h2:last-of-type')?.textContent === 'Messages of bulk');
    expect(await page.$$('#messages tbody tr')).toHaveLength(50);
    await page.click('#messages-next');
    await page.waitForFunction(() => document.querySelectorAll('#messages tbody tr').length === 10);
    expect(await page.textContent('#messages tbody tr:last-child')).toContain('message 60');
  });

  it('purges a topic only after its name is typed in the confirmation', async () => {
    await stowage.queue.publish('scratch', 'a');
    await page.goto(`${server.url}#queue?topic=scratch`);
    await page.waitForFunction(() => document.querySelector('#page-queue h2:last-of-type')?.textContent === 'Messages of scratch');
    page.once('dialog', (dialog) => void dialog.accept('wrong-name'));
    await page.click('#purge');
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'purge cancelled');
    expect((await stowage.queue.stats('scratch')).messages).toBe(1);
    page.once('dialog', (dialog) => void dialog.accept('scratch'));
    await page.click('#purge');
    await page.waitForFunction(() => document.getElementById('status')?.textContent === 'scratch purged');
    expect((await stowage.queue.stats('scratch')).messages).toBe(0);
  });

  it('shows a config change made elsewhere through the live watch, and saves an edit with compare-and-set', async () => {
    await page.goto(`${server.url}#config`);
    await page.waitForFunction(() => document.getElementById('watch-state')?.textContent === 'live');
    await stowage.config.put('app/greeting', 'changed elsewhere');
    await page.waitForFunction(() => document.querySelector('tr[data-key="app/greeting"] pre.value')?.textContent === '"changed elsewhere"');

    await page.click('tr[data-key="app/limits/rate"] button.edit');
    await page.fill('#config-edit textarea', '25');
    await page.click('#config-edit button[type="submit"]');
    await page.waitForFunction(() => document.querySelector('tr[data-key="app/limits/rate"] pre.value')?.textContent === '25');
    expect((await stowage.config.get('app/limits/rate'))?.value).toBe(25);
    await page.screenshot({ path: join(ARTEFACTS, 'config.png'), fullPage: true });

    // An edit of a value that changed after it was shown is refused, not applied over the other change.
    await page.click('tr[data-key="app/greeting"] button.edit');
    await stowage.config.put('app/greeting', 'changed again');
    await page.fill('#config-edit textarea', '"from the console"');
    await page.click('#config-edit button[type="submit"]');
    await page.waitForFunction(() => (document.getElementById('status')?.textContent ?? '').startsWith('CONFLICT'));
    expect((await stowage.config.get('app/greeting'))?.value).toBe('changed again');
  });

  it('lists secret names and versions and never the value, by no route', async () => {
    await page.goto(`${server.url}#secrets`);
    await page.waitForSelector('#secrets tr[data-secret="db/password"]');
    expect(await page.textContent('#secrets tr[data-secret="db/password"]')).toContain('v1');
    expect(await page.content()).not.toContain(SECRET_VALUE);
    const attempts = await page.evaluate(async () => {
      const out: { status: number; body: string }[] = [];
      for (const path of ['api/secrets', 'api/secrets?name=db/password&reveal=true', 'api/secrets/db/password', 'api/secrets/value?name=db/password', 'api/secrets/reveal?name=db/password']) {
        const response = await fetch(path);
        out.push({ status: response.status, body: await response.text() });
      }
      return out;
    });
    expect(attempts[0]?.status).toBe(200);
    expect(attempts.slice(2).every((a) => a.status === 404)).toBe(true);
    for (const attempt of attempts) expect(attempt.body).not.toContain(SECRET_VALUE);
    await page.screenshot({ path: join(ARTEFACTS, 'secrets.png'), fullPage: true });
  });

  it('renders a document holding <script> as text, with filter, sort and pages', async () => {
    await page.goto(`${server.url}#documents?collection=notes`);
    await page.waitForSelector('#documents tr[data-id]');
    const shown = await page.$$eval('#documents pre.data', (nodes) => nodes.map((n) => n.textContent ?? ''));
    expect(shown.some((text) => text.includes('<script>window.__pwned = 1</script>'))).toBe(true);
    expect(await page.$$('#documents script, #documents img')).toHaveLength(0);
    expect(await page.evaluate(() => (window as unknown as { __pwned?: number }).__pwned)).toBeUndefined();
    await page.screenshot({ path: join(ARTEFACTS, 'documents.png'), fullPage: true });

    expect(await page.$$('#documents tbody tr')).toHaveLength(20);
    await page.click('#next-page');
    await page.waitForFunction(() => document.querySelectorAll('#documents tbody tr').length === 10);

    await page.fill('#documents-query input[name="filter"]', '{"n": {"$gte": 28}}');
    await page.fill('#documents-query input[name="sort"]', 'n:-1');
    await page.click('#documents-query button[type="submit"]');
    await page.waitForFunction(() => document.querySelectorAll('#documents tbody tr').length === 3);
    const order = await page.$$eval('#documents pre.data', (nodes) => nodes.map((n) => (JSON.parse(n.textContent ?? '{}') as { n: number }).n));
    expect(order).toEqual([30, 29, 28]);
  });

  it('looks up a cache key (the mem cache cannot list its keys)', async () => {
    await stowage.cache.set('feature/x', { on: true });
    await page.goto(`${server.url}#cache`);
    await page.waitForSelector('input[name="key"]');
    await page.fill('input[name="key"]', 'feature/x');
    await page.click('#page-cache button[type="submit"]');
    await page.waitForSelector('#cache-result pre');
    expect(JSON.parse((await page.textContent('#cache-result pre')) ?? 'null')).toEqual({ on: true });
  });

  it('ran every page without a script error or a content-security-policy violation', () => {
    // Failed API answers (the CONFLICT and the refused secret routes above) are logged as resource errors.
    expect(pageErrors.filter((text) => !text.startsWith('Failed to load resource'))).toEqual([]);
  });
});
}

consoleSuite('standalone', async () => {
  const dataDir = await mkdtemp(join(tmpdir(), 'stowage-console-'));
  const stowage = await createStowage({ dataDir }, { env: {} });
  return { stowage, dispose: () => rm(dataDir, { recursive: true, force: true }) };
});

// The clustered profile: every server started by the harness (each skips with its reason when unavailable).
serviceSuite('etcd', (etcd) =>
  serviceSuite('nats', (nats) =>
    serviceSuite('redis', (redis) =>
      serviceSuite('mariadb', (mariadb) =>
        consoleSuite('clustered', async () => {
          const run = randomUUID().replaceAll('-', '').slice(0, 12);
          const database = `stowage_console_${run}`;
          const server = new URL(mariadb().url.replace(/^mysql:/, 'http:'));
          const admin = await mysql.createConnection({ host: server.hostname, port: Number(server.port), user: decodeURIComponent(server.username), password: decodeURIComponent(server.password) });
          await admin.query(`CREATE DATABASE \`${database}\` CHARACTER SET utf8mb4`);
          const profile: Profile = {
            config: `${etcd().url}/console-${run}`,
            secrets: `${etcd().url.replace(/^etcd:/, 'etcd+sealed:')}/console-secrets-${run}`,
            queue: `${nats().url}?stream=console${run}&storage=memory`,
            cache: redis().url,
            documents: mariadb().url.replace(/\/[^/?]*(\?|$)/, `/${database}$1`),
          };
          const stowage = await createStowage(profile, { env: { STOWAGE_MASTER_KEY: 'console-test-master-key-0123456789abcdef' } });
          return {
            stowage,
            dispose: async () => {
              await admin.query(`DROP DATABASE \`${database}\``);
              await admin.end();
            },
          };
        }),
      ),
    ),
  ),
);
