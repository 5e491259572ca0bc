/**
 * The file system as an attacker sees it: modes of everything Stowage creates (with umask 0), links planted
 * where the disk queue writes, topic folders that a case-insensitive file system would merge, and a
 * planted `stowage migrate` checkpoint.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, lstat, mkdir, mkdtemp, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { createStowage } from '../../src/index.js';
import { defaultCheckpointPath, migrate } from '../../src/cli/migrate.js';

const CHILD = fileURLToPath(new URL('./modes-child.ts', import.meta.url));

let root: string;
beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'stowage-files-'));
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

async function walk(dir: string, out: string[] = []): Promise<string[]> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    out.push(path);
    if (entry.isDirectory()) await walk(path, out);
  }
  return out;
}

describe('files Stowage creates', () => {
  it('with umask 0, folders are 0700 and files holding data are 0600 (a config file may be 0644)', async () => {
    await promisify(execFile)(process.execPath, ['--import', 'tsx', CHILD, root], { timeout: 60_000 });
    const wide: string[] = [];
    let files = 0;
    for (const path of await walk(root)) {
      const info = await lstat(path);
      const mode = info.mode & 0o777;
      const name = relative(root, path);
      if (info.isDirectory()) {
        if (mode !== 0o700) wide.push(`${name}/ ${mode.toString(8)}`);
        continue;
      }
      files++;
      // A config file is not secret (it may be edited by hand): 0644 is allowed, never more.
      const allowed = /(^|\/)(config\.json|c\.json)$/.test(name) ? 0o644 : 0o600;
      if ((mode & ~allowed) !== 0) wide.push(`${name} ${mode.toString(8)}`);
    }
    assert.ok(files >= 15, `the child wrote its stores (${files} files)`);
    assert.deepEqual(wide, [], 'every folder 0700, every data file 0600');
  }, 90_000);
});

describe('links and names in the disk queue', () => {
  it('a link planted at queue/topics/<topic> is PERMISSION_DENIED and nothing is written through it', async () => {
    const dataDir = join(root, 'data');
    const elsewhere = join(root, 'elsewhere');
    await mkdir(join(dataDir, 'queue', 'topics'), { recursive: true });
    await mkdir(elsewhere);
    await symlink(elsewhere, join(dataDir, 'queue', 'topics', 'orders'));
    const stowage = await createStowage({ dataDir }, { ports: ['queue'] });
    try {
      await assert.rejects(stowage.queue.publish('orders', 'x'), { code: 'PERMISSION_DENIED' });
      await stowage.queue.publish('other', 'x');
    } finally {
      await stowage.close();
    }
    assert.deepEqual(await readdir(elsewhere), []);
  });

  it('a link planted at queue/topics is refused at open', async () => {
    const dataDir = join(root, 'data');
    const elsewhere = join(root, 'elsewhere');
    await mkdir(join(dataDir, 'queue'), { recursive: true });
    await mkdir(elsewhere);
    await symlink(elsewhere, join(dataDir, 'queue', 'topics'));
    await assert.rejects(createStowage({ dataDir }, { ports: ['queue'] }), { code: 'PERMISSION_DENIED' });
    assert.deepEqual(await readdir(elsewhere), []);
  });

  it('a topic that differs only by case from an existing one is ALREADY_EXISTS (one folder on macOS and Windows)', async () => {
    const dataDir = join(root, 'data');
    let stowage = await createStowage({ dataDir }, { ports: ['queue'] });
    try {
      await stowage.queue.publish('orders', 'x');
      await assert.rejects(stowage.queue.publish('Orders', 'y'), { code: 'ALREADY_EXISTS' });
    } finally {
      await stowage.close();
    }
    stowage = await createStowage({ dataDir }, { ports: ['queue'] });
    try {
      await assert.rejects(stowage.queue.publish('ORDERS', 'y'), { code: 'ALREADY_EXISTS' });
      assert.deepEqual(await stowage.queue.topics(), ['orders']);
    } finally {
      await stowage.close();
    }
  });
});

describe('stowage migrate checkpoints', () => {
  async function profiles(): Promise<{ from: string; to: string }> {
    await writeFile(join(root, 'a.yaml'), `dataDir: ${join(root, 'a')}\n`);
    await writeFile(join(root, 'b.yaml'), `dataDir: ${join(root, 'b')}\n`);
    return { from: 'a.yaml', to: 'b.yaml' };
  }

  it('a checkpoint planted as a link, or writable by others, in the working folder is PERMISSION_DENIED', async () => {
    const { from, to } = await profiles();
    const checkpoint = defaultCheckpointPath(root, join(root, from), join(root, to));
    await writeFile(join(root, 'planted.json'), '{}');
    await symlink(join(root, 'planted.json'), checkpoint);
    await assert.rejects(migrate({ from, to, cwd: root, env: {} }), { code: 'PERMISSION_DENIED' });
    await rm(checkpoint);
    await writeFile(checkpoint, '{}');
    await chmod(checkpoint, 0o666);
    await assert.rejects(migrate({ from, to, cwd: root, env: {} }), { code: 'PERMISSION_DENIED' });
  });
});
