/**
 * Real servers for tests and benchmarks (no test-runner imports here; `services.ts` adds the vitest glue).
 *
 * For each kind, in order: a URL from the environment (`STOWAGE_TEST_<KIND>_URL`), else the server binary started
 * on a free loopback port in a temporary folder, else (Vault, MongoDB, MySQL 8) testcontainers when a Docker
 * engine answers, else the suite is skipped with one line saying why. `STOWAGE_TEST_REQUIRE=etcd,nats` turns
 * such a skip into a failure.
 *
 * The binaries: Debian's etcd, nats-server, redis-server and mariadbd on PATH, ZooKeeper from Debian's jars in
 * `/usr/share/java` (run with `java`), PostgreSQL from
 * `/usr/lib/postgresql/<major>/bin` (etcd and nats are the oldest
 * supported versions); the servers built from the Go module proxy by `scripts/build-test-servers.sh` from
 * `test/servers/<name>/` into {@link serverCache} — Vault, FerretDB (for `mongodb`), and the current etcd and
 * nats-server (kinds `etcd-current`, `nats-current`); Kafka's jars, copied from Maven Central by
 * `scripts/fetch-kafka.sh` into the same cache (see {@link kafkaLibs}) and run on the machine's Java 17.
 */
import { spawn, execFile, type ChildProcess } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cp, chmod, chown, mkdir, mkdtemp, rename, rm, access, readdir, readFile, writeFile } from 'node:fs/promises';
import { createWriteStream, mkdirSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** The servers the harness can provide. */
export type ServiceKind =
  | 'etcd'
  | 'etcd-current'
  | 'nats'
  | 'nats-current'
  | 'redis'
  | 'mariadb'
  | 'mysql8'
  | 'vault'
  | 'mongodb'
  | 'postgres'
  | 'zookeeper'
  | 'kafka'
  | 'rabbitmq';

/** A running server. */
export interface Service {
  /** Which server. */
  readonly kind: ServiceKind;
  /** The Stowage URL of the server (no path or prefix; tests add their own). */
  readonly url: string;
  /** Loopback host. */
  readonly host: string;
  /** Port. */
  readonly port: number;
  /** Whether the harness started it (and so can stop, kill, pause it). */
  readonly managed: boolean;
  /** Extra environment the client needs (e.g. VAULT_TOKEN for the dev Vault). */
  readonly env: Readonly<Record<string, string>>;
  /** The server's process id (managed servers). */
  readonly pid: number | undefined;
  /** Stops it gracefully (SIGTERM) and waits for it to exit. */
  stop(): Promise<void>;
  /** Starts it again on the same port with the same data. */
  start(): Promise<void>;
  /** Kills it with SIGKILL and waits for it to exit. */
  kill(): Promise<void>;
  /**
   * Freezes it (SIGSTOP): connections stay open, nothing answers. Resolves once every thread of the server
   * has stopped (see {@link waitUntilStopped}); until then a server may still answer what it is sent.
   */
  pause(): Promise<void>;
  /** Thaws it (SIGCONT). */
  resume(): void;
  /** Stops it and removes its folder. */
  dispose(): Promise<void>;
}

/** Whether {@link waitUntilStopped} can tell (it reads `/proc`). */
export const canSeeStops = process.platform === 'linux';

/**
 * Waits until every thread of process `pid` is stopped (state `T` in `/proc/<pid>/task/<tid>/stat`).
 *
 * SIGSTOP does not stop a process at once: `kill(2)` returns once the signal is queued, and the threads of
 * the target go on running until the one woken to take the signal gets a CPU — on a busy machine, several
 * milliseconds, in which a server reads, stores and acknowledges what it is sent.
 */
export async function waitUntilStopped(pid: number, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const tasks = await readdir(`/proc/${pid}/task`);
    const states = await Promise.all(
      tasks.map((tid) =>
        readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').then(
          // "<tid> (<comm>) <state> …": the name may hold spaces and parentheses, the state follows the last ")".
          (stat) => stat.charAt(stat.lastIndexOf(')') + 2),
          // A thread that ended meanwhile runs no more.
          () => 'T',
        ),
      ),
    );
    if (states.every((state) => state === 'T' || state === 't')) return;
    if (Date.now() > deadline) throw new Error(`process ${pid} is not stopped after ${timeoutMs} ms (thread states ${states.join('')})`);
    await new Promise((r) => setTimeout(r, 2));
  }
}

/**
 * `root` and every process it forked, parents before children (read from `/proc`; `[root]` elsewhere).
 * PostgreSQL serves each connection from a process of its own: freezing or killing only the postmaster
 * would leave the backends of open connections answering, or running on as orphans.
 */
export async function processTree(root: number): Promise<number[]> {
  if (!canSeeStops) return [root];
  const parents = new Map<number, number>();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, 'utf8').catch(() => '');
    // "<pid> (<comm>) <state> <ppid> …": the name may hold spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
    if (ppid > 0) parents.set(Number(entry), ppid);
  }
  const tree = [root];
  for (let i = 0; i < tree.length; i++) for (const [pid, ppid] of parents) if (ppid === tree[i]) tree.push(pid);
  return tree;
}

/** Sends `signal` to each process, ignoring those that ended meanwhile. */
function signalAll(pids: readonly number[], signal: NodeJS.Signals): void {
  for (const pid of pids) {
    try {
      process.kill(pid, signal);
    } catch {
      // ended meanwhile
    }
  }
}

/** Waits until process `pid` has exited (gone from `/proc`, or a zombie), for at most `timeoutMs`. */
async function waitUntilGone(pid: number, timeoutMs = 10_000): Promise<void> {
  if (!canSeeStops) return;
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => undefined);
    if (stat === undefined || stat.charAt(stat.lastIndexOf(')') + 2) === 'Z') return;
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Raised when a service cannot be had here; the message is the one-line reason. */
export class ServiceUnavailable extends Error {
  override name = 'ServiceUnavailable';
}

