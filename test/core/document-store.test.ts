import { describe, expect, it } from 'vitest';
import { StowageError } from '../../src/ports/errors.js';
import type { CollectionDriver, DocumentRecord, DocumentsDriver, DriverDocument } from '../../src/ports/documents.js';
import { MemoryDocumentsDriver } from '../../src/adapters/memory/documents-driver.js';
import { createDocumentStore } from '../../src/core/documents/document-store.js';

const hang = (): Promise<never> => new Promise<never>(() => undefined);

/** A mem driver whose collections' put can be replaced. */
function driverWithPut(put: (inner: CollectionDriver, ...args: Parameters<CollectionDriver['put']>) => Promise<DocumentRecord>): DocumentsDriver {
  const inner = new MemoryDocumentsDriver();
  return Object.assign(Object.create(inner) as DocumentsDriver, {
    capabilities: inner.capabilities,
    collections: inner.collections.bind(inner),
    collection: async (name: string) => {
      const col = await inner.collection(name);
      return Object.assign(Object.create(col) as CollectionDriver, {
        get: col.get.bind(col),
        insert: col.insert.bind(col),
        put: (...args: Parameters<CollectionDriver['put']>) => put(col, ...args),
      });
    },
  });
}

/** A mem driver that records the data and JSON text each write receives; `insertMany: false` leaves it out. */
function recordingDriver(options: { insertMany: boolean }): { driver: DocumentsDriver; writes: DriverDocument[] } {
  const inner = new MemoryDocumentsDriver();
  const writes: DriverDocument[] = [];
  const driver = Object.assign(Object.create(inner) as DocumentsDriver, {
    capabilities: inner.capabilities,
    collections: inner.collections.bind(inner),
    collection: async (name: string) => {
      const col = await inner.collection(name);
      const recorder: Partial<CollectionDriver> = {
        get: col.get.bind(col),
        insert: (id, data, signal, json) => {
          writes.push({ id, data, json });
          return col.insert(id, data, signal, json);
        },
        put: (id, data, ifVersion, signal, json) => {
          writes.push({ id, data, json });
          return col.put(id, data, ifVersion, signal, json);
        },
        insertMany: options.insertMany
          ? (docs, signal) => {
              writes.push(...docs);
              return (col.insertMany as NonNullable<CollectionDriver['insertMany']>)(docs, signal);
            }
          : undefined,
      };
      return Object.assign(Object.create(col) as CollectionDriver, recorder);
    },
  });
  return { driver, writes };
}

