/**
 * The secrets contract suite: what every secrets adapter must do, run against any factory.
 *
 * @example
 * ```ts
 * import { describe, it } from 'node:test'; // or vitest's, jest's, mocha's describe/it
 * import { createStowage } from 'stowage';
 * import { secretsContract } from 'stowage/testing';
 *
 * secretsContract({
 *   test: { describe, it },
 *   name: 'mem://',
 *   factory: async () => (await createStowage({ secrets: 'mem://' }, { ports: ['secrets'] })).secrets,
 * });
 * ```
 *
 * @module
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { inspect } from 'node:util';
import type { SecretStore, SecretsCapability } from '../ports/secrets.js';
import { StowageError } from '../ports/errors.js';
import { rejectsWith, runnable, skipUnless, withInstance, type ContractOptions } from './harness.js';

const ALL_CAPABILITIES: readonly SecretsCapability[] = ['softDelete', 'undelete', 'destroy'];

/** Names every adapter must refuse, with why. */
const BAD_NAMES: ReadonlyArray<readonly [string, string]> = [
  ['', 'empty'],
  ['a\u0000b', 'NUL'],
  ['a/../b', '".." segment'],
  ['..', '".." alone'],
  ['bad\ud800name', 'lone surrogate'],
];

/** A value unlikely to appear anywhere by chance, to search printouts for. */
function canary(): string {
  return `canary-${randomUUID()}`;
}

/** Every way a thrown error could show itself in a log. */
function printouts(err: unknown): string {
  const e = err as Error;
  return [inspect(err, { depth: 20, showHidden: true }), String(err), e.message, e.stack ?? '', safeJson(err), inspect(e.cause, { depth: 20 })].join('\n');
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value) ?? '';
  } catch {
    return '';
  }
}

async function rejectionOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  assert.fail('expected a rejection, but it resolved');
}

/**
 * Runs the secrets contract against `factory`. Every declared capability is tested; every undeclared one
 * must reject with UNSUPPORTED.
 */
