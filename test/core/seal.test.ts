import { describe, expect, it } from 'vitest';
import { deriveKeys, makeKeyCheck, newKdfParams, seal, unseal, verifyKeyCheck } from '../../src/driver/seal.js';

// The lowest scrypt cost keeps these unit tests quick; the adapters use DEFAULT_KDF_COST.
const cheap = { N: 1024, r: 8, p: 1 };

describe('seal', () => {
  it('opens what it sealed under the same associated data', async () => {
    const keys = await deriveKeys(Buffer.from('master-key-0123456789'), newKdfParams(cheap));
    const sealed = seal(keys, Buffer.from('hello'), 'name\u00001');
    expect(unseal(keys, sealed, 'name\u00001')?.toString()).toBe('hello');
  });

  it('refuses a record moved to another name or version (associated data differs)', async () => {
    const keys = await deriveKeys(Buffer.from('master-key-0123456789'), newKdfParams(cheap));
    const sealed = seal(keys, Buffer.from('hello'), 'a\u00001');
    expect(unseal(keys, sealed, 'b\u00001')).toBeUndefined();
    expect(unseal(keys, sealed, 'a\u00002')).toBeUndefined();
  });

  it('refuses a record with any single flipped byte', async () => {
    const keys = await deriveKeys(Buffer.from('master-key-0123456789'), newKdfParams(cheap));
    const sealed = seal(keys, Buffer.from('some secret bytes'), 'x');
    for (let i = 0; i < sealed.byteLength; i++) {
      const copy = Buffer.from(sealed);
      copy[i] = (copy[i] as number) ^ 0x80;
      expect(unseal(keys, copy, 'x'), `byte ${i}`).toBeUndefined();
    }
  });

  it('uses a fresh 12-byte nonce for every seal', async () => {
    const keys = await deriveKeys(Buffer.from('master-key-0123456789'), newKdfParams(cheap));
    const nonces = new Set(Array.from({ length: 100 }, () => seal(keys, Buffer.from('same'), 'x').subarray(0, 12).toString('hex')));
    expect(nonces.size).toBe(100);
  });

  it('derives different keys from the same master key under different salts', async () => {
    const master = Buffer.from('master-key-0123456789');
    const a = await deriveKeys(master, newKdfParams(cheap));
    const b = await deriveKeys(master, newKdfParams(cheap));
    expect(a.enc.equals(b.enc)).toBe(false);
  });

  it('tells a wrong master key apart through the key check', async () => {
    const params = newKdfParams(cheap);
    const right = await deriveKeys(Buffer.from('master-key-0123456789'), params);
    const wrong = await deriveKeys(Buffer.from('master-key-9876543210'), params);
    const check = makeKeyCheck(right);
    expect(verifyKeyCheck(right, check)).toBe(true);
    expect(verifyKeyCheck(wrong, check)).toBe(false);
  });
});
