/**
 * The MongoDB adapter: `mongodb://` documents.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { urlPassword } from '../../driver/url.js';
import { MongoDocumentsDriver } from './documents-driver.js';

export { MongoDocumentsDriver, type MongoDocumentsOptions } from './documents-driver.js';

const PASSED_THROUGH = ['replicaSet', 'authSource', 'authMechanism', 'tls', 'directConnection', 'serverSelectionTimeoutMS', 'readPreference', 'w'];

/**
 * `mongodb://user[:password]@host[:port][,host…]/database`. The password comes from the URL or, better, a
 * file (`passwordFile=`). Parameters passed to the driver: `replicaSet`, `authSource`, `authMechanism`,
 * `tls`, `directConnection`, `serverSelectionTimeoutMS`, `readPreference`, `w`; and `collectionPrefix`
 * (letters, digits, `_`) to share a database. Needs MongoDB 5.0 or later (`$getField`); the suite runs on 7.0.
 */
export const mongoDocumentsScheme: SchemeDefinition<'documents'> = {
  port: 'documents',
  scheme: 'mongodb',
  params: [...PASSED_THROUGH, 'passwordFile', 'collectionPrefix'],
  open: async (url) => {
    if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted} names no host`);
    const database = url.path.replace(/^\//, '');
    if (!/^[A-Za-z0-9_-]{1,63}$/.test(database)) {
      throw new StowageError('INVALID_ARGUMENT', `${url.redacted} must name a database in its path`);
    }
    const collectionPrefix = url.params.get('collectionPrefix') ?? '';
    if (!/^[A-Za-z0-9_]{0,32}$/.test(collectionPrefix)) {
      throw new StowageError('INVALID_ARGUMENT', 'query parameter "collectionPrefix" must be up to 32 letters, digits and "_"');
    }
    const password = await urlPassword(url);
    const auth = url.username === undefined ? '' : `${encodeURIComponent(url.username)}${password === undefined ? '' : `:${encodeURIComponent(password)}`}@`;
    const hosts = url.hosts.map((h) => (h.host.includes(':') ? `[${h.host}]` : h.host) + (h.port === undefined ? '' : `:${h.port}`)).join(',');
    const query = new URLSearchParams([...url.params].filter(([k]) => PASSED_THROUGH.includes(k))).toString();
    return new MongoDocumentsDriver({
      url: `mongodb://${auth}${hosts}/${database}${query === '' ? '' : `?${query}`}`,
      database,
      collectionPrefix,
      secrets: password === undefined ? [] : [password, encodeURIComponent(password)],
    });
  },
};
