/**
 * `stowage doctor` gives its advice by the reason an error carries in `details.reason`, never by the words of
 * its message; and each error it advises on carries that reason where it is raised.
 */
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect } from '@nats-io/transport-node';
import { jetstreamManager } from '@nats-io/jetstream';
import { describe, expect, it } from 'vitest';
import { doctor, hintFor } from '../../src/cli/doctor.js';
import { createStowage } from '../../src/index.js';
import { rejectsWith } from '../../src/testing/harness.js';
import { LOCK_FILE } from '../../src/driver/data-dir-lock.js';
import type { ErrorReason } from '../../src/driver/errors.js';
import { serviceSuite, tempDir } from '../support/services.js';

const MASTER_A = 'the-first-master-key-of-this-test-0123456789';
const MASTER_B = 'the-other-master-key-of-this-test-0123456789';

describe('doctor reads details.reason, not the message', () => {
  const hints: Record<ErrorReason, RegExp> = {
    'missing-client': /^missing client: run `npm install x@1`/,
    'data-dir-locked': /^the data folder is locked by another running process/,
    'file-permission': /^data folder permissions/,
    'wrong-master-key': /^auth: the master key does not open this keyring/,
    'missing-stream': /^missing stream/,
  };

  it.each(Object.entries(hints))('reason %s gives its hint, whatever the message says', (reason, hint) => {
    const error = { code: 'INTERNAL', message: 'words that name no reason', details: { reason, install: 'npm install x@1' } };
    expect(hintFor('queue', 'x://h:1', error)).toMatch(hint);
  });

  it('without a reason the code decides, even when the message reads like another failure', () => {
    const misleading = 'EACCES: in use by process 12, stream not found, master key, npm install evil@1';
    expect(hintFor('queue', 'x://h:1?a=b', { code: 'UNAVAILABLE', message: misleading })).toBe(
      'unreachable: is the server running and listening at x://h:1? check host, port, firewall and TLS',
    );
    expect(hintFor('secrets', 'x://h:1', { code: 'PERMISSION_DENIED', message: misleading })).toMatch(/^auth: credentials refused/);
    expect(hintFor('queue', 'x://h:1', { code: 'UNSUPPORTED', message: misleading })).toMatch(/^see the error message/);
  });
});

describe('the errors doctor advises on carry their reason', () => {
  it('a data folder another process holds: data-dir-locked', async () => {
    const dir = await tempDir('stowage-doctor-locked-');
    // A lock taken on another host is never taken over: a live owner that this test need not start.
    await writeFile(join(dir, LOCK_FILE), '999999999\nanother-host.invalid\n1\n');
    const [row] = await doctor({ ports: ['config'], env: { STOWAGE_DATA_DIR: dir } });
    expect(row?.error?.reason).toBe('data-dir-locked');
    expect(row?.hint).toMatch(/^the data folder is locked/);
  });

  // sysfs refuses mkdir even to root (EPERM), where an ordinary folder's mode would not stop the test's root.
  it.skipIf(process.platform !== 'linux')('a data folder the file system refuses: file-permission', async () => {
    const [row] = await doctor({ ports: ['config'], env: { STOWAGE_DATA_DIR: '/sys/stowage-doctor-test' } });
    expect(row?.error?.code).toBe('PERMISSION_DENIED');
    expect(row?.error?.reason).toBe('file-permission');
    expect(row?.hint).toMatch(/^data folder permissions/);
  });

  it('a keyring another master key made: wrong-master-key', async () => {
    const dir = await tempDir('stowage-doctor-key-');
    const [created] = await doctor({ ports: ['secrets'], env: { STOWAGE_DATA_DIR: dir, STOWAGE_MASTER_KEY: MASTER_A } });
    expect(created?.ok).toBe(true);
    const [row] = await doctor({ ports: ['secrets'], env: { STOWAGE_DATA_DIR: dir, STOWAGE_MASTER_KEY: MASTER_B } });
    expect(row?.error?.code).toBe('PERMISSION_DENIED');
    expect(row?.error?.reason).toBe('wrong-master-key');
    expect(row?.hint).toMatch(/^auth: the master key does not open this keyring/);
  });
});

serviceSuite('nats', (svc) => {
  it('a stream removed under the queue: NOT_FOUND with missing-stream', async () => {
    const stowage = await createStowage({ queue: `${svc().url}?stream=doctor_reasons` }, { ports: ['queue'], env: {} });
    const nc = await connect({ servers: svc().url.replace(/^nats:\/\//, '') });
    try {
      await stowage.queue.publish('jobs', 'x');
      await (await jetstreamManager(nc)).streams.delete('doctor_reasons');
      const err = await rejectsWith(stowage.queue.stats('jobs'), 'NOT_FOUND');
      expect(err.details.reason).toBe('missing-stream');
      expect(hintFor('queue', svc().url, err)).toMatch(/^missing stream/);
    } finally {
      await nc.close();
      await stowage.close();
    }
  }, 30_000);
});
