/**
 * Turning a `zookeeper://` URL into what the driver needs, and the promise-returning calls over
 * `node-zookeeper-client`'s callbacks.
 *
 * `zookeeper://host:port[,host:port…]/chroot?sessionTimeoutMs=&history=`
 *
 * @module
 */
import type { Socket } from 'node:net';
import zookeeper, { type Client, type Stat, type Transaction } from 'node-zookeeper-client';
import { StowageError } from '../../ports/errors.js';
import { intParam, type StowageUrl } from '../../driver/url.js';

/** The query parameters a `zookeeper://` config URL accepts. */
export const ZOOKEEPER_PARAMS: readonly string[] = ['sessionTimeoutMs', 'history'];

/** What {@link zookeeperOptionsFromUrl} produces. */
export interface ZookeeperConnection {
  /** `host:port,host:port` for `createClient`. */
  readonly connectString: string;
  /** The znode every path of the store lives under (`/myapp`; `/stowage` when the URL names none). */
  readonly root: string;
  /** The session timeout asked of the server for the store's own session, in milliseconds. */
  readonly sessionTimeoutMs: number;
  /** How many change log entries are kept for watches; older history gives COMPACTED. */
  readonly history: number;
}

/** Reads the URL into connection options. */
export function zookeeperOptionsFromUrl(url: StowageUrl): ZookeeperConnection {
  if (url.hosts.length === 0) throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: a zookeeper URL needs at least one host:port`);
  if (url.username !== undefined || url.password !== undefined) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: zookeeper:// does not support credentials (digest ACLs) yet`);
  }
  const connectString = url.hosts.map(({ host, port }) => `${host.includes(':') ? `[${host}]` : host}:${port ?? 2181}`).join(',');
  const trimmed = url.path.replace(/^\/+|\/+$/g, '');
  const root = `/${trimmed === '' ? 'stowage' : trimmed}`;
  try {
    zookeeper.createClient(`127.0.0.1:1${root}`); // validates the chroot as ZooKeeper does, without connecting
  } catch (err) {
    throw new StowageError('INVALID_ARGUMENT', `${url.redacted}: ${JSON.stringify(root)} is not a valid ZooKeeper path (${(err as Error).message})`);
  }
  return {
    connectString,
    root,
    sessionTimeoutMs: intParam(url, 'sessionTimeoutMs', 30_000, { min: 1000, max: 600_000 }),
    history: intParam(url, 'history', 10_000, { min: 100, max: 1_000_000 }),
  };
}

/** The ZooKeeper error code of `err`, when it is a ZooKeeper exception. */
export function zkCode(err: unknown): number | undefined {
  return err instanceof zookeeper.Exception ? err.getCode() : undefined;
}

/** A zxid (8 bytes, big-endian) as a number: exact up to epoch 2^21, far beyond any real cluster. */
export function zxid(bytes: Buffer): number {
  return Number(bytes.readBigUInt64BE(0));
}

/** Runs one callback-style call as a promise. */
function call<T>(run: (done: (err: unknown, value: T) => void) => void): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    run((err, value) => (err ? reject(err instanceof Error ? err : new Error(String(err))) : resolve(value)));
  });
}

/** A znode's data and stat, or undefined when it does not exist. */
export async function getData(client: Client, path: string): Promise<{ data: Buffer; stat: Stat } | undefined> {
  try {
    return await new Promise((resolve, reject) => {
      client.getData(path, (err, data, stat) => (err ? reject(err) : resolve({ data: data ?? Buffer.alloc(0), stat })));
    });
  } catch (err) {
    if (zkCode(err) === zookeeper.Exception.NO_NODE) return undefined;
    throw err;
  }
}

/** A znode's stat, or undefined when it does not exist; `watcher` fires once on its next change. */
export function exists(client: Client, path: string, watcher?: () => void): Promise<Stat | undefined> {
  return call<Stat | undefined>((done) => (watcher ? client.exists(path, watcher, done) : client.exists(path, done)));
}

/** A znode's children names; `watcher` fires once when they next change. */
export function children(client: Client, path: string, watcher?: () => void): Promise<string[]> {
  return call<string[]>((done) => (watcher ? client.getChildren(path, watcher, done) : client.getChildren(path, done)));
}

/** One result of a committed transaction (`stat` for setData, `path` for create). */
export interface OpResult {
  readonly stat?: Stat;
  readonly path?: string;
}

/** Commits a multi-op transaction atomically. */
export function commit(tx: Transaction): Promise<OpResult[]> {
  return call<OpResult[]>((done) => tx.commit(done));
}

/** What a transaction keeps of each op (`node-zookeeper-client` internals, for {@link versioned}). */
interface TransactionInternals {
  ops?: { version?: number }[];
}

