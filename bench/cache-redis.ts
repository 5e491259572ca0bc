/**
 * redis:// cache get/set against raw ioredis doing the same work (JSON.stringify / JSON.parse of the same
 * value), one at a time and 100 in flight, in one run. Uses STOWAGE_TEST_REDIS_URL, else starts
 * redis-server from PATH on a free port. Each side keeps its best round. Run: `npx tsx bench/cache-redis.ts`
 * (`BENCH_N`, `BENCH_ROUNDS` set the round size and count; short rounds suit a busy machine).
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { Redis } from 'ioredis';
import { redisCacheScheme } from '../src/adapters/redis/index.js';
import { createCache } from '../src/core/cache/cache.js';
import { defaultLogger } from '../src/core/registry.js';
import { parseUrl } from '../src/core/url.js';

const N = Number(process.env.BENCH_N ?? 5000);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const value = { id: 42, name: 'Ada Lovelace', roles: ['admin', 'dev'], active: true };
const keys = Array.from({ length: N }, (_, i) => `user/${i}`);

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

let url = process.env.STOWAGE_TEST_REDIS_URL;
let server: ReturnType<typeof spawn> | undefined;
if (url === undefined) {
  const port = await freePort();
  server = spawn('redis-server', ['--port', String(port), '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  url = `redis://127.0.0.1:${port}`;
  await new Promise((r) => setTimeout(r, 300));
}
const { hosts } = parseUrl(url);
const raw = new Redis({ host: hosts[0]?.host, port: hosts[0]?.port });
const cache = createCache(await redisCacheScheme.open(parseUrl(url), { dataDir: '.', env: {}, logger: defaultLogger, openDriver: () => Promise.reject(new Error('none')) }));

async function once(fn: () => Promise<void>): Promise<number> {
  const started = performance.now();
  await fn();
  return N / ((performance.now() - started) / 1000);
}
const inFlight = (op: (k: string) => Promise<unknown>) => async () => {
  for (let i = 0; i < N; i += 100) await Promise.all(keys.slice(i, i + 100).map(op));
};
const oneByOne = (op: (k: string) => Promise<unknown>) => async () => {
  for (const k of keys) await op(k);
};

const rows: [string, () => Promise<void>, () => Promise<void>][] = [
  ['set, one at a time', oneByOne((k) => cache.set(k, value)), oneByOne((k) => raw.set(`raw:${k}`, JSON.stringify(value)))],
  ['get, one at a time', oneByOne((k) => cache.get(k)), oneByOne(async (k) => JSON.parse((await raw.get(`raw:${k}`)) as string))],
  ['set, 100 in flight', inFlight((k) => cache.set(k, value)), inFlight((k) => raw.set(`raw:${k}`, JSON.stringify(value)))],
  ['get, 100 in flight', inFlight((k) => cache.get(k)), inFlight(async (k) => JSON.parse((await raw.get(`raw:${k}`)) as string))],
];
for (const [name, ours, theirs] of rows) {
  // Alternate the two sides round by round so load changes on a shared machine hit both alike.
  await ours();
  await theirs();
  let a = 0;
  let b = 0;
  for (let r = 0; r < ROUNDS; r++) {
    a = Math.max(a, await once(ours));
    b = Math.max(b, await once(theirs));
  }
  console.log(`${name.padEnd(22)} stowage ${Math.round(a).toLocaleString('en-US').padStart(9)} ops/s   raw ioredis ${Math.round(b).toLocaleString('en-US').padStart(9)} ops/s   ${(a / b).toFixed(2)}x`);
}
await cache.close();
raw.disconnect();
server?.kill();