describe('document store core', () => {
  it.each([true, false])('every write hands the driver the JSON text of its private copy (native insertMany: %s)', async (insertMany) => {
    const { driver, writes } = recordingDriver({ insertMany });
    const store = createDocumentStore(driver);
    const col = await store.collection('c');
    const data = { name: 'é ✓ \u{1F600}', list: [1, 2.5, null, true], nested: { deep: 'x' } };
    await col.insert(data, { id: 'a' });
    await col.insertMany([data, { other: 1 }]);
    await col.put('a', { replaced: true });
    await col.patch('a', { added: [1] });
    expect(writes).toHaveLength(5);
    for (const write of writes) {
      expect(write.data).not.toBe(data);
      expect(write.json).toBe(JSON.stringify(write.data));
    }
    expect(writes.map((w) => w.json)).toEqual([
      JSON.stringify(data),
      JSON.stringify(data),
      '{"other":1}',
      '{"replaced":true}',
      '{"replaced":true,"added":[1]}',
    ]);
    await store.close();
  });

  it('collections made before the case rule, on an adapter that keeps them apart, still open; a new twin does not', async () => {
    const driver = new MemoryDocumentsDriver();
    await driver.collection('Foo');
    await driver.collection('foo');
    const store = createDocumentStore(driver);
    await (await store.collection('Foo')).insert({ n: 1 });
    await (await store.collection('foo')).insert({ n: 2 });
    expect(await (await store.collection('Foo')).count()).toBe(1);
    await expect(store.collection('FOO')).rejects.toMatchObject({ code: 'ALREADY_EXISTS' });
    await store.close();
  });

  it('a driver that never answers gives TIMEOUT', async () => {
    const driver = {
      backend: 'hang',
      capabilities: new Set(),
      collection: hang,
      collections: hang,
      withLock: hang,
      migrationVersion: hang,
      setMigrationVersion: hang,
      ping: hang,
      close: async () => undefined,
    } as unknown as DocumentsDriver;
    const store = createDocumentStore(driver, { drainMs: 10 });
    await expect(store.collection('x', { timeoutMs: 20 })).rejects.toMatchObject({ code: 'TIMEOUT' });
    await store.close();
  });

  it('patch without ifVersion retries after a version conflict', async () => {
    let conflicts = 2;
    const store = createDocumentStore(
      driverWithPut(async (col, id, data, ifVersion, signal) => {
        if (conflicts-- > 0) throw new StowageError('CONFLICT', 'someone else wrote', { details: { currentVersion: 9 } });
        return col.put(id, data, ifVersion, signal);
      }),
    );
    const col = await store.collection('c');
    await col.insert({ a: 1 }, { id: 'x' });
    expect((await col.patch('x', { b: 2 })).data).toEqual({ a: 1, b: 2 });
    expect(conflicts).toBe(-1);
    await store.close();
  });

  it('patch does not retry a unique-index conflict, nor a conflict when ifVersion was given', async () => {
    let calls = 0;
    const store = createDocumentStore(
      driverWithPut(async () => {
        calls++;
        throw new StowageError('CONFLICT', 'duplicate', { details: { index: 'by_email' } });
      }),
    );
    const col = await store.collection('c');
    await col.insert({ a: 1 }, { id: 'x' });
    await expect(col.patch('x', { b: 2 })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(calls).toBe(1);
    await expect(col.patch('x', { b: 2 }, { ifVersion: 1 })).rejects.toMatchObject({ code: 'CONFLICT' });
    expect(calls).toBe(2);
    await store.close();
  });

  it('maxDocumentBytes is validated and reported', () => {
    expect(createDocumentStore(new MemoryDocumentsDriver()).maxDocumentBytes).toBe(1024 * 1024);
    expect(() => createDocumentStore(new MemoryDocumentsDriver(), { maxDocumentBytes: 0 })).toThrow(StowageError);
  });

  it('stores a private copy as JSON has it: an own "__proto__" key is data, -0 is 0, later changes are not seen', async () => {
    const store = createDocumentStore(new MemoryDocumentsDriver());
    const col = await store.collection('copies');
    const input = JSON.parse('{"__proto__":{"a":1},"n":-0,"list":[{"deep":true}]}') as Record<string, unknown>;
    const written = [await col.insert(input as never, { id: 'i' }), await col.put('p', input as never), ...(await col.insertMany([input as never]))];
    (input.list as { deep: boolean }[])[0]!.deep = false;
    input.n = 5;
    for (const record of [...written, await col.get('i'), await col.get('p')]) {
      const data = record?.data as Record<string, unknown>;
      expect(Object.getPrototypeOf(data)).toBe(Object.prototype);
      expect(Object.hasOwn(data, '__proto__')).toBe(true);
      expect(Object.getOwnPropertyDescriptor(data, '__proto__')?.value).toEqual({ a: 1 });
      expect(Object.is(data.n, 0)).toBe(true);
      expect(data.list).toEqual([{ deep: true }]);
      expect(data).not.toBe(input);
    }
    await store.close();
  });

  it('an unaddressable key is refused with its path, in objects and arrays at any depth, and nothing is written', async () => {
    const store = createDocumentStore(new MemoryDocumentsDriver());
    const col = await store.collection('things');
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ $set: 1 }, /key "\$set" at .* must not start with "\$"/],
      [{ ok: { deep: [1, { 'k.k': 1 }] } }, /key "k\.k" at .*\.ok\.deep\[1\] must not contain "\."/],
      [{ list: [[{ 'a\u0000': 1 }]] }, /at .*\.list\[0\]\[0\] must not contain NUL/],
      [{ patch: { sub: { $x: 1 } } }, /key "\$x" at .*\.patch\.sub must not start/],
    ];
    for (const [data, message] of cases) {
      await expect(col.insert(data as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(message) as unknown });
      await expect(col.patch('x', data as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT' });
    }
    expect(await col.count()).toBe(0);
    // An object with a prototype of its own is refused as not plain JSON; "$" past a key's start is allowed.
    const withProto = Object.assign(Object.create({ 'in.herited': 1 }) as object, { a$b: 1 });
    await expect(col.insert(withProto as never)).rejects.toMatchObject({ code: 'INVALID_ARGUMENT', message: expect.stringMatching(/plain JSON object/) as unknown });
    await expect(col.insert({ a$b: { c$: [{ d: 1 }] } })).resolves.toMatchObject({ version: 1 });
    await store.close();
  });
});