const ENV_URL: Record<ServiceKind, string> = {
  etcd: 'STOWAGE_TEST_ETCD_URL',
  'etcd-current': 'STOWAGE_TEST_ETCD_CURRENT_URL',
  nats: 'STOWAGE_TEST_NATS_URL',
  'nats-current': 'STOWAGE_TEST_NATS_CURRENT_URL',
  redis: 'STOWAGE_TEST_REDIS_URL',
  mariadb: 'STOWAGE_TEST_MYSQL_URL',
  mysql8: 'STOWAGE_TEST_MYSQL8_URL',
  vault: 'STOWAGE_TEST_VAULT_URL',
  mongodb: 'STOWAGE_TEST_MONGODB_URL',
  postgres: 'STOWAGE_TEST_POSTGRES_URL',
  zookeeper: 'STOWAGE_TEST_ZOOKEEPER_URL',
  kafka: 'STOWAGE_TEST_KAFKA_URL',
  rabbitmq: 'STOWAGE_TEST_RABBITMQ_URL',
};

/** Pinned images for testcontainers (the same as compose/docker-compose.yml). */
export const IMAGES = {
  vault: 'hashicorp/vault:1.14.2',
  mongodb: 'mongo:7.0.14',
  mysql8: 'mysql:8.4.3',
} as const;

/** Kinds testcontainers can provide when no binary is at hand (MySQL 8 only so: no Debian package, no Go build). */
const CONTAINER_KINDS = ['vault', 'mongodb', 'mysql8'] as const satisfies readonly ServiceKind[];
type ContainerKind = (typeof CONTAINER_KINDS)[number];

function isContainerKind(kind: ServiceKind): kind is ContainerKind {
  return (CONTAINER_KINDS as readonly ServiceKind[]).includes(kind);
}

/** The root token of the dev Vault servers the harness starts (a test server in memory: nothing to protect). */
const VAULT_DEV_TOKEN = 'stowage-test-root';

const running = new Set<ChildProcess>();
process.once('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

/** Services named in `STOWAGE_TEST_REQUIRE`. */
export function requiredServices(): Set<string> {
  return new Set(
    (process.env.STOWAGE_TEST_REQUIRE ?? '')
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean),
  );
}

let portCounter = 0;

function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once('error', () => resolve(false));
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)));
  });
}

/**
 * A failed readiness probe in a few words, with what lies under it: `fetch` says only "fetch failed", and the
 * refused, reset or timed-out connection is in its `cause`.
 */
export function describeProbeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause as { code?: unknown; message?: unknown } | undefined;
  if (cause === undefined || cause === null) return err.message;
  const code = typeof cause.code === 'string' ? cause.code : undefined;
  const detail = typeof cause.message === 'string' ? cause.message : String(cause);
  return `${err.message} (${code !== undefined && !detail.includes(code) ? `${code}: ` : ''}${detail})`;
}

/**
 * A free TCP port on 127.0.0.1. Each process draws from its own block of 40 ports below the ephemeral
 * range (chosen by its pid), so test files running side by side do not race for the same port — a race
 * that once let one file's server answer another file's readiness check.
 */
export async function freePort(): Promise<number> {
  const block = 10_000 + (process.pid % 500) * 40;
  for (let i = 0; i < 40; i++) {
    const port = block + (portCounter++ % 40);
    if (await portIsFree(port)) return port;
  }
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.on('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

async function which(binary: string): Promise<string | undefined> {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/sbin', '/usr/bin', '/usr/local/bin', '/sbin'])) {
    const candidate = join(dir, binary);
    try {
      await access(candidate);
      return candidate;
    } catch {
      // not in this folder
    }
  }
  return undefined;
}

/** Where `scripts/build-test-servers.sh` puts the servers it builds (`STOWAGE_SERVER_CACHE`, else ~/.cache). */
export function serverCache(): string {
  return process.env.STOWAGE_SERVER_CACHE ?? join(homedir(), '.cache', 'stowage-servers');
}

/**
 * The binary `scripts/build-test-servers.sh` built from `test/servers/<name>/` as it is now, or undefined.
 * The folder is named by a hash of the sources (the script computes the same one), so a binary built from
 * older sources is never taken for the current one.
 */
export async function builtServer(name: string): Promise<string | undefined> {
  const source = fileURLToPath(new URL(`../servers/${name}/`, import.meta.url));
  const read = (file: string): Promise<Buffer | undefined> => readFile(join(source, file)).catch(() => undefined);
  const [mod, sum, main, prepare] = await Promise.all([read('go.mod'), read('go.sum'), read('main.go'), read('prepare.sh')]);
  if (mod === undefined || sum === undefined) return undefined;
  const hash = createHash('sha256')
    .update(mod)
    .update(sum)
    .update(main ?? '')
    .update(prepare ?? '')
    .digest('hex')
    .slice(0, 16);
  const binary = join(serverCache(), `${name}-${hash}`, name);
  try {
    await access(binary);
    return binary;
  } catch {
    return undefined;
  }
}

function notBuilt(kind: ServiceKind, name: string): ServiceUnavailable {
  return new ServiceUnavailable(`${kind}: test/servers/${name} is not built in ${serverCache()} (run scripts/build-test-servers.sh ${name})`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Sends `probe` to host:port and resolves with the first bytes answered (or rejects). */
function tcpExchange(port: number, probe: string | undefined, timeoutMs = 1000): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('no answer'));
    }, timeoutMs);
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('connect', () => {
      if (probe === undefined) {
        clearTimeout(timer);
        socket.end();
        resolve('');
      } else socket.write(probe);
    });
    socket.once('data', (data) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(data.toString('utf8'));
    });
  });
}

interface ProcessSpec {
  binary: string;
  args: string[];
  /** Resolves true when the server answers as ready; false or a throw (whose message is kept for the timeout error) when not yet. */
  ready: () => Promise<boolean>;
  readyTimeoutMs: number;
  /** Run as this user and group (PostgreSQL refuses to run as root). */
  user?: { uid: number; gid: number };
  /** Servers this one stores in (FerretDB's PostgreSQL): disposed with it, never paused or killed with it. */
  companions?: Service[];
  /** Environment added to the harness's own. */
  env?: Record<string, string>;
  /** Called by `dispose()` once the server is gone (to stop a helper process it needed). */
  onDispose?: () => void;
  /**
   * Keep the server's stdin open (a pipe nobody writes to): RabbitMQ's start script `exec`s the Erlang VM
   * (so that its pid is the server's, for SIGSTOP) only when input is allowed, and the VM halts on end of input.
   */
  stdinOpen?: boolean;
}

class ManagedService implements Service {
  readonly managed = true;
  readonly host = '127.0.0.1';
  #child: ChildProcess | undefined;
  #log = '';
  /** The processes {@link ManagedService.pause} stopped. */
  #paused: number[] = [];

