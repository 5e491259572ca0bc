import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, it } from 'vitest';
import { EtcdConfigDriver } from '../../src/adapters/etcd/config-driver.js';
import { etcdOptionsFromUrl } from '../../src/adapters/etcd/connection.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import { parseUrl } from '../../src/driver/url.js';
import type { ConfigStore } from '../../src/ports/config.js';
import { rejectsWith } from '../../src/testing/harness.js';
import { freePort } from '../support/servers.js';

const onPath = (binary: string): boolean => spawnSync('which', [binary]).status === 0;
const missing = ['etcd', 'openssl'].filter((b) => !onPath(b));

/** A CA, a server certificate for 127.0.0.1 and a client certificate, all signed by the CA (EC P-256). */
function makeCertificates(dir: string): void {
  const ssl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  };
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  ssl('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.crt', '-days', '1', '-subj', '/CN=stowage-test-ca');
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n');
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  for (const name of ['server', 'client']) {
    ssl('req', ...ec, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=stowage-${name}`);
    ssl('x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${name}.crt`, '-days', '1', '-extfile', `${name}.ext`);
  }
}

describe.skipIf(missing.length > 0)(`etcd:// over TLS with a client certificate${missing.length > 0 ? ` (skipped: ${missing.join(', ')} not on PATH)` : ''}`, () => {
  let dir = '';
  let etcd: ChildProcess | undefined;
  let base = '';

  async function openStore(query: string): Promise<ConfigStore> {
    return createConfigStore(await EtcdConfigDriver.open(await etcdOptionsFromUrl(parseUrl(`${base}/tls?${query}`))), { defaultTimeoutMs: 5000 });
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'stowage-etcd-tls-'));
    makeCertificates(dir);
    const port = await freePort();
    const peer = await freePort();
    base = `etcd://127.0.0.1:${port}`;
    etcd = spawn(
      'etcd',
      [
        '--name', 'tls', '--data-dir', join(dir, 'data'), '--log-level', 'error',
        '--listen-client-urls', `https://127.0.0.1:${port}`, '--advertise-client-urls', `https://127.0.0.1:${port}`,
        '--listen-peer-urls', `http://127.0.0.1:${peer}`, '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
        '--initial-cluster', `tls=http://127.0.0.1:${peer}`,
        '--cert-file', join(dir, 'server.crt'), '--key-file', join(dir, 'server.key'),
        '--client-cert-auth', '--trusted-ca-file', join(dir, 'ca.crt'),
      ],
      { stdio: 'ignore' },
    );
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      const store = await openStore(`tls=true&caFile=${join(dir, 'ca.crt')}&certFile=${join(dir, 'client.crt')}&keyFile=${join(dir, 'client.key')}`);
      const report = await store.health({ timeoutMs: 1000 });
      await store.close();
      if (report.ok) return;
      await new Promise((r) => setTimeout(r, 200));
    }
    throw new Error('etcd with TLS did not become ready within 30 s');
  }, 60_000);

  afterAll(() => {
    etcd?.kill('SIGKILL');
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  it('tls=true with caFile, certFile and keyFile writes and reads', async () => {
    const store = await openStore(`tls=true&caFile=${join(dir, 'ca.crt')}&certFile=${join(dir, 'client.crt')}&keyFile=${join(dir, 'client.key')}`);
    const { revision } = await store.put('k', { secure: true });
    assert.deepEqual((await store.get('k'))?.value, { secure: true });
    assert.equal((await store.get('k'))?.revision, revision);
    await store.close();
  });

  it('without the client certificate the handshake is refused: PERMISSION_DENIED, not a hang', async () => {
    const store = await openStore(`tls=true&caFile=${join(dir, 'ca.crt')}`);
    await rejectsWith(store.put('k', 1, { timeoutMs: 3000 }), 'PERMISSION_DENIED');
    await store.close();
  });
});