/**
 * Adds a versioned `setData` or `remove` to `tx`. `node-zookeeper-client`'s transaction turns version 0
 * into -1 (`version || -1`), which makes the op unconditional: the first update of a new znode would
 * overwrite a concurrent one (alexguan/node-zookeeper-client#67, open since 2017). The version is set again
 * on the op just added.
 */
export function versioned(tx: Transaction, op: 'setData' | 'remove', path: string, version: number, data: Buffer | null = null): Transaction {
  if (op === 'setData') tx.setData(path, data, version);
  else tx.remove(path, version);
  const added = (tx as unknown as TransactionInternals).ops?.at(-1);
  if (added) added.version = version;
  return tx;
}

/** Creates `path` (and its parents) unless it exists. */
export async function ensure(client: Client, path: string): Promise<void> {
  await call<string>((done) => client.mkdirp(path, done));
}

/** The parts of `node-zookeeper-client`'s connection manager that {@link closeClient} and {@link createClient} need. */
interface ConnectionManagerInternals {
  socket?: Socket;
  state: number;
  connectTimeoutHandler?: NodeJS.Timeout;
  findNextServer: (callback: (server: unknown) => void) => void;
  onSocketConnected: () => void;
}

/** `node-zookeeper-client`'s connection manager of `client`, when its internals are where this file expects them. */
function managerOf(client: Client): ConnectionManagerInternals | undefined {
  const manager = (client as unknown as { connectionManager?: ConnectionManagerInternals }).connectionManager;
  return manager && typeof manager.onSocketConnected === 'function' ? manager : undefined;
}

/** The connection manager's state while a handshake is under way (`STATES.CONNECTING` in its source). */
const MANAGER_CONNECTING = 1;
/** How long the first handshake of a connection attempt may take before the socket is dropped and tried again. */
const FIRST_HANDSHAKE_MS = 2000;

/**
 * Creates a client whose handshake cannot hang. `node-zookeeper-client` stops its connect timer once the TCP
 * connection is up, and then waits for the server's answer to the session request with no limit at all. A
 * ZooKeeper that is still starting can leave that request unanswered for good: 3.8's worker thread throws a
 * NullPointerException while closing the connection of a server that is not running yet (`this.zkDb` is null),
 * and the socket stays open. The client then sat in CONNECTING forever, and every call timed out — seen under
 * load after a restart. Here an unanswered handshake is dropped after 2 s, so the client connects again; the wait
 * doubles after each one dropped in a row (a slow server still gets through), up to the library's connect
 * timeout (the session timeout over the number of hosts, as in ZooKeeper's Java client).
 */
export function createClient(connectString: string, options: { sessionTimeout: number; spinDelay: number }): Client {
  const client = zookeeper.createClient(connectString, options);
  const manager = managerOf(client);
  if (!manager) return client;
  const hosts = connectString.split(',').length;
  const longestMs = Math.max(FIRST_HANDSHAKE_MS, Math.floor(options.sessionTimeout / hosts));
  let waitMs = FIRST_HANDSHAKE_MS;
  const connected = manager.onSocketConnected;
  // The manager binds this method to each new socket's 'connect' event, reading it from the instance.
  manager.onSocketConnected = function (this: ConnectionManagerInternals): void {
    connected.call(this);
    const socket = this.socket;
    if (!socket) return;
    const timer = setTimeout(() => {
      if (this.socket !== socket || this.state !== MANAGER_CONNECTING) return;
      waitMs = Math.min(waitMs * 2, longestMs);
      socket.destroy(); // its 'close' makes the manager connect again
    }, waitMs);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('data', () => clearTimeout(timer));
  };
  client.on('connected', () => {
    waitMs = FIRST_HANDSHAKE_MS;
  });
  return client;
}

/**
 * Closes a client without tripping over `node-zookeeper-client`: `close()` while the client is (re)connecting
 * makes it read the server's connect response as a reply, which throws from its socket handler (an uncaught
 * exception). So a client that is not connected stops its attempts (no next server, the socket being
 * connected destroyed); one that still gets through (an attempt already scheduled) is closed once connected.
 * A session that existed before the disconnection then ends by its timeout at the server.
 */
export function closeClient(client: Client): void {
  const state = client.getState();
  if (state === zookeeper.State.SYNC_CONNECTED || state === zookeeper.State.CONNECTED_READ_ONLY) {
    client.close();
    return;
  }
  client.once('connected', () => client.close());
  const manager = managerOf(client);
  if (!manager) return;
  manager.findNextServer = () => undefined;
  clearTimeout(manager.connectTimeoutHandler);
  manager.socket?.destroy();
}
