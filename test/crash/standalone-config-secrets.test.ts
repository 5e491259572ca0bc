import { randomInt } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fileConfigScheme } from '../../src/adapters/file/config-driver.js';
import { KeyringSecretsDriver } from '../../src/adapters/file/keyring-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { SchemeRegistry } from '../../src/core/registry.js';
import { createSecretStore } from '../../src/core/secrets/secret-store.js';
import { bundleChild, startChild, type Child } from '../support/child-process.js';
import { CRASH_MASTER_KEY } from './standalone-writer.js';

/** SIGKILLs to deliver; the run also stops at the time budget, so it stays bounded on a loaded machine. */
const KILLS = Number(process.env.STOWAGE_CRASH_KILLS ?? 200);
const BUDGET_MS = 120_000;
/** Children booted ahead of their turn, so process start-up overlaps the previous round. */
const PREFETCH = 3;
const logger = { warn: () => undefined, info: () => undefined, debug: () => undefined };

/** A writer and the lines it printed (each an acknowledged write). */
interface Writer {
  readonly child: Child;
  readonly lines: string[];
}

describe('standalone crash safety', () => {
  let work: string;
  let writer: string;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'stowage-crash-'));
    // One bundled file starts in a fraction of the time a TypeScript loader needs, 200 times over.
    writer = await bundleChild(join(import.meta.dirname, 'standalone-writer.ts'), work);
  }, 60_000);
  afterAll(() => rmSync(work, { recursive: true, force: true }));

  function start(dir: string): Writer {
    const lines: string[] = [];
    return { child: startChild(writer, { args: [dir], readyLine: 'READY', onLine: (line) => lines.push(line) }), lines };
  }

  it(
    'keeps the last acknowledged config and secret write, or a later one, across SIGKILLs at random moments',
    async () => {
      const dir = join(work, 'data');
      const registry = new SchemeRegistry().register(fileConfigScheme);
      const queue: Writer[] = [];
      let ackCounter = 0;
      let ackRevision = 0;
      let ackSecret = 0;
      let seenRevision = 0;
      let seenVersion = 0;
      let kills = 0;
      let writesSeen = 0;
      const started = Date.now();
      while (kills < KILLS && Date.now() - started < BUDGET_MS) {
        while (queue.length < PREFETCH) queue.push(start(dir));
        const { child, lines } = queue.shift() as Writer;
        child.send('go');
        // A child that dies before READY must not leave the round waiting: the checks below see what it left.
        await child.ready.catch(() => undefined);
        // Kill at a random moment of the write loop: usually mid-write of the config file or the keyring.
        await new Promise((resolve) => setTimeout(resolve, randomInt(0, 50)));
        await child.kill();
        kills++;
        for (const line of lines) {
          const [kind, a, b] = line.split(' ');
          if (kind === 'C') {
            ackCounter = Number(a);
            ackRevision = Number(b);
          } else if (kind === 'S') {
            ackSecret = Number(a);
          }
          writesSeen++;
        }

        const config = createConfigStore(await registry.open('config', `file://${join(dir, 'config.json')}?watch=false`, { dataDir: dir, env: {}, logger }));
        const entry = await config.get('crash/counter');
        await config.close();
        const secrets = createSecretStore(await KeyringSecretsDriver.open({ path: join(dir, 'secrets.keyring'), env: { STOWAGE_MASTER_KEY: CRASH_MASTER_KEY }, logger }));
        const latest = ackSecret > 0 || seenVersion > 0 ? await secrets.get('crash/counter') : undefined;
        await secrets.close();

        const value = Number(entry?.value ?? 0);
        const revision = entry?.revision ?? 0;
        expect(value, `kill ${kills}: config counter`).toBeGreaterThanOrEqual(ackCounter);
        expect(revision, `kill ${kills}: config revision vs acknowledged`).toBeGreaterThanOrEqual(ackRevision);
        expect(revision, `kill ${kills}: config revision went backwards`).toBeGreaterThanOrEqual(seenRevision);
        if (value === ackCounter && ackCounter > 0) expect(revision).toBe(ackRevision);
        seenRevision = revision;
        const version = latest?.version ?? 0;
        expect(version, `kill ${kills}: secret version vs acknowledged`).toBeGreaterThanOrEqual(ackSecret);
        expect(version, `kill ${kills}: secret version went backwards`).toBeGreaterThanOrEqual(seenVersion);
        if (latest !== undefined) expect(latest.value.reveal(), `kill ${kills}: secret value matches its version`).toBe(String(latest.version));
        seenVersion = version;
      }
      await Promise.all(queue.map((w) => w.child.kill()));
      console.log(`crash test: ${kills} SIGKILLs in ${Date.now() - started} ms; ${writesSeen} acknowledged writes; config revision ${seenRevision}, secret version ${seenVersion}`);
      expect(kills, `only ${kills} of ${KILLS} SIGKILLs fitted in the time budget`).toBe(KILLS);
      expect(writesSeen).toBeGreaterThan(0);
    },
    180_000,
  );
});