export function secretsContract(options: ContractOptions<SecretStore>): void {
  const { test, name, factory } = options;
  const { describe, it } = test;
  const run = (fn: (store: SecretStore) => Promise<void>) => runnable(() => withInstance(factory, fn));
  const has = async (capability: SecretsCapability): Promise<boolean> => {
    const store = await factory();
    try {
      return store.capabilities.has(capability);
    } finally {
      await store.close();
    }
  };
  const ifCapable =
    (capability: SecretsCapability, fn: (store: SecretStore) => Promise<void>) =>
    runnable(async (): Promise<void> => {
      skipUnless(await has(capability), `the adapter does not declare "${capability}"`);
      await withInstance(factory, fn);
    });

  describe(`secrets contract: ${name}`, () => {
    describe('versions', () => {
      it(
        'numbers versions 1, 2, 3 and keeps older versions readable',
        run(async (s) => {
          assert.deepEqual(await s.put('app/key', 'one'), { version: 1 });
          assert.deepEqual(await s.put('app/key', 'two'), { version: 2 });
          assert.deepEqual(await s.put('app/key', 'three'), { version: 3 });
          assert.equal((await s.get('app/key', { version: 1 })).value.reveal(), 'one');
          assert.equal((await s.get('app/key', { version: 2 })).value.reveal(), 'two');
          const latest = await s.get('app/key');
          assert.equal(latest.version, 3);
          assert.equal(latest.value.reveal(), 'three');
          assert.equal(latest.name, 'app/key');
          assert.ok(latest.createdAt instanceof Date && !Number.isNaN(latest.createdAt.getTime()));
        }),
      );

      it(
        'stores bytes and UTF-8 text exactly',
        run(async (s) => {
          const bytes = new Uint8Array([0, 1, 2, 127, 128, 254, 255, 0]);
          await s.put('bin', bytes);
          assert.deepEqual([...(await s.get('bin')).value.bytes()], [...bytes]);
          const text = 'pässwörd 🔑 \u2028 "quoted" \\ end';
          await s.put('text', text);
          assert.equal((await s.get('text')).value.reveal(), text);
          await s.put('empty', '');
          assert.equal((await s.get('empty')).value.byteLength, 0);
        }),
      );

      it(
        'gives NOT_FOUND for an unknown secret and for a version beyond the latest',
        run(async (s) => {
          await rejectsWith(s.get('missing'), 'NOT_FOUND');
          await s.put('present', 'v');
          await rejectsWith(s.get('present', { version: 2 }), 'NOT_FOUND');
        }),
      );

      it(
        'lists versions oldest first without values, and NOT_FOUND for an unknown name',
        run(async (s) => {
          await s.put('k', 'a');
          await s.put('k', 'b');
          const infos = await s.versions('k');
          assert.deepEqual(
            infos.map((i) => [i.version, i.deleted, i.destroyed]),
            [
              [1, false, false],
              [2, false, false],
            ],
          );
          assert.ok(infos.every((i) => i.createdAt instanceof Date));
          assert.ok(!JSON.stringify(infos).includes('"a"'));
          await rejectsWith(s.versions('nope'), 'NOT_FOUND');
        }),
      );

      it(
        'gives every concurrent put its own version, losing none',
        run(async (s) => {
          const results = await Promise.all(Array.from({ length: 8 }, (_, i) => s.put('busy', `v${i}`)));
          const numbers = results.map((r) => r.version).sort((a, b) => a - b);
          assert.deepEqual(numbers, [1, 2, 3, 4, 5, 6, 7, 8]);
          for (const r of results) assert.match((await s.get('busy', { version: r.version })).value.reveal(), /^v\d$/);
          assert.equal((await s.versions('busy')).length, 8);
        }),
      );
    });

    describe('compare-and-set', () => {
      it(
        'ifVersion 0 creates a secret that does not exist, and CONFLICTs once it does, writing nothing',
        run(async (s) => {
          assert.deepEqual(await s.put('cas', 'first', { ifVersion: 0 }), { version: 1 });
          await rejectsWith(s.put('cas', 'second', { ifVersion: 0 }), 'CONFLICT');
          assert.equal((await s.versions('cas')).length, 1);
          assert.equal((await s.get('cas')).value.reveal(), 'first');
        }),
      );

      it(
        'ifVersion equal to the latest writes the next version; a stale one CONFLICTs and writes nothing',
        run(async (s) => {
          await s.put('cas', 'a');
          assert.deepEqual(await s.put('cas', 'b', { ifVersion: 1 }), { version: 2 });
          await rejectsWith(s.put('cas', 'c', { ifVersion: 1 }), 'CONFLICT');
          await rejectsWith(s.put('cas', 'c', { ifVersion: 5 }), 'CONFLICT');
          assert.equal((await s.versions('cas')).length, 2);
          assert.equal((await s.get('cas')).value.reveal(), 'b');
        }),
      );

      it(
        'lets exactly one of several concurrent writers with the same ifVersion win',
        run(async (s) => {
          await s.put('race', 'base');
          const outcomes = await Promise.allSettled(Array.from({ length: 5 }, (_, i) => s.put('race', `w${i}`, { ifVersion: 1 })));
          assert.equal(outcomes.filter((o) => o.status === 'fulfilled').length, 1);
          for (const o of outcomes) if (o.status === 'rejected') assert.ok(StowageError.is(o.reason, 'CONFLICT'), String(o.reason));
          assert.equal((await s.versions('race')).length, 2);
        }),
      );
    });

    describe('list', () => {
      it(
        'lists names under a prefix, sorted, and every name for an empty prefix',
        run(async (s) => {
          for (const n of ['b/two', 'a/one', 'b/one', 'bb', 'c']) await s.put(n, 'v');
          assert.deepEqual(await s.list('b/'), ['b/one', 'b/two']);
          assert.deepEqual(await s.list('b'), ['b/one', 'b/two', 'bb']);
          assert.deepEqual(await s.list(), ['a/one', 'b/one', 'b/two', 'bb', 'c']);
          assert.deepEqual(await s.list('zzz'), []);
        }),
      );
    });

    describe('soft delete', () => {
      it(
        'hides the latest version (NOT_FOUND) while older versions still read',
        ifCapable('softDelete', async (s) => {
          await s.put('sd', 'old');
          await s.put('sd', 'new');
          await s.delete('sd');
          await rejectsWith(s.get('sd'), 'NOT_FOUND');
          await rejectsWith(s.get('sd', { version: 2 }), 'NOT_FOUND');
          assert.equal((await s.get('sd', { version: 1 })).value.reveal(), 'old');
          const infos = await s.versions('sd');
          assert.deepEqual(
            infos.map((i) => [i.version, i.deleted]),
            [
              [1, false],
              [2, true],
            ],
          );
          assert.deepEqual(await s.list('sd'), ['sd']);
        }),
      );

      it(
        'deletes the versions named',
        ifCapable('softDelete', async (s) => {
          for (const v of ['1', '2', '3']) await s.put('sd', v);
          await s.delete('sd', { versions: [1, 2] });
          await rejectsWith(s.get('sd', { version: 1 }), 'NOT_FOUND');
          await rejectsWith(s.get('sd', { version: 2 }), 'NOT_FOUND');
          assert.equal((await s.get('sd')).value.reveal(), '3');
        }),
      );

      it(
        'gives NOT_FOUND when deleting an unknown secret',
        ifCapable('softDelete', async (s) => {
          await rejectsWith(s.delete('ghost'), 'NOT_FOUND');
        }),
      );

      it(
        'keeps numbering after a deleted latest version',
        ifCapable('softDelete', async (s) => {
          await s.put('sd', 'a');
          await s.delete('sd');
          assert.deepEqual(await s.put('sd', 'b', { ifVersion: 1 }), { version: 2 });
          assert.equal((await s.get('sd')).value.reveal(), 'b');
        }),
      );
    });

    describe('undelete', () => {
      it(
        'brings soft-deleted versions back with their values',
        ifCapable('undelete', async (s) => {
          await s.put('ud', 'keep-me');
          await s.delete('ud', { versions: [1] });
          await rejectsWith(s.get('ud'), 'NOT_FOUND');
          await s.undelete('ud', { versions: [1] });
          assert.equal((await s.get('ud')).value.reveal(), 'keep-me');
          assert.equal((await s.versions('ud'))[0]?.deleted, false);
        }),
      );
    });

    describe('destroy', () => {
      it(
        'destroys the versions named: they never read again, even after undelete',
        ifCapable('destroy', async (s) => {
          await s.put('d', 'one');
          await s.put('d', 'two');
          await s.destroy('d', { versions: [1] });
          await rejectsWith(s.get('d', { version: 1 }), 'NOT_FOUND');
          if (s.capabilities.has('undelete')) {
            await s.undelete('d', { versions: [1] });
            await rejectsWith(s.get('d', { version: 1 }), 'NOT_FOUND');
          }
          assert.equal((await s.get('d')).value.reveal(), 'two');
          const infos = await s.versions('d');
          assert.deepEqual(
            infos.map((i) => [i.version, i.destroyed]),
            [
              [1, true],
              [2, false],
            ],
          );
        }),
      );

      it(
        'destroys every version and the name: get and versions give NOT_FOUND, list omits it, numbering restarts',
        ifCapable('destroy', async (s) => {
          await s.put('gone', 'a');
          await s.put('gone', 'b');
          await s.put('stays', 'c');
          await s.destroy('gone');
          await rejectsWith(s.get('gone'), 'NOT_FOUND');
          await rejectsWith(s.get('gone', { version: 1 }), 'NOT_FOUND');
          await rejectsWith(s.versions('gone'), 'NOT_FOUND');
          assert.deepEqual(await s.list(), ['stays']);
          assert.deepEqual(await s.put('gone', 'again', { ifVersion: 0 }), { version: 1 });
        }),
      );

      it(
        'omits from list a secret whose every version is destroyed',
        ifCapable('destroy', async (s) => {
          await s.put('x', 'a');
          await s.destroy('x', { versions: [1] });
          assert.deepEqual(await s.list(), []);
        }),
      );
    });

    describe('capabilities', () => {
      it(
        'rejects every undeclared capability with UNSUPPORTED',
        run(async (s) => {
          await s.put('cap', 'v');
          for (const capability of ALL_CAPABILITIES) {
            if (s.capabilities.has(capability)) continue;
            const call =
              capability === 'softDelete' ? s.delete('cap') : capability === 'undelete' ? s.undelete('cap', { versions: [1] }) : s.destroy('cap');
            await rejectsWith(call, 'UNSUPPORTED');
          }
          assert.equal((await s.get('cap')).value.reveal(), 'v');
        }),
      );
    });

    describe('redaction', () => {
      it(
        'prints a secret as [redacted] through inspect, JSON.stringify, String() and template literals',
        run(async (s) => {
          const value = canary();
          await s.put('r', value);
          const secret = await s.get('r');
          const shown = [
            inspect(secret, { depth: 10, showHidden: true }),
            inspect(secret.value),
            JSON.stringify(secret),
            JSON.stringify({ nested: secret.value }),
            String(secret.value),
            `${secret.value}`,
            'x' + secret.value,
          ];
          for (const text of shown) assert.ok(!text.includes(value), `value shown in: ${text}`);
          assert.equal(String(secret.value), '[redacted]');
          assert.equal(secret.value.reveal(), value);
        }),
      );

      it(
        'keeps the value out of a CONFLICT error thrown by a put',
        run(async (s) => {
          const value = canary();
          await s.put('r', 'first');
          const err = await rejectionOf(s.put('r', value, { ifVersion: 0 }));
          assert.ok(StowageError.is(err, 'CONFLICT'));
          assert.ok(!printouts(err).includes(value), 'value found in the error');
        }),
      );

      it(
        'keeps the value out of the errors of an oversize, a cancelled and a closed put',
        run(async (s) => {
          const value = canary();
          const big = value.repeat(Math.ceil((s.maxValueBytes + 1) / value.length));
          const errors = [
            await rejectionOf(s.put('r', big)),
            await rejectionOf(s.put('r', value, { signal: AbortSignal.abort() })),
            await rejectionOf(s.put('', value)),
          ];
          await s.close();
          errors.push(await rejectionOf(s.put('r', value)));
          for (const err of errors) {
            assert.ok(StowageError.is(err));
            assert.ok(!printouts(err).includes(value), `value found in ${err.code} error`);
          }
        }),
      );
    });

    describe('input', () => {
      for (const [bad, why] of BAD_NAMES) {
        it(
          `refuses a name that is ${why} with INVALID_ARGUMENT and changes nothing`,
          run(async (s) => {
            await s.put('ok', 'v');
            await rejectsWith(s.put(bad, 'v'), 'INVALID_ARGUMENT');
            await rejectsWith(s.get(bad), 'INVALID_ARGUMENT');
            await rejectsWith(s.versions(bad), 'INVALID_ARGUMENT');
            for (const capability of ALL_CAPABILITIES) {
              if (!s.capabilities.has(capability)) continue;
              const call = capability === 'softDelete' ? s.delete(bad) : capability === 'undelete' ? s.undelete(bad, { versions: [1] }) : s.destroy(bad);
              await rejectsWith(call, 'INVALID_ARGUMENT');
            }
            assert.deepEqual(await s.list(), ['ok']);
          }),
        );
      }

      it(
        'keeps secrets named like Object.prototype members (__proto__, constructor, toString) apart',
        run(async (s) => {
          const names = ['__proto__', 'constructor', 'toString'];
          for (const name of names) await s.put(name, `value of ${name}`);
          for (const name of names) {
            assert.equal((await s.get(name)).value.reveal(), `value of ${name}`);
            assert.equal((await s.versions(name)).length, 1);
          }
          assert.deepEqual(await s.list(), [...names].sort());
          if (s.capabilities.has('destroy')) {
            await s.destroy('__proto__');
            assert.deepEqual(await s.list(), ['constructor', 'toString']);
          }
        }),
      );

      it(
        'refuses a value over maxValueBytes with RESOURCE_EXHAUSTED and changes nothing',
        run(async (s) => {
          await s.put('big', 'small');
          await rejectsWith(s.put('big', new Uint8Array(s.maxValueBytes + 1)), 'RESOURCE_EXHAUSTED');
          assert.equal((await s.versions('big')).length, 1);
          assert.equal((await s.get('big')).value.reveal(), 'small');
          await s.put('edge', new Uint8Array(s.maxValueBytes));
          assert.equal((await s.get('edge')).value.byteLength, s.maxValueBytes);
        }),
      );

      it(
        'refuses a value that is not a string, bytes or SecretValue with INVALID_ARGUMENT',
        run(async (s) => {
          await rejectsWith(s.put('v', 42 as unknown as string), 'INVALID_ARGUMENT');
          await rejectsWith(s.put('v', { a: 1 } as unknown as string), 'INVALID_ARGUMENT');
          assert.deepEqual(await s.list(), []);
        }),
      );

      it(
        'refuses versions that are not positive integers with INVALID_ARGUMENT',
        run(async (s) => {
          await s.put('v', 'x');
          await rejectsWith(s.get('v', { version: 0 }), 'INVALID_ARGUMENT');
          await rejectsWith(s.get('v', { version: 1.5 }), 'INVALID_ARGUMENT');
          await rejectsWith(s.put('v', 'y', { ifVersion: -1 }), 'INVALID_ARGUMENT');
          assert.equal((await s.versions('v')).length, 1);
        }),
      );
    });

    describe('lifecycle', () => {
      it(
        'answers health with a real round-trip',
        run(async (s) => {
          const report = await s.health();
          assert.equal(report.ok, true, report.error?.message);
          assert.equal(report.backend, s.backend);
        }),
      );

      it('rejects every call with CLOSED after close(), which is idempotent', async () => {
        const s = await factory();
        await s.put('c', 'v');
        await s.close();
        await s.close();
        assert.equal(s.closed, true);
        await rejectsWith(s.get('c'), 'CLOSED');
        await rejectsWith(s.put('c', 'v'), 'CLOSED');
        await rejectsWith(s.list(), 'CLOSED');
        await rejectsWith(s.versions('c'), 'CLOSED');
        await rejectsWith(s.delete('c'), 'CLOSED', 'UNSUPPORTED');
        await rejectsWith(s.destroy('c'), 'CLOSED', 'UNSUPPORTED');
      });

      it(
        'rejects a call whose signal is already aborted with CANCELLED and writes nothing',
        run(async (s) => {
          await rejectsWith(s.put('ab', 'v', { signal: AbortSignal.abort() }), 'CANCELLED');
          await rejectsWith(s.get('ab', { signal: AbortSignal.abort() }), 'CANCELLED');
          await rejectsWith(s.list('', { signal: AbortSignal.abort() }), 'CANCELLED');
          assert.deepEqual(await s.list(), []);
        }),
      );
    });
  });
}
