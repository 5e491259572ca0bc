/**
 * `zookeeper://` adapters: config over ZooKeeper with the `node-zookeeper-client` client.
 *
 * @module
 */
export { zookeeperConfigScheme, ZookeeperConfigDriver } from './config-driver.js';
export { zookeeperOptionsFromUrl, ZOOKEEPER_PARAMS, type ZookeeperConnection } from './connection.js';
