import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, it } from 'vitest';
import { FileConfigDriver } from '../../src/adapters/file/config-driver.js';
import { createConfigStore } from '../../src/core/config/config-store.js';
import type { ConfigEvent, ConfigStore } from '../../src/ports/config.js';
import { StowageError } from '../../src/ports/errors.js';
import { eventually, rejectsWith } from '../../src/testing/harness.js';

const root = mkdtempSync(join(tmpdir(), 'stowage-file-config-x-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = (name = 'config.json'): string => join(root, `t${++n}`, name);
const open = async (path: string): Promise<ConfigStore> => createConfigStore(await FileConfigDriver.open(path));
const child = fileURLToPath(new URL('./fixtures/file-config-child.ts', import.meta.url));

function runChild(args: string[]): { done: Promise<number | null>; ready: Promise<void>; kill: () => void } {
  const proc = spawn(process.execPath, ['--import', 'tsx', child, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve) => proc.stdout.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
  const done = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  return { done, ready, kill: () => proc.kill('SIGKILL') };
}

/** Collects events from a watch into an array, until the returned stop() is called. */
function collect(store: ConfigStore, prefix: string, afterRevision?: number): { events: ConfigEvent[]; stop: () => void } {
  const events: ConfigEvent[] = [];
  const controller = new AbortController();
  void (async () => {
    for await (const e of store.watch(prefix, { afterRevision, signal: controller.signal })) events.push(e);
  })().catch(() => undefined);
  return { events, stop: () => controller.abort() };
}

describe('file:// config across processes and hand edits', () => {
  it('revisions and create revisions survive a restart, and later writes continue above them', async () => {
    const path = fresh();
    const first = await open(path);
    const a = await first.put('app/a', 1);
    const b = await first.put('app/a', 2);
    await first.close();
    const second = await open(path);
    const entry = await second.get('app/a');
    assert.deepEqual([entry?.value, entry?.revision, entry?.createRevision], [2, b.revision, a.revision]);
    assert.equal((await second.list('')).revision, b.revision);
    assert.ok((await second.put('app/b', 3)).revision > b.revision);
    await second.close();
  });

  it('the file holds the documented format: revision, and per key value, revision and createRevision', async () => {
    const path = fresh();
    const store = await open(path);
    await store.put('app/port', 8080);
    await store.close();
    const doc = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
    assert.deepEqual(doc, {
      $stowage: 'config/1',
      revision: 1,
      keys: { 'app/port': { value: 8080, revision: 1, createRevision: 1 } },
      leases: {},
      deleted: {},
    });
  });

  it('a plain hand-written key → value file loads with fresh revisions', async () => {
    const path = fresh();
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, JSON.stringify({ 'app/name': 'demo', 'app/limits': { max: 3 } }));
    const store = await open(path);
    const snapshot = await store.list('');
    assert.deepEqual(snapshot.entries.map((e) => [e.key, e.value, e.revision]), [
      ['app/limits', { max: 3 }, 1],
      ['app/name', 'demo', 2],
    ]);
    await store.put('app/name', 'changed', { ifRevision: 2 });
    await store.close();
    const reopened = await open(path);
    assert.equal((await reopened.get('app/name'))?.value, 'changed');
    await reopened.close();
  });

  it('a YAML file written by hand loads too', async () => {
    const path = fresh('config.yaml');
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, 'app/name: demo\napp/ports:\n  - 80\n  - 443\n');
    const store = await open(path);
    assert.deepEqual((await store.get('app/ports'))?.value, [80, 443]);
    await store.put('app/name', 'x');
    await store.close();
    assert.match(await readFile(path, 'utf8'), /\$stowage: config\/1/);
  });

  it('a person editing a value in the file is seen by get and watch, with a new revision', async () => {
    const path = fresh();
    const store = await open(path);
    const { revision } = await store.put('app/mode', 'a');
    const watch = collect(store, 'app/', revision);
    const doc = JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, { value: unknown }> };
    doc.keys['app/mode']!.value = 'edited';
    doc.keys['app/added'] = { value: true } as { value: unknown };
    await writeFile(path, JSON.stringify(doc, null, 2));
    await eventually(() => watch.events.length >= 2, 'watch sees the hand edit');
    watch.stop();
    assert.deepEqual(watch.events.map((e) => [e.type, e.key, e.type === 'put' ? e.value : null]), [
      ['put', 'app/added', true],
      ['put', 'app/mode', 'edited'],
    ]);
    assert.ok(watch.events.every((e) => e.revision > revision));
    assert.equal((await store.get('app/mode'))?.value, 'edited');
    // The file was rewritten with the revisions every process will agree on.
    const after = JSON.parse(await readFile(path, 'utf8')) as { keys: Record<string, { revision: number }> };
    assert.equal(after.keys['app/mode']?.revision, (await store.get('app/mode'))?.revision);
    await store.close();
  });

  it('opening removes temp files left by a writer that died mid-write, and keeps the last complete file', async () => {
    const path = fresh();
    const store = await open(path);
    await store.put('app/a', 1);
    await store.close();
    const stale = join(path, '..', '.config.json.999999999.abcdef012345.tmp');
    await writeFile(stale, '{"half": ');
    const reopened = await open(path);
    assert.equal((await reopened.get('app/a'))?.value, 1);
    await reopened.close();
    assert.deepEqual((await readdir(join(path, '..'))).sort(), ['config.json']);
  });

  it('opening leaves alone the temp files of a live writer, its lock file\'s included, and removes a dead one\'s', async () => {
    const path = fresh();
    const first = await open(path);
    await first.put('app/a', 1);
    await first.close();
    const live = ['.config.json', '.config.json.lock'].map((n) => `${n}.${process.ppid}.abcdef012345.tmp`);
    const dead = ['.config.json.lock.999999999.abcdef012345.tmp'];
    for (const n of [...live, ...dead]) await writeFile(join(path, '..', n), '');
    await (await open(path)).close();
    assert.deepEqual((await readdir(join(path, '..'))).sort(), ['config.json', ...live].sort());
  });

  it('a lock left by a dead process is broken; a lock held by a live one makes writes wait (TIMEOUT) and change nothing', async () => {
    const path = fresh();
    const store = await open(path);
    await store.put('app/a', 1);
    await writeFile(`${path}.lock`, `999999999\n${hostname()}\n${Date.now()}\n`);
    assert.equal((await store.put('app/a', 2)).revision, 2, 'stale lock broken');
    await writeFile(`${path}.lock`, `${process.ppid}\n${hostname()}\n${Date.now()}\n`);
    await rejectsWith(store.put('app/a', 3, { timeoutMs: 300 }), 'TIMEOUT');
    await rm(`${path}.lock`);
    assert.equal((await store.put('app/b', 1)).revision, 3, 'the timed-out write was never applied');
    assert.equal((await store.get('app/a'))?.value, 2);
    await store.close();
  });

  it('a file broken by hand gives CORRUPTED naming the file, line and column at open', async () => {
    const path = fresh();
    await mkdir(join(path, '..'), { recursive: true });
    await writeFile(path, '{\n  "a": 1,\n  "b": 2\n  "c": 3\n}\n');
    const err = await rejectsWith(FileConfigDriver.open(path), 'CORRUPTED');
    assert.ok(err.message.includes(path), err.message);
    assert.match(err.message, /line 4, column 3/);
  });

  it('while the file is broken, reads and watchers keep the last good config and writes give CORRUPTED; a fix is picked up', async () => {
    const path = fresh();
    const store = await open(path);
    const { revision } = await store.put('app/a', 'good');
    const watch = collect(store, 'app/', revision);
    await writeFile(path, '{ "$stowage": "config/1", broken');
    await eventually(async () => {
      try {
        await store.put('app/b', 1);
        return false;
      } catch (err) {
        return StowageError.is(err, 'CORRUPTED') && err.message.includes(path) && /line 1, column \d+/.test(err.message);
      }
    }, 'writes refused with CORRUPTED');
    assert.equal((await store.get('app/a'))?.value, 'good');
    await writeFile(path, JSON.stringify({ 'app/a': 'fixed' }));
    await eventually(async () => (await store.get('app/a'))?.value === 'fixed', 'fixed file picked up');
    await eventually(() => watch.events.length === 1, 'watch still running and sees the fix');
    watch.stop();
    assert.equal(watch.events[0]?.type === 'put' && watch.events[0].value, 'fixed');
    await store.close();
  });

  it('writes by another process are seen by get and watch with that process\'s revisions, in order', async () => {
    const path = fresh();
    const store = await open(path);
    const { revision } = await store.put('seed', 0);
    const watch = collect(store, 'other/', revision);
    const proc = runChild(['puts', path, 'other/k', '5']);
    assert.equal(await proc.done, 0);
    await eventually(async () => (await store.list('other/')).entries.length === 5, 'child writes visible');
    await eventually(() => watch.events.length >= 1 && watch.events.at(-1)?.key === 'other/k4', 'watch caught up');
    watch.stop();
    const revisions = watch.events.map((e) => e.revision);
    assert.deepEqual(revisions, [...new Set(revisions)].sort((x, y) => x - y), 'in order, no repeats');
    const entry = await store.get('other/k4');
    const reopened = await open(path);
    assert.equal((await reopened.get('other/k4'))?.revision, entry?.revision, 'both processes agree on revisions');
    await reopened.close();
    await store.close();
  }, 30_000);

  it('two processes incrementing one counter with compare-and-set never lose an increment', async () => {
    const path = fresh();
    const store = await open(path);
    await store.put('counter', 0);
    const proc = runChild(['counter', path, '40']);
    for (let i = 0; i < 40; i++) {
      while (true) {
        const current = await store.get('counter');
        try {
          await store.put('counter', (current?.value as number) + 1, { ifRevision: current?.revision ?? 0 });
          break;
        } catch (err) {
          if (!StowageError.is(err, 'CONFLICT')) throw err;
        }
      }
    }
    assert.equal(await proc.done, 0);
    await store.close();
    const reopened = await open(path);
    assert.equal((await reopened.get('counter'))?.value, 80);
    await reopened.close();
  }, 60_000);

  it('the keys of a process killed with SIGKILL go away with reason lease-expired', async () => {
    const path = fresh();
    const store = await open(path);
    const { revision } = await store.put('seed', 0);
    const watch = collect(store, 'nodes/', revision);
    const proc = runChild(['lease', path, 'nodes/child']);
    await proc.ready;
    await eventually(async () => (await store.get('nodes/child')) !== undefined, 'child key visible');
    proc.kill();
    await proc.done;
    await eventually(async () => (await store.get('nodes/child')) === undefined, 'child key removed', 10_000);
    await eventually(() => watch.events.some((e) => e.type === 'delete'), 'watch sees the delete');
    watch.stop();
    const del = watch.events.find((e) => e.type === 'delete');
    assert.equal(del?.type === 'delete' && del.reason, 'lease-expired');
    await store.close();
  }, 30_000);

  it('a driver write issued as soon as the previous one settles is carried out (not left queued without a drain)', async () => {
    const driver = await FileConfigDriver.open(fresh());
    const signal = AbortSignal.timeout(5_000);
    try {
      await driver.put('a', 1, {}, signal);
      await driver.put('b', 2, {}, signal);
      await driver.delete('a', {}, signal);
      assert.deepEqual((await driver.list('', undefined, signal)).entries.map((e) => e.key), ['b']);
    } finally {
      await driver.close();
    }
  });

  it('a writer putting without pause keeps the lock between puts but leaves it free often enough for another writer', async () => {
    // Two drivers of one file, in one process, use the lock file as two processes would.
    const path = fresh();
    const busy = await open(path);
    const other = await open(path);
    let stop = false;
    let streamed = 0;
    const stream = (async () => {
      while (!stop) await busy.put(`busy/${streamed++ % 10}`, streamed);
    })();
    try {
      await new Promise((resolve) => setTimeout(resolve, 100));
      const started = performance.now();
      await other.put('other', 1, { timeoutMs: 5_000 });
      const waitedMs = performance.now() - started;
      // The stream leaves the lock free every 500 ms for longer than the other writer's 20 ms retry pause.
      assert.ok(waitedMs < 2_000, `the other writer waited ${Math.round(waitedMs)} ms for the lock`);
      assert.ok(streamed > 1, 'the stream wrote');
    } finally {
      stop = true;
      await stream;
      await busy.close();
      await other.close();
    }
    const reopened = await open(path);
    assert.equal((await reopened.get('other'))?.value, 1);
    await reopened.close();
  });
});
