import { spawn } from 'node:child_process';
import { mkdtemp, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Container } from 'inversify';
import { describe, expect, it } from 'vitest';
import { createDefaultRegistry, createStowage, resolveProfile, StowageError, TOKENS, stowageContainerModule, type ConfigStore } from '../../src/index.js';
import { lockDataDir } from '../../src/driver/data-dir-lock.js';

const MEM = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };

describe('createStowage', () => {
  it('opens all five ports from mem:// URLs and closes them', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    await stowage.config.put('app/x', 1);
    expect((await stowage.config.get('app/x'))?.value).toBe(1);
    await stowage.secrets.put('db', 'pw');
    const { seq } = await stowage.queue.publish('jobs', 'hello');
    expect(seq).toBe(1);
    await stowage.cache.set('k', { a: 1 });
    const docs = await stowage.documents.collection('things');
    await docs.insert({ n: 1 }, { id: 'a' });
    await stowage.close();
    await expect(stowage.config.get('app/x')).rejects.toMatchObject({ code: 'CLOSED' });
    await stowage.close();
  });

  it('names the known schemes when a scheme is unknown', async () => {
    const err = await createStowage({ ...MEM, cache: 'memcached://x' }, { env: {} }).catch((e: unknown) => e);
    expect(StowageError.is(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('memcached://');
    expect((err as Error).message).toContain('mem://');
  });

  it('names an unknown query parameter', async () => {
    const err = await createStowage({ ...MEM, config: 'mem://?bogus=1' }, { env: {} }).catch((e: unknown) => e);
    expect(StowageError.is(err, 'INVALID_ARGUMENT')).toBe(true);
    expect((err as Error).message).toContain('"bogus"');
  });

  it('refuses a password-like query parameter without echoing its value', async () => {
    const err = await createStowage({ ...MEM, config: 'mem://?token=sup3rs3cret' }, { env: {} }).catch((e: unknown) => e);
    expect(StowageError.is(err, 'INVALID_ARGUMENT')).toBe(true);
    expect(String((err as Error).message)).not.toContain('sup3rs3cret');
  });

  it('opens only the ports asked for', async () => {
    const stowage = await createStowage(MEM, { env: {}, ports: ['config'] });
    expect(() => stowage.queue).toThrow(/not opened/);
    await stowage.close();
  });

  it('binds every port to its inversify token', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    const container = new Container();
    await container.load(stowageContainerModule(stowage));
    expect(container.get<ConfigStore>(TOKENS.Config)).toBe(stowage.config);
    expect(container.get(TOKENS.Queue)).toBe(stowage.queue);
    await stowage.close();
  });
});

describe('profiles', () => {
  it('prefers code over environment over file over defaults, port by port', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-profile-'));
    await writeFile(join(dir, 'stowage.yaml'), 'config: mem://?from=file\ncache: mem://?from=file\nqueue: mem://?from=file\n');
    const resolved = await resolveProfile(
      { config: 'mem://?from=code' },
      { cwd: dir, env: { STOWAGE_CONFIG_URL: 'mem://?from=env', STOWAGE_CACHE_URL: 'mem://?from=env' } },
    );
    expect(resolved.urls.config).toBe('mem://?from=code');
    expect(resolved.sources.cache).toBe('environment');
    expect(resolved.urls.queue).toBe('mem://?from=file');
    expect(resolved.sources.documents).toBe('default');
    expect(resolved.urls.documents).toBe(`sqlite://${join(dir, '.stowage', 'documents.db')}`);
  });

  it('rejects an unknown key in a profile file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-profile-'));
    await writeFile(join(dir, 'stowage.json'), JSON.stringify({ confg: 'mem://' }));
    await expect(resolveProfile({}, { cwd: dir, env: {} })).rejects.toThrow(/unknown key "confg"/);
  });
});