  constructor(
    readonly kind: ServiceKind,
    readonly url: string,
    readonly port: number,
    readonly dataDir: string,
    readonly spec: ProcessSpec,
    readonly env: Readonly<Record<string, string>> = {},
  ) {}

  get pid(): number | undefined {
    return this.#child?.pid;
  }

  async start(): Promise<void> {
    if (this.#child) return;
    const child = spawn(this.spec.binary, this.spec.args, {
      stdio: [this.spec.stdinOpen === true ? 'pipe' : 'ignore', 'pipe', 'pipe'],
      env: this.spec.env === undefined ? undefined : { ...process.env, ...this.spec.env },
      ...this.spec.user,
    });
    this.#child = child;
    running.add(child);
    const keep = (chunk: Buffer): void => {
      this.#log = (this.#log + chunk.toString('utf8')).slice(-4000);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    const logDir = process.env.STOWAGE_TEST_SERVER_LOGS;
    if (logDir !== undefined && logDir !== '') {
      // Every line the server prints, kept whole for a failure that needs the server's side of the story.
      // The folder is made if missing: a log file that cannot be opened would unpipe the server's output,
      // and a server whose output is not read blocks once its pipe is full.
      mkdirSync(logDir, { recursive: true });
      const file = createWriteStream(join(logDir, `${this.kind}-${this.port}.log`), { flags: 'a' });
      file.on('error', (err) => console.warn(`test servers: the log of ${this.kind} on port ${this.port} cannot be written: ${err.message}`));
      child.stdout?.pipe(file, { end: false });
      child.stderr?.pipe(file, { end: false });
      child.once('exit', () => file.end());
    }
    let exited = false;
    child.once('exit', () => {
      exited = true;
      running.delete(child);
      if (this.#child === child) this.#child = undefined;
    });
    const spawnedAt = new Date();
    const deadline = spawnedAt.getTime() + this.spec.readyTimeoutMs;
    let lastProbe = 'never probed';
    const probe = (): Promise<boolean> =>
      this.spec.ready().then(
        (ready) => {
          lastProbe = ready ? 'ready' : 'answered not ready';
          return ready;
        },
        (err: unknown) => {
          lastProbe = describeProbeError(err);
          return false;
        },
      );
    while (Date.now() < deadline) {
      if (exited) throw new ServiceUnavailable(`${this.kind} exited at start: ${this.#log.trim().split('\n').slice(-3).join(' | ')}`);
      if (await probe()) {
        // The answer must come from our process: one that died (port taken) cannot have given it.
        await sleep(100);
        if (!exited) return;
        throw new ServiceUnavailable(`${this.kind} exited right after start: ${this.#log.trim().split('\n').slice(-3).join(' | ')}`);
      }
      await sleep(50);
    }
    await this.kill();
    throw new ServiceUnavailable(
      `${this.kind} did not become ready in ${this.spec.readyTimeoutMs} ms (spawned ${spawnedAt.toISOString()}; last probe: ${lastProbe}): ${this.#log.slice(-300)}`,
    );
  }

  async #signalAndWait(signal: NodeJS.Signals): Promise<void> {
    const child = this.#child;
    if (!child) return;
    if (child.exitCode !== null || child.signalCode !== null) {
      this.#child = undefined;
      return;
    }
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let forked: number[] = [];
    if (signal === 'SIGKILL' && child.pid !== undefined) {
      // A crash takes the server's every process; SIGKILL to the parent alone would leave its workers running
      // (PostgreSQL's backends keep its shared memory, and the next start fails: "pre-existing shared memory
      // block is still in use"). The parent is stopped first, so that it forks nothing once the tree is read.
      child.kill('SIGSTOP');
      if (canSeeStops) await waitUntilStopped(child.pid).catch(() => undefined);
      forked = (await processTree(child.pid)).slice(1);
    } else this.resume();
    child.kill(signal);
    signalAll(forked, signal);
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
    await exited;
    clearTimeout(timer);
    // Orphaned workers are no longer the harness's children: wait until the kernel has reaped them too.
    await Promise.all(forked.map((pid) => waitUntilGone(pid)));
    this.#child = undefined;
  }

  stop(): Promise<void> {
    return this.#signalAndWait('SIGTERM');
  }

  kill(): Promise<void> {
    return this.#signalAndWait('SIGKILL');
  }

  async pause(): Promise<void> {
    const child = this.#child;
    if (child === undefined) return;
    child.kill('SIGSTOP');
    if (canSeeStops && child.pid !== undefined) {
      await waitUntilStopped(child.pid);
      // The parent first, so that it forks nothing after the tree is read; then everything it forked.
      this.#paused = await processTree(child.pid);
      signalAll(this.#paused.slice(1), 'SIGSTOP');
      await Promise.all(this.#paused.slice(1).map((pid) => waitUntilStopped(pid).catch(() => undefined)));
    } else await new Promise((r) => setTimeout(r, 100));
  }

  resume(): void {
    this.#child?.kill('SIGCONT');
    signalAll(this.#paused.slice(1), 'SIGCONT');
    this.#paused = [];
  }

  async dispose(): Promise<void> {
    await this.kill();
    this.spec.onDispose?.();
    await rm(this.dataDir, { recursive: true, force: true });
    await Promise.all((this.spec.companions ?? []).map((c) => c.dispose()));
  }
}

class ExternalService implements Service {
  readonly managed = false;
  readonly pid = undefined;

  constructor(
    readonly kind: ServiceKind,
    readonly url: string,
    readonly host: string,
    readonly port: number,
    readonly env: Readonly<Record<string, string>>,
    private readonly onDispose: () => Promise<void> = async () => undefined,
  ) {}

  #unmanaged(): never {
    throw new ServiceUnavailable(`${this.kind} at ${this.host}:${this.port} is not managed by the harness; it cannot be stopped or paused`);
  }

  stop(): Promise<void> {
    this.#unmanaged();
  }
  start(): Promise<void> {
    this.#unmanaged();
  }
  kill(): Promise<void> {
    this.#unmanaged();
  }
  pause(): Promise<void> {
    this.#unmanaged();
  }
  resume(): void {
    this.#unmanaged();
  }
  dispose(): Promise<void> {
    return this.onDispose();
  }
}

function fromEnvUrl(kind: ServiceKind, url: string): Service {
  const m = /^[a-z+]+:\/\/(?:[^@/]*@)?([^:/,?]+)(?::(\d+))?/i.exec(url);
  const env: Record<string, string> = {};
  if (kind === 'vault' && process.env.VAULT_TOKEN) env.VAULT_TOKEN = process.env.VAULT_TOKEN;
  return new ExternalService(kind, url, m?.[1] ?? '127.0.0.1', Number(m?.[2] ?? 0), env);
}

async function mariadbTemplate(installDb: string): Promise<string> {
  // Initialising a data folder takes seconds; do it once per machine and copy it for each server.
  const template = join(tmpdir(), 'stowage-mariadb-template');
  try {
    await access(join(template, 'mysql'));
    return template;
  } catch {
    const staging = await mkdtemp(join(tmpdir(), 'stowage-mariadb-staging-'));
    await execFileAsync(installDb, [
      '--no-defaults',
      `--datadir=${staging}`,
      '--user=root',
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
    ]);
    // A rename is atomic: test files running in parallel may race to make the template, and one that loses
    // keeps the winner's (the rename fails on a folder that exists and is not empty).
    await rename(staging, template).catch(async () => {
      // Not a race lost but a broken template (no system tables): replace it.
      if (await access(join(template, 'mysql')).then(() => false, () => true)) {
        await rm(template, { recursive: true, force: true });
        await rename(staging, template).catch(() => undefined);
      }
    });
    await rm(staging, { recursive: true, force: true });
    return template;
  }
}

/** The PostgreSQL server programs: Debian's newest `/usr/lib/postgresql/<major>/bin`, else PATH. */
async function postgresBinaries(): Promise<{ initdb: string; postgres: string } | undefined> {
  const root = '/usr/lib/postgresql';
  const majors = await readdir(root).catch(() => [] as string[]);
  for (const major of majors.filter((m) => /^\d+$/.test(m)).sort((a, b) => Number(b) - Number(a))) {
    const bin = join(root, major, 'bin');
    try {
      await access(join(bin, 'postgres'));
      return { initdb: join(bin, 'initdb'), postgres: join(bin, 'postgres') };
    } catch {
      // an incomplete install: try the next major
    }
  }
  const initdb = await which('initdb');
  const postgres = await which('postgres');
  return initdb && postgres ? { initdb, postgres } : undefined;
}

/**
 * The user PostgreSQL runs as: itself when not root; as root (CI), the `postgres` account Debian's package
 * creates, since the server refuses to run as root.
 */
async function postgresUser(): Promise<{ uid: number; gid: number } | undefined> {
  if (process.getuid?.() !== 0) return undefined;
  const passwd = await readFile('/etc/passwd', 'utf8');
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'));
  if (!line) throw new ServiceUnavailable('running as root and there is no postgres account to run PostgreSQL as');
  const [, , uid, gid] = line.split(':');
  return { uid: Number(uid), gid: Number(gid) };
}

async function postgresTemplate(initdb: string, user: { uid: number; gid: number } | undefined): Promise<string> {
  // initdb takes seconds; do it once per machine and copy the folder for each server.
  const template = join(tmpdir(), `stowage-postgres-template-${user?.uid ?? process.getuid?.() ?? 0}`);
  try {
    await access(join(template, 'PG_VERSION'));
    return template;
  } catch {
    const staging = await mkdtemp(join(tmpdir(), 'stowage-postgres-staging-'));
    if (user) await chown(staging, user.uid, user.gid);
    await new Promise<void>((resolve, reject) => {
      execFile(
        initdb,
        ['-D', join(staging, 'data'), '--auth=trust', '--username=postgres', '--encoding=UTF8', '--locale=C.UTF-8', '--no-instructions'],
        { ...user, cwd: staging },
        (err, _stdout, stderr) => (err ? reject(new ServiceUnavailable(`initdb failed: ${stderr.trim().split('\n').slice(-2).join(' | ')}`)) : resolve()),
      );
    });
    await rm(template, { recursive: true, force: true });
    await rename(join(staging, 'data'), template).catch(async () => undefined);
    await rm(staging, { recursive: true, force: true });
    return template;
  }
}

/** Gives a folder and everything in it to `user`. */
async function chownTree(dir: string, user: { uid: number; gid: number }): Promise<void> {
  await chown(dir, user.uid, user.gid);
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    await chown(join(entry.parentPath, entry.name), user.uid, user.gid);
  }
}

/** The classpath of Debian's ZooKeeper server (its jars in /usr/share/java), or undefined when not installed. */
async function zookeeperClasspath(): Promise<string | undefined> {
  const names = [
    'zookeeper', 'zookeeper-jute', 'slf4j-api', 'slf4j-simple', 'netty-handler', 'netty-common', 'netty-buffer',
    'netty-transport', 'netty-codec', 'netty-resolver', 'netty-transport-native-epoll', 'netty-transport-native-unix-common',
    'metrics-core', 'commons-cli', 'snappy-java',
  ];
  const jars = names.map((name) => join('/usr/share/java', `${name}.jar`));
  try {
    await access(jars[0]!);
    return jars.join(':');
  } catch {
    return undefined;
  }
}

/**
 * The folder of the Kafka broker's jars `scripts/fetch-kafka.sh` copied for the version `test/servers/kafka/pom.xml`
 * names, or undefined when they are not there.
 */
export async function kafkaLibs(): Promise<string | undefined> {
  const pom = await readFile(fileURLToPath(new URL('../servers/kafka/pom.xml', import.meta.url)), 'utf8').catch(() => '');
  const version = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(pom)?.[1];
  if (version === undefined) return undefined;
  const libs = join(serverCache(), `kafka-${version}`, 'libs');
  try {
    await access(join(libs, `kafka_2.13-${version}.jar`));
    return libs;
  } catch {
    return undefined;
  }
}

/**
 * The configuration of a one-node Kafka in KRaft mode (broker and controller in one process) on loopback, tuned
 * for tests: one partition per topic, replication factor 1 everywhere, no delay before a group's first rebalance.
 */
function kafkaProperties(port: number, controller: number, logDir: string): string {
  return [
    'process.roles=broker,controller',
    'node.id=1',
    `listeners=PLAINTEXT://127.0.0.1:${port},CONTROLLER://127.0.0.1:${controller}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${port}`,
    'controller.listener.names=CONTROLLER',
    'listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    `controller.quorum.bootstrap.servers=127.0.0.1:${controller}`,
    `log.dirs=${logDir}`,
    'num.partitions=1',
    'auto.create.topics.enable=false',
    'offsets.topic.replication.factor=1',
    'offsets.topic.num.partitions=1',
    'transaction.state.log.replication.factor=1',
    'transaction.state.log.min.isr=1',
    'share.coordinator.state.topic.replication.factor=1',
    'share.coordinator.state.topic.min.isr=1',
    'group.initial.rebalance.delay.ms=0',
    // Lets a test ask for a 2 s consumer session (the default floor is 6 s), so that a frozen consumer's
    // partition moves, and a freeze outlasts a session, within seconds.
    'group.min.session.timeout.ms=2000',
    '',
  ].join('\n');
}

/** Kafka logs warnings and errors only, to stderr (kept by the harness for a failed start). */
const KAFKA_LOG4J2 = [
  'rootLogger.level=WARN',
  'rootLogger.appenderRef.stderr.ref=STDERR',
  'appender.stderr.type=Console',
  'appender.stderr.name=STDERR',
  'appender.stderr.target=SYSTEM_ERR',
  'appender.stderr.layout.type=PatternLayout',
  'appender.stderr.layout.pattern=[%d] %p %m (%c)%n',
  '',
].join('\n');

/**
 * TLS for a harness PostgreSQL (`startService('postgres', { postgresTls })`): the server runs with `ssl=on`
 * and refuses every connection over TCP that is not encrypted, so a client that forgot TLS fails loudly.
 */
export interface PostgresTls {
  /** The server's certificate (PEM). */
  readonly certFile: string;
  /** Its private key (PEM); the harness copies it and makes the copy readable by the server only. */
  readonly keyFile: string;
  /** The CA that signs client certificates (PEM), for `clientCertUser`. */
  readonly caFile?: string;
  /**
   * A user who must log in with a client certificate issued to that name (the `cert` method), while the
   * other users need no password. Needs `caFile`.
   */
  readonly clientCertUser?: string;
}

/** The `-c` settings and `pg_hba.conf` of a PostgreSQL with {@link PostgresTls}, its files copied into `dir`. */
async function postgresTlsSettings(tls: PostgresTls, dir: string): Promise<string[]> {
  await mkdir(dir, { recursive: true });
  const settings = ['ssl=on'];
  const files: [string, string | undefined][] = [['ssl_cert_file', tls.certFile], ['ssl_key_file', tls.keyFile], ['ssl_ca_file', tls.caFile]];
  for (const [setting, file] of files) {
    if (file === undefined) continue;
    const copy = join(dir, `${setting}.pem`);
    await cp(file, copy);
    // PostgreSQL refuses a key file that others may read.
    await chmod(copy, 0o600);
    settings.push(`${setting}=${copy}`);
  }
  if (tls.clientCertUser !== undefined && tls.caFile === undefined) throw new Error('postgresTls.clientCertUser needs caFile');
  const hba = join(dir, 'pg_hba.conf');
  await writeFile(
    hba,
    [
      'local all all trust',
      'hostnossl all all all reject',
      ...(tls.clientCertUser !== undefined ? [`hostssl all ${tls.clientCertUser} all cert`] : []),
      'hostssl all all all trust',
      '',
    ].join('\n'),
  );
  settings.push(`hba_file=${hba}`);
  return settings;
}

/** How the harness starts a server of its own. */
export interface StartOptions {
  /** (kind `postgres`) start it with TLS, see {@link PostgresTls}. */
  postgresTls?: PostgresTls;
  /**
   * (kinds `etcd`, `etcd-current`) sync every write to disk, as etcd does by default. Tests leave it off, so
   * that the suite's other disk writers never hold up an etcd's fsync (one CI run saw a fresh etcd still a
   * candidate after 20 s). The benchmarks turn it on, so their figures are those of a production etcd. A
   * later CI run saw an etcd without fsync elect itself at once and still refuse its client port for a
   * minute: that one is met by starting it once more (see `RESTART_IF_NOT_READY`).
   */
  fsync?: boolean;
}

async function startBinary(kind: ServiceKind, options: StartOptions = {}): Promise<Service> {
  const dataDir = await mkdtemp(join(tmpdir(), `stowage-${kind}-`));
  const port = await freePort();
  let spec: ProcessSpec;
  let url: string;
  let env: Record<string, string> = {};
  switch (kind) {
    case 'etcd':
    case 'etcd-current': {
      const binary = kind === 'etcd' ? await which('etcd') : await builtServer('etcd');
      if (!binary) throw kind === 'etcd' ? new ServiceUnavailable('etcd is not on PATH (apt-get install etcd-server)') : notBuilt(kind, 'etcd');
      const peer = await freePort();
      url = `etcd://127.0.0.1:${port}`;
      spec = {
        binary,
        args: [
          '--name', 'stowage-test',
          '--data-dir', join(dataDir, 'data'),
          '--listen-client-urls', `http://127.0.0.1:${port}`,
          '--advertise-client-urls', `http://127.0.0.1:${port}`,
          '--listen-peer-urls', `http://127.0.0.1:${peer}`,
          '--initial-advertise-peer-urls', `http://127.0.0.1:${peer}`,
          '--initial-cluster', `stowage-test=http://127.0.0.1:${peer}`,
          '--log-level', 'error',
          // Tests skip etcd's fsync (see StartOptions.fsync): writes still reach the page cache, so a killed etcd
          // keeps them; only a machine crash could lose them, which no test makes.
          ...(options.fsync ? [] : ['--unsafe-no-fsync']),
        ],
        ready: async () => {
          const res = await fetch(`http://127.0.0.1:${port}/health`, { signal: AbortSignal.timeout(2000) });
          const body = await res.text();
          if (res.ok && (JSON.parse(body) as { health?: string }).health === 'true') return true;
          throw new Error(`/health answered ${res.status} ${body.slice(0, 200)}`);
        },
        // Ready in under a second when the machine is idle; one CI run under the full suite's load saw
        // etcd (with fsync) elect itself only ~20 s after spawn. 30 s, then one start more on new ports
        // (RESTART_IF_NOT_READY): together no longer than the single 60 s window was.
        readyTimeoutMs: options.fsync ? 60_000 : 30_000,
      };
      break;
    }
    case 'nats':
    case 'nats-current': {
      const binary = kind === 'nats' ? await which('nats-server') : await builtServer('nats-server');
      if (!binary) throw kind === 'nats' ? new ServiceUnavailable('nats-server is not on PATH (apt-get install nats-server)') : notBuilt(kind, 'nats-server');
      const monitor = await freePort();
      url = `nats://127.0.0.1:${port}`;
      spec = {
        binary,
        args: ['-a', '127.0.0.1', '-p', String(port), '-m', String(monitor), '-js', '-sd', join(dataDir, 'js')],
        ready: async () => {
          const res = await fetch(`http://127.0.0.1:${monitor}/healthz?js-enabled-only=true`, { signal: AbortSignal.timeout(1000) });
          return res.ok;
        },
        readyTimeoutMs: 30_000,
      };
      break;
    }
    case 'redis': {
      const binary = await which('redis-server');
      if (!binary) throw new ServiceUnavailable('redis-server is not on PATH (apt-get install redis-server)');
      url = `redis://127.0.0.1:${port}`;
      spec = {
        binary,
        args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dataDir],
        ready: async () => (await tcpExchange(port, 'PING\r\n')).startsWith('+PONG'),
        readyTimeoutMs: 10_000,
      };
      break;
    }
    case 'mariadb': {
      const binary = (await which('mariadbd')) ?? (await which('mysqld'));
      const installDb = (await which('mariadb-install-db')) ?? (await which('mysql_install_db'));
      if (!binary || !installDb) throw new ServiceUnavailable('mariadbd is not on PATH (apt-get install mariadb-server)');
      await cp(await mariadbTemplate(installDb), join(dataDir, 'data'), { recursive: true });
      // Its temporary tables in its own folder, not the machine's /tmp, which others may clean.
      await mkdir(join(dataDir, 'tmp'));
      url = `mysql://root@127.0.0.1:${port}/test`;
      spec = {
        binary,
        args: [
          '--no-defaults',
          `--datadir=${join(dataDir, 'data')}`,
          `--port=${port}`,
          '--bind-address=127.0.0.1',
          `--socket=${join(dataDir, 'mysqld.sock')}`,
          `--pid-file=${join(dataDir, 'mysqld.pid')}`,
          `--tmpdir=${join(dataDir, 'tmp')}`,
          '--user=root',
          '--skip-grant-tables',
          '--skip-name-resolve',
          '--innodb-buffer-pool-size=64M',
          '--innodb-log-file-size=16M',
          '--max-connections=500',
          '--character-set-server=utf8mb4',
          '--collation-server=utf8mb4_bin',
        ],
        ready: async () => {
          const mysql = await import('mysql2/promise');
          const conn = await mysql.createConnection({ host: '127.0.0.1', port, user: 'root', connectTimeout: 1000 });
          try {
            await conn.query('CREATE DATABASE IF NOT EXISTS test');
            return true;
          } finally {
            await conn.end();
          }
        },
        readyTimeoutMs: 60_000,
      };
      break;
    }
    case 'mongodb': {
      const binary = await builtServer('ferretdb');
      if (!binary) throw notBuilt(kind, 'ferretdb');
      // FerretDB over PostgreSQL, its main backend: over SQLite (its other one) it stopped answering for good
      // once three processes wrote with 16 handlers each (the cluster test), which no MongoDB user would see.
      const store = await startBinary('postgres');
      url = `mongodb://127.0.0.1:${port}/test`;
      spec = {
        binary,
        args: ['-listen', `127.0.0.1:${port}`, '-postgresql-url', `postgres://postgres@127.0.0.1:${store.port}/postgres`],
        companions: [store],
        ready: async () => {
          const { MongoClient } = await import('mongodb');
          const client = new MongoClient(url, { serverSelectionTimeoutMS: 1000, connectTimeoutMS: 1000 });
          try {
            return (await client.db('admin').command({ ping: 1 })).ok === 1;
          } finally {
            await client.close();
          }
        },
        readyTimeoutMs: 30_000,
      };
      break;
    }
    case 'vault': {
      const binary = (await builtServer('vault')) ?? (await which('bao')) ?? (await which('vault'));
      if (!binary) throw notBuilt(kind, 'vault');
      url = `vault://127.0.0.1:${port}/secret?tls=false`;
      env = { VAULT_TOKEN: VAULT_DEV_TOKEN };
      spec = {
        binary,
        // Dev mode: in memory, unsealed, KV v2 at secret/; -dev-no-store-token keeps it out of ~/.vault-token.
        args: ['server', '-dev', `-dev-root-token-id=${VAULT_DEV_TOKEN}`, `-dev-listen-address=127.0.0.1:${port}`, '-dev-no-store-token'],
        ready: async () => {
          const res = await fetch(`http://127.0.0.1:${port}/v1/sys/health`, { signal: AbortSignal.timeout(1000) });
          if (res.ok) return true;
          throw new Error(`/v1/sys/health answered ${res.status}`);
        },
        readyTimeoutMs: 30_000,
      };
      break;
    }
    case 'postgres': {
      const binaries = await postgresBinaries();
      if (!binaries) throw new ServiceUnavailable('postgres is not installed (apt-get install postgresql)');
      const user = await postgresUser();
      const data = join(dataDir, 'data');
      await cp(await postgresTemplate(binaries.initdb, user), data, { recursive: true });
      const tls = options.postgresTls;
      const tlsSettings = tls === undefined ? [] : await postgresTlsSettings(tls, join(dataDir, 'tls'));
      if (user) await chownTree(dataDir, user);
      url = `postgres://postgres@127.0.0.1:${port}/postgres`;
      spec = {
        binary: binaries.postgres,
        args: [
          '-D', data,
          '-p', String(port),
          '-c', 'listen_addresses=127.0.0.1',
          '-c', `unix_socket_directories=${dataDir}`,
          '-c', 'max_connections=300',
          '-c', 'shared_buffers=64MB',
          '-c', 'logging_collector=off',
          ...tlsSettings.flatMap((setting) => ['-c', setting]),
        ],
        user,
        ready: async () => {
          const { default: pg } = await import('pg');
          const client = new pg.Client({
            host: '127.0.0.1',
            port,
            user: 'postgres',
            database: 'postgres',
            connectionTimeoutMillis: 1000,
            // Only up or not: the tests check the certificate.
            ...(tls ? { ssl: { rejectUnauthorized: false } } : {}),
          });
          await client.connect();
          try {
            await client.query('SELECT 1');
            return true;
          } finally {
            await client.end();
          }
        },
        readyTimeoutMs: 60_000,
      };
      break;
    }
    case 'zookeeper': {
      const jars = await zookeeperClasspath();
      const java = await which('java');
      if (!jars || !java) throw new ServiceUnavailable('zookeeper: Debian\'s zookeeper jars or java are missing (apt-get install zookeeper)');
      const config = join(dataDir, 'zoo.cfg');
      // A short tick lets the tests use sessions (leases) of 1 s; the admin server would take port 8080.
      await writeFile(
        config,
        [
          `dataDir=${join(dataDir, 'data')}`,
          `clientPort=${port}`,
          'clientPortAddress=127.0.0.1',
          'tickTime=250',
          'minSessionTimeout=1000',
          'maxSessionTimeout=60000',
          'admin.enableServer=false',
          '4lw.commands.whitelist=srvr,ruok',
          '',
        ].join('\n'),
      );
      url = `zookeeper://127.0.0.1:${port}`;
      spec = {
        binary: java,
        args: [
          '-Xmx128m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1',
          '-Dorg.slf4j.simpleLogger.defaultLogLevel=warn',
          '-cp', jars,
          'org.apache.zookeeper.server.ZooKeeperServerMain', config,
        ],
        ready: async () => (await tcpExchange(port, 'ruok')).startsWith('imok'),
        readyTimeoutMs: 60_000,
      };
      break;
    }
    case 'rabbitmq': {
      const binary = '/usr/lib/rabbitmq/bin/rabbitmq-server';
      const epmdBinary = await which('epmd');
      if (!(await access(binary).then(() => true, () => false)) || !epmdBinary) {
        throw new ServiceUnavailable('rabbitmq-server is not installed (apt-get install rabbitmq-server)');
      }
      // Its own epmd on a port of its own, a child of the harness: the node would otherwise start (or share)
      // a daemonised epmd on 4369 that outlives the test run.
      const epmdPort = await freePort();
      const distPort = await freePort();
      const epmd = spawn(epmdBinary, ['-port', String(epmdPort)], { stdio: 'ignore' });
      running.add(epmd);
      epmd.once('exit', () => running.delete(epmd));
      const home = join(dataDir, 'home');
      await mkdir(home, { recursive: true });
      await writeFile(join(dataDir, 'enabled_plugins'), '[].\n');
      // Quorum queues need no cluster; guest may connect over loopback (the default), nothing listens elsewhere.
      await writeFile(join(dataDir, 'rabbitmq.conf'), `listeners.tcp.default = 127.0.0.1:${port}\n`);
      url = `rabbitmq://guest:guest@127.0.0.1:${port}`;
      spec = {
        binary,
        args: [],
        env: {
          HOME: home,
          ERL_EPMD_PORT: String(epmdPort),
          RABBITMQ_NODENAME: `stowage-${port}@localhost`,
          RABBITMQ_NODE_IP_ADDRESS: '127.0.0.1',
          RABBITMQ_NODE_PORT: String(port),
          RABBITMQ_DIST_PORT: String(distPort),
          RABBITMQ_MNESIA_BASE: join(dataDir, 'mnesia'),
          RABBITMQ_LOG_BASE: join(dataDir, 'log'),
          RABBITMQ_LOGS: '-',
          RABBITMQ_CONFIG_FILE: join(dataDir, 'rabbitmq.conf'),
          RABBITMQ_ENABLED_PLUGINS_FILE: join(dataDir, 'enabled_plugins'),
          RABBITMQ_ALLOW_INPUT: '1',
        },
        stdinOpen: true,
        onDispose: () => epmd.kill('SIGKILL'),
        // AMQP's protocol header answered with connection.start (method 10,10) once the broker has booted.
        ready: async () => (await tcpExchange(port, 'AMQP\x00\x00\x09\x01')).charCodeAt(0) === 1,
        readyTimeoutMs: 60_000,
      };
      break;
    }
    case 'kafka': {
      const java = await which('java');
      if (!java) throw new ServiceUnavailable('kafka: no java on PATH (apt-get install openjdk-17-jre-headless)');
      const libs = await kafkaLibs();
      if (!libs) throw new ServiceUnavailable(`kafka: its jars are not in ${serverCache()} (run scripts/fetch-kafka.sh)`);
      const controller = await freePort();
      const config = join(dataDir, 'server.properties');
      const log4j = join(dataDir, 'log4j2.properties');
      await writeFile(config, kafkaProperties(port, controller, join(dataDir, 'data')));
      await writeFile(log4j, KAFKA_LOG4J2);
      // Small heap, serial GC and the client compiler only: a test broker starts sooner and takes less of a
      // shared 2-core machine; the controller's own quorum of one is formatted once, restarts keep it.
      const jvm = ['-Xms64m', '-Xmx384m', '-XX:+UseSerialGC', '-XX:TieredStopAtLevel=1', '-Xshare:auto', `-Dlog4j2.configurationFile=${log4j}`, '-cp', join(libs, '*')];
      const id = randomBytes(16);
      // A cluster id is 16 bytes in base64url; one whose text starts with '-' would be read as an option.
      id[0] = id[0]! & 0x7f;
      const clusterId = id.toString('base64url');
      await new Promise<void>((resolve, reject) => {
        execFile(java, [...jvm, 'kafka.tools.StorageTool', 'format', '--standalone', '-t', clusterId, '-c', config], (err, _stdout, stderr) =>
          err ? reject(new ServiceUnavailable(`kafka: storage format failed: ${stderr.trim().split('\n').slice(-2).join(' | ')}`)) : resolve(),
        );
      });
      url = `kafka://127.0.0.1:${port}`;
      spec = {
        binary: java,
        args: [...jvm, 'kafka.Kafka', config],
        ready: async () => {
          // Ready once the broker answers a metadata request naming itself (it listens before it has
          // caught up with its controller, and then answers with no brokers).
          const { Admin } = await import('@platformatic/kafka');
          const admin = new Admin({ clientId: 'stowage-harness', bootstrapBrokers: [`127.0.0.1:${port}`], timeout: 1000, retries: 0 });
          try {
            return (await admin.metadata({ topics: [] })).brokers.size > 0;
          } finally {
            await admin.close();
          }
        },
        readyTimeoutMs: 90_000,
      };
      break;
    }
    default:
      throw new ServiceUnavailable(`${kind} has no binary here`);
  }
  const service = new ManagedService(kind, url, port, dataDir, spec, env);
  try {
    await service.start();
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    await Promise.all((spec.companions ?? []).map((c) => c.dispose()));
    throw err;
  }
  return service;
}

async function startContainer(kind: ContainerKind): Promise<Service> {
  let tc: typeof import('testcontainers');
  try {
    tc = await import('testcontainers');
  } catch (err) {
    throw new ServiceUnavailable(`${kind}: testcontainers could not be loaded (${(err as Error).message})`);
  }
  try {
    await tc.getContainerRuntimeClient();
  } catch {
    throw new ServiceUnavailable(`${kind}: no ${ENV_URL[kind]} set and no Docker engine answers for testcontainers`);
  }
  if (kind === 'vault') {
    const token = VAULT_DEV_TOKEN;
    const container = await new tc.GenericContainer(IMAGES.vault)
      .withEnvironment({ VAULT_DEV_ROOT_TOKEN_ID: token, VAULT_DEV_LISTEN_ADDRESS: '0.0.0.0:8200' })
      .withExposedPorts(8200)
      .withWaitStrategy(tc.Wait.forHttp('/v1/sys/health', 8200))
      .start();
    const port = container.getMappedPort(8200);
    return new ExternalService(kind, `vault://127.0.0.1:${port}/secret?tls=false`, '127.0.0.1', port, { VAULT_TOKEN: token }, async () => {
      await container.stop();
    });
  }
  if (kind === 'mysql8') {
    // The image's entrypoint first runs a temporary server without networking ("port: 0"), then the real one.
    const container = await new tc.GenericContainer(IMAGES.mysql8)
      .withEnvironment({ MYSQL_ALLOW_EMPTY_PASSWORD: 'yes', MYSQL_DATABASE: 'test' })
      .withCommand(['--character-set-server=utf8mb4', '--collation-server=utf8mb4_bin', '--max-connections=500'])
      .withExposedPorts(3306)
      .withWaitStrategy(tc.Wait.forLogMessage(/ready for connections.*port: 3306/))
      .withStartupTimeout(180_000)
      .start();
    const port = container.getMappedPort(3306);
    return new ExternalService(kind, `mysql://root@127.0.0.1:${port}/test`, '127.0.0.1', port, {}, async () => {
      await container.stop();
    });
  }
  const container = await new tc.GenericContainer(IMAGES.mongodb)
    .withCommand(['--replSet', 'rs0', '--bind_ip_all'])
    .withExposedPorts(27017)
    .withWaitStrategy(tc.Wait.forLogMessage(/Waiting for connections/))
    .start();
  await container.exec(['mongosh', '--quiet', '--eval', "rs.initiate({_id:'rs0',members:[{_id:0,host:'localhost:27017'}]})"]);
  const port = container.getMappedPort(27017);
  return new ExternalService(kind, `mongodb://127.0.0.1:${port}/test?directConnection=true`, '127.0.0.1', port, {}, async () => {
    await container.stop();
  });
}

/**
 * Starts (or finds) a server of `kind`.
 *
 * @param options.managed - require a server the harness controls (for stop/kill/pause tests); an
 *   environment URL is then not enough.
 * @param options - see {@link StartOptions}.
 * @throws ServiceUnavailable with a one-line reason when none can be had.
 */
export async function startService(kind: ServiceKind, options: StartOptions & { managed?: boolean } = {}): Promise<Service> {
  const envUrl = process.env[ENV_URL[kind]];
  // A server from the environment has none of the settings asked for.
  if (envUrl && !options.managed && options.postgresTls === undefined) return fromEnvUrl(kind, envUrl);
  try {
    return await retryPortInUse(() => startBinary(kind, options), 3, RESTART_IF_NOT_READY.has(kind));
  } catch (err) {
    if (!(err instanceof ServiceUnavailable) || !isContainerKind(kind) || options.managed) throw err;
    try {
      return await startContainer(kind);
    } catch (containerErr) {
      if (!(containerErr instanceof ServiceUnavailable)) throw containerErr;
      throw new ServiceUnavailable(`${err.message}; ${containerErr.message}`);
    }
  }
}

/** What a server prints when the port it was given was taken in the meantime (Erlang, Go, C, Java wordings). */
const PORT_IN_USE = /EADDRINUSE|address already in use|could_not_start_listener|Could not create server TCP listening socket|BindException/i;

/** What {@link ServerProcess} says of a server that is running but never answered its readiness probe. */
const NOT_READY = /did not become ready/;

/**
 * The servers started once more, on new ports and in a new folder, when the first one never became ready:
 * etcd, which is ready within a second when healthy, and twice in CI runs under the full suite's load was
 * not, its client port refusing the probe for a minute after it had elected itself (not reproduced in 40
 * starts under load; the probe now records why it failed, see {@link describeProbeError}).
 */
const RESTART_IF_NOT_READY: ReadonlySet<ServiceKind> = new Set(['etcd', 'etcd-current']);

/**
 * Starts a server again, on new ports, when it exited at start because a port {@link freePort} gave was taken
 * before the server bound it (another test process whose pid falls in the same block, or any other program):
 * a race the harness cannot close, since the server binds the port itself. With `restartIfNotReady`, a server
 * that ran but never became ready is also started once more (it was killed already), and a warning says so.
 * Other failures are thrown at once.
 */
export async function retryPortInUse<T>(start: () => Promise<T>, attempts = 3, restartIfNotReady = false): Promise<T> {
  let restarted = false;
  for (let attempt = 1; ; attempt++) {
    try {
      return await start();
    } catch (err) {
      if (!(err instanceof ServiceUnavailable)) throw err;
      if (restartIfNotReady && !restarted && NOT_READY.test(err.message)) {
        restarted = true;
        console.warn(`test servers: starting once more: ${err.message}`);
        continue;
      }
      if (attempt >= attempts || !PORT_IN_USE.test(err.message)) throw err;
    }
  }
}

/** Creates a fresh temporary folder for a test. */
export async function tempDir(prefix = 'stowage-test-'): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  await mkdir(dir, { recursive: true });
  return dir;
}
