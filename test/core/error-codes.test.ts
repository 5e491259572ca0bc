/**
 * The error codes the README promises, against real servers: a server that is not there is UNAVAILABLE, refused
 * credentials are PERMISSION_DENIED (the doctor's *auth* hint), and a malformed STOWAGE_TIMEOUT_MS is named.
 */
import mysql from 'mysql2/promise';
import { describe, expect, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { doctor } from '../../src/cli/doctor.js';
import { rejectsWith } from '../../src/testing/harness.js';
import { serviceSuite, tempDir } from '../support/services.js';
import { cleanEnv, runCli } from '../cli/run-cli.js';

serviceSuite('nats', (svc) => {
  it('a NATS server that is gone (closed port) is UNAVAILABLE, with the doctor\'s unreachable hint', async () => {
    const url = `${svc().url}?stream=gone`;
    await svc().stop();
    try {
      const err = await rejectsWith(createStowage({ queue: url }, { ports: ['queue'], env: {} }), 'UNAVAILABLE');
      expect(err.message).toContain('connection refused');
      const [row] = await doctor({ profile: { queue: url }, ports: ['queue'], env: {} });
      expect(row?.error?.code).toBe('UNAVAILABLE');
      expect(row?.hint).toMatch(/^unreachable/);
    } finally {
      await svc().start();
    }
  }, 60_000);
});

serviceSuite('mariadb', (svc) => {
  it('a MySQL user the server refuses is PERMISSION_DENIED, with the doctor\'s auth hint, and the password never shows', async () => {
    const url = new URL(svc().url.replace(/^mysql:/, 'http:'));
    // The harness runs MariaDB with --skip-grant-tables; FLUSH PRIVILEGES turns checking on, so logins can fail.
    const admin = await mysql.createConnection({ host: url.hostname, port: Number(url.port), user: 'root' });
    try {
      await admin.query('FLUSH PRIVILEGES');
      await admin.query("CREATE USER IF NOT EXISTS 'app'@'%' IDENTIFIED BY 'right-password-123'");
      await admin.query("GRANT ALL ON test.* TO 'app'@'%'");
      // Like Debian's root@localhost: a user the client cannot log in as over TCP (ER_ACCESS_DENIED_NO_PASSWORD_ERROR).
      await admin.query("CREATE USER IF NOT EXISTS 'socket'@'%' IDENTIFIED VIA unix_socket");
    } finally {
      await admin.end();
    }
    const password = 'wrong-password-456';
    for (const documents of [`mysql://nobody@${url.host}/test`, `mysql://socket@${url.host}/test`, `mysql://app:${password}@${url.host}/test`]) {
      await using stowage = await createStowage({ documents }, { ports: ['documents'], env: {} });
      const err = await rejectsWith(stowage.documents.collection('c'), 'PERMISSION_DENIED');
      expect(String(err.message)).not.toContain(password);
      const [row] = await doctor({ profile: { documents }, ports: ['documents'], env: {} });
      expect(row?.error?.code).toBe('PERMISSION_DENIED');
      expect(row?.hint).toMatch(/^auth: credentials refused/);
    }
  }, 60_000);
});

describe('STOWAGE_TIMEOUT_MS', () => {
  it('that is not a number fails startup and doctor with INVALID_ARGUMENT naming the variable', async () => {
    const dataDir = await tempDir('stowage-timeout-');
    const env = { STOWAGE_TIMEOUT_MS: 'abc', STOWAGE_DATA_DIR: dataDir };
    const opened = await rejectsWith(createStowage({}, { env }), 'INVALID_ARGUMENT');
    expect(opened.message).toMatch(/STOWAGE_TIMEOUT_MS.*"abc"/);
    const checked = await rejectsWith(doctor({ env }), 'INVALID_ARGUMENT');
    expect(checked.message).toContain('STOWAGE_TIMEOUT_MS');
    const cli = await runCli(['doctor'], { env: cleanEnv(env), cwd: dataDir });
    expect(cli.code).toBe(1);
    expect(cli.stderr).toContain('STOWAGE_TIMEOUT_MS');
  }, 60_000);
});
