/**
 * `etcd://` adapters: config over etcd v3 with the `etcd3` client.
 *
 * @module
 */
export { etcdConfigScheme, EtcdConfigDriver } from './config-driver.js';
export { etcdOptionsFromUrl, ETCD_PARAMS, type EtcdConnection } from './connection.js';
