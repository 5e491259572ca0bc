/**
 * Child of the leak test: exercises every port against backends that are down, with credentials and
 * secret values that are canaries, and prints everything it sees (errors in every printable form) to
 * stdout. The parent searches that output, and stderr, for the canaries.
 */
import { inspect } from 'node:util';
import { createStowage, type Stowage } from '../../src/index.js';

const token = process.env.LEAK_CANARY_TOKEN ?? '';
const secret = process.env.LEAK_CANARY_SECRET ?? '';
const dead = process.env.LEAK_DEAD_PORT ?? '1';
const enc = encodeURIComponent;

function show(where: string, err: unknown): void {
  const e = err as Error & { cause?: unknown };
  let json = '';
  try {
    json = JSON.stringify(err) ?? '';
  } catch {
    json = '(unserialisable)';
  }
  process.stdout.write(
    `--- ${where}\n${inspect(err, { depth: Infinity, showHidden: true })}\n${String(err)}\n${e?.stack ?? ''}\n${json}\n${inspect(e?.cause, { depth: Infinity, showHidden: true })}\n`,
  );
}

async function attempt(where: string, fn: () => Promise<unknown>): Promise<void> {
  try {
    const result = await fn();
    process.stdout.write(`--- ${where}: ok (${typeof result})\n`);
  } catch (err) {
    show(where, err);
  }
}

const profiles: Record<string, Partial<Record<'config' | 'secrets' | 'queue' | 'cache' | 'documents', string>>> = {
  etcd: { config: `etcd://stowage:${enc(token)}@127.0.0.1:${dead}/leak` },
  zookeeper: { config: `zookeeper://127.0.0.1:${dead}/leak` },
  sealed: { secrets: `etcd+sealed://stowage:${enc(token)}@127.0.0.1:${dead}/leak` },
  vault: { secrets: `vault://127.0.0.1:${dead}/secret?tls=false` },
  nats: { queue: `nats://stowage:${enc(token)}@127.0.0.1:${dead}?stream=leak` },
  'postgres-queue': { queue: `postgres://stowage:${enc(token)}@127.0.0.1:${dead}/leak` },
  // kafka:// takes no credentials yet: one URL with them (refused, redacted) and one broker that is down.
  'kafka-credentials': { queue: `kafka://stowage:${enc(token)}@127.0.0.1:${dead}?prefix=leak` },
  kafka: { queue: `kafka://127.0.0.1:${dead}?prefix=leak&timeoutMs=1000` },
  rabbitmq: { queue: `rabbitmq://stowage:${enc(token)}@127.0.0.1:${dead}?prefix=leak` },
  redis: { cache: `redis://:${enc(token)}@127.0.0.1:${dead}/0` },
  tiered: { cache: `tiered://?remote=${enc(`redis://:${enc(token)}@127.0.0.1:${dead}/0`)}` },
  mysql: { documents: `mysql://root:${enc(token)}@127.0.0.1:${dead}/leak` },
  postgres: { config: `postgres://stowage:${enc(token)}@127.0.0.1:${dead}/leak`, documents: `postgres://stowage:${enc(token)}@127.0.0.1:${dead}/leak` },
  'postgres+sealed': { secrets: `postgres+sealed://stowage:${enc(token)}@127.0.0.1:${dead}/leak` },
  mongodb: { documents: `mongodb://stowage:${enc(token)}@127.0.0.1:${dead}/leak?serverSelectionTimeoutMS=1000` },
};

const base = { config: 'mem://', secrets: 'mem://', queue: 'mem://', cache: 'mem://', documents: 'mem://' };
for (const [name, urls] of Object.entries(profiles)) {
  let stowage: Stowage | undefined;
  await attempt(`${name}: open`, async () => {
    stowage = await createStowage({ ...base, ...urls, timeoutMs: 1500 }, { env: { ...process.env, VAULT_TOKEN: token } });
  });
  if (!stowage) continue;
  const s = stowage;
  const o = { timeoutMs: 1500 };
  await attempt(`${name}: config.put`, () => s.config.put('leak/key', { secret }, o));
  await attempt(`${name}: config.get`, () => s.config.get('leak/key', o));
  await attempt(`${name}: secrets.put`, () => s.secrets.put('leak/secret', secret, o));
  await attempt(`${name}: secrets.put conflict`, () => s.secrets.put('leak/secret', secret, { ...o, ifVersion: 7 }));
  await attempt(`${name}: secrets.get`, () => s.secrets.get('leak/secret', o));
  await attempt(`${name}: queue.publish`, () => s.queue.publish('leak', secret, { ...o, headers: { h: secret } }));
  await attempt(`${name}: cache.set`, () => s.cache.set('leak', { secret }, o));
  await attempt(`${name}: cache.getOrSet`, () => s.cache.getOrSet('leak2', async () => ({ secret }), o));
  await attempt(`${name}: documents.put`, async () => (await s.documents.collection('leak', o)).put('d', { secret }, o));
  await attempt(`${name}: health`, async () => {
    for (const port of ['config', 'secrets', 'queue', 'cache', 'documents'] as const) process.stdout.write(`${inspect(await s[port].health(o), { depth: Infinity })}\n`);
  });
  await attempt(`${name}: close`, () => s.close());
}
process.stdout.write('--- done\n');
