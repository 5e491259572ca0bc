/**
 * `collection()` declarations are bounded, and opening a collection keeps its deadline and the event loop
 * turning even on an adapter that builds indexes synchronously (SQLite).
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'vitest';
import { createStowage, type Stowage } from '../../src/index.js';
import { MAX_INDEXES, MAX_MIGRATIONS } from '../../src/core/documents/document-store.js';
import type { IndexSpec, Migration } from '../../src/ports/documents.js';

let dir: string;
let stowage: Stowage;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'stowage-decl-'));
  stowage = await createStowage({ dataDir: dir }, { ports: ['documents'] });
});
afterEach(async () => {
  await stowage.close();
  await rm(dir, { recursive: true, force: true });
});

const indexes = (n: number): IndexSpec[] => Array.from({ length: n }, (_, i) => ({ fields: [`f${i}`], name: `i${i}` }));
const noop = (n: number): Migration[] => Array.from({ length: n }, (_, i) => ({ version: i + 1, up: async () => undefined }));

/** Counts event-loop turns (timer callbacks) until stopped. */
function turnCounter(): { stop(): number } {
  let turns = 0;
  let timer = setTimeout(function tick() {
    turns++;
    timer = setTimeout(tick, 0);
  }, 0);
  return {
    stop() {
      clearTimeout(timer);
      return turns;
    },
  };
}

describe('collection() declarations', () => {
  it(`more than ${MAX_INDEXES} indexes or ${MAX_MIGRATIONS} migrations are INVALID_ARGUMENT and create nothing`, async () => {
    await assert.rejects(stowage.documents.collection('c', { indexes: indexes(MAX_INDEXES + 1) }), { code: 'INVALID_ARGUMENT' });
    await assert.rejects(stowage.documents.collection('c', { migrations: noop(MAX_MIGRATIONS + 1) }), { code: 'INVALID_ARGUMENT' });
    assert.deepEqual(await stowage.documents.collections(), []);
  });

  it('building indexes keeps its deadline and lets the event loop turn', async () => {
    const col = await stowage.documents.collection('c');
    const doc = Object.fromEntries(Array.from({ length: MAX_INDEXES }, (_, i) => [`f${i}`, i]));
    for (let i = 0; i < 10; i++) await col.insertMany(Array.from({ length: 1000 }, () => doc));
    const counter = turnCounter();
    await assert.rejects(stowage.documents.collection('c', { indexes: indexes(MAX_INDEXES), timeoutMs: 20 }), { code: 'TIMEOUT' });
    assert.ok(counter.stop() > 0, 'the event loop turned while the indexes were built');
    assert.ok((await col.indexes()).length < MAX_INDEXES, 'the work stopped at the deadline');
  });

  it('running migrations keeps its deadline and lets the event loop turn', async () => {
    // Each migration holds the loop for 2 ms, as a synchronous rewrite of a few documents would.
    const busy: Migration[] = noop(MAX_MIGRATIONS).map((m) => ({
      ...m,
      up: async () => {
        const end = Date.now() + 2;
        while (Date.now() < end);
      },
    }));
    const counter = turnCounter();
    await assert.rejects(stowage.documents.collection('m', { migrations: busy, timeoutMs: 50 }), { code: 'TIMEOUT' });
    assert.ok(counter.stop() > 0, 'the event loop turned between migrations');
    let ran = 0;
    await stowage.documents.collection('m', { migrations: [...noop(MAX_MIGRATIONS - 1), { version: MAX_MIGRATIONS, up: async () => void ran++ }] });
    assert.equal(ran, 1, 'the last migration had not run before the deadline');
  });
});
