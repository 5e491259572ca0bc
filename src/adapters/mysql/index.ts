/**
 * The MySQL / MariaDB adapter: `mysql://` documents.
 *
 * @module
 */
import { StowageError } from '../../ports/errors.js';
import type { SchemeDefinition } from '../../driver/index.js';
import { intParam, urlPassword } from '../../driver/url.js';
import { MysqlDocumentsDriver } from './documents-driver.js';

export { MysqlDocumentsDriver, type MysqlDocumentsOptions, type MysqlFlavour } from './documents-driver.js';

/**
 * `mysql://user[:password]@host[:port]/database`. The password comes from the URL or, better, from a file
 * (`passwordFile=/run/secrets/db`, trailing newline ignored). Other parameters: `connectionLimit` (default
 * 10), `connectTimeoutMs` (default 5000), `tablePrefix` (letters, digits, `_`).
 */
export const mysqlDocumentsScheme: SchemeDefinition<'documents'> = {
  port: 'documents',
  scheme: 'mysql',
  params: ['passwordFile', 'connectionLimit', 'connectTimeoutMs', 'tablePrefix'],
  open: async (url) => {
    const host = url.hosts[0];
    if (host === undefined || url.hosts.length > 1) {
      throw new StowageError('INVALID_ARGUMENT', `${url.redacted} must name exactly one host`);
    }
    const database = url.path.replace(/^\//, '');
    if (!/^[A-Za-z0-9_$]{1,64}$/.test(database)) {
      throw new StowageError('INVALID_ARGUMENT', `${url.redacted} must name a database in its path (letters, digits, "_", "$")`);
    }
    const tablePrefix = url.params.get('tablePrefix') ?? '';
    if (!/^[A-Za-z0-9_]{0,20}$/.test(tablePrefix)) {
      throw new StowageError('INVALID_ARGUMENT', 'query parameter "tablePrefix" must be up to 20 letters, digits and "_"');
    }
    const password = await urlPassword(url);
    return new MysqlDocumentsDriver({
      pool: {
        host: host.host,
        port: host.port ?? 3306,
        user: url.username,
        password,
        database,
        connectionLimit: intParam(url, 'connectionLimit', 10, { min: 1, max: 1000 }),
        connectTimeout: intParam(url, 'connectTimeoutMs', 5000, { min: 1, max: 600_000 }),
      },
      tablePrefix,
    });
  },
};