describe('data folder lock', () => {
  it("is taken when a scheme's localPath lies inside the data folder — a third party's too — and not otherwise", async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'stowage-lock-scheme-'));
    const outside = await mkdtemp(join(tmpdir(), 'stowage-lock-outside-'));
    const memCache = (await createDefaultRegistry().check('cache', 'mem://')).definition;
    const registry = createDefaultRegistry().register({
      ...memCache,
      scheme: 'localcache',
      params: [],
      localPath: (url, dir) => (url.path === '' ? join(dir, 'cache') : url.path),
    });
    const locked = async (cache: string): Promise<boolean> => {
      const stowage = await createStowage({ ...MEM, cache, dataDir }, { env: {}, registry });
      try {
        return await stat(join(dataDir, 'stowage.lock')).then(
          () => true,
          () => false,
        );
      } finally {
        await stowage.close();
      }
    };
    expect(await locked('mem://')).toBe(false);
    expect(await locked('localcache://')).toBe(true);
    expect(await locked(`localcache://${outside}`)).toBe(false);
    // Built-in schemes say where they store the same way: a file:// config outside the folder takes no lock.
    const stowage = await createStowage({ ...MEM, config: `file://${join(outside, 'config.json')}`, dataDir }, { env: {} });
    await stowage.close();
    expect(await stat(join(dataDir, 'stowage.lock')).catch(() => undefined)).toBeUndefined();
  });

  it('gives a second process a clear error naming the pid holding the folder', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    const lock = await lockDataDir(dir);
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '-e', `import('${join(process.cwd(), 'src/driver/data-dir-lock.ts')}').then(m => m.lockDataDir(${JSON.stringify(dir)})).then(() => console.log('LOCKED'), e => console.log(e.code + ' ' + e.message))`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((resolve) => child.once('exit', resolve));
    expect(out).toContain('UNAVAILABLE');
    expect(out).toContain(`process ${process.pid}`);
    await lock.release();
  });

  it('takes over a lock left by a process that is gone', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'stowage-lock-'));
    await writeFile(join(dir, 'stowage.lock'), '999999999\n');
    const lock = await lockDataDir(dir);
    await lock.release();
  });
});

describe('stopping a Stowage', () => {
  it('close() lets a running handler finish using the other ports before they close', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    await stowage.queue.publish('jobs', 'j1');
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const errors: unknown[] = [];
    const worker = stowage.queue.process('jobs', 'workers', async (d) => {
      started();
      await new Promise((resolve) => setTimeout(resolve, 100));
      await stowage.config.put(`done/${d.text()}`, true);
    }, { onError: (err) => void errors.push(err) });
    await running;
    await stowage.close();
    await worker.done;
    expect(errors).toEqual([]);
  });

  it('closing aborts when close() starts, so a watch given it ends quietly instead of with CLOSED', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    expect(stowage.closing.aborted).toBe(false);
    const seen: string[] = [];
    const watching = (async () => {
      for await (const ev of stowage.config.watch('app/', { signal: stowage.closing })) seen.push(ev.key);
    })();
    await stowage.config.put('app/a', 1);
    await expect.poll(() => seen).toEqual(['app/a']);
    await stowage.close();
    expect(stowage.closing.aborted).toBe(true);
    await expect(watching).resolves.toBeUndefined();
  });

  it('closeOnSignals refuses what is not a list of signal names, and its remover takes the listeners off', async () => {
    const stowage = await createStowage(MEM, { env: {} });
    try {
      expect(() => stowage.closeOnSignals(['SIGNOPE' as NodeJS.Signals])).toThrow(expect.objectContaining({ code: 'INVALID_ARGUMENT' }));
      const before = process.listenerCount('SIGUSR2');
      const remove = stowage.closeOnSignals(['SIGUSR2']);
      expect(process.listenerCount('SIGUSR2')).toBe(before + 1);
      remove();
      expect(process.listenerCount('SIGUSR2')).toBe(before);
    } finally {
      await stowage.close();
    }
  });

  it('a second signal while closing exits at once with 128 + its number', async () => {
    // A child process: the handler keeps close() busy, and the second SIGTERM must not wait for it.
    const script = `
      import { createStowage } from ${JSON.stringify(new URL('../../src/index.ts', import.meta.url).pathname)};
      const s = await createStowage(${JSON.stringify(MEM)}, { env: {} });
      s.closeOnSignals();
      await s.queue.publish('t', 'x');
      s.queue.process('t', 'g', () => new Promise(() => console.log('busy')));
    `;
    const dir = await mkdtemp(join(tmpdir(), 'stowage-signal-'));
    const file = join(dir, 'child.mts');
    await writeFile(file, script);
    const child = spawn(process.execPath, ['--import', 'tsx', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    await Promise.race([
      new Promise<void>((resolve) => child.stdout.on('data', (c: Buffer) => c.toString().includes('busy') && resolve())),
      exited.then((c) => Promise.reject(new Error(`the child exited with ${c}: ${stderr}`))),
    ]);
    child.kill('SIGTERM');
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(child.exitCode).toBeNull(); // draining the handler (up to 5 s)
    child.kill('SIGTERM');
    expect(await exited).toBe(128 + 15);
  }, 30_000);
});
